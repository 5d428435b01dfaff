"""Replay: make the side that missed a change match the side that holds it.

Marks name paths (:mod:`tandem.gateway.marks`); replaying one reconciles those paths from
the holder's current state, so it is idempotent and safe to repeat after a crash. For each
primary, its pending-store queue (kept on the standby) is written back before its own
pending-backup queue is copied out: while a primary was down the standby took its writes,
and a recovering primary must not overwrite them with what it held before (as HBase's sync
replication replays the standby's remote WALs first). Copies land under a temporary name
and are renamed into place, so a reader never sees a partial file on either side.
"""

from __future__ import annotations

import contextlib
import logging
import posixpath
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from tandem.errors import RemoteHdfsError, TandemError
from tandem.gateway.context import PlanContext, is_gateway_temp, temp_name
from tandem.gateway.crypto import META_ALG as ENCRYPTED
from tandem.gateway.marks import (
    INFLIGHT,
    PENDING_BACKUP,
    PENDING_STORE,
    Journal,
    Mark,
    id_time_ms,
    is_compact,
    short_id,
)
from tandem.gateway.plan import within
from tandem.gateway.protect import Protection
from tandem.gateway.sides import Side, is_unreachable
from tandem.gateway.targets import TARGET_TYPES, WRITTEN_MS, Store
from tandem.hdfs.client import Hdfs, is_missing
from tandem.hdfs.types import FileStatus

log = logging.getLogger(__name__)

# an inflight mark this old belongs to a gateway that died mid-write (a live write renews nothing,
# so the grace must exceed the longest write a plan expects)
INFLIGHT_GRACE_S = 600.0
# how often one replay copies a file that keeps changing under it before giving up
COPY_ATTEMPTS = 5
WORKERS = 8


@dataclass
class ReplayReport:
    """What one replay did."""

    marks: int = 0
    files: int = 0
    bytes: int = 0
    deleted: int = 0
    deferred: int = 0
    oldest_age_s: float | None = None
    problems: list[str] = field(default_factory=list)

    def add(self, other: ReplayReport) -> None:
        self.marks += other.marks
        self.files += other.files
        self.bytes += other.bytes
        self.deleted += other.deleted
        self.deferred += other.deferred
        ages = [a for a in (self.oldest_age_s, other.oldest_age_s) if a is not None]
        self.oldest_age_s = max(ages) if ages else None
        self.problems += other.problems

    def summary(self) -> str:
        age = f", oldest pending {self.oldest_age_s:.0f}s" if self.oldest_age_s is not None else ""
        text = (
            f"{self.marks} marks replayed: {self.files} files ({self.bytes} bytes) copied, "
            f"{self.deleted} paths deleted, {self.deferred} deferred{age}"
        )
        return text + ("; problems: " + "; ".join(self.problems[:5]) if self.problems else "")


# --------------------------------------------------------------------------- one path


def _meta(store: Store, path: str) -> dict[str, str]:
    return store.meta(path) if isinstance(store, TARGET_TYPES) else {}


def _older_write(dst_meta: dict[str, str], written_at_ms: int | None) -> bool:
    """Whether the target's copy is of a write older than the mark's: then the primary's file,
    written at or after the mark's time, is copied without comparing checksums (two checksum
    calls on each side, each reading the whole file, for a copy that is then due anyway)."""
    theirs = dst_meta.get(WRITTEN_MS, "")
    return written_at_ms is not None and theirs.isdigit() and int(theirs) < written_at_ms


def _same_content(
    src: Store,
    src_path: str,
    src_meta: dict[str, str],
    dst: Store,
    dst_path: str,
    dst_meta: dict[str, str],
    written_ms: int,
) -> bool:
    """Equal bytes by HDFS checksums when both sides hold plaintext; otherwise a target holds
    the same copy when it carries the same write time (a NAS, a bucket, a sealed file)."""
    if ENCRYPTED not in src_meta and ENCRYPTED not in dst_meta:
        theirs, ours = src.checksum(src_path), dst.checksum(dst_path)
        if theirs is not None and ours is not None:
            return theirs == ours
    return isinstance(dst, TARGET_TYPES) and dst_meta.get(WRITTEN_MS) == str(written_ms)


def copy_file(
    src: Store,
    src_path: str,
    status: FileStatus,
    dst: Store,
    dst_path: str,
    written_at_ms: int | None,
    report: ReplayReport,
    tag: str,
    protection: Protection | None = None,
    room: Callable[[int], None] | None = None,
    owners: bool = True,
) -> None:
    """``src_path`` onto ``dst_path`` unless equal already (length, then content): under the
    mark's temporary name, then RENAME over; owner (unless not ``owners``), permission and
    times set where they differ.
    Onto a target, the data go with their write time and, when private, sealed; from a target,
    sealed data are opened.

    A copy that replaced ``dst_path`` checks that the source is still the version it read: a
    newer write may have landed meanwhile and been copied by another replay (its own mark, in
    parallel) before this older copy replaced it, and both marks would then be gone. The newer
    version is then copied too (a few times at most; after that the mark stays, and the
    replay fails)."""
    job = _Copy(src, src_path, dst, dst_path, report, tag, protection, room, owners)
    for _attempt in range(COPY_ATTEMPTS):
        if not job.once(status, written_at_ms):
            return
        now = src.status(src_path)
        if now is None:
            # deleted (or renamed away) while it was copied: that change may have reached
            # ``dst_path`` before this copy did, and would find nothing left to do
            job.drop_if_ours(written_at_ms or status.modification_time)
            return
        if now.is_dir or _version(now) == _version(status):
            return  # replaced by a directory: that change's own mark replays it
        log.info("%s changed while it was copied; copying it again", src_path)
        status, written_at_ms = now, None
    raise TandemError(f"{src_path} kept changing while it was copied ({COPY_ATTEMPTS} times); its mark stays")


def _version(status: FileStatus) -> tuple[int, int, int]:
    return status.file_id, status.modification_time, status.length


@dataclass(frozen=True)
class _Copy:
    """One :func:`copy_file`: what stays the same however often the source changes under it."""

    src: Store
    src_path: str
    dst: Store
    dst_path: str
    report: ReplayReport
    tag: str
    protection: Protection | None
    room: Callable[[int], None] | None
    owners: bool = True

    def drop_if_ours(self, mtime: int) -> None:
        """Remove the copy this job just made, unless something else has replaced it since
        (another write's file carries another time)."""
        held = self.dst.status(self.dst_path)
        if held is None or held.is_dir:
            return
        # a target keeps the write's time in its metadata (an object store's own time is the
        # upload's); a cluster's copy carries it as its modification time
        written = _meta(self.dst, self.dst_path).get(WRITTEN_MS, "")
        theirs = int(written) if written.isdigit() else held.modification_time
        if theirs == mtime:
            log.info("%s was deleted while it was copied; removing the copy %s", self.src_path, self.dst_path)
            self.dst.delete(self.dst_path)
            self.report.deleted += 1

    def once(self, status: FileStatus, written_at_ms: int | None) -> bool:
        """The copy of the version ``status`` describes; True when it copied data."""
        src, src_path, dst, dst_path = self.src, self.src_path, self.dst, self.dst_path
        report, tag, protection, room = self.report, self.tag, self.protection, self.room
        mtime = written_at_ms or status.modification_time
        src_meta = _meta(src, src_path)
        length = Protection.plain_length(src_meta, status.length)
        held = dst.status(dst_path)
        dst_meta = _meta(dst, dst_path) if held is not None and not held.is_dir else {}
        same = (
            held is not None
            and not held.is_dir
            and not _older_write(dst_meta, written_at_ms)
            and Protection.plain_length(dst_meta, held.length) == length
            and _same_content(src, src_path, src_meta, dst, dst_path, dst_meta, mtime)
        )
        if not same:
            if room is not None:
                room(length)
            tmp = temp_name(dst_path, short_id(tag))  # a compact id alone may fill a name
            try:
                with src.open(src_path) as chunks:
                    data: Iterable[bytes] = chunks
                    if isinstance(src, TARGET_TYPES):  # a sealed file says so in its first bytes
                        data = (protection or Protection(None)).open(data, src_path)
                    if isinstance(dst, TARGET_TYPES):
                        sealed, data = protection.seal(data, dst_path) if protection else ({}, data)
                        meta = {WRITTEN_MS: str(mtime), **sealed}
                        dst.write_with_meta(tmp, data, meta, permission=status.permission)
                    else:
                        dst.write(tmp, data, overwrite=True, permission=status.permission)
                dst.replace(tmp, dst_path)
            except Exception as exc:
                # the source changed or went away under the copy (the mark stays, or a newer one
                # names the path): nothing half-copied is left behind where a side still answers
                if not is_unreachable(exc):
                    with contextlib.suppress(Exception):
                        dst.delete(tmp)
                raise
            report.files += 1
            report.bytes += length
            held = None
        if held is None or held.modification_time != mtime:
            dst.set_times(dst_path, mtime)
        if self.owners and (held is None or (held.owner, held.group) != (status.owner, status.group)):
            dst.set_owner(dst_path, status.owner, status.group)
        # a target's write_with_meta sets the permission exactly; a CREATE's permission may be masked
        copied_to_target = held is None and isinstance(dst, TARGET_TYPES)
        if not copied_to_target and (held is None or held.permission != status.permission):
            dst.set_permission(dst_path, status.permission)
        return not same


def _walk(hdfs: Store, top: str) -> dict[str, FileStatus]:
    return {e.relpath: e.status for e in hdfs.walk(top) if not is_gateway_temp(posixpath.basename(e.relpath))}


def backup_path(
    ctx: PlanContext, path: str, written_at_ms: int | None, report: ReplayReport, tag: str
) -> None:
    """Make the standby's copy of ``path`` what the primaries hold now (file, tree or nothing)."""
    standby = ctx.standby.store
    dst = ctx.standby.local(path)
    found = ctx.locate(path)
    if found is None:
        # gone from every primary; a primary that does not answer may still hold it
        for side in ctx.primaries.values():
            side.store.status("/")
        if standby.delete(dst, recursive=True):
            report.deleted += 1
        return
    holder, status = found
    if not status.is_dir:
        copy_file(
            holder.store,
            path,
            status,
            standby,
            dst,
            written_at_ms,
            report,
            tag,
            ctx.protection,
            ctx.space.make_room,
        )
        return
    _backup_tree(ctx, path, dst, report, tag)


def _backup_tree(ctx: PlanContext, path: str, dst: str, report: ReplayReport, tag: str) -> None:
    """The standby's tree at ``dst`` made the union of the primaries' trees at ``path``."""
    standby = ctx.standby.store
    merged: dict[str, tuple[Side[Hdfs], FileStatus]] = {}
    for side in ctx.primaries.values():
        if side.store.status(path) is not None:
            for rel, st in _walk(side.store, path).items():
                merged.setdefault(rel, (side, st))
    standby.mkdirs(dst)
    present = _walk(standby, dst)
    for rel, (side, st) in sorted(merged.items()):
        target = posixpath.join(dst, rel)
        if st.is_dir:
            if rel not in present:
                standby.mkdirs(target)
        else:
            copy_file(
                side.store,
                posixpath.join(path, rel),
                st,
                standby,
                target,
                None,
                report,
                tag,
                ctx.protection,
                ctx.space.make_room,
            )
    # what the standby holds beyond the primaries goes, unless a primary holds it by now: a sync
    # write that landed while the trees were read is on the standby only after its primary has
    # it, so it is found here. Deepest first: a kept file keeps its directories.
    kept: set[str] = set()
    for rel in sorted(set(present) - set(merged), reverse=True):
        if rel in kept:
            continue
        if ctx.locate(posixpath.join(path, rel)) is not None:
            kept.update(_parents(rel))
            continue
        if standby.delete(posixpath.join(dst, rel), recursive=True):
            report.deleted += 1


def _parents(rel: str) -> list[str]:
    parts = rel.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


# what a change made while a primary was down can have removed from the standby; after any other
# (MKDIRS, SETOWNER...) a path missing there is a directory an object store does not keep empty
REMOVING_OPS = {"write", "delete", "rename"}


def store_path(
    ctx: PlanContext,
    primary: Side[Hdfs],
    path: str,
    report: ReplayReport,
    tag: str,
    op: str = "write",
    user: str = "",
) -> None:
    """Make ``primary``'s ``path`` what the standby holds for it (its own files, every directory).
    Nothing on the primary is deleted but what the change ``op`` removed: a file there that the
    standby lacks may be a write still pending backup.

    Done as ``user``, who made the change (the primary checks their permissions now, as it would
    have then); the standby's owners are the gateway's, so they are not copied: the files are
    the user's."""
    standby = ctx.standby.store
    src = ctx.standby.local(path)
    status = standby.status(src)
    target = primary.as_user(user) if user else primary.store
    owners = not user
    if status is None:
        if op == "mkdirs":
            target.mkdirs(path)
        elif op in REMOVING_OPS and target.delete(path, recursive=True):
            report.deleted += 1
        return
    if not status.is_dir:
        copy_file(standby, src, status, target, path, None, report, tag, ctx.protection, owners=owners)
        return
    target.mkdirs(path)
    if op in REMOVING_OPS:
        _store_tree(ctx, primary, target, path, report, tag)


def _store_tree(
    ctx: PlanContext, primary: Side[Hdfs], target: Hdfs, path: str, report: ReplayReport, tag: str
) -> None:
    """The primary's tree at ``path`` made what the standby holds for it (through ``target``,
    the primary's client acting for whoever made the change)."""
    standby, src = ctx.standby.store, ctx.standby.local(path)
    owners = target is primary.store
    held = _walk(target, path)
    wanted = _walk(standby, src)
    for rel, st in sorted(wanted.items()):
        full = posixpath.join(path, rel)
        if st.is_dir:
            if rel not in held:
                target.mkdirs(full)
        elif rel in held or ctx.routes.route(full) == primary.name:
            source = posixpath.join(src, rel)
            copy_file(standby, source, st, target, full, None, report, tag, ctx.protection, owners=owners)
    pending = _pending_on(ctx, primary)
    for rel in sorted(set(held) - set(wanted), reverse=True):
        full = posixpath.join(path, rel)
        if any(_related(full, p) for p in pending):
            continue  # acknowledged on the primary, not backed up yet: the standby's lack is no delete
        if target.delete(full, recursive=True):
            report.deleted += 1


def _related(a: str, b: str) -> bool:
    """One path is the other or inside it."""
    return within(a, b) or within(b, a)


def _pending_on(ctx: PlanContext, primary: Side[Hdfs]) -> set[str]:
    """Paths the primary's own marks name (written there, not yet on the standby)."""
    journal = ctx.journal(primary)
    names: set[str] = set()
    for state in (PENDING_BACKUP, INFLIGHT):
        for mark_id in journal.ids(state):
            mark = journal.read_settled(mark_id, state)
            if mark is not None:
                names.update(mark.paths)
    return names


# --------------------------------------------------------------------------- queues


# a mark whose paths changed under its replay is replayed again this many times at most
MISSING_ATTEMPTS = 3


def _run_marks(ids: list[str], one: Callable[[str], ReplayReport], report: ReplayReport) -> None:
    """Every mark of ``ids``; one a side refuses (a file where the standby holds a directory, say)
    stays, is reported, and never stops the others. A side that does not answer stops them all."""
    started, done = time.monotonic(), 0

    def guarded(mark_id: str) -> ReplayReport:
        for attempt in range(1, MISSING_ATTEMPTS + 1):
            try:
                return one(mark_id)
            except Exception as exc:
                if is_unreachable(exc):
                    raise
                if attempt < MISSING_ATTEMPTS and isinstance(exc, RemoteHdfsError) and is_missing(exc):
                    # a path went away while the mark's tree was read (another mark's replay, or
                    # the application): replaying is idempotent, so the mark is replayed again
                    log.info("mark %s: %s; replaying it again", mark_id, exc)
                    continue
                log.warning("mark %s stays: %s", mark_id, exc)
                return ReplayReport(problems=[f"{_describe(mark_id)}: {exc}"])
        raise AssertionError("unreachable")

    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="tandem-replay") as pool:
        for part in pool.map(guarded, ids):
            report.add(part)
            done += 1
            if done % 100 == 0 or done == len(ids):
                log.info("replayed %d/%d marks in %.1fs", done, len(ids), time.monotonic() - started)


def _describe(mark_id: str) -> str:
    """A mark as a person reads it: its change and paths when its id carries them."""
    if not is_compact(mark_id):
        return f"mark {mark_id}"
    mark = Mark.from_id(mark_id)
    return f"{mark.op} {', '.join(mark.paths)} (mark {short_id(mark_id)})"


def _oldest(ids: list[str]) -> float | None:
    return (time.time() - id_time_ms(ids[0]) / 1000) if ids else None


def drain_store(ctx: PlanContext, primary: Side[Hdfs]) -> ReplayReport:
    """Write back what the standby took for ``primary`` while it was down."""
    journal = ctx.journal(ctx.standby)
    ids = journal.ids(PENDING_STORE, primary.name)
    report = ReplayReport(oldest_age_s=_oldest(ids))
    if not ids:
        return report
    primary.store.status("/")  # down: raise before touching anything

    def one(mark_id: str) -> ReplayReport:
        part = ReplayReport()
        mark = _read_made(journal, mark_id, PENDING_STORE, primary.name, INFLIGHT_GRACE_S, part)
        if mark is None:
            return part
        for path in mark.paths:
            store_path(ctx, primary, path, part, mark_id, mark.op, mark.user)
        # the write may have left its inflight mark and temporary file on the primary as it died
        # (the name comes from this mark's id: no other write uses it)
        if mark.temp and mark.temp not in mark.paths:
            primary.store.delete(mark.temp)
        primary.store.delete(f"{ctx.plan.journal}/{INFLIGHT}/{mark_id}")
        journal.delete(mark_id, PENDING_STORE, primary.name)
        part.marks += 1
        return part

    _run_marks(ids, one, report)
    log.info("pending-store %s: %s", primary.name, report.summary())
    return report


def _read_made(
    journal: Journal, mark_id: str, state: str, primary: str | None, grace_s: float, part: ReplayReport
) -> Mark | None:
    """The mark, or None: finished by another replayer, or a mark file without its bytes yet
    (deferred while younger than the grace). One older than that was made by a gateway that died
    between the file's CREATE and its bytes: the change it would have guarded never went past it
    (a change goes on only once its mark is durable), so there is nothing to replay: removed."""
    try:
        return journal.read(mark_id, state, primary)
    except ValueError:
        if time.time() * 1000 - id_time_ms(mark_id) < grace_s * 1000:
            part.deferred += 1
            return None
        log.warning("mark %s was never written (its gateway died making it); removed", mark_id)
        journal.delete(mark_id, state, primary)
        return None


def _backup_one(
    ctx: PlanContext,
    journal: Journal,
    primary: Side[Hdfs],
    state: str,
    mark_id: str,
    inflight_grace_s: float = INFLIGHT_GRACE_S,
    busy: frozenset[str] = frozenset(),
) -> ReplayReport:
    part = ReplayReport()
    waited_ms = time.time() * 1000 - id_time_ms(mark_id)
    mark = _read_made(journal, mark_id, state, None, inflight_grace_s, part)
    if mark is None:
        return part
    if state == PENDING_BACKUP and busy.intersection(mark.paths) and waited_ms < 2 * inflight_grace_s * 1000:
        # another write of the path is under way: its RENAMEs and this one's may have landed in
        # different orders on the two sides, so the path is backed up once it is done (or, should
        # writes of it never stop, after twice the inflight grace)
        part.deferred += 1
        return part
    died = state == INFLIGHT
    temp = mark.temp if state == PENDING_BACKUP and mark.temp not in mark.paths else None
    if temp is not None and primary.store.status(temp) is not None:
        # an async write moves its mark here while its data is renamed into place: until the
        # temporary file is gone the path holds the older content, so the mark waits (a write
        # that died there is reconciled like an inflight one, after the same grace)
        if time.time() * 1000 - id_time_ms(mark_id) < inflight_grace_s * 1000:
            part.deferred += 1
            return part
        died = True
    if died and mark.temp:
        # the write that left this mark died: its temporary files are never published
        primary.store.delete(mark.temp)
        ctx.standby.store.delete(ctx.standby.local(mark.temp))
    for path in mark.paths:
        backup_path(ctx, path, mark.written_at_ms if mark.op == "write" else None, part, mark_id)
    journal.delete(mark_id, state)
    part.marks += 1
    return part


def _in_flight(ctx: PlanContext, journal: Journal, grace_s: float) -> frozenset[str]:
    """Paths of sync writes under way on this primary (inflight marks younger than the grace):
    their pending-backup namesakes wait for them (:func:`_backup_one`). Async writes never
    publish on the standby, and replay's copy re-checks the primary's version: none needed."""
    if ctx.plan.mode != "sync":
        return frozenset()
    now_ms = time.time() * 1000
    young = [i for i in journal.ids(INFLIGHT) if now_ms - id_time_ms(i) < grace_s * 1000]
    return frozenset(
        p for i in young if (mark := journal.read_settled(i, INFLIGHT)) is not None for p in mark.paths
    )


def drain_backup(
    ctx: PlanContext, primary: Side[Hdfs], min_age_s: float = 0.0, inflight_grace_s: float = INFLIGHT_GRACE_S
) -> ReplayReport:
    """Copy out what ``primary`` holds and the standby lacks: its pending-backup marks at least
    ``min_age_s`` old, and inflight marks left by dead writes. The primary's pending-store queue
    goes first, so the standby's newer data is never overwritten."""
    report = drain_store(ctx, primary)
    if report.problems:
        # the standby holds newer data for this primary that did not go back: backing up the
        # primary's older state could replace it, so this primary waits for the problem's fix
        log.warning("pending-backup %s waits: its pending-store marks did not all go back", primary.name)
        return report
    ctx.standby.store.status("/")
    journal = ctx.journal(primary)
    for state, age in ((INFLIGHT, inflight_grace_s), (PENDING_BACKUP, min_age_s)):
        now_ms = time.time() * 1000
        ids = [i for i in journal.ids(state) if now_ms - id_time_ms(i) >= age * 1000]
        # listed after the queue, so that a write that moved its mark there saw what is in flight
        busy = _in_flight(ctx, journal, inflight_grace_s) if state == PENDING_BACKUP else frozenset()
        part = ReplayReport(oldest_age_s=_oldest(ids))
        _run_marks(
            ids,
            lambda i, s=state, b=busy: _backup_one(ctx, journal, primary, s, i, inflight_grace_s, b),  # type: ignore[misc]
            part,
        )
        report.add(part)
    if report.marks or report.problems:
        log.info("pending-backup %s: %s", primary.name, report.summary())
    return report


def replay_all(
    ctx: PlanContext,
    min_age_s: float = 0.0,
    inflight_grace_s: float = INFLIGHT_GRACE_S,
    primaries: list[str] | None = None,
) -> ReplayReport:
    """Every primary's queues; a primary or standby that does not answer is reported and skipped."""
    report = ReplayReport()
    for name in primaries or list(ctx.primaries):
        side = ctx.primaries[name]
        try:
            report.add(drain_backup(ctx, side, min_age_s, inflight_grace_s))
            side.answered()
        except Exception as exc:
            if not is_unreachable(exc):
                raise
            report.problems.append(f"{name}: {exc}")
            report.deferred += 1
    return report
