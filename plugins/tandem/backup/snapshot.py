"""One instant for the whole business: the source snapshots with the metastore capture (``take``),
then the same-named snapshots on the target (``snapshot_standby``).

``take`` snapshots every root at once and captures the protected tables' definitions around that
instant (a capture before and one after the snapshots must agree, else it tries again); on retry it
first removes the snapshots of any unpublished point, so a point is all-or-nothing. A point that is
published already is never redone (:class:`PointAlreadyPublished`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from tandem import catalog, plan
from tandem.backup.payloads import StandbySnapshot, Started, Taken
from tandem.backup.run import PointAlreadyPublished, Run, RunOutOfTime, RunSuperseded, claim, guard
from tandem.capture import Capture, capture
from tandem.components import COMPONENTS, ResolvedDataset
from tandem.errors import (
    ConsistencyError,
    SnapshotRootError,
)
from tandem.hdfs.client import Hdfs
from tandem.runtime import Clusters
from tandem.verify import within as _within

log = logging.getLogger(__name__)

CAPTURE_ATTEMPTS = 5  # snapshots taken again while the metastore keeps changing under them


def resolve(run: Run, clusters: Clusters, source: str, component: str) -> list[ResolvedDataset]:
    """The HDFS paths of each dataset of one component, looked up on the source. Read-only."""
    handler = COMPONENTS[component]
    metastore = clusters.metastore(source) if component != "hdfs" else None
    out = []
    for dataset in run.policy.datasets():
        if dataset.component != component:
            continue
        nameservice = run.topology.clusters[source].nameservice
        resolved = handler.resolve(dataset.name, clusters.hdfs(source), metastore, nameservice)
        log.info("resolve: %s %s -> %s", component, dataset.name, ", ".join(resolved.paths))
        out.append(resolved)
    return out


def published_points(hdfs_clients: Iterable[Hdfs], business: str) -> set[str]:
    """Snapshot names of the published points found on any of the given clusters."""
    names = set()
    for hdfs in hdfs_clients:
        names |= {m.snapshot_name for m in catalog.list_points(hdfs, business)}
    return names


def _remove_unpublished(hdfs: Hdfs, roots: Iterable[str], business: str, keep: set[str]) -> list[str]:
    """Delete this business's snapshots that belong to no published point. Idempotent."""
    removed = []
    for root in roots:
        status = hdfs.status(root)
        if status is None or not status.snapshot_enabled:
            continue
        for snap in hdfs.snapshots(root):
            parsed = plan.parse_snapshot_name(snap.name)
            if parsed is not None and parsed[0] == business and snap.name not in keep:
                hdfs.delete_snapshot(root, snap.name)
                removed.append(f"{root}@{snap.name}")
    return removed


def _copy_to_source(
    src: Hdfs, dst: Hdfs, on_src: list[catalog.Manifest], on_dst: list[catalog.Manifest], source: str
) -> list[str]:
    """A run killed between publishing its point on the target and writing the point's copy on
    the source left the source without it: its records and manifest are copied over (the
    point is published; the source's list of points, retention and a reverse backup's base
    depend on its copy). Idempotent."""
    have = {m.point for m in on_src}
    repaired = []
    for manifest in on_dst:
        if manifest.point in have or manifest.source != source:
            continue
        records = manifest.files_record
        if records and dst.status(records) is not None and src.status(records) is None:
            catalog.write_atomically(src, records, dst.read_bytes(records))
        catalog.publish(src, manifest)
        repaired.append(manifest.point)
    return repaired


def take(run: Run, clusters: Clusters, started: Started, datasets: Sequence[ResolvedDataset]) -> Taken:
    """Snapshot every root of the business at once and capture the protected tables' metadata
    at that instant; record the actual times and the skew.

    The metastore is read before and after the snapshots: only if both reads agree is the
    capture the metadata of the snapshot's instant (a partition added or dropped meanwhile
    makes the snapshots be removed and taken again, up to CAPTURE_ATTEMPTS times). Tables'
    data paths come from the capture, so a partition that appeared since ``resolve`` is
    snapshotted too. Raises PointAlreadyPublished for a point that exists already.
    """
    guard(run, clusters, started, "take")
    src, dst = clusters.hdfs(started.source), clusters.hdfs(started.target)
    on_src, on_dst = catalog.list_points(src, run.business), catalog.list_points(dst, run.business)
    keep = {m.snapshot_name for m in (*on_src, *on_dst)}
    repaired = _copy_to_source(src, dst, on_src, on_dst, started.source)
    if repaired:
        log.info("take: copied point(s) %s the source lacked from the target", ", ".join(repaired))
    if run.snapshot in keep:
        raise PointAlreadyPublished(
            f"point {catalog.iso(run.instant)} of {run.business} is published already; it is kept as it "
            "is (to land on it, use tandem restore; for a new point, run a backup at another instant)"
        )
    check_instant(run, [*on_src, *on_dst], datetime.now(UTC))
    tables = [(ds.component, ds.name) for ds in datasets if ds.component != "hdfs"]
    metastore = clusters.metastore(started.source) if tables else None
    claim(src, run)  # before removing what other runs left: a run still under way then stops
    removed = _remove_unpublished(src, _known_roots(src, datasets), run.business, keep)
    if removed:
        log.info("take: removed snapshots of unpublished points: %s", ", ".join(removed))
    published_ids = {plan.point_id(parsed[1]) for name in keep if (parsed := plan.parse_snapshot_name(name))}
    for hdfs in (src, dst):
        stray = catalog.remove_unpublished_dirs(hdfs, run.business, published_ids)
        if stray:
            log.info("take: removed what unpublished points left: %s", ", ".join(stray))
    for attempt in range(1, CAPTURE_ATTEMPTS + 1):
        before = capture(metastore, tables, user_data=run.policy.user_data) if metastore else None
        roots = _decide_roots(src, datasets, before)
        times = _snapshot_all(src, sorted(roots), run.snapshot)
        after = capture(metastore, tables, user_data=run.policy.user_data) if metastore else None
        if before is None or after is None or before.fingerprint() == after.fingerprint():
            break
        for root in roots:
            src.delete_snapshot(root, run.snapshot)
        log.warning("take: the metastore changed while the snapshots were taken (attempt %d); again", attempt)
    else:
        raise ConsistencyError(
            f"the metastore kept changing while {run.snapshot} was taken ({CAPTURE_ATTEMPTS} attempts): "
            "no point is kept; the next run tries again"
        )
    stamps = sorted(times.values())
    skew_ms = int(stamps[-1] - stamps[0]) if stamps else 0
    limit_ms = run.policy.consistency.max_skew.total_seconds() * 1000
    if skew_ms > limit_ms:
        for root in roots:
            src.delete_snapshot(root, run.snapshot)
        raise ConsistencyError(
            f"snapshots of {run.snapshot} are {skew_ms} ms apart, more than max_skew {limit_ms:g} ms"
        )
    metadata = None
    if after is not None:
        metadata = catalog.metadata_path(run.business, run.instant)
        catalog.write_json(src, metadata, after.to_json())
        log.info("take: metadata captured with the snapshots: %s (%s)", after.summary(), metadata)
    log.info("take: %s on %d roots, skew %d ms", run.snapshot, len(roots), skew_ms)
    return Taken(
        snapshot=run.snapshot,
        roots={r: tuple((m.dataset, m.subtree) for m in decided.members) for r, decided in roots.items()},
        snapshot_times={r: catalog.iso(datetime.fromtimestamp(ms / 1e3, UTC)) for r, ms in times.items()},
        skew_ms=skew_ms,
        metadata=metadata,
    )


def _known_roots(hdfs: Hdfs, datasets: Sequence[ResolvedDataset]) -> list[str]:
    """Snapshottable directories holding or above any dataset path (where stale snapshots of
    an unpublished point can be)."""
    paths = [p for ds in datasets for p in ds.paths]
    return sorted(
        s.path
        for s in hdfs.snapshottable_dirs()
        if any(_within(p, s.path) or _within(s.path, p) for p in paths)
    )


def plan_roots(
    src: Hdfs, datasets: Sequence[ResolvedDataset], captured: Capture | None
) -> dict[str, plan.SnapshotRoot]:
    """Snapshot roots of every dataset (tables' paths from the capture). Read-only."""
    by_table = {t.name: t.data_paths() for t in captured.tables} if captured else {}
    paths = {ds.name: tuple(dict.fromkeys((*ds.paths, *by_table.get(ds.name, ())))) for ds in datasets}
    snapshottable = {s.path for s in src.snapshottable_dirs()}
    return plan.plan_snapshot_roots(paths, snapshottable)


def _decide_roots(
    src: Hdfs, datasets: Sequence[ResolvedDataset], captured: Capture | None
) -> dict[str, plan.SnapshotRoot]:
    """Snapshot roots of every dataset (tables' paths from the capture); made snapshottable."""
    roots = plan_roots(src, datasets, captured)
    for root, decided in roots.items():
        if decided.make_snapshottable:
            if src.status(root) is None:
                raise SnapshotRootError(_missing_root(root, datasets, captured))
            src.allow_snapshot(root)
        log.info("take: root %s (%s)", root, decided.reason)
    return roots


def check_instant(run: Run, published: Sequence[catalog.Manifest], now: datetime) -> None:
    """Refuse a run whose point would not be at its instant: one ahead of ``now`` (beyond the
    policy's clock skew: a logical date in the future, from the REST API or the trigger form), or
    one older than a point already published (an old run cleared or triggered again): either
    would publish this moment's data under another instant's name, and the newest point, which a
    failover lands on, would no longer be the newest data."""
    when = catalog.iso(run.instant)
    ahead = run.instant - now
    if ahead > run.policy.consistency.max_clock_skew:
        raise RunOutOfTime(
            f"this run's instant {when} is {ahead} ahead of now ({catalog.iso(now)}): a point is named "
            "for the moment its snapshots are taken. Trigger the backup without a logical date (it is "
            "then named for when it runs), or let the schedule reach that instant"
        )
    newer = sorted({m.point for m in published if m.instant > run.instant})
    if newer:
        raise RunSuperseded(
            f"point {newer[-1]} of {run.business} is published already, newer than this run's instant "
            f"{when}: a point taken now would hold this moment's data under {when}'s name. For a new "
            "point, trigger a backup without a logical date (or tandem backup)"
        )


def _missing_root(root: str, datasets: Sequence[ResolvedDataset], captured: Capture | None) -> str:
    """Why a snapshot root that does not exist stops the backup, naming what points there."""
    from tandem.metastore import location_path

    named = [f"dataset {ds.name}" for ds in datasets if root in ds.paths]
    for t in captured.tables if captured else ():
        if location_path(str(t.table.sd.location or "")) == root:
            named.append(f"table {t.name}")
        keys = [k.name for k in t.table.partitionKeys or []]
        named += [
            f"partition {'/'.join(f'{k}={v}' for k, v in zip(keys, p.values, strict=True))} of {t.name}"
            for p in t.partitions
            if p.sd and p.sd.location and location_path(str(p.sd.location)) == root
        ]
    return (
        f"{', '.join(dict.fromkeys(named)) or root} points at {root}, which does not exist on the source: a "
        "point needs a snapshot of every location at one instant (Hive reads a missing one as empty). "
        f"Make it an empty directory (hdfs dfs -mkdir -p {root}), or drop the partition, or take the "
        "table out of the policy"
    )


def _snapshot_all(hdfs: Hdfs, roots: list[str], name: str) -> dict[str, int]:
    """CREATESNAPSHOT on every root at the same moment (one thread each, released together).

    All or nothing: if any root fails, the others' snapshots of ``name`` are deleted again.
    Returns each snapshot's creation time (ms) as the NameNode recorded it.
    """
    if not roots:
        return {}
    barrier = threading.Barrier(len(roots))

    def one(root: str) -> None:
        barrier.wait(timeout=30)
        hdfs.create_snapshot(root, name)

    with ThreadPoolExecutor(len(roots)) as pool:
        futures = {root: pool.submit(one, root) for root in roots}
    failed = {root: f.exception() for root, f in futures.items() if f.exception() is not None}
    if failed:
        # all at once or not at all: remove the snapshots that were taken before failing
        for root in roots:
            if root not in failed:
                hdfs.delete_snapshot(root, name)
        root, error = next(iter(failed.items()))
        raise SnapshotRootError(
            f"snapshot {name} failed on {root} ({error}); none of this point is kept"
        ) from error
    times = {}
    for root in roots:
        found = [s for s in hdfs.snapshots(root) if s.name == name]
        times[root] = found[0].created_ms if found else int(time.time() * 1000)
    return times


def snapshot_standby(run: Run, clusters: Clusters, started: Started, taken: Taken) -> StandbySnapshot:
    """The same snapshot name on every target root (made snapshottable first). Idempotent."""
    guard(run, clusters, started, "snapshot_standby")
    src, dst = clusters.hdfs(started.source), clusters.hdfs(started.target)
    roots = sorted(taken.roots)
    removed = _remove_unpublished(dst, roots, run.business, published_points((src, dst), run.business))
    if removed:
        log.info("snapshot_standby: removed snapshots of unpublished points: %s", ", ".join(removed))
    snapshottable = {s.path for s in dst.snapshottable_dirs()}
    for root in roots:
        dst.mkdirs(root)
        if root not in snapshottable:
            nested = [p for p in snapshottable if _within(p, root) or _within(root, p)]
            if nested:
                raise SnapshotRootError(f"target root {root} cannot be snapshottable: {nested[0]} already is")
            dst.allow_snapshot(root)
    times = _snapshot_all(dst, roots, run.snapshot)
    log.info("snapshot_standby: %s on %d target roots", run.snapshot, len(roots))
    return StandbySnapshot(
        run.snapshot,
        tuple(roots),
        {r: catalog.iso(datetime.fromtimestamp(ms / 1000, UTC)) for r, ms in times.items()},
    )
