"""The data copy: every root of a dataset brought to the source's snapshot, fully or by diff.

Idempotent: a rerun resumes. A target that changed since the last point (by content) has what it
holds beyond that point moved to the quarantine (never deleted), then is copied in full. Data
only: the target's metastore is not touched here.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from tandem import plan, verify
from tandem.backup.payloads import Copied, DatasetCopied, Direction, PathCopied, Started, Taken
from tandem.backup.run import Run, base_snapshot, guard
from tandem.components import ResolvedDataset
from tandem.copy.webhdfs import (
    Checkpoint,
    CopyStats,
    FileCopy,
    WebHdfsCopier,
    apply_metadata,
    apply_xattrs,
    user_xattrs,
)
from tandem.errors import (
    CopyError,
)
from tandem.hdfs.client import Hdfs
from tandem.hdfs.types import DiffType, FileStatus
from tandem.runtime import Clusters
from tandem.verify import join as _join
from tandem.verify import within as _within

log = logging.getLogger(__name__)

T = TypeVar("T")

QUARANTINE_ROOT = "/.tandem/quarantine"
# The copy's per-file verification records go to publish through the task's XCom up to this many
# files (about 100 bytes each); beyond it publish checksums those files itself.
VERIFIED_RECORDS_MAX = 10_000


class Syncer:
    """Brings one (root, subtree) of the target to the source's snapshot, fully or by diff."""

    def __init__(
        self,
        run: Run,
        src: Hdfs,
        dst: Hdfs,
        direction: Direction | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        self.run = run
        self.src = src
        self.dst = dst
        pair = run.topology.pairs[run.policy.pair]
        names = (direction.source, direction.target) if direction else (pair.primary, pair.standby)
        self.clusters = tuple(run.topology.clusters[n] for n in names)
        options = run.policy.copy_options
        self.copier = WebHdfsCopier(
            src, dst, options.parallelism, max_bandwidth=options.max_bandwidth, checkpoint=checkpoint
        )
        self._statuses: dict[str, FileStatus | None] = {}  # source snapshot statuses fetched ahead
        # per root, the files this copy verified against the source (relative path -> record)
        self.verified: dict[str, dict[str, list[Any]]] = {}

    def tmp_dir(self) -> str:
        """Where an incremental copy parks what it renames, relative to the subtree, deleted once
        the copy is done: named after this run's point, so no directory of the business's own
        (nor one of another run's) is ever taken for it."""
        return f"{plan.DEFAULT_TMP_DIR}.{self.run.snapshot}"

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
        """Whether the target's file (which changed since the base point) is this run's source
        file already: same length and time, and (times can be set back by anyone) same bytes."""
        theirs = self.src.status(self.snap_path(root, rel))
        return (
            theirs is not None
            and not theirs.is_dir
            and (theirs.length, theirs.modification_time) == (status.length, status.modification_time)
            and self._same_bytes(self.snap_path(root, rel), _join(root, rel)) is not None
        )

    def _same_bytes(self, source: str, target: str) -> str | None:
        """The checksum both files share (``algorithm:bytes``), or None when they differ."""
        ours, theirs = self.src.checksum(source), self.dst.checksum(target)
        if (ours.algorithm, ours.bytes) != (theirs.algorithm, theirs.bytes):
            return None
        return f"{theirs.algorithm}:{theirs.bytes}"

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

    def decide(self, root: str, subtree: str, base: str | None) -> tuple[str, str, bool]:
        """Full or incremental, why, and whether the target changed since ``base`` (what it
        holds beyond that point is then quarantined before the full copy). Read-only."""
        if base is None:
            return (
                "full",
                "full copy requested" if self.run.force_full else "no published point to start from",
                False,
            )
        if not verify.has_snapshot(self.src, root, base):
            return "full", f"source {root} has no snapshot {base}", False
        if not verify.has_snapshot(self.dst, root, base):
            return "full", f"target {root} has no snapshot {base}", False
        if self.target_changed(root, subtree, base):
            return "full", f"target changed since {base} under {_join(root, subtree)}", True
        return "incremental", f"snapshot diff since {base}", False

    def sync(self, root: str, subtree: str, base: str | None) -> PathCopied:
        mode, reason, changed = self.decide(root, subtree, base)
        moved: list[str] = []
        if changed and base is not None:
            moved = self.quarantine(root, subtree, base)
            reason = (
                f"{reason}: {len(moved)} path(s) it held beyond that point moved to {self.quarantine_dir()}, "
                "then a full copy of that root"
            )
        log.info("copy %s: %s (%s)", _join(root, subtree), mode, reason)
        if self.run.policy.copy_options.engine == "distcp":
            stats = self.distcp(root, subtree, base if mode == "incremental" else None)
        elif mode == "incremental" and base:
            stats = self.incremental(root, subtree, base)
        else:
            stats = self.full(root, subtree)
        prefix = root.rstrip("/") + "/"
        rows = self.verified.setdefault(root, {})
        rows.update(
            {dst[len(prefix) :]: row for dst, row in stats.verified.items() if dst.startswith(prefix)}
        )
        return PathCopied(root, subtree, mode, reason, stats.files, stats.bytes, tuple(moved))

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
        todo, alike = [], []
        for rel, status in sorted(want.items()):
            if status.is_dir:
                self.dst.mkdirs(_join(dst_top, rel))
                continue
            current = have.get(rel)
            item = FileCopy(_join(src_top, rel), _join(dst_top, rel), status)
            if (
                current is None
                or current.is_dir
                or (current.length, current.modification_time) != (status.length, status.modification_time)
            ):
                todo.append(item)
            else:
                alike.append(item)
        # a copy asked for in full (an operator's repair) trusts no file by its length and time
        # (anyone can set a time back): files that look alike are compared by checksum
        proven: dict[str, list[Any]] = {}
        if self.run.force_full and alike:
            by_src = {i.src: i for i in alike}
            sums = self._parallel(lambda src: self._same_bytes(src, by_src[src].dst) or "", list(by_src))
            for item, checksum in zip(alike, sums, strict=True):
                if checksum:
                    proven[item.dst] = [item.status.length, item.status.modification_time, checksum]
                else:
                    todo.append(item)
        stats = self.copier.copy_files(todo, label=f"full copy {dst_top}")
        stats.verified.update(proven)
        self.sync_dir_metadata(root, subtree, [rel for rel, s in want.items() if s.is_dir] + [""])
        return stats

    def incremental(self, root: str, subtree: str, base: str) -> CopyStats:
        """Replay the snapshot diff since ``base`` on the target (renames and deletes first)."""
        report = self.src.snapshot_diff(root, base, self.run.snapshot)
        ops = plan.plan_incremental(report.entries, subtree, self.tmp_dir())
        if ops.full_copy_reason:
            log.info("copy %s: %s; copying it in full", _join(root, subtree), ops.full_copy_reason)
            return self.full(root, subtree)
        log.info("copy %s: %s", _join(root, subtree), ops.summary())
        dst_top = _join(root, subtree)
        todo: list[FileCopy] = []
        dirs: list[str] = []
        steps = list(ops.steps())
        # the source snapshot cannot change: every Copy step's status is fetched at once, in parallel
        wanted = [_join(subtree, s.path) for s in steps if isinstance(s, plan.Copy)]
        self._statuses = dict(
            zip(
                wanted,
                self._parallel(lambda rel: self.src.status(self.snap_path(root, rel)), wanted),
                strict=True,
            )
        )
        deletes: list[str] = []  # the plan's deletes are consecutive and none is below another
        for step in steps:
            if isinstance(step, plan.Delete):
                deletes.append(_join(dst_top, step.path))
                continue
            if deletes:
                self._delete_all(deletes)
                deletes = []
            if isinstance(step, plan.Move):
                if step.make_parents:
                    self.dst.mkdirs(posixpath.dirname(_join(dst_top, step.target)))
                self.dst.rename(_join(dst_top, step.source), _join(dst_top, step.target))
            elif isinstance(step, plan.Copy):
                self._plan_copy(root, subtree, step, todo, dirs)
            else:
                dirs.append(step.path)
        self._delete_all(deletes)
        if ops.needs_tmp_dir:
            self.dst.delete(_join(dst_top, ops.tmp_dir), recursive=True)
        stats = self.copier.copy_files(todo, label=f"incremental copy {dst_top}")
        self.sync_dir_metadata(root, subtree, dirs)
        return stats

    def _plan_copy(
        self, root: str, subtree: str, step: plan.Copy, todo: list[FileCopy], dirs: list[str]
    ) -> None:
        """Files to copy for one Copy step; a created directory is copied whole but its exclusions."""
        rel = _join(subtree, step.path)
        status = self._statuses[rel] if rel in self._statuses else self.src.status(self.snap_path(root, rel))
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
        """Owner, permission, ACL, ``user.`` attributes and times of directories; deepest first
        so times stick (the directories of one depth in parallel: none is another's parent)."""

        def one(rel: str) -> None:
            source = self.snap_path(root, _join(subtree, rel))
            target = _join(_join(root, subtree), rel)
            status, current = self.src.status(source), self.dst.status(target)
            if status is None or current is None:
                return
            acl = self.src.acl_status(source).entries if status.acl_bit else None
            apply_xattrs(self.dst, target, user_xattrs(self.src, source), None)
            apply_metadata(self.dst, target, status, acl, current=current)

        by_depth: dict[int, list[str]] = {}
        for rel in set(rels):
            by_depth.setdefault(rel.count("/") + (1 if rel else 0), []).append(rel)
        for depth in sorted(by_depth, reverse=True):
            list(self._parallel(one, sorted(by_depth[depth])))

    def _delete_all(self, paths: Sequence[str]) -> None:
        """Deletes of which none is below another, in parallel."""
        list(self._parallel(lambda path: self.dst.delete(path, recursive=True), paths))

    def _parallel(self, func: Callable[[str], T], items: Sequence[str]) -> Iterator[T]:
        """``func`` over ``items`` on the copy's number of threads, results in order; the first
        failure raises."""
        if len(items) <= 1:
            return iter([func(i) for i in items])
        with ThreadPoolExecutor(
            min(self.copier.parallelism, len(items)), thread_name_prefix="tandem-sync"
        ) as pool:
            return iter(list(pool.map(func, items)))


def copy_component(
    run: Run,
    clusters: Clusters,
    started: Started,
    component: str,
    datasets: Sequence[ResolvedDataset],
    taken: Taken,
) -> Copied:
    """Copy the data of every dataset of a component. Idempotent; the target's metastore is
    not touched here (register_metadata does that once every copy succeeded)."""
    guard(run, clusters, started, f"copy_{component}")
    src, dst = clusters.hdfs(started.source), clusters.hdfs(started.target)
    base, base_point = base_snapshot(run, dst)
    # a promotion may fence the pair while files are copied (a long copy, --stop-backups): the
    # copy looks again every second, between files and between the chunks of a large one
    checkpoint = Checkpoint(lambda: guard(run, clusters, started, f"copy_{component}"))
    syncer = Syncer(run, src, dst, started.direction, checkpoint)
    copied = []
    for ds in datasets:
        subtrees = taken.subtrees(ds.name)
        parts = tuple(syncer.sync(root, subtree, base) for root, subtree in subtrees)
        copied.append(DatasetCopied(component, ds.name, parts))
        log.info(
            "copy_%s: %s: %d files, %d bytes copied (%s)",
            component,
            ds.name,
            copied[-1].files_copied,
            copied[-1].bytes_copied,
            copied[-1].mode,
        )
    verified = syncer.verified
    if sum(len(rows) for rows in verified.values()) > VERIFIED_RECORDS_MAX:
        verified = {}  # too many to carry in an XCom: publish checksums them itself
    return Copied(component, base_point, tuple(copied), verified)


def _per_map_mb(max_bandwidth: int | None, maps: int | None) -> int | None:
    """DistCp's ``-bandwidth`` is MB/s per map: the task's limit shared by its maps (DistCp's
    default is 20 maps), at least 1."""
    if max_bandwidth is None:
        return None
    return max(1, int(max_bandwidth / 1e6 / (maps or 20)))
