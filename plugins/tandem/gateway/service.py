"""The gateway's operations, as blocking calls: the HTTP layer (:mod:`.server`) is a thin
translation of WebHDFS requests onto these.

Namespace changes (MKDIRS, DELETE, RENAME, SETOWNER...) go to every primary that holds the
path and to the standby, each guarded like a write: a side that misses the change gets a
durable mark (pending-backup on a primary for the standby, pending-store on the standby for a
primary). Reads go to the primary that holds the path, or to the standby while that primary
is down or still taking back what the standby held for it.
"""

from __future__ import annotations

import dataclasses
import logging
import posixpath
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from tandem.errors import RemoteHdfsError
from tandem.gateway.context import PlanContext, is_gateway_temp
from tandem.gateway.crypto import MAGIC
from tandem.gateway.marks import INFLIGHT, PENDING_BACKUP, PENDING_STORE, Mark
from tandem.gateway.protect import Protection
from tandem.gateway.renames import check_rename_on_standby, check_tree_stays_routed, move_file
from tandem.gateway.replay import INFLIGHT_GRACE_S, drain_backup
from tandem.gateway.sides import Side, is_unreachable
from tandem.gateway.status import plan_status
from tandem.gateway.targets import Target
from tandem.gateway.writes import Unavailable, WriteSession, check_absent
from tandem.hdfs.client import Hdfs, is_missing
from tandem.hdfs.types import FileStatus

log = logging.getLogger(__name__)

T = TypeVar("T")

STORE_CHECK_S = 2.0
SINK_THREADS = 256


def _denied(message: str) -> RemoteHdfsError:
    return RemoteHdfsError(message, exception="AccessControlException")


def _missing(path: str) -> RemoteHdfsError:
    return RemoteHdfsError(f"File does not exist: {path}", exception="FileNotFoundException")


def _cut(chunks: Iterator[bytes], offset: int, length: int | None) -> Iterator[bytes]:
    """Bytes ``offset`` to ``offset + length`` of a stream."""
    pos = 0
    end = None if length is None else offset + length
    for chunk in chunks:
        start, stop = pos, pos + len(chunk)
        pos = stop
        if stop <= offset:
            continue
        if end is not None and start >= end:
            return
        yield chunk[max(0, offset - start) : len(chunk) if end is None else min(len(chunk), end - start)]


class Gateway:
    """One plan's gateway in one process; several may serve a plan at once."""

    def __init__(
        self, ctx: PlanContext, *, worker: bool = True, inflight_grace_s: float | None = None
    ) -> None:
        self.ctx = ctx
        self.plan = ctx.plan
        self.pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="tandem-gw")
        # one thread per side of each streaming write, reused across writes; apart from the pool
        # above so that marks and publishing never wait behind bodies still arriving
        self.sinks = ThreadPoolExecutor(max_workers=SINK_THREADS, thread_name_prefix="tandem-gw-sink")
        self.writes = {"done": 0, "pending": 0, "refused": 0}
        self.by_primary: dict[str, int] = dict.fromkeys(ctx.primaries, 0)
        self._store_pending: dict[str, float] = {}
        self._stop = threading.Event()
        self._inflight_grace_s = inflight_grace_s
        self._worker: threading.Thread | None = None
        if worker:
            self._worker = threading.Thread(target=self._work, name="tandem-gw-replay", daemon=True)
            self._worker.start()

    def close(self) -> None:
        self._stop.set()
        if self._worker is not None:
            self._worker.join(timeout=10)
        self.sinks.shutdown(wait=True)
        self.pool.shutdown(wait=True)

    # -- checks --------------------------------------------------------------------------
    def _leads_to_a_root(self, path: str) -> bool:
        return any(r.startswith(path.rstrip("/") + "/") for r in self.plan.write_roots)

    def check_path(self, path: str, user: str, write: bool) -> None:
        """Inside the plan's roots (reads may also look at their ancestors), and allowed to ``user``."""
        if not self.plan.within_roots(path) and (write or not self._leads_to_a_root(path)):
            raise _denied(
                f"{path} is outside plan {self.plan.plan}'s roots {', '.join(self.plan.write_roots)}"
            )
        if write and not self.plan.may_write(user, path):
            raise _denied(f"user {user} may not write {path} in plan {self.plan.plan}")

    def _primary_usable(self, side: Side[Hdfs]) -> bool:
        """Down, or still taking back what the standby held for it: then the standby serves."""
        flagged = self._store_pending.get(side.name)
        if flagged is not None and time.monotonic() - flagged > STORE_CHECK_S:
            self._recheck_store_pending(side.name)  # replay may have run elsewhere (the DAG, another gateway)
        return side.healthy() and side.name not in self._store_pending

    def note_store_pending(self, primary: str) -> None:
        self._store_pending[primary] = time.monotonic()

    def _recheck_store_pending(self, primary: str) -> None:
        """Flag ``primary`` while the standby holds pending-store marks for it (one LISTSTATUS);
        a standby that does not answer keeps a flagged primary flagged."""
        try:
            held = self.ctx.journal(self.ctx.standby).ids(PENDING_STORE, primary)
        except Exception as exc:
            if not is_unreachable(exc):
                raise
            if primary in self._store_pending:
                self.note_store_pending(primary)
            return
        if held:
            self.note_store_pending(primary)
        else:
            self._store_pending.pop(primary, None)

    # -- writes --------------------------------------------------------------------------
    def begin_write(
        self,
        path: str,
        user: str,
        *,
        overwrite: bool,
        permission: str | None,
        append: bool = False,
        explicit_id: str | None = None,
        size: int | None = None,
    ) -> WriteSession:
        self.check_path(path, user, write=True)
        primary = self.ctx.primaries[self.ctx.routes.route(path, explicit_id)]
        usable = self._primary_usable(primary)
        if append and not usable:
            raise Unavailable(f"{primary.name}, which holds {path}, is down: APPEND waits for it")
        if usable and not overwrite and not append:
            try:
                check_absent(primary, user, path)
            except RemoteHdfsError as exc:
                if not is_unreachable(exc):
                    raise
                primary.failed(exc)
                usable = False
            except Exception as exc:
                if not is_unreachable(exc):
                    raise
                primary.failed(exc)
                usable = False
        return WriteSession(
            self.ctx,
            self.pool,
            self.sinks,
            self.note_store_pending,
            path,
            user,
            primary,
            overwrite=overwrite,
            permission=permission,
            append=append,
            primary_up=usable,
            size=size,
        )

    def count(self, primary: str, backup: str | None) -> None:
        if backup is None:
            self.writes["refused"] += 1
            return
        self.writes[backup] += 1
        self.by_primary[primary] = self.by_primary.get(primary, 0) + 1

    def _fan_out(
        self, sides: list[Side[Hdfs]], call: Callable[[Side[Hdfs]], T]
    ) -> dict[str, T | BaseException]:
        futures: dict[str, Future[T]] = {s.name: self.pool.submit(call, s) for s in sides}
        out: dict[str, T | BaseException] = {}
        for name, fut in futures.items():
            try:
                out[name] = fut.result()
            except Exception as exc:
                out[name] = exc
        return out

    def _namespace_change(
        self,
        op: str,
        paths: tuple[str, ...],
        user: str,
        holders: list[Side[Hdfs]],
        on_primary: Callable[[Side[Hdfs]], T],
        on_standby: Callable[[Side[Target]], Any],
    ) -> T:
        """Apply a change to ``holders`` and the standby; marks for whoever missed it."""
        usable = [s for s in holders if self._primary_usable(s)]
        down = [s for s in holders if s not in usable]
        anchor, mark = self._anchor(op, paths, user, usable, down)
        results = self._fan_out(usable, on_primary)
        failures = {n: r for n, r in results.items() if isinstance(r, BaseException)}
        refused = [r for r in failures.values() if not is_unreachable(r)]
        for name, exc in failures.items():
            if is_unreachable(exc):
                side = self.ctx.primaries[name]
                side.failed(exc)
                down.append(side)
        answers = [r for r in results.values() if not isinstance(r, BaseException)]
        if refused and not answers:
            if anchor is not None:
                self.ctx.journal(anchor).delete(mark.id, INFLIGHT)
            raise refused[0]
        if not answers and not down:
            raise Unavailable(f"no primary answers for {', '.join(paths)}")
        standby_ok = self._apply_on_standby(on_standby)
        for side in down:
            if not standby_ok:
                raise Unavailable(f"{side.name} and {self.ctx.standby.name} are both down")
            self.ctx.journal(self.ctx.standby).put(
                Mark.new_compact(op, paths, side.name, user), PENDING_STORE, side.name
            )
            self.note_store_pending(side.name)
        if anchor is not None:
            if standby_ok and not refused:
                self.pool.submit(self.ctx.journal(anchor).delete, mark.id, INFLIGHT)
            else:
                self.ctx.journal(anchor).move(mark, INFLIGHT, PENDING_BACKUP)
        return answers[0] if answers else None  # type: ignore[return-value]

    def _anchor(
        self, op: str, paths: tuple[str, ...], user: str, usable: list[Side[Hdfs]], down: list[Side[Hdfs]]
    ) -> tuple[Side[Hdfs] | None, Mark]:
        """The first usable holder that takes the change's inflight mark; one that does not answer
        (a primary that just died) joins ``down``, so the change is marked for it instead."""
        while usable:
            anchor = usable[0]
            mark = Mark.new_compact(op, paths, anchor.name, user)
            try:
                self.ctx.journal(anchor).put(mark, INFLIGHT)
            except Exception as exc:
                if not is_unreachable(exc):
                    raise
                anchor.failed(exc)
                down.append(usable.pop(0))
                continue
            return anchor, mark
        return None, Mark.new_compact(op, paths, down[0].name, user)

    def _apply_on_standby(self, on_standby: Callable[[Side[Target]], Any]) -> bool:
        """Whether the standby took the change; any refusal leaves it to replay."""
        try:
            on_standby(self.ctx.standby)
        except Exception as exc:
            if is_unreachable(exc):
                self.ctx.standby.failed(exc)
            return False
        self.ctx.standby.answered()
        return True

    def mkdirs(self, path: str, user: str, permission: str | None) -> bool:
        self.check_path(path, user, write=True)
        self._namespace_change(
            "mkdirs",
            (path,),
            user,
            list(self.ctx.primaries.values()),
            lambda s: s.as_user(user).mkdirs(path, permission),
            lambda s: s.store.mkdirs(s.local(path), permission),
        )
        return True

    def delete(self, path: str, user: str, recursive: bool) -> bool:
        self.check_path(path, user, write=True)
        if path in self.plan.write_roots:
            raise _denied(f"{path} is a root of plan {self.plan.plan}: delete what is under it")
        found = self._namespace_change(
            "delete",
            (path,),
            user,
            list(self.ctx.primaries.values()),
            lambda s: s.as_user(user).delete(path, recursive),
            lambda s: s.store.delete(s.local(path), recursive=True),
        )
        return bool(found)

    def rename(self, src: str, dst: str, user: str) -> bool:
        """RENAME as the Router does for a HASH mount whose subclusters are the primaries
        (:mod:`.renames`): a file moves whole to its new name's primary; a directory whose files
        would be stranded off their new names' primaries is refused, nothing changed."""
        self.check_path(src, user, write=True)
        self.check_path(dst, user, write=True)
        routed = self.ctx.primaries[self.ctx.routes.route(src)]
        if not self._primary_usable(routed):
            check_rename_on_standby(self.ctx, routed, src, dst)
            # the source was written to the standby while its primary was down: rename it there
            return self._namespace_change(
                "rename",
                (src, dst),
                user,
                [routed],
                lambda s: True,
                lambda s: s.store.rename(s.local(src), s.local(dst)),
            )
        found = self.ctx.locate(src)
        if found is None:
            return False
        holder, status = found
        if status.is_dir:
            holders = [s for s in self.ctx.primaries.values() if s is holder or self._has(s, src)]
            check_tree_stays_routed(self.ctx, holders, src, dst)
            return bool(
                self._namespace_change(
                    "rename",
                    (src, dst),
                    user,
                    holders,
                    lambda s: s.as_user(user).rename(src, dst) is None,
                    lambda s: s.store.rename(s.local(src), s.local(dst)),
                )
            )
        target = self.ctx.primaries[self.ctx.routes.route(dst)]
        move = (
            (lambda s: move_file(s, target, src, dst, user))
            if target is not holder
            else (lambda s: s.as_user(user).rename(src, dst) is None)
        )
        return bool(
            self._namespace_change(
                "rename",
                (src, dst),
                user,
                [holder],
                move,
                lambda s: s.store.rename(s.local(src), s.local(dst)),
            )
        )

    def _has(self, side: Side[Hdfs], path: str) -> bool:
        try:
            return side.store.status(path) is not None
        except Exception as exc:
            if not is_unreachable(exc):
                raise
            return False

    def set_attributes(self, path: str, user: str, op: str, apply: Callable[[Any, str], None]) -> None:
        self.check_path(path, user, write=True)
        found = self.ctx.locate(path)
        if found is None:
            raise _missing(path)
        holder, status = found
        holders = (
            [s for s in self.ctx.primaries.values() if self._has(s, path)] if status.is_dir else [holder]
        )
        self._namespace_change(
            op,
            (path,),
            user,
            holders,
            lambda s: apply(s.as_user(user), path),
            lambda s: apply(s.store, s.local(path)),
        )

    # -- reads ---------------------------------------------------------------------------
    def _reader(self, path: str) -> tuple[Side[Any], str, FileStatus | None]:
        """Where ``path`` is read: the primary holding it, with its status, or the standby's copy
        (status not looked up) while the routed primary is down or taking back pending-store data."""
        routed = self.ctx.primaries[self.ctx.routes.route(path)]
        if self._primary_usable(routed):
            try:
                found = self.ctx.locate(path)
                routed.answered()
            except Exception as exc:
                if not is_unreachable(exc):
                    raise
                routed.failed(exc)
            else:
                if found is None:
                    raise _missing(path)
                return found[0], path, found[1]
        return self.ctx.standby, self.ctx.standby.local(path), None

    def status(self, path: str, user: str) -> FileStatus:
        self.check_path(path, user, write=False)
        if not self.plan.within_roots(path) or path in self.plan.write_roots:
            # a root or one of its ancestors: a directory on every side, whichever answers
            sides: list[Side[Any]] = [*self.ctx.primaries.values(), self.ctx.standby]
            for side in sides:
                try:
                    found: FileStatus | None = side.store.status(side.local(path))
                except Exception as exc:
                    if not is_unreachable(exc):
                        raise
                    continue
                if found is not None:
                    return found
            raise _missing(path)
        side, where, held = self._reader(path)
        status: FileStatus | None = held or side.store.status(where)
        if status is None:
            raise _missing(path)
        if side is self.ctx.standby and not status.is_dir:
            # a sealed copy is longer than what the application wrote
            length = Protection.plain_length(self.ctx.standby.store.meta(where), status.length)
            status = dataclasses.replace(status, length=length)
        return status

    def open(self, path: str, user: str, offset: int, length: int | None) -> Iterator[bytes]:
        self.check_path(path, user, write=False)
        side, where, _status = self._reader(path)
        if side is self.ctx.standby:
            return self._open_on_target(path, where, offset, length)
        manager = side.as_user(user).open(where, offset=offset, length=length)
        chunks = manager.__enter__()

        def stream() -> Iterator[bytes]:
            try:
                yield from chunks
            finally:
                manager.__exit__(None, None, None)

        return stream()

    def _open_on_target(self, path: str, where: str, offset: int, length: int | None) -> Iterator[bytes]:
        """The target's copy as the application wrote it: a sealed copy is opened whole and the
        range cut from the plaintext."""
        target = self.ctx.standby.store
        with target.open(where, length=len(MAGIC)) as probe:
            sealed = b"".join(probe) == MAGIC
        manager = target.open(where, offset=0 if sealed else offset, length=None if sealed else length)
        chunks = manager.__enter__()

        def stream() -> Iterator[bytes]:
            try:
                if not sealed:
                    yield from chunks
                    return
                yield from _cut(self.ctx.protection.open(chunks, path), offset, length)
            finally:
                manager.__exit__(None, None, None)

        return stream()

    def _standby_listing(self, path: str) -> list[FileStatus]:
        try:
            return self.ctx.standby.store.list(self.ctx.standby.local(path))
        except Exception as exc:
            if not (is_unreachable(exc) or is_missing(exc)):
                raise
            return []

    def list(self, path: str, user: str) -> list[FileStatus]:
        """LISTSTATUS merged over the primaries (and the standby for a primary that is down)."""
        self.check_path(path, user, write=False)
        results = self._fan_out(list(self.ctx.primaries.values()), lambda s: s.store.list(path))
        merged: dict[str, FileStatus] = {}
        missing = 0
        degraded = False
        for name, result in results.items():
            if isinstance(result, BaseException):
                if isinstance(result, RemoteHdfsError) and result.exception == "FileNotFoundException":
                    missing += 1
                    continue
                if isinstance(result, RemoteHdfsError) and result.exception == "PathIsNotDirectoryException":
                    return [self.status(path, user)]
                if not is_unreachable(result):
                    raise result
                self.ctx.primaries[name].failed(result)
                degraded = True
                continue
            for st in result:
                merged.setdefault(st.path_suffix, st)
        if degraded or self._store_pending:
            # what a primary that does not answer holds is on the standby, backed up or pending
            for st in self._standby_listing(path):
                merged.setdefault(st.path_suffix, st)
        if not merged and missing == len(results):
            raise RemoteHdfsError(f"File {path} does not exist.", exception="FileNotFoundException")
        visible = [s for n, s in merged.items() if not is_gateway_temp(n)]
        if not self.plan.within_roots(path):
            # an ancestor of the roots shows only the way to them
            children = {s.path_suffix: posixpath.join(path, s.path_suffix) for s in visible}
            visible = [
                s
                for s in visible
                if self.plan.within_roots(children[s.path_suffix])
                or self._leads_to_a_root(children[s.path_suffix])
            ]
        return sorted(visible, key=lambda s: s.path_suffix)

    def content_summary(self, path: str, user: str) -> dict[str, int]:
        """Sums over the primaries; directories counted once per primary's largest tree."""
        self.check_path(path, user, write=False)
        results = self._fan_out(list(self.ctx.primaries.values()), lambda s: s.store.content_summary(path))
        found = [r for r in results.values() if not isinstance(r, BaseException)]
        if not found:
            errors = [r for r in results.values() if isinstance(r, BaseException)]
            raise errors[0] if errors else Unavailable("no primary answers")
        out = dict(found[0])
        for key in ("fileCount", "length", "spaceConsumed"):
            out[key] = sum(int(r.get(key, 0)) for r in found)
        out["directoryCount"] = max(int(r.get("directoryCount", 0)) for r in found)
        return out

    # -- background replay ---------------------------------------------------------------
    def _work(self) -> None:
        """Back up async writes ``interval`` after their ACK, write back pending-store data when
        a primary answers again; retries with back-off (to 60 s) while a side stays down."""
        interval = self.plan.async_interval.total_seconds() if self.plan.mode == "async" else 0.0
        tick = min(max(interval / 4, 0.2 if interval else 1.0), 5.0)
        wait: dict[str, float] = dict.fromkeys(self.ctx.primaries, 0.0)
        backoff: dict[str, float] = dict.fromkeys(self.ctx.primaries, tick)
        grace = self._inflight_grace_s if self._inflight_grace_s is not None else INFLIGHT_GRACE_S
        last_store_check = 0.0
        while not self._stop.wait(tick):
            now = time.monotonic()
            if now - last_store_check > STORE_CHECK_S:
                last_store_check = now
                for name in self.ctx.primaries:  # marks another gateway left count too
                    self._recheck_store_pending(name)
            for name, side in self.ctx.primaries.items():
                if now < wait[name]:
                    continue
                try:
                    # pending-store first, then pending-backup and dead writes' inflight marks
                    drain_backup(self.ctx, side, interval, grace)
                    self._store_pending.pop(name, None)
                    backoff[name] = tick
                except Exception as exc:
                    backoff[name] = min(backoff[name] * 2, 60.0)
                    wait[name] = now + backoff[name]
                    log.info("replay for %s deferred %.1fs: %s", name, backoff[name], exc)

    def status_report(self) -> dict[str, Any]:
        """The plan's status (:mod:`.status`) and what this process served."""
        return {
            **plan_status(self.ctx).to_json(),
            "writes": dict(self.writes),
            "writes_by_primary": dict(self.by_primary),
            "evicted": {"files": self.ctx.space.evicted.files, "bytes": self.ctx.space.evicted.bytes},
        }
