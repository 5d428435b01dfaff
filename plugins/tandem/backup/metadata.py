"""The target's metastore and user data, from the point's capture and the source's snapshots.

``register_metadata`` runs only after every copy succeeded and makes the target's metastore match
the capture, never the live source; ``sync_user_data`` brings owners, permissions, ACLs, Hive roles
and grants, and tenant quotas. Both idempotent.
"""

from __future__ import annotations

import logging
import posixpath

from tandem import catalog
from tandem.backup.payloads import Started, Taken
from tandem.backup.run import Run, guard
from tandem.capture import Capture, apply_grants, apply_tables
from tandem.hdfs.client import Hdfs
from tandem.runtime import Clusters
from tandem.verify import join as _join

log = logging.getLogger(__name__)


def _read_capture(hdfs: Hdfs, path: str) -> Capture:
    return Capture.from_json(catalog.read_json(hdfs, path))


def register_metadata(run: Run, clusters: Clusters, started: Started, taken: Taken) -> dict[str, int]:
    """Store the point's capture on the target, then make the target's metastore match it
    (databases, tables, partitions; locations rebased). Idempotent. Runs only after every
    copy succeeded, so a failed copy never touches the target's metastore."""
    path = taken.metadata
    if not path:
        log.info("register_metadata: no tables in this business")
        return {}
    guard(run, clusters, started, "register_metadata")
    src, dst = clusters.hdfs(started.source), clusters.hdfs(started.target)
    captured = _read_capture(src, path)
    catalog.write_json(dst, path, captured.to_json())
    target = started.target
    counts = apply_tables(captured, clusters.metastore(target), run.topology.clusters[target].nameservice)
    changed = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if v) or "nothing to change"
    log.info("register_metadata: %s as captured at the point: %s", captured.summary(), changed)
    return counts


def sync_user_data(run: Run, clusters: Clusters, started: Started, taken: Taken) -> dict[str, int]:
    """Owners, permissions, ACLs (from the source snapshot); Hive roles, memberships and grants
    (from the point's capture); tenant quotas. Idempotent."""
    from tandem import userdata

    if not run.policy.user_data:
        log.info("sync_user_data: disabled by the policy")
        return {}
    guard(run, clusters, started, "sync_user_data")
    src, dst = clusters.hdfs(started.source), clusters.hdfs(started.target)
    counts: dict[str, int] = {}

    def add(more: dict[str, int]) -> None:
        for key, value in more.items():
            counts[key] = counts.get(key, 0) + value

    for root, subtree in taken.subtrees():
        snap_top = _join(posixpath.join(root, ".snapshot", run.snapshot), subtree)
        add(userdata.sync_tree_metadata(src, snap_top, dst, _join(root, subtree)))
    if taken.metadata:
        add(apply_grants(_read_capture(dst, taken.metadata), clusters.metastore(started.target)))
    add(userdata.sync_quotas(src, dst, run.policy.tenant_dirs))
    log.info(
        "sync_user_data: %s", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "nothing to change"
    )
    return counts
