"""The backup of one business, step by step: what each task of the generated DAG does.

:mod:`.graph` is the backup of a policy as steps (pure: the DAG factory renders it);
:func:`execute` runs one step. One module per step: :mod:`.run` (the run, preflight, the guard),
:mod:`.snapshot` (take, snapshot_standby), :mod:`.sync` (the data copy), :mod:`.metadata`
(register_metadata, user data), :mod:`.publish` (publish, retention), :mod:`.command`
(``tandem backup``). Steps hand each other typed, frozen values (:mod:`.payloads`, which is also
the one place they become JSON for XCom).
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

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from tandem import catalog
from tandem.backup import payloads
from tandem.backup.graph import BackupGraph, Step, backup_graph
from tandem.backup.metadata import register_metadata, sync_user_data
from tandem.backup.payloads import Copied, Direction, Started, Taken
from tandem.backup.publish import apply_retention, publish
from tandem.backup.run import (
    PointAlreadyPublished,
    RolesChanged,
    Run,
    RunOutOfTime,
    RunOvertaken,
    RunSuperseded,
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
    "BackupGraph",
    "Copied",
    "Direction",
    "PointAlreadyPublished",
    "RolesChanged",
    "Run",
    "RunOutOfTime",
    "RunOvertaken",
    "RunSuperseded",
    "Started",
    "Step",
    "Taken",
    "apply_retention",
    "backup_graph",
    "copy_component",
    "decide_direction",
    "execute",
    "guard",
    "inputs_of",
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


def execute(step: Step, run: Run, clusters: Clusters, inputs: Mapping[str, Any]) -> Any:
    """Run one step with the values its inputs name (decoded payloads); returns its payload."""
    kind = step.kind
    if kind == "preflight":
        return preflight(run, clusters)
    started: Started = inputs["started"]
    if kind == "resolve":
        assert step.component is not None
        return resolve(run, clusters, started.source, step.component)
    if kind == "take":
        return take(run, clusters, started, [r for group in inputs["resolved"] for r in group])
    if kind == "apply_retention":
        return apply_retention(run, clusters, started)
    taken: Taken = inputs["taken"]
    if kind == "copy":
        assert step.component is not None
        return copy_component(run, clusters, started, step.component, inputs["resolved"], taken)
    if kind == "register_metadata":
        return register_metadata(run, clusters, started, taken)
    if kind == "snapshot_standby":
        return snapshot_standby(run, clusters, started, taken)
    if kind == "sync_user_data":
        return sync_user_data(run, clusters, started, taken)
    if kind == "publish_restore_point":
        return publish(run, clusters, started, taken, inputs["copies"], inputs["user_data"])
    raise ValueError(f"unknown backup step kind {kind!r} ({step.task_id})")


def inputs_of(step: Step, graph: BackupGraph, returned: Mapping[str, Any]) -> dict[str, Any]:
    """A step's inputs from the JSON each earlier step returned (XComs), decoded."""
    out: dict[str, Any] = {}
    for source in step.inputs:
        values = [payloads.decode(graph.step(s).kind, returned[s]) for s in source.steps]
        out[source.name] = values if source.many else values[0]
    return out


def run_once(
    run: Run, clusters: Clusters, on_step: Callable[[Step, float], None] | None = None
) -> dict[str, Any]:
    """Every step of the graph in order, in this process: what the DAG does task by task, for
    benchmarks, drills and tests that need many points quickly. Each step's value goes through
    its JSON form, as it does between tasks; ``on_step`` is told each step's seconds. Returns
    the published manifest (for a point that was published already, that point's manifest,
    unchanged)."""
    graph = backup_graph(run.policy, run.topology)
    returned: dict[str, Any] = {}
    for step in graph.steps:
        began = time.perf_counter()
        try:
            value = execute(step, run, clusters, inputs_of(step, graph, returned))
        except PointAlreadyPublished as exc:
            log.info("%s", exc)
            started = Started.from_json(returned["preflight"])
            existing = catalog.find(clusters.hdfs(started.target), run.business, run.instant)
            assert existing is not None
            return existing.model_dump(mode="json")
        returned[step.task_id] = json.loads(json.dumps(payloads.encode(step.kind, value)))
        if on_step is not None:
            on_step(step, time.perf_counter() - began)
    manifest: dict[str, Any] = returned[graph.publish.task_id]
    return manifest


def run_backup(args: Any) -> int:
    """``tandem backup`` (tandem.backup.command)."""
    from tandem.backup.command import run_backup as command

    return command(args)
