"""The backup of one business, step by step: what each task of the generated DAG does.

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
import posixpath
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tandem import catalog, plan, verify
from tandem.capture import Capture, apply_grants, apply_tables, capture
from tandem.components import COMPONENTS, ResolvedDataset
from tandem.copy.webhdfs import CopyStats, FileCopy, WebHdfsCopier, apply_metadata
from tandem.errors import (
    ConsistencyError,
    CopyError,
    PreflightError,
    SnapshotRootError,
    TandemError,
    VerificationError,
)
from tandem.hdfs.client import Hdfs
from tandem.hdfs.types import DiffType, FileStatus
from tandem.runtime import Clusters, Observation

if TYPE_CHECKING:
    from tandem.policy import Policy, Topology

log = logging.getLogger(__name__)

QUARANTINE_ROOT = "/.tandem/quarantine"
CAPTURE_ATTEMPTS = 5


class PointAlreadyPublished(TandemError):
    """This run's point is published already: it is kept as it is, never redone."""


class RolesChanged(PreflightError):
    """The pair's roles or epochs moved since preflight: the run stops before writing."""


@dataclass(frozen=True)
class Run:
    """One run of a business's backup: the policy, the topology and the point's instant."""

    policy: Policy
    topology: Topology
    instant: datetime
    force_full: bool = False

    @property
    def business(self) -> str:
        return self.policy.business

    @property
    def snapshot(self) -> str:
        return plan.snapshot_name(self.business, self.instant)


@dataclass(frozen=True)
class Direction:
    source: str
    target: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"source": self.source, "target": self.target, "reason": self.reason}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Direction:
        return cls(str(data["source"]), str(data["target"]), str(data.get("reason", "")))


# -- preflight -----------------------------------------------------------------------------------
def decide_direction(first: Observation, second: Observation) -> Direction:
    """From the active cluster to the standby one, or PreflightError with the reason (pure)."""
    states = (first, second)
    active = [o for o in states if o.reachable and o.role == "active"]
    if len(active) == 2:
        raise PreflightError(f"both {first.name} and {second.name} say active (split brain): no backup runs")
    if not active:
        said = ", ".join(f"{o.name} {o.role if o.reachable else 'unreachable'}" for o in states)
        raise PreflightError(f"no active cluster in the pair ({said}): nothing to back up from")
    source = active[0]
    target = second if source is first else first
    if not target.reachable:
        raise PreflightError(
            f"target {target.name} is unreachable ({target.problem}): backups resume when it is back"
        )
    if not target.alive:
        raise PreflightError(
            f"target {target.name} is down (no /tandem/alive): backups resume when it is back"
        )
    if target.role != "standby":
        raise PreflightError(f"target {target.name} says {target.role}, not standby")
    if not source.alive:
        raise PreflightError(
            f"source {source.name} is active but not alive: refusing to snapshot a sick cluster"
        )
    return Direction(source.name, target.name, f"{source.name} is active and {target.name} standby")


def _pair_members(run: Run) -> tuple[str, str]:
    pair = run.topology.pairs[run.policy.pair]
    return pair.primary, pair.standby


def preflight(run: Run, clusters: Clusters) -> dict[str, Any]:
    """Roles, clock skew and target space; returns the direction. Read-only."""
    started = datetime.now(UTC)
    first, second = _pair_members(run)
    seen = {name: clusters.observe(name) for name in (first, second)}
    direction = decide_direction(seen[first], seen[second])
    limit = run.policy.consistency.max_clock_skew.total_seconds()
    offsets: dict[str, dict[str, float | None]] = {}
    for name in (direction.source, direction.target):
        http = clusters.hdfs(name).clock_offset_s()
        zk = seen[name].clock_offset_s
        offsets[name] = {"namenode_s": round(http, 3), "zookeeper_s": None if zk is None else round(zk, 3)}
        # ZooKeeper's ctime has ms resolution; the HTTP Date header only 1 s, so it gets 1 s more
        for source, offset, slack in (("its ZooKeeper", zk, 0.0), ("its NameNode", http, 1.0)):
            if offset is not None and abs(offset) > limit + slack:
                raise PreflightError(
                    f"clock of {name} ({source}) is {offset:+.3f} s from this host, more than "
                    f"max_clock_skew {limit:g} s"
                )
    _check_target_space(run, clusters.hdfs(direction.source), clusters.hdfs(direction.target))
    log.info("preflight: %s; clock offsets %s", direction.reason, offsets)
    epochs = {name: o.record.epoch if o.record else None for name, o in seen.items()}
    return {
        **direction.to_json(),
        "epochs": epochs,
        "clock_offsets_s": offsets,
        "started": catalog.iso(started),
    }


def guard(run: Run, clusters: Clusters, direction: dict[str, Any], step: str) -> None:
    """Raise RolesChanged unless the pair still looks as preflight saw it: the same epochs, the
    source active and the target standby. Every step that writes calls this first. Read-only."""
    d = Direction.from_json(direction)
    for name, role in ((d.source, "active"), (d.target, "standby")):
        seen = clusters.observe(name)
        epoch = seen.record.epoch if seen.record else None
        then = direction.get("epochs", {}).get(name, epoch)
        if not seen.reachable or seen.role != role or epoch != then:
            now = f"{seen.role} at epoch {epoch}" if seen.reachable else f"unreachable ({seen.problem})"
            raise RolesChanged(
                f"{step}: {name} is {now}, but preflight saw it {role} at epoch {then}: the pair "
                "changed (a promotion?), so this run stops without writing"
            )


def _check_target_space(run: Run, source: Hdfs, target: Hdfs) -> None:
    """Refuse when an hdfs dataset cannot fit under the target's space quotas."""
    for dataset in run.policy.datasets("hdfs"):
        path = dataset.name
        summary = source.content_summary(path) if source.status(path) else None
        if summary is None:
            continue
        needed = int(summary.get("spaceConsumed", summary.get("length", 0)))
        existing = target.content_summary(path) if target.status(path) else None
        needed -= int(existing.get("spaceConsumed", 0)) if existing else 0
        for ancestor in _existing_ancestors(target, path):
            usage = target.quota_usage(ancestor)
            if usage.space_quota >= 0 and needed > usage.space_quota - usage.space_consumed:
                free = usage.space_quota - usage.space_consumed
                raise PreflightError(
                    f"target out of quota: {path} needs up to {needed} more bytes but {ancestor} has "
                    f"{free} left of its {usage.space_quota}-byte space quota"
                )


def _existing_ancestors(hdfs: Hdfs, path: str) -> list[str]:
    out, current = [], path
    while True:
        if hdfs.status(current) is not None:
            out.append(current)
        if current == "/":
            return out
        current = posixpath.dirname(current)


# -- snapshot ------------------------------------------------------------------------------------
def resolve(run: Run, clusters: Clusters, source: str, component: str) -> list[dict[str, Any]]:
    """The HDFS paths of each dataset of one component, looked up on the source. Read-only."""
    handler = COMPONENTS[component]
    metastore = clusters.metastore(source) if component != "hdfs" else None
    out = []
    for dataset in run.policy.datasets():
        if dataset.component != component:
            continue
        resolved = handler.resolve(dataset.name, clusters.hdfs(source), metastore)
        log.info("resolve: %s %s -> %s", component, dataset.name, ", ".join(resolved.paths))
        out.append(resolved.to_json())
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


def take(
    run: Run, clusters: Clusters, direction: dict[str, Any], resolved: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """Snapshot every root of the business at once and capture the protected tables' metadata
    at that instant; record the actual times and the skew.

    The metastore is read before and after the snapshots: only if both reads agree is the
    capture the metadata of the snapshot's instant (a partition added or dropped meanwhile
    makes the snapshots be removed and taken again, up to CAPTURE_ATTEMPTS times). Tables'
    data paths come from the capture, so a partition that appeared since ``resolve`` is
    snapshotted too. Raises PointAlreadyPublished for a point that exists already.
    """
    guard(run, clusters, direction, "take")
    d = Direction.from_json(direction)
    src, dst = clusters.hdfs(d.source), clusters.hdfs(d.target)
    keep = published_points((src, dst), run.business)
    if run.snapshot in keep:
        raise PointAlreadyPublished(
            f"point {catalog.iso(run.instant)} of {run.business} is published already; it is kept as it "
            "is (to land on it, use tandem restore; for a new point, run a backup at another instant)"
        )
    datasets = [ResolvedDataset.from_json(r) for r in resolved]
    tables = [(ds.component, ds.name) for ds in datasets if ds.component != "hdfs"]
    metastore = clusters.metastore(d.source) if tables else None
    removed = _remove_unpublished(src, _known_roots(src, datasets), run.business, keep)
    if removed:
        log.info("take: removed snapshots of unpublished points: %s", ", ".join(removed))
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
    return {
        "snapshot": run.snapshot,
        "roots": {root: [[m.dataset, m.subtree] for m in decided.members] for root, decided in roots.items()},
        "snapshot_times": {
            root: catalog.iso(datetime.fromtimestamp(ms / 1000, UTC)) for root, ms in times.items()
        },
        "skew_ms": skew_ms,
        "metadata": metadata,
    }


def _known_roots(hdfs: Hdfs, datasets: Sequence[ResolvedDataset]) -> list[str]:
    """Snapshottable directories holding or above any dataset path (where stale snapshots of
    an unpublished point can be)."""
    paths = [p for ds in datasets for p in ds.paths]
    return sorted(
        s.path
        for s in hdfs.snapshottable_dirs()
        if any(_within(p, s.path) or _within(s.path, p) for p in paths)
    )


def _decide_roots(
    src: Hdfs, datasets: Sequence[ResolvedDataset], captured: Capture | None
) -> dict[str, plan.SnapshotRoot]:
    """Snapshot roots of every dataset (tables' paths from the capture); made snapshottable."""
    by_table = {t.name: t.data_paths() for t in captured.tables} if captured else {}
    paths = {ds.name: tuple(dict.fromkeys((*ds.paths, *by_table.get(ds.name, ())))) for ds in datasets}
    snapshottable = {s.path for s in src.snapshottable_dirs()}
    roots = plan.plan_snapshot_roots(paths, snapshottable)
    for root, decided in roots.items():
        if decided.make_snapshottable:
            src.allow_snapshot(root)
        log.info("take: root %s (%s)", root, decided.reason)
    return roots


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


# -- copy ----------------------------------------------------------------------------------------
def _subtrees_of(take_result: dict[str, Any], dataset: ResolvedDataset) -> list[tuple[str, str]]:
    """(root, subtree) pairs holding a dataset's data."""
    out = []
    for root, members in take_result["roots"].items():
        for name, subtree in members:
            if name == dataset.name:
                out.append((root, subtree))
    return out


def _base_snapshot(run: Run, target: Hdfs) -> tuple[str | None, str | None]:
    """The newest point published before this run's instant: its snapshot name and instant."""
    if run.force_full:
        return None, None
    earlier = [p for p in catalog.list_points(target, run.business) if p.instant < run.instant]
    return (earlier[-1].snapshot_name, earlier[-1].point) if earlier else (None, None)


class _Syncer:
    """Brings one (root, subtree) of the target to the source's snapshot, fully or by diff."""

    def __init__(self, run: Run, src: Hdfs, dst: Hdfs, direction: Direction | None = None) -> None:
        self.run = run
        self.src = src
        self.dst = dst
        pair = run.topology.pairs[run.policy.pair]
        names = (direction.source, direction.target) if direction else (pair.primary, pair.standby)
        self.clusters = tuple(run.topology.clusters[n] for n in names)
        options = run.policy.copy_options
        self.copier = WebHdfsCopier(src, dst, options.parallelism, max_bandwidth=options.max_bandwidth)

    def quarantine_dir(self) -> str:
        return posixpath.join(QUARANTINE_ROOT, self.run.business, plan.point_id(self.run.instant))

    def quarantine(self, root: str, subtree: str, base: str) -> list[str]:
        """Move what the target holds beyond ``base`` out of the dataset into the quarantine
        directory, keeping its path. Never deletes.

        Files that already equal this run's source point (same length, and the modification
        time a copy sets only once verified) are a previous run's own work, not divergence:
        they stay, and the full copy skips them.
        """
        moved: list[str] = []
        for entry in self.dst.snapshot_diff(root, base, "").entries:
            rel = entry.target if entry.type is DiffType.RENAME else entry.source
            if rel is None or not rel or entry.type is DiffType.DELETE or not _within(rel, subtree):
                continue
            status = self.dst.status(_join(root, rel))
            if status is None or (entry.type is DiffType.MODIFY and status.is_dir):
                continue
            if not status.is_dir:
                if not self._matches_point(root, rel, status):
                    moved.append(self._park(root, rel, base))
            elif self.src.status(self.snap_path(root, rel)) is None:
                moved.append(self._park(root, rel, base))  # a directory the point does not have
            else:
                stray = [
                    _join(rel, e.relpath)
                    for e in self.dst.walk(_join(root, rel))
                    if not e.status.is_dir and not self._matches_point(root, _join(rel, e.relpath), e.status)
                ]
                moved += [self._park(root, r, base) for r in stray]
        return moved

    def _matches_point(self, root: str, rel: str, status: FileStatus) -> bool:
        theirs = self.src.status(self.snap_path(root, rel))
        return (
            theirs is not None
            and not theirs.is_dir
            and (theirs.length, theirs.modification_time)
            == (
                status.length,
                status.modification_time,
            )
        )

    def _park(self, root: str, rel: str, base: str) -> str:
        current = _join(root, rel)
        parked = posixpath.join(self.quarantine_dir(), root.lstrip("/"), rel)
        self.dst.mkdirs(posixpath.dirname(parked))
        self.dst.rename(current, parked)
        log.warning("quarantined %s -> %s (changed on the target since %s)", current, parked, base)
        return current

    def snap_path(self, root: str, rel: str) -> str:
        return _join(posixpath.join(root, ".snapshot", self.run.snapshot), rel)

    def target_changed(self, root: str, subtree: str, base: str) -> bool:
        """True when the target's live data under the subtree differs from its base snapshot
        by content (what a restore would change); times of directories do not count."""
        from tandem.restore import differences

        return bool(differences(self.dst, root, subtree, base))

    def sync(self, root: str, subtree: str, base: str | None) -> dict[str, Any]:
        mode, reason = "full", "no published point to start from"
        moved: list[str] = []
        if base is not None:
            if not verify.has_snapshot(self.src, root, base):
                reason = f"source {root} has no snapshot {base}"
            elif not verify.has_snapshot(self.dst, root, base):
                reason = f"target {root} has no snapshot {base}"
            elif self.target_changed(root, subtree, base):
                moved = self.quarantine(root, subtree, base)
                reason = (
                    f"target changed since {base} under {_join(root, subtree)}: {len(moved)} path(s) it held "
                    f"beyond that point moved to {self.quarantine_dir()}, then a full copy of that root"
                )
            else:
                mode, reason = "incremental", f"snapshot diff since {base}"
        elif self.run.force_full:
            reason = "full copy requested"
        log.info("copy %s: %s (%s)", _join(root, subtree), mode, reason)
        if self.run.policy.copy_options.engine == "distcp":
            stats = self.distcp(root, subtree, base if mode == "incremental" else None)
        elif mode == "incremental" and base:
            stats = self.incremental(root, subtree, base)
        else:
            stats = self.full(root, subtree)
        return {
            "root": root,
            "subtree": subtree,
            "mode": mode,
            "reason": reason,
            "files_copied": stats.files,
            "bytes_copied": stats.bytes,
            "quarantined": moved,
        }

    # full: make the target's tree equal the source snapshot's, copying only what differs
    def full(self, root: str, subtree: str) -> CopyStats:
        src_top, dst_top = self.snap_path(root, subtree), _join(root, subtree)
        want = {e.relpath: e.status for e in self.src.walk(src_top)}
        have = {e.relpath: e.status for e in self.dst.walk(dst_top)} if self.dst.status(dst_top) else {}
        for rel in sorted(have, key=lambda r: -r.count("/")):
            ours, theirs = want.get(rel), have[rel]
            stale = ours is None or ours.is_dir != theirs.is_dir
            if stale and self.dst.status(_join(dst_top, rel)) is not None:
                self.dst.delete(_join(dst_top, rel), recursive=True)
        self.dst.mkdirs(dst_top)
        todo = []
        for rel, status in sorted(want.items()):
            if status.is_dir:
                self.dst.mkdirs(_join(dst_top, rel))
                continue
            current = have.get(rel)
            if (
                current is None
                or current.is_dir
                or (current.length, current.modification_time) != (status.length, status.modification_time)
            ):
                todo.append(FileCopy(_join(src_top, rel), _join(dst_top, rel), status))
        stats = self.copier.copy_files(todo, label=f"full copy {dst_top}")
        self.sync_dir_metadata(root, subtree, [rel for rel, s in want.items() if s.is_dir] + [""])
        return stats

    def incremental(self, root: str, subtree: str, base: str) -> CopyStats:
        """Replay the snapshot diff since ``base`` on the target (renames and deletes first)."""
        report = self.src.snapshot_diff(root, base, self.run.snapshot)
        ops = plan.plan_incremental(report.entries, subtree)
        if ops.full_copy_reason:
            log.info("copy %s: %s; copying it in full", _join(root, subtree), ops.full_copy_reason)
            return self.full(root, subtree)
        log.info("copy %s: %s", _join(root, subtree), ops.summary())
        dst_top = _join(root, subtree)
        todo: list[FileCopy] = []
        dirs: list[str] = []
        for step in ops.steps():
            if isinstance(step, plan.Move):
                if step.make_parents:
                    self.dst.mkdirs(posixpath.dirname(_join(dst_top, step.target)))
                self.dst.rename(_join(dst_top, step.source), _join(dst_top, step.target))
            elif isinstance(step, plan.Delete):
                self.dst.delete(_join(dst_top, step.path), recursive=True)
            elif isinstance(step, plan.Copy):
                self._plan_copy(root, subtree, step, todo, dirs)
            else:
                dirs.append(step.path)
        if ops.needs_tmp_dir:
            self.dst.delete(_join(dst_top, ops.tmp_dir), recursive=True)
        stats = self.copier.copy_files(todo, label=f"incremental copy {dst_top}")
        self.sync_dir_metadata(root, subtree, dirs)
        return stats

    def _plan_copy(
        self, root: str, subtree: str, step: plan.Copy, todo: list[FileCopy], dirs: list[str]
    ) -> None:
        """Files to copy for one Copy step; a created directory is copied whole but its exclusions."""
        status = self.src.status(self.snap_path(root, _join(subtree, step.path)))
        if status is None:
            return
        dst_top = _join(root, subtree)
        if not status.is_dir:
            todo.append(self._file(root, subtree, step.path, status))
            return
        self.dst.mkdirs(_join(dst_top, step.path))
        dirs.append(step.path)
        if not step.recursive:
            return
        excluded = step.exclude  # subtree-relative rename targets, already in place
        for entry in self.src.walk(self.snap_path(root, _join(subtree, step.path))):
            child = _join(step.path, entry.relpath)
            if any(_within(child, e) for e in excluded):
                continue
            if entry.status.is_dir:
                self.dst.mkdirs(_join(dst_top, child))
                dirs.append(child)
            else:
                todo.append(self._file(root, subtree, child, entry.status))

    def distcp(self, root: str, subtree: str, base: str | None) -> CopyStats:
        """DistCp on YARN: the whole snapshot root, by ``-diff`` from ``base`` or in full.

        ``pull`` runs the job with the target cluster's Hadoop configuration, ``push`` with
        the source's. File counts come from the source snapshot, since DistCp reports its own.
        """
        from tandem.copy import distcp

        if subtree:
            raise CopyError(
                f"engine distcp copies whole snapshot roots, but {_join(root, subtree)} shares the root "
                f"{root}: protect the root itself or use engine webhdfs"
            )
        options = self.run.policy.copy_options
        source, target = self.clusters[0], self.clusters[1]
        driver = target if options.mode == "pull" else source
        job = distcp.DistCpJob(
            source=f"{source.nameservice}{root}",
            target=f"{target.nameservice}{root}",
            snapshot=self.run.snapshot,
            base_snapshot=base,
            bandwidth_mb=options.bandwidth_mb or _per_map_mb(options.max_bandwidth, options.maps),
            maps=options.maps,
            config_dir=driver.hadoop_conf_dir,
        )
        if base is not None:
            distcp.check_diff_preconditions(
                job,
                {s.name for s in self.src.snapshots(root)},
                {s.name for s in self.dst.snapshots(root)},
                False,
            )
        distcp.run(job)
        stats = CopyStats()
        summary = self.src.content_summary(self.snap_path(root, ""))
        stats.files, stats.bytes = int(summary.get("fileCount", 0)), int(summary.get("length", 0))
        return stats

    def _file(self, root: str, subtree: str, rel: str, status: FileStatus) -> FileCopy:
        return FileCopy(self.snap_path(root, _join(subtree, rel)), _join(_join(root, subtree), rel), status)

    def sync_dir_metadata(self, root: str, subtree: str, rels: Iterable[str]) -> None:
        """Owner, permission, ACL and times of directories; deepest first so times stick."""
        for rel in sorted(set(rels), key=lambda r: -r.count("/") - (1 if r else 0)):
            source = self.snap_path(root, _join(subtree, rel))
            status = self.src.status(source)
            target = _join(_join(root, subtree), rel)
            current = self.dst.status(target)
            if status is None or current is None:
                continue
            acl = self.src.acl_status(source).entries if status.acl_bit else None
            apply_metadata(self.dst, target, status, acl, current=current)


def copy_component(
    run: Run,
    clusters: Clusters,
    direction: dict[str, Any],
    component: str,
    resolved: Sequence[dict[str, Any]],
    take_result: dict[str, Any],
) -> dict[str, Any]:
    """Copy the data of every dataset of a component. Idempotent; the target's metastore is
    not touched here (register_metadata does that once every copy succeeded)."""
    guard(run, clusters, direction, f"copy_{component}")
    d = Direction.from_json(direction)
    src, dst = clusters.hdfs(d.source), clusters.hdfs(d.target)
    base, base_point = _base_snapshot(run, dst)
    syncer = _Syncer(run, src, dst, d)
    datasets_out = []
    for ds in (ResolvedDataset.from_json(r) for r in resolved):
        parts = [syncer.sync(root, subtree, base) for root, subtree in _subtrees_of(take_result, ds)]
        files, nbytes = _dataset_size(src, syncer, take_result, ds)
        datasets_out.append(
            {
                "component": component,
                "name": ds.name,
                "roots": sorted({p["root"] for p in parts}),
                "files": files,
                "bytes": nbytes,
                "mode": "incremental" if parts and all(p["mode"] == "incremental" for p in parts) else "full",
                "files_copied": sum(p["files_copied"] for p in parts),
                "bytes_copied": sum(p["bytes_copied"] for p in parts),
                "paths": parts,
            }
        )
        log.info(
            "copy_%s: %s: %d files, %d bytes copied (%s)",
            component,
            ds.name,
            datasets_out[-1]["files_copied"],
            datasets_out[-1]["bytes_copied"],
            datasets_out[-1]["mode"],
        )
    return {"component": component, "base_point": base_point, "datasets": datasets_out}


# -- metadata ------------------------------------------------------------------------------------
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


def _dataset_size(
    src: Hdfs, syncer: _Syncer, take_result: dict[str, Any], ds: ResolvedDataset
) -> tuple[int, int]:
    files = nbytes = 0
    for root, subtree in _subtrees_of(take_result, ds):
        summary = src.content_summary(syncer.snap_path(root, subtree))
        files += int(summary.get("fileCount", 0))
        nbytes += int(summary.get("length", 0))
    return files, nbytes


# -- standby snapshot ----------------------------------------------------------------------------
def snapshot_standby(
    run: Run, clusters: Clusters, direction: dict[str, Any], take_result: dict[str, Any]
) -> dict[str, Any]:
    """The same snapshot name on every target root (made snapshottable first). Idempotent."""
    guard(run, clusters, direction, "snapshot_standby")
    d = Direction.from_json(direction)
    src, dst = clusters.hdfs(d.source), clusters.hdfs(d.target)
    roots = sorted(take_result["roots"])
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
    return {
        "snapshot": run.snapshot,
        "roots": roots,
        "times": {r: catalog.iso(datetime.fromtimestamp(ms / 1000, UTC)) for r, ms in times.items()},
    }


def _per_map_mb(max_bandwidth: int | None, maps: int | None) -> int | None:
    """DistCp's ``-bandwidth`` is MB/s per map: the task's limit shared by its maps (DistCp's
    default is 20 maps), at least 1."""
    if max_bandwidth is None:
        return None
    return max(1, int(max_bandwidth / 1e6 / (maps or 20)))


def _join(base: str, rel: str) -> str:
    return posixpath.join(base, rel) if rel else base


def _within(path: str, subtree: str) -> bool:
    return not subtree or path == subtree or path.startswith(subtree.rstrip("/") + "/")


# -- user data -----------------------------------------------------------------------------------
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


# -- publish and retention -----------------------------------------------------------------------
def _previous_records(dst: Hdfs, run: Run) -> verify.Records | None:
    """The per-file records of the newest point before this one, if it has any."""
    earlier = [p for p in catalog.list_points(dst, run.business) if p.instant < run.instant]
    if not earlier or not earlier[-1].files_record:
        return None
    try:
        return verify.records_from_body(catalog.read_json(dst, earlier[-1].files_record))
    except (TandemError, ValueError, OSError) as exc:
        log.warning(
            "publish: records of %s unreadable (%s); every file is checksummed", earlier[-1].point, exc
        )
        return None


def publish(
    run: Run,
    clusters: Clusters,
    direction: dict[str, Any],
    take_result: dict[str, Any],
    copies: Sequence[dict[str, Any]],
    user_data: dict[str, int],
    started: datetime,
) -> dict[str, Any]:
    """Verify what the target holds for the point, write its per-file records, then the
    manifest on the target (atomically, last), then a copy on the source.

    Nothing is published when the check finds a mismatch (VerificationError lists them).
    """
    guard(run, clusters, direction, "publish_restore_point")
    d = Direction.from_json(direction)
    src, dst = clusters.hdfs(d.source), clusters.hdfs(d.target)
    for root in take_result["roots"]:
        if not any(s.name == run.snapshot for s in dst.snapshots(root)):
            raise SnapshotRootError(f"target root {root} lacks snapshot {run.snapshot}: not publishing")
    subtrees = sorted({(root, sub) for root, members in take_result["roots"].items() for _, sub in members})
    base_points = [c["base_point"] for c in copies if c.get("base_point")]
    base = plan.snapshot_name(run.business, catalog.parse_iso(base_points[0])) if base_points else None
    checked, records = verify.check_copy(src, dst, run.snapshot, subtrees, _previous_records(dst, run), base)
    reports = [checked]
    if take_result.get("metadata"):
        captured = _read_capture(dst, take_result["metadata"])
        nameservice = run.topology.clusters[d.target].nameservice
        reports.append(verify.check_metadata(captured, clusters.metastore(d.target), nameservice))
    report = verify.merge("target snapshot and metastore against the source's point", reports)
    if not report.ok:
        raise VerificationError(
            f"{run.snapshot} does not verify on {d.target}; not publishing. "
            f"{len(report.mismatches)} mismatch(es):\n" + "\n".join(report.lines())
        )
    records_at = catalog.records_path(run.business, run.instant)
    catalog.write_json(dst, records_at, verify.records_body(run.snapshot, records))
    datasets = [ds for c in copies for ds in c["datasets"]]
    modes = {ds["mode"] for ds in datasets}
    manifest = catalog.Manifest(
        business=run.business,
        point=catalog.iso(run.instant),
        pair=run.policy.pair,
        source=d.source,
        target=d.target,
        snapshot_name=run.snapshot,
        mode="incremental" if modes == {"incremental"} else "full",
        base_point=base_points[0] if base_points and "incremental" in modes else None,
        datasets=[
            catalog.DatasetEntry(
                component=ds["component"],
                name=ds["name"],
                roots=ds["roots"],
                files=ds["files"],
                bytes=ds["bytes"],
                mode=ds["mode"],
                files_copied=ds["files_copied"],
                bytes_copied=ds["bytes_copied"],
                quarantined=[q for part in ds["paths"] for q in part["quarantined"]],
            )
            for ds in datasets
        ],
        snapshot_times=take_result["snapshot_times"],
        skew_ms=take_result["skew_ms"],
        files_copied=sum(ds["files_copied"] for ds in datasets),
        bytes_copied=sum(ds["bytes_copied"] for ds in datasets),
        duration_s=round((datetime.now(UTC) - started).total_seconds(), 3),
        user_data=user_data,
        verified=True,
        verification=report.to_json(),
        snapshot_roots=take_result["roots"],
        metadata=take_result.get("metadata"),
        files_record=records_at,
    )
    path = catalog.publish(dst, manifest)
    catalog.write_json(src, records_at, verify.records_body(run.snapshot, records))
    catalog.publish(src, manifest)
    log.info(
        "published %s %s: %s, %d files / %d bytes copied, skew %d ms, verified %d files (%d checksummed)%s, "
        "%.1f s (%s)",
        run.business,
        manifest.point,
        manifest.mode,
        manifest.files_copied,
        manifest.bytes_copied,
        manifest.skew_ms,
        report.files,
        report.checksummed,
        f" and {report.tables} table(s)" if report.tables else "",
        manifest.duration_s,
        path,
    )
    return manifest.model_dump(mode="json")


def apply_retention(run: Run, clusters: Clusters, direction: dict[str, Any]) -> dict[str, Any]:
    """Expire points beyond keep_last or older than max_age: manifests first, then snapshots."""
    guard(run, clusters, direction, "apply_retention")
    d = Direction.from_json(direction)
    src, dst = clusters.hdfs(d.source), clusters.hdfs(d.target)
    points = catalog.list_points(dst, run.business)
    retention = run.policy.retention
    decision = plan.choose_expired(
        [p.instant for p in points], retention.keep_last, retention.max_age, datetime.now(UTC)
    )
    expired = [p for p in points if p.instant in set(decision.expire)]
    for point in expired:
        for hdfs in (dst, src):
            catalog.remove(hdfs, run.business, point.instant)
    for point in expired:
        roots = {root for ds in point.datasets for root in ds.roots}
        for hdfs in (dst, src):
            for root in roots:
                status = hdfs.status(root)
                if (
                    status
                    and status.snapshot_enabled
                    and any(s.name == point.snapshot_name for s in hdfs.snapshots(root))
                ):
                    hdfs.delete_snapshot(root, point.snapshot_name)
    names = [p.point for p in expired]
    log.info("apply_retention: %d kept, %d expired %s", len(points) - len(expired), len(expired), names)
    return {"kept": len(points) - len(expired), "expired": names}


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


# -- the command ----------------------------------------------------------------------------------
def run_backup(args: Any) -> int:
    """``tandem backup BUSINESS [--full]``: one run now, through Airflow's own task runner
    (``airflow dags test``) of the configured Airflow (or the one of ``--home``'s environment
    file), against the clusters of its connections."""
    import json

    from tandem import environment
    from tandem.airflow_cli import AirflowCommand
    from tandem.points import backup_target, load_business
    from tandem.runtime import cluster_clients_for_cli

    environment.use(args.home, with_airflow=True)
    clusters = cluster_clients_for_cli(args.home)
    policy, topology = load_business(args.business)
    airflow = AirflowCommand()
    target = backup_target(policy, topology, clusters)
    instant = _next_instant(clusters.hdfs(target), policy.business)
    conf: dict[str, object] | None = {"full": True} if args.full else None
    log.info("backup: %s at %s through Airflow (%s)", policy.dag_id, catalog.iso(instant), airflow.describe())
    outcome = airflow.dags_test(policy.dag_id, instant, conf)
    manifest = catalog.find(clusters.hdfs(target), policy.business, instant) if outcome.ok else None
    result = {
        "business": policy.business,
        "dag_id": policy.dag_id,
        "point": catalog.iso(instant),
        "state": outcome.state,
        "seconds": outcome.seconds,
        "manifest": manifest.model_dump(mode="json") if manifest else None,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    elif manifest is not None:
        print(
            f"tandem backup {policy.business}: published {manifest.point} on {manifest.target} "
            f"({manifest.mode}, {manifest.files_copied} files / {manifest.bytes_copied} bytes copied, "
            f"skew {manifest.skew_ms} ms, verified {manifest.verification.get('files', 0)} files) "
            f"in {outcome.seconds:.1f} s"
        )
    else:
        print(f"tandem backup {policy.business}: run {outcome.state}; no point published", file=sys.stderr)
        print(outcome.failure_reason(), file=sys.stderr)
    return 0 if manifest is not None else 1


def _next_instant(target: Hdfs, business: str) -> datetime:
    """Now to the second, later than every published point (points are named to the second)."""
    newest = catalog.latest(target, business)
    while True:
        instant = datetime.now(UTC).replace(microsecond=0)
        if newest is None or instant > newest.instant:
            return instant
        time.sleep(0.2)
