"""One write through the gateway: the body streamed to its primary and, in sync mode, to the
standby at once, then published and acknowledged, or refused. Nothing acknowledged is lost.

Order of a CREATE (the gateway may be SIGKILLed at any step):

1. an ``inflight`` mark on the primary (in parallel with the data): a gateway that dies from
   here on leaves it, and replay reconciles the path;
2. the data under a hidden temporary name beside the final one, on each side;
3. RENAME over the final name on each side (atomic): readers see the old file or the new one;
   the standby's copy only after the primary's has landed (a CREATE without overwrite may lose
   the name there; a directory renamed meanwhile takes the temporary file along);
4. acknowledged: ``done`` when both sides hold it (the mark is then dropped), ``pending`` when
   one does and a durable mark says what the other lacks: the inflight mark becomes
   ``pending-backup`` (standby failed, or async mode, where the move runs beside step 3 and
   replay waits for the temporary file to be gone), or a ``pending-store`` mark on the
   standby names the primary that failed. Otherwise the client gets an error and may retry.

A path that already is a client's temporary name (``x.temp-1``, ``.tmp.<hex>``) is written in
place: the client's own RENAME publishes it.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NoReturn

from tandem.errors import RemoteHdfsError, TandemError
from tandem.gateway import settle
from tandem.gateway.context import PlanContext
from tandem.gateway.marks import INFLIGHT, PENDING_BACKUP, PENDING_STORE, Mark
from tandem.gateway.routing import is_temporary
from tandem.gateway.sides import Side, SideDown, is_unreachable
from tandem.gateway.targets import WRITTEN_MS
from tandem.gateway.targets.cluster import ClusterTarget
from tandem.hdfs.client import Hdfs

log = logging.getLogger(__name__)

QUEUE_CHUNKS = 8


class Unavailable(TandemError):
    """No side could take the write; nothing was acknowledged (HTTP 503, retry)."""


@dataclass(frozen=True)
class WriteResult:
    primary: str
    backup: str  # "done" | "pending"
    size: int
    advice: str | None = None


class _Sink:
    """Streams chunks to one side (one WebHDFS CREATE/APPEND) on a thread of the gateway's sink
    pool (threads are reused: starting one per side and write cost more than a small write). A
    body that arrived whole before the sink started goes in one piece, with its Content-Length."""

    def __init__(
        self,
        side: Side[Any],
        write: Callable[[Iterator[bytes] | bytes], None],
        pool: ThreadPoolExecutor,
        whole: bytes | None = None,
    ) -> None:
        self.side = side
        self.error: BaseException | None = None
        self._queue: queue.Queue[bytes | None] | None = None
        self._write = write
        if whole is None:
            self._queue = queue.Queue(QUEUE_CHUNKS)
            self._future = pool.submit(self._run, iter(self._queue.get, None))  # None ends the stream
        else:
            self._future = pool.submit(self._run, whole)

    def _run(self, body: Iterator[bytes] | bytes) -> None:
        try:
            self._write(body)
        except BaseException as exc:
            self.error = exc

    def offer(self, chunk: bytes) -> bool:
        """Queue without blocking; False when the queue is full (call :meth:`feed`)."""
        if self.error is not None or self._queue is None:
            return True
        try:
            self._queue.put_nowait(chunk)
        except queue.Full:
            return False
        return True

    def feed(self, chunk: bytes | None) -> None:
        while self._queue is not None and self.error is None and not self._future.done():
            try:
                self._queue.put(chunk, timeout=0.2)
                return
            except queue.Full:
                continue

    def close(self) -> BaseException | None:
        self.feed(None)
        self._future.result()  # _run keeps its error
        return self.error


@dataclass
class Prepared:
    """A CREATE's NameNode halves, asked when the client was redirected to the data step, so the
    data step goes straight to the DataNodes (one round trip less on the write's path). Asking
    changes nothing on a cluster (a file appears with the DataNode's half); a client that never
    sends the data leaves nothing behind. Kept by the gateway process that redirected: a data
    step that reaches another process, or comes with other parameters, writes as usual."""

    path: str
    user: str
    overwrite: bool
    permission: str | None
    explicit_id: str | None
    mark: Mark
    created: float
    primary: Future[str | None] | None = None
    standby: Future[str | None] | None = None

    def fits(
        self, path: str, user: str, overwrite: bool, permission: str | None, explicit_id: str | None
    ) -> bool:
        return (path, user, overwrite, permission, explicit_id) == (
            self.path,
            self.user,
            self.overwrite,
            self.permission,
            self.explicit_id,
        )


def _location(asked: Future[str | None] | None) -> str | None:
    """The DataNode URL asked ahead, or None (not asked, or the NameNode refused: the write then
    asks again itself, and meets the refusal as it would have)."""
    if asked is None:
        return None
    try:
        return asked.result()
    except Exception:
        return None


class WriteSession:
    """A CREATE or APPEND in progress; :meth:`finish` publishes and says how it was backed up."""

    def __init__(
        self,
        ctx: PlanContext,
        pool: ThreadPoolExecutor,
        sink_pool: ThreadPoolExecutor,
        on_store_pending: Callable[[str], None],
        path: str,
        user: str,
        primary: Side[Hdfs],
        *,
        overwrite: bool,
        permission: str | None,
        append: bool,
        primary_up: bool,
        size: int | None = None,
        prepared: Prepared | None = None,
    ) -> None:
        self.ctx, self.pool, self.path, self.user = ctx, pool, path, user
        self.primary, self.standby = primary, ctx.standby
        self.overwrite, self.permission, self.append = overwrite, permission, append
        self._on_store_pending = on_store_pending
        self.size = 0
        self.expected_size = size
        self._sync = ctx.plan.mode == "sync"
        in_place = append or is_temporary(path)
        self.prepared = prepared
        self.mark = (
            prepared.mark
            if prepared is not None
            else Mark.new_compact("write", (path,), primary.name, user, with_temp=not in_place)
        )
        self.temp = self.mark.temp or path
        self._mark_done: Future[None] | None = None
        self._sink_pool = sink_pool
        self._primary_up = primary_up
        self.sinks: list[_Sink] = []
        self._blocked: list[_Sink] = []  # sinks whose queue was full at the last offer
        self.p_sink: _Sink | None = None
        self.s_sink: _Sink | None = None
        if primary_up:
            self._mark_done = pool.submit(ctx.journal(primary).put, self.mark, INFLIGHT)

    def start(self, whole: bytes | None = None) -> None:
        """Open the sides' writes: streamed (:meth:`offer`), or ``whole`` when the body is known
        already (one request per side with its length, no queue)."""
        if whole is not None:
            self.size = len(whole)
            self.expected_size = len(whole)
        if self._primary_up:
            self.p_sink = _Sink(self.primary, self._writer(self.primary, self.temp), self._sink_pool, whole)
            self.sinks.append(self.p_sink)
        # a target that cannot append (an object store) gets the whole file from replay instead
        if (self._sync or not self._primary_up) and (self.ctx.standby_appends or not self.append):
            target = self.standby.local(self.temp)
            self.s_sink = _Sink(self.standby, self._standby_writer(target), self._sink_pool, whole)
            self.sinks.append(self.s_sink)

    # the clients are built in the sink's thread: a side never reached yet (down since the gateway
    # started) fails its sink, which the write handles like any outage
    def _writer(self, side: Side[Hdfs], target: str) -> Callable[[Iterator[bytes] | bytes], None]:
        def write(chunks: Iterator[bytes] | bytes) -> None:
            client = side.as_user(self.user)
            location = _location(self.prepared.primary) if self.prepared else None
            client.write(
                target,
                chunks,
                overwrite=True,
                permission=self.permission,
                append=self.append,
                location=location,
            )

        return write

    def _standby_writer(self, target: str) -> Callable[[Iterator[bytes] | bytes], None]:
        def write(chunks: Iterator[bytes] | bytes) -> None:
            store = self.standby.store
            # the path's own older backup is protected here, not only by the inflight mark, which
            # another thread may still be writing while this one makes room
            space = self.ctx.space
            with space.writing(target), space.writing(self.standby.local(self.path)):
                # TargetFull (here or while metering): this write is pending
                if self.expected_size is not None:
                    space.make_room(self.expected_size)
                elif isinstance(chunks, bytes):
                    space.make_room(len(chunks))
                else:  # no length (a chunked upload): room is made block by block as bytes arrive
                    chunks = space.metered(chunks)
                if self.append:
                    store.write(target, chunks, append=True)
                else:
                    whole = chunks if isinstance(chunks, bytes) else None
                    stream: Iterable[bytes] = [chunks] if isinstance(chunks, bytes) else chunks
                    sealed, data = self.ctx.protection.seal(stream, self.path)
                    body: Iterator[bytes] | bytes = whole if whole is not None and not sealed else data
                    meta = {WRITTEN_MS: str(self.mark.written_at_ms), **sealed}
                    location = _location(self.prepared.standby) if self.prepared else None
                    if location and isinstance(store, ClusterTarget):
                        store.write_with_meta(
                            target, body, meta, permission=self.permission, location=location
                        )
                    else:
                        store.write_with_meta(target, body, meta, permission=self.permission)

        return write

    # -- the body ------------------------------------------------------------------------
    def offer(self, chunk: bytes) -> bool:
        self.size += len(chunk)
        pending = [s for s in self.sinks if not s.offer(chunk)]
        self._blocked = pending
        return not pending

    def feed_blocked(self, chunk: bytes) -> None:
        for sink in self._blocked:
            sink.feed(chunk)
        self._blocked = []

    def abort(self) -> None:
        """The client went away mid-body: nothing is published; temporary files are removed."""
        for sink in self.sinks:
            sink.close()
        self._cleanup(drop_mark=True)

    # -- publishing ----------------------------------------------------------------------
    def _cleanup(self, drop_mark: bool) -> None:
        def run() -> None:
            for side, target in ((self.primary, self.temp), (self.standby, self.standby.local(self.temp))):
                if target != (self.path if side is self.primary else side.local(self.path)):
                    try:
                        side.store.delete(target)
                    except Exception:
                        log.debug("could not remove %s on %s", target, side.name)
            if drop_mark and self._mark_done is not None:
                try:
                    self._mark_done.result()
                    self.ctx.journal(self.primary).delete(self.mark.id, INFLIGHT)
                except Exception:
                    log.debug("inflight mark %s left for replay", self.mark.id)

        self.pool.submit(run)

    def _publish(self, side: Side[Any], temp: str, final: str) -> None:
        if temp == final:
            return
        client = side.as_user(self.user) if side is self.primary else side.store
        try:
            if self.overwrite or side is self.standby:
                client.replace(temp, final)
            else:
                client.rename_new(temp, final)  # another CREATE without overwrite may have won
        except RemoteHdfsError as exc:
            if is_unreachable(exc):
                raise
            taken = exc.exception == "FileAlreadyExistsException"
            held = None if taken else client.status(final)
            if not taken and (held is None or not held.is_dir):
                raise
            kind = " as a directory" if held is not None else ""
            raise RemoteHdfsError(
                f"{self.path} already exists{kind}", exception="FileAlreadyExistsException"
            ) from exc

    def _publish_standby(self) -> None:
        """The standby's copy into place (its modification time is the write's timestamp); after an
        APPEND, both sides' lengths must agree, or the standby is behind and replay copies it whole."""
        if not self.append:
            self._publish(self.standby, self.standby.local(self.temp), self.standby.local(self.path))
            return
        primary, standby = (s.store.status(s.local(self.path)) for s in (self.primary, self.standby))
        if primary is None or standby is None or primary.length != standby.length:
            raise SideDown(f"{self.standby.name}: its copy of {self.path} differs in length after the append")

    def finish(self) -> WriteResult:
        p_err = self.p_sink.close() if self.p_sink else None
        s_err = self.s_sink.close() if self.s_sink else None
        advice = None
        if self.ctx.plan.mode == "sync" and self.size > self.ctx.plan.large_write_advice:
            advice = (
                f"a {self.size}-byte write in sync mode waits for two clusters: consider mode: async for "
                f"plan {self.ctx.plan.plan} (large_write_advice {self.ctx.plan.large_write_advice})"
            )
            log.warning("%s: %s", self.path, advice)
        if p_err is not None and not is_unreachable(p_err):
            # an APPEND the standby took but the primary refused left the standby ahead: the mark
            # stays, and replay copies the primary's file over the standby's
            diverged = self.append and self.s_sink is not None and s_err is None
            self._cleanup(drop_mark=not diverged)
            if diverged:
                self._move_mark_quietly()
            raise p_err
        if self.p_sink is not None and p_err is None:
            return self._finish_on_primary(s_err, advice)
        if p_err is not None:
            self.primary.failed(p_err)
        return self._finish_on_standby(s_err, p_err, advice)

    def _finish_on_primary(self, s_err: BaseException | None, advice: str | None) -> WriteResult:
        self._await_mark()
        standby_done: Future[None] | None = None
        marked: Future[None] | None = None
        standby_took = self.s_sink is not None and s_err is None
        # the standby's copy is published only once the primary's RENAME has landed: a CREATE
        # without overwrite may lose the race for its name there, and a directory renamed away
        # meanwhile takes the temporary file with it; either way the standby is left untouched
        after_primary = standby_took and not self.append
        if standby_took and not after_primary:
            standby_done = self.pool.submit(self._publish_standby)
        elif self.s_sink is None:
            # async: the mark becomes pending-backup while the data is renamed into place, a round
            # trip less on the write's path; replay leaves a pending-backup mark alone while its
            # temporary file still exists (the rename has not landed), so it never backs up the
            # path's older content in place of this write
            journal = self.ctx.journal(self.primary)
            marked = self.pool.submit(journal.move, self.mark, INFLIGHT, PENDING_BACKUP)
        try:
            self._publish(self.primary, self.temp, self.path)
        except Exception as exc:
            self._publish_failed(exc, standby_done, marked)
        if after_primary:
            standby_done = self.pool.submit(self._publish_standby)
        if marked is not None:
            try:
                marked.result()
            except Exception as exc:
                # the data is in place; the inflight mark, if the move did not land, is replayed
                if is_unreachable(exc):
                    self.primary.failed(exc)
                    raise Unavailable(f"{self.primary.name} did not take the mark: {exc}") from exc
                raise
            return WriteResult(self.primary.name, "pending", self.size, advice)
        if standby_done is not None:
            try:
                standby_done.result()
                self.standby.answered()
                # before the answer, so that a client's next change is never taken for a racing one
                self._drop_mark()
                return WriteResult(self.primary.name, "done", self.size, advice)
            except Exception as exc:
                s_err = exc
        if s_err is not None:
            self.standby.failed(s_err)
            self._cleanup(drop_mark=False)
        self.ctx.journal(self.primary).move(self.mark, INFLIGHT, PENDING_BACKUP)
        return WriteResult(self.primary.name, "pending", self.size, advice)

    def _await_mark(self) -> None:
        """The inflight mark is durable, or the write fails (its data is never published)."""
        assert self._mark_done is not None
        try:
            self._mark_done.result()
        except Exception as exc:
            self._cleanup(drop_mark=False)
            if is_unreachable(exc):
                self.primary.failed(exc)
                raise Unavailable(f"{self.primary.name} took the data but not its mark: {exc}") from exc
            raise

    def _publish_failed(
        self, exc: Exception, standby_done: Future[None] | None, marked: Future[None] | None
    ) -> NoReturn:
        """The primary's RENAME failed: nothing is acknowledged; the mark is left for replay
        (dropped when the primary refused and nothing was published anywhere)."""
        for settling in (standby_done, marked):
            if settling is not None:
                settling.exception()  # settle before the mark decides; replay reconciles either way
        # a refusal changed nothing when the temporary file is still there (a RENAME that landed
        # but answered an error, say after a retry on the other NameNode, keeps the mark)
        untouched = (
            standby_done is None
            and marked is None
            and not is_unreachable(exc)
            and self._still_there(self.primary, self.temp)
        )
        self._cleanup(drop_mark=untouched)
        if untouched:
            raise exc
        if not is_unreachable(exc):
            if marked is None or marked.exception() is not None:
                self._move_mark_quietly()
            raise exc
        self.primary.failed(exc)
        raise Unavailable(f"{self.primary.name} failed while publishing {self.path}: {exc}") from exc

    def _finish_on_standby(
        self, s_err: BaseException | None, p_err: BaseException | None, advice: str | None
    ) -> WriteResult:
        if self.s_sink is None or s_err is not None:
            self._cleanup(drop_mark=False)
            if s_err is not None:
                self.standby.failed(s_err)
            raise Unavailable(
                f"no side took {self.path}: {self.primary.name}: {p_err}; "
                f"{self.standby.name}: {s_err or 'not written (async mode)'}"
            )
        store = Mark(
            self.mark.id,
            "write",
            (self.path,),
            self.primary.name,
            self.user,
            self.mark.temp,
            self.size,
            self.mark.written_at_ms,
        )
        try:
            self.ctx.journal(self.standby).put(store, PENDING_STORE, self.primary.name)
            self._on_store_pending(self.primary.name)
            self._publish_standby()
        except Exception as exc:
            self._cleanup(drop_mark=False)
            if is_unreachable(exc):
                self.standby.failed(exc)
                raise Unavailable(
                    f"{self.primary.name} is down and {self.standby.name} failed: {exc}"
                ) from exc
            raise
        return WriteResult(self.primary.name, "pending", self.size, advice)

    def _still_there(self, side: Side[Any], path: str) -> bool:
        try:
            return side.store.status(path) is not None
        except Exception:
            return False

    def _drop_mark(self) -> None:
        """The write is on both sides: its inflight mark goes, unless another write or change
        of the path (or a delete or rename of a directory above it) is under way: their RENAMEs
        may have landed in different orders on the two sides, so a pending-backup mark stays and
        replay makes the standby what the primaries hold (:mod:`.settle`)."""
        try:
            settle.retire(self.ctx, self.primary, self.mark)
        except Exception:
            log.debug("inflight mark %s left for replay", self.mark.id)

    def _move_mark_quietly(self) -> None:
        try:
            if self._mark_done is not None:
                self._mark_done.result()
            self.ctx.journal(self.primary).move(self.mark, INFLIGHT, PENDING_BACKUP)
        except Exception:
            log.debug("inflight mark %s left for replay", self.mark.id)
