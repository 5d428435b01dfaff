"""The target's metastore and user data, from the point's capture and the source's snapshots.

``register_metadata`` runs only after every copy succeeded and makes the target's metastore match
the capture, never the live source; ``sync_user_data`` brings owners, permissions, ACLs, Hive roles
and grants, and tenant quotas. Both idempotent.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tandem import catalog
from tandem.backup.run import Direction, Run, guard
from tandem.capture import Capture, apply_grants, apply_tables
from tandem.hdfs.client import Hdfs
from tandem.runtime import Clusters
from tandem.verify import join as _join

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


def _read_capture(hdfs: Hdfs, path: str) -> Capture:
    return Capture.from_json(catalog.read_json(hdfs, path))


def register_metadata(
    run: Run, clusters: Clusters, direction: dict[str, Any], take_result: dict[str, Any]
) -> dict[str, int]:
    """Store the point's capture on the target, then make the target's metastore match it
    (databases, tables, partitions; locations rebased). Idempotent. Runs only after every
    copy succeeded, so a failed copy never touches the target's metastore."""
    path = take_result.get("metadata")
    if not path:
        log.info("register_metadata: no tables in this business")
        return {}
    guard(run, clusters, direction, "register_metadata")
    d = Direction.from_json(direction)
    src, dst = clusters.hdfs(d.source), clusters.hdfs(d.target)
    captured = _read_capture(src, path)
    catalog.write_json(dst, path, captured.to_json())
    counts = apply_tables(captured, clusters.metastore(d.target), run.topology.clusters[d.target].nameservice)
    changed = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if v) or "nothing to change"
    log.info("register_metadata: %s as captured at the point: %s", captured.summary(), changed)
    return counts


def sync_user_data(
    run: Run,
    clusters: Clusters,
    direction: dict[str, Any],
    resolved: Sequence[dict[str, Any]],
    take_result: dict[str, Any],
) -> dict[str, int]:
    """Owners, permissions, ACLs (from the source snapshot); Hive roles, memberships and grants
    (from the point's capture); tenant quotas. Idempotent."""
    from tandem import userdata

    if not run.policy.user_data:
        log.info("sync_user_data: disabled by the policy")
        return {}
    guard(run, clusters, direction, "sync_user_data")
    d = Direction.from_json(direction)
    src, dst = clusters.hdfs(d.source), clusters.hdfs(d.target)
    counts: dict[str, int] = {}

    def add(more: dict[str, int]) -> None:
        for key, value in more.items():
            counts[key] = counts.get(key, 0) + value

    for root, members in take_result["roots"].items():
        for _name, subtree in members:
            snap_top = _join(posixpath.join(root, ".snapshot", run.snapshot), subtree)
            add(userdata.sync_tree_metadata(src, snap_top, dst, _join(root, subtree)))
    if take_result.get("metadata"):
        add(apply_grants(_read_capture(dst, take_result["metadata"]), clusters.metastore(d.target)))
    add(userdata.sync_quotas(src, dst, run.policy.tenant_dirs))
    log.info(
        "sync_user_data: %s", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "nothing to change"
    )
    return counts
