"""The gateway's operations, as blocking calls: the HTTP layer (:mod:`.server`) is a thin
translation of WebHDFS requests onto these.

Namespace changes (MKDIRS, DELETE, RENAME, SETOWNER...) go to every primary that holds the
path and to the standby, each guarded like a write: a side that misses the change gets a
durable mark (pending-backup on a primary for the standby, pending-store on the standby for a
primary). The checks and reads are :mod:`.reads` (the base class :class:`GatewayReads`).
"""

from __future__ import annotations

import logging
import os
import posixpath
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from tandem.errors import RemoteHdfsError
from tandem.gateway import settle
from tandem.gateway.context import PlanContext, is_gateway_temp
from tandem.gateway.marks import INFLIGHT, PENDING_BACKUP, PENDING_STORE, Mark
from tandem.gateway.reads import STORE_CHECK_S, GatewayReads, denied, missing_file
from tandem.gateway.renames import check_rename_on_standby, check_tree_stays_routed, move_file
from tandem.gateway.replay import INFLIGHT_GRACE_S, drain_backup
from tandem.gateway.routing import is_temporary
from tandem.gateway.sides import Side, is_unreachable
from tandem.gateway.status import plan_status
from tandem.gateway.targets import Target
from tandem.gateway.targets.cluster import ClusterTarget
from tandem.gateway.writes import Prepared, Unavailable, WriteSession
from tandem.hdfs.client import Hdfs

log = logging.getLogger(__name__)

T = TypeVar("T")

SINK_THREADS = 256
# a CREATE's NameNode halves asked at its redirect wait this long for the data step, at most this many
PREPARED_TTL_S = 30.0
PREPARED_MAX = 4096


class Gateway(GatewayReads):
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
        self._prepared: OrderedDict[str, Prepared] = OrderedDict()
        self._prepared_lock = threading.Lock()
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

    # -- writes --------------------------------------------------------------------------
    def prepare_create(
        self, path: str, user: str, *, overwrite: bool, permission: str | None, explicit_id: str | None
    ) -> str | None:
        """At a CREATE's redirect: ask the sides' NameNodes for their DataNode URLs now, in the
        background, so the data step skips that round trip (:class:`~.writes.Prepared`). Returns
        the key the data step brings back, or None when there is nothing to ask ahead (a path
        written in place, one the user may not write, a side known to be down)."""
        if is_temporary(path):
            return None
        try:
            self.check_path(path, user, write=True)
        except RemoteHdfsError:
            return None  # the data step refuses it with the same error
        primary = self.ctx.primaries[self.ctx.routes.route(path, explicit_id)]
        if not primary.healthy() or primary.name in self._store_pending:
            return None
        mark = Mark.new_compact("write", (path,), primary.name, user, with_temp=True)
        assert mark.temp is not None
        temp = mark.temp
        prepared = Prepared(path, user, overwrite, permission, explicit_id, mark, time.monotonic())
        prepared.primary = self.pool.submit(
            lambda: primary.as_user(user).create_location(temp, overwrite=True, permission=permission)
        )
        standby = self.ctx.standby
        if self.plan.mode == "sync" and standby.healthy():

            def ask_standby() -> str | None:
                store = standby.store
                if not isinstance(store, ClusterTarget):
                    return None
                return store.create_location(standby.local(temp), overwrite=True)

            prepared.standby = self.pool.submit(ask_standby)
        key = secrets.token_urlsafe(12)
        now = prepared.created
        with self._prepared_lock:
            self._prepared[key] = prepared
            while self._prepared and (
                len(self._prepared) > PREPARED_MAX
                or now - next(iter(self._prepared.values())).created > PREPARED_TTL_S
            ):
                self._prepared.popitem(last=False)
        return key

    def _take_prepared(
        self,
        key: str | None,
        path: str,
        user: str,
        overwrite: bool,
        permission: str | None,
        explicit_id: str | None,
    ) -> Prepared | None:
        if not key:
            return None
        with self._prepared_lock:
            prepared = self._prepared.pop(key, None)
        if prepared is None or time.monotonic() - prepared.created > PREPARED_TTL_S:
            return None
        return prepared if prepared.fits(path, user, overwrite, permission, explicit_id) else None

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
        prepared_key: str | None = None,
    ) -> WriteSession:
        self.check_path(path, user, write=True)
        primary = self.ctx.primaries[self.ctx.routes.route(path, explicit_id)]
        prepared = (
            None
            if append
            else self._take_prepared(prepared_key, path, user, overwrite, permission, explicit_id)
        )
        usable = self._primary_usable(primary)
        if append and usable:
            # a file placed by an explicit id is appended where it is, whoever asks
            found = self.ctx.locate(path, explicit_id)
            if found is not None and found[0] is not primary:
                primary = found[0]
                usable = self._primary_usable(primary)
        if append and not usable:
            raise Unavailable(f"{primary.name}, which holds {path}, is down: APPEND waits for it")
        if usable and not overwrite and not append:
            # the name free on its primary, and nothing another primary holds in the way: one round
            silent = self.check_no_file_at_or_above(path, list(self.ctx.primaries.values()), new_file=True)
            if primary.name in silent:
                primary.failed(silent[primary.name])
                usable = False
        if not usable and not overwrite and not append:
            self._check_absent_while_down(primary, path)
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
            prepared=prepared if prepared is not None and prepared.mark.primary == primary.name else None,
        )

    def _check_absent_while_down(self, primary: Side[Hdfs], path: str) -> None:
        """A CREATE without overwrite while ``path``'s primary is down: refused when the standby
        holds the file; in async mode the standby may not hold it yet, so the write waits (503)."""
        standby = self.ctx.standby
        if standby.store.status(standby.local(path)) is not None:
            raise RemoteHdfsError(f"{path} already exists", exception="FileAlreadyExistsException")
        if self.plan.mode == "async":
            raise Unavailable(
                f"{primary.name}, which holds {path}, is down and the standby may not have its newest "
                "writes yet: a CREATE without overwrite waits for it; retry later"
            )

    def count(self, primary: str, backup: str | None) -> None:
        if backup is None:
            self.writes["refused"] += 1
            return
        self.writes[backup] += 1
        self.by_primary[primary] = self.by_primary.get(primary, 0) + 1

    def _namespace_change(
        self,
        op: str,
        paths: tuple[str, ...],
        user: str,
        holders: list[Side[Hdfs]],
        on_primary: Callable[[Side[Hdfs]], T],
        on_standby: Callable[[Side[Target]], Any],
    ) -> list[T]:
        """Apply a change to ``holders`` and the standby; marks for whoever missed it. Returns
        the answers of the primaries that took it."""
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
                # before the answer, so that a client's next change is never taken for a racing one
                self._retire(anchor, mark)
            else:
                self.ctx.journal(anchor).move(mark, INFLIGHT, PENDING_BACKUP)
        return answers

    def _retire(self, anchor: Side[Hdfs], mark: Mark) -> None:
        """A namespace change on both sides: its mark goes unless a write or change touching its
        paths is under way or still pending (the standby may have taken them in another order,
        or renamed a tree without a child it still lacks): see :mod:`.settle`."""
        try:
            # a pending backup below a tree moved or removed on both sides is what the standby lacks
            states = (INFLIGHT, PENDING_BACKUP) if mark.op in settle.MOVING_OPS else (INFLIGHT,)
            settle.retire(self.ctx, anchor, mark, states)
        except Exception:
            log.debug("inflight mark %s left for replay", mark.id, exc_info=True)

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
        self.check_no_file_at_or_above(path, list(self.ctx.primaries.values()))
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
            raise denied(f"{path} is a root of plan {self.plan.plan}: delete what is under it")
        if not recursive:
            self._clear_dead_temps(path, self._check_empty(path))
        answers = self._namespace_change(
            "delete",
            (path,),
            user,
            list(self.ctx.primaries.values()),
            lambda s: s.as_user(user).delete(path, recursive),
            lambda s: s.store.delete(s.local(path), recursive=True),
        )
        return any(answers)

    def _check_empty(self, path: str) -> dict[Side[Hdfs], list[str]]:
        """A DELETE that is not recursive refuses a directory not empty on any primary (each
        primary holds only its own files: one alone would delete its empty part). A primary
        that does not answer may hold some: the delete waits for it (503). Returns the gateway's
        temporary files each primary holds there."""
        sides = list(self.ctx.primaries.values())
        listed = self._fan_out(sides, lambda s: s.store.list(path))
        temps: dict[Side[Hdfs], list[str]] = {}
        for side, result in zip(sides, listed.values(), strict=True):
            if isinstance(result, BaseException) and is_unreachable(result):
                side.failed(result)
                raise Unavailable(f"{side.name} does not answer and may hold files under {path}: retry later")
            if isinstance(result, list) and any(not is_gateway_temp(s.path_suffix) for s in result):
                raise RemoteHdfsError(
                    f"`{path} is non empty': Directory is not empty",
                    exception="PathIsNotEmptyDirectoryException",
                )
            if isinstance(result, list) and result:
                temps[side] = [s.path_suffix for s in result]
        return temps

    def _clear_dead_temps(self, path: str, temps: dict[Side[Hdfs], list[str]]) -> None:
        """Before a non-recursive DELETE of ``path``, which listings show empty: temporary files
        of writes that died there (which listings never show) do not keep it; one of a write
        still under way does, as the file being written does in HDFS."""
        if not temps:
            return
        live = {
            posixpath.basename(m.temp)
            for side in self.ctx.primaries.values()
            for m in self.ctx.journal(side).in_flight()
            if m.temp and posixpath.dirname(m.temp) == path
        }
        if any(live.intersection(names) for names in temps.values()):
            raise RemoteHdfsError(
                f"`{path} is non empty': a write is under way in it",
                exception="PathIsNotEmptyDirectoryException",
            )
        for side, names in temps.items():
            for name in names:
                side.store.delete(posixpath.join(path, name))

    def rename(self, src: str, dst: str, user: str) -> bool:
        """RENAME as the Router does for a HASH mount whose subclusters are the primaries
        (:mod:`.renames`): a file moves whole to its new name's primary; a directory whose files
        would be stranded off their new names' primaries is refused, nothing changed."""
        self.check_path(src, user, write=True)
        self.check_path(dst, user, write=True)
        if src == dst:
            return self.ctx.locate(src) is not None  # HDFS: true, nothing moves
        routed = self.ctx.primaries[self.ctx.routes.route(src)]
        if not self._primary_usable(routed):
            check_rename_on_standby(self.ctx, routed, src, dst)
            # the source was written to the standby while its primary was down: rename it there
            return any(
                self._namespace_change(
                    "rename",
                    (src, dst),
                    user,
                    [routed],
                    lambda s: True,
                    lambda s: s.store.rename(s.local(src), s.local(dst)),
                )
            )
        found = self.ctx.locate(src)
        if found is None:
            return False
        holder, status = found
        if status.is_dir:
            return self._rename_dir(src, dst, user, holder)
        into = self.ctx.locate(dst)
        if into is not None and into[1].is_dir:
            dst = posixpath.join(dst, posixpath.basename(src))  # HDFS moves a file into a directory
            self.check_path(dst, user, write=True)
            into = self.ctx.locate(dst)
        if into is not None or not self._is_directory(posixpath.dirname(dst)):
            return False  # HDFS answers false, changing nothing, when the name is taken or has no parent
        target = self.ctx.primaries[self.ctx.routes.route(dst)]
        move = (
            (lambda s: move_file(s, target, src, dst, user))
            if target is not holder
            else (lambda s: s.as_user(user).rename(src, dst) is None)
        )
        return any(
            self._namespace_change(
                "rename",
                (src, dst),
                user,
                [holder],
                move,
                lambda s: s.store.rename(s.local(src), s.local(dst)),
            )
        )

    def _rename_dir(self, src: str, dst: str, user: str, holder: Side[Hdfs]) -> bool:
        """A directory renamed on every primary holding part of it, and on the standby, to the
        same name: HDFS moves it into ``dst`` when that is a directory, and whether it is must be
        decided once, in the merged namespace (a primary or the standby lacking ``dst`` would
        otherwise make ``src`` become ``dst`` there)."""
        into = self.ctx.locate(dst)
        if into is not None:
            if not into[1].is_dir:
                return False  # HDFS answers false: a directory is not renamed onto a file
            dst = posixpath.join(dst, posixpath.basename(src))
            self.check_path(dst, user, write=True)
            if self.ctx.locate(dst) is not None:
                return False  # the name inside is taken
        elif not self._is_directory(posixpath.dirname(dst)):
            return False  # as HDFS answers a destination whose parent does not exist
        holders = self._holders(src, holder)
        check_tree_stays_routed(self.ctx, holders, src, dst)
        parent = posixpath.dirname(dst)

        def on_primary(side: Side[Hdfs]) -> bool:
            client = side.as_user(user)
            client.mkdirs(parent)  # the new parent exists in the merged namespace, maybe not here
            return client.rename_new(src, dst) is None

        def on_standby(side: Side[Target]) -> None:
            # never into a directory the standby holds there (a stale one): replay settles it
            if side.store.status(side.local(dst)) is not None:
                raise RemoteHdfsError(
                    f"{dst} already exists on the standby", exception="FileAlreadyExistsException"
                )
            side.store.rename(side.local(src), side.local(dst))

        return all(self._namespace_change("rename", (src, dst), user, holders, on_primary, on_standby))

    def _is_directory(self, path: str) -> bool:
        """Whether ``path`` is a directory in the merged namespace (on any primary)."""
        found = self.ctx.locate(path)
        return found is not None and found[1].is_dir

    def _holders(self, path: str, holder: Side[Hdfs]) -> list[Side[Hdfs]]:
        """Every primary holding directory ``path``. A primary that does not answer may hold part
        of it, and a change of the whole tree (a rename) cannot be replayed there piecemeal: the
        change waits for it (503)."""
        others = [s for s in self.ctx.primaries.values() if s is not holder]
        held = [holder]
        found = self._fan_out(others, lambda s: s.store.status(path))
        for side, result in zip(others, found.values(), strict=True):
            if isinstance(result, BaseException):
                if not is_unreachable(result):
                    raise result
                side.failed(result)
                raise Unavailable(f"{side.name} does not answer and may hold part of {path}: retry later")
            if result is not None:
                held.append(side)
        return held

    def check_no_file_at_or_above(
        self, path: str, sides: list[Side[Hdfs]], *, new_file: bool = False
    ) -> dict[str, BaseException]:
        """What HDFS refuses in one namespace, checked on every primary of ``sides`` (each holds
        only its own part): a file at ``path`` (FileAlreadyExistsException) or above it
        (ParentNotDirectoryException); with ``new_file``, a directory at ``path`` too. Each primary
        is asked from ``path`` up to the first directory it holds; one that does not answer is
        skipped (its own NameNode refuses what concerns it when it answers again) and returned
        with its error."""

        def conflict(side: Side[Hdfs]) -> RemoteHdfsError | None:
            at = path
            while at != "/":
                found = side.store.status(at)
                if found is not None:
                    if at == path and (not found.is_dir or new_file):
                        return RemoteHdfsError(
                            f"{path} already exists as a {'directory' if found.is_dir else 'file'}",
                            exception="FileAlreadyExistsException",
                        )
                    if not found.is_dir:
                        return RemoteHdfsError(
                            f"Parent path is not a directory: {at}", exception="ParentNotDirectoryException"
                        )
                    return None
                at = posixpath.dirname(at)
            return None

        silent: dict[str, BaseException] = {}
        for name, result in self._fan_out(sides, conflict).items():
            if isinstance(result, RemoteHdfsError) and not is_unreachable(result):
                raise result
            if isinstance(result, BaseException):
                if not is_unreachable(result):
                    raise result
                silent[name] = result
        return silent

    def set_attributes(self, path: str, user: str, op: str, apply: Callable[[Any, str], None]) -> None:
        self.check_path(path, user, write=True)
        found = self.ctx.locate(path)
        if found is None:
            raise missing_file(path)
        holder, status = found
        holders = self._holders(path, holder) if status.is_dir else [holder]
        down = [s.name for s in holders if not self._primary_usable(s)]
        if down:
            # who may change an owner or a permission is the primary's to check: the change is
            # not taken for it to replay later (the standby would apply it as the gateway)
            raise Unavailable(f"{', '.join(down)}, holding {path}, does not answer: {op} waits until it does")
        self._namespace_change(
            op,
            (path,),
            user,
            holders,
            lambda s: apply(s.as_user(user), path),
            lambda s: apply(s.store, s.local(path)),
        )

    def set_replication(self, path: str, user: str, replication: int) -> bool:
        """SETREPLICATION on the primary holding the file. The standby's copy keeps the standby's
        own replication: how many copies a backup needs is the backup cluster's choice."""
        self.check_path(path, user, write=True)
        found = self.ctx.locate(path)
        if found is None or found[1].is_dir:
            return False
        return found[0].as_user(user).set_replication(path, replication)

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
            "process": os.getpid(),
            "writes": dict(self.writes),
            "writes_by_primary": dict(self.by_primary),
            "evicted": {"files": self.ctx.space.evicted.files, "bytes": self.ctx.space.evicted.bytes},
        }
