"""The gateway's checks and reads: where a path may be served from, and serving it.

Reads go to the primary that holds the path, or to the standby while that primary is down or
still taking back what the standby held for it; a directory whose children live on several
primaries lists them merged. :class:`~tandem.gateway.service.Gateway` adds the writes and the
background replay on top of this.
"""

from __future__ import annotations

import builtins
import dataclasses
import logging
import posixpath
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from tandem.errors import RemoteHdfsError
from tandem.gateway.context import PlanContext, is_gateway_temp
from tandem.gateway.crypto import MAGIC, META_ALG
from tandem.gateway.marks import PENDING_STORE
from tandem.gateway.plan import GatewayPlan, within
from tandem.gateway.protect import Protection
from tandem.gateway.sides import Side, is_unreachable
from tandem.gateway.writes import Unavailable
from tandem.hdfs.client import Hdfs, is_missing
from tandem.hdfs.types import FileChecksum, FileStatus

log = logging.getLogger(__name__)

T = TypeVar("T")

STORE_CHECK_S = 2.0


def denied(message: str) -> RemoteHdfsError:
    return RemoteHdfsError(message, exception="AccessControlException")


def missing_file(path: str) -> RemoteHdfsError:
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


class GatewayReads:
    """Checks and reads of one plan's gateway (the state is set up by Gateway)."""

    ctx: PlanContext
    plan: GatewayPlan
    pool: ThreadPoolExecutor
    _store_pending: dict[str, float]

    # -- checks --------------------------------------------------------------------------
    def _leads_to_a_root(self, path: str) -> bool:
        return any(r.startswith(path.rstrip("/") + "/") for r in self.plan.write_roots)

    def check_path(self, path: str, user: str, write: bool) -> None:
        """Inside the plan's roots (reads may also look at their ancestors), and allowed to ``user``."""
        if not self.plan.within_roots(path) and (write or not self._leads_to_a_root(path)):
            raise denied(
                f"{path} is outside plan {self.plan.plan}'s roots {', '.join(self.plan.write_roots)}"
            )
        if write and not self.plan.may_write(user, path):
            raise denied(f"user {user} may not write {path} in plan {self.plan.plan}")

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
                    raise missing_file(path)
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
            raise missing_file(path)
        side, where, held = self._reader(path)
        status: FileStatus | None
        if side is not self.ctx.standby:
            # asked again as the user, whom the NameNode checks (the lookup was the gateway's)
            status = side.as_user(user).status(where)
        else:
            status = held or side.store.status(where)
        if status is None:
            raise missing_file(path)
        if side is self.ctx.standby and not status.is_dir:
            # a sealed copy is longer than what the application wrote
            length = Protection.plain_length(self.ctx.standby.store.meta(where), status.length)
            status = dataclasses.replace(status, length=length)
        return status

    def checksum(self, path: str, user: str) -> FileChecksum:
        """GETFILECHECKSUM from the primary holding the file. While it is down the standby's copy
        answers only if it holds the same bytes the same way (a cluster, nothing sealed)."""
        self.check_path(path, user, write=False)
        side, where, status = self._reader(path)
        if status is not None and status.is_dir:
            raise missing_file(path)  # HDFS: "Path is not a file"
        if side is self.ctx.standby:
            stored_otherwise = self.plan.private_data is not None or not isinstance(side.store, Hdfs)
            # a plain file that starts like a sealed one is stored behind a header
            if stored_otherwise or META_ALG in side.store.meta(where):
                raise Unavailable(f"the primary holding {path} is down: its checksum waits for it")
            found: FileChecksum | None = side.store.checksum(where)
            if found is None:
                raise Unavailable(f"the primary holding {path} is down: its checksum waits for it")
            return found
        return side.as_user(user).checksum(where)

    def pass_through(self, path: str, user: str, op: str, params: dict[str, list[str]]) -> Any:
        """A read-only op (:data:`Hdfs.READ_OPS`) answered by the primary holding ``path``, as
        the user, as HttpFS passes it to its NameNode. While that primary is down it waits (503):
        the standby keeps data, not the cluster's ACLs, quotas or trash."""
        self.check_path(path, user, write=False)
        root = next((r for r in self.plan.write_roots if within(path, r)), None)
        if op == "GETTRASHROOT" and root is not None:
            # the plan's own trash, as an encryption zone has its own: a client moving a file to
            # the trash (hdfs' delete(skip_trash=False)) stays inside the plan, backed up too
            return {"Path": posixpath.join(root, ".Trash", user)}
        side, where, _status = self._reader(path)
        if side is self.ctx.standby:
            raise Unavailable(f"the primary holding {path} is down: {op} waits for it")
        return side.as_user(user).read_op(op, where, **params)

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
        return self._listing(path, user, lambda s: (s.as_user(user).list(path), 0), None)[0]

    def list_page(
        self, path: str, user: str, start_after: str | None, limit: int
    ) -> tuple[builtins.list[FileStatus], int]:
        """LISTSTATUS_BATCH merged: the first ``limit`` entries after ``start_after`` and how many
        remain (more than zero exactly when there are more; a directory several primaries hold
        may count twice). Each primary is asked for its own next page only."""
        entries, remaining = self._listing(
            path, user, lambda s: s.as_user(user).list_batch(path, start_after), start_after
        )
        return entries[:limit], remaining + max(0, len(entries) - limit)

    def _listing(
        self,
        path: str,
        user: str,
        fetch: Callable[[Side[Hdfs]], tuple[builtins.list[FileStatus], int]],
        start_after: str | None,
    ) -> tuple[builtins.list[FileStatus], int]:
        self.check_path(path, user, write=False)
        results = self._fan_out(list(self.ctx.primaries.values()), fetch)
        merged: dict[str, FileStatus] = {}
        missing = remaining = 0
        degraded = False
        for name, result in results.items():
            if isinstance(result, BaseException):
                if isinstance(result, RemoteHdfsError) and result.exception == "FileNotFoundException":
                    missing += 1
                    continue
                if isinstance(result, RemoteHdfsError) and result.exception == "PathIsNotDirectoryException":
                    return ([self.status(path, user)] if start_after is None else []), 0
                if not is_unreachable(result):
                    raise result
                self.ctx.primaries[name].failed(result)
                degraded = True
                continue
            for st in result[0]:
                merged.setdefault(st.path_suffix, st)
            remaining += result[1]
        if degraded or self._store_pending:
            # what a primary that does not answer holds is on the standby, backed up or pending
            for st in self._standby_listing(path):
                if start_after is None or st.path_suffix > start_after:
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
        return sorted(visible, key=lambda s: s.path_suffix), remaining

    def content_summary(self, path: str, user: str) -> dict[str, int]:
        """Sums over the primaries; directories counted once per primary's largest tree."""
        self.check_path(path, user, write=False)
        results = self._fan_out(
            list(self.ctx.primaries.values()), lambda s: s.as_user(user).content_summary(path)
        )
        found = [r for r in results.values() if not isinstance(r, BaseException)]
        if not found:
            errors = [r for r in results.values() if isinstance(r, BaseException)]
            raise errors[0] if errors else Unavailable("no primary answers")
        out = dict(found[0])
        for key in ("fileCount", "length", "spaceConsumed"):
            out[key] = sum(int(r.get(key, 0)) for r in found)
        out["directoryCount"] = max(int(r.get("directoryCount", 0)) for r in found)
        return out
