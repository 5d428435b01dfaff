"""The backup of one business, step by step: what each task of the generated DAG does.

One module per step: :mod:`.run` (the run, preflight, the guard), :mod:`.snapshot` (take,
snapshot_standby), :mod:`.sync` (the data copy), :mod:`.metadata` (register_metadata, user data),
:mod:`.publish` (publish, retention), :mod:`.command` (``tandem backup``).

Each step takes plain JSON from the steps before it (Airflow XComs) and returns plain JSON.
Guarantees, per step:

- ``preflight`` reads only; it fails (with the reason) unless exactly one cluster of the pair is
  active and the other is alive and standby, clocks agree, and the target has room.
- ``take`` snapshots every root of the business at once and captures the metastore's
  definitions of the protected tables around that instant (a capture taken before and one
  after the snapshots must agree, else it tries again); on retry it first removes the snapshots
  of any unpublished point everywhere, so a point is all-or-nothing. A point that is already
  published is never redone: the run stops (:class:`PointAlreadyPublished`) and the point stays.
- ``copy_component`` copies data only and is idempotent: a rerun resumes (a changed target falls
  back to a full sync, moving what it held beyond the last point to the quarantine).
- ``register_metadata`` runs only after every copy succeeded: the target's metastore is made to
  match the capture, never the live source.
- ``publish`` verifies the target's snapshot against the source's, then writes the per-file
  records and the manifest, last and atomically: before it, the point does not exist.
- ``apply_retention`` deletes manifests before snapshots, so no half-deleted point is ever listed.

Every step that writes first checks that the pair's roles and epochs are still the ones
``preflight`` saw (:func:`guard`): after a promotion a run stops instead of writing, and it never
writes to (or quarantines on) a cluster that says active. A run killed anywhere leaves the
standby's live data possibly between two points; ``tandem restore`` and every promotion put it
back on the newest published point (tandem.restore).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from tandem import catalog
from tandem.backup.metadata import register_metadata, sync_user_data
from tandem.backup.publish import apply_retention, publish
from tandem.backup.run import (
    Direction,
    PointAlreadyPublished,
    RolesChanged,
    Run,
    decide_direction,
    guard,
    preflight,
)
from tandem.backup.snapshot import CAPTURE_ATTEMPTS, published_points, resolve, snapshot_standby, take
from tandem.backup.sync import copy_component
from tandem.runtime import Clusters

log = logging.getLogger(__name__)

__all__ = [
    "CAPTURE_ATTEMPTS",
    "Direction",
    "PointAlreadyPublished",
    "RolesChanged",
    "Run",
    "apply_retention",
    "copy_component",
    "decide_direction",
    "guard",
    "preflight",
    "publish",
    "published_points",
    "register_metadata",
    "resolve",
    "run_backup",
    "run_once",
    "snapshot_standby",
    "sync_user_data",
    "take",
]


def run_once(run: Run, clusters: Clusters) -> dict[str, Any]:
    """Every step in order, in this process: what the DAG does task by task, for benchmarks,
    drills and tests that need many points quickly. Returns the published manifest (for a
    point that was published already, that point's manifest, unchanged)."""
    started = datetime.now(UTC)
    direction = preflight(run, clusters)
    components = [
        c for c in ("hdfs", "hive", "sparksql") if any(d.component == c for d in run.policy.datasets())
    ]
    resolved = {c: resolve(run, clusters, direction["source"], c) for c in components}
    flat = [item for c in components for item in resolved[c]]
    try:
        taken = take(run, clusters, direction, flat)
    except PointAlreadyPublished as exc:
        log.info("%s", exc)
        existing = catalog.find(clusters.hdfs(direction["target"]), run.business, run.instant)
        assert existing is not None
        return existing.model_dump(mode="json")
    copies = [copy_component(run, clusters, direction, c, resolved[c], taken) for c in components]
    register_metadata(run, clusters, direction, taken)
    snapshot_standby(run, clusters, direction, taken)
    user_data = sync_user_data(run, clusters, direction, flat, taken)
    manifest = publish(run, clusters, direction, taken, copies, user_data, started)
    apply_retention(run, clusters, direction)
    return manifest


def run_backup(args: Any) -> int:
    """``tandem backup`` (tandem.backup.command)."""
    from tandem.backup.command import run_backup as command

    return command(args)
