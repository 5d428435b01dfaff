"""Room on the target: learn the plan's free space before backing up, and make room by evicting
the plan's own oldest backups when a write does not fit.

What may be evicted is narrow on purpose: files under the plan's root on the target only (never
Tandem's records under ``/.tandem``, never a snapshot, never another plan's or a business's
data), never a gateway temporary file (a write in progress), never a path a pending mark names
(the target may be the only holder of pending-store data; a pending-backup path is about to be
replaced). ``space.evict: older_than_max_age`` deletes only backups older than ``max_age``;
``oldest`` deletes oldest first until the write fits. When nothing evictable frees enough the
write fails with :class:`~tandem.gateway.targets.TargetFull`, which the write path treats as a
standby failure: the data stay pending on the primary, never lost.

Each eviction is logged (path, age, bytes) and each run leaves a record in the plan's journal on
the target (``evictions/<id>``), which the status counts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import posixpath
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tandem.gateway.marks import INFLIGHT, PENDING_BACKUP, PENDING_STORE, new_id
from tandem.gateway.plan import within
from tandem.gateway.sides import is_unreachable
from tandem.gateway.status import EVICTIONS
from tandem.gateway.targets import Space, TargetFull

if TYPE_CHECKING:
    from tandem.gateway.context import PlanContext

log = logging.getLogger(__name__)

REFRESH_S = 5.0  # how long a measured free space is trusted (writes since are subtracted)
FUTILE_PAUSE_S = 600.0  # after evictions that freed nothing, how long before trying again


@dataclass
class Evicted:
    files: int = 0
    bytes: int = 0
    paths: list[tuple[str, float, int]] = field(default_factory=list)  # path, age in s, bytes


class SpaceKeeper:
    """The target's room for one plan, measured now and then and kept up to date in between."""

    def __init__(self, ctx: PlanContext, clock: Callable[[], float] = time.time) -> None:
        self.ctx = ctx
        self.clock = clock
        self._lock = threading.Lock()
        self._space: Space | None = None
        self._measured = 0.0
        # until when evicting is not tried: files were deleted and freed nothing (snapshots still
        # hold the blocks); a run that found nothing to delete says nothing of later runs
        self._futile_until = 0.0
        self._writing: dict[str, int] = {}  # target paths being written by this process
        self.evicted = Evicted()

    @contextlib.contextmanager
    def writing(self, path: str) -> Iterator[None]:
        """``path`` (on the target) is being written: never an eviction candidate meanwhile."""
        with self._lock:
            self._writing[path] = self._writing.get(path, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._writing[path] -= 1
                if not self._writing[path]:
                    del self._writing[path]

    @property
    def root(self) -> str:
        return self.ctx.standby.local("/")

    def _measure(self) -> Space:
        self._space = self.ctx.standby.store.space(self.root)
        self._measured = time.monotonic()
        return self._space

    @property
    def keeps_room(self) -> bool:
        """False when the plan sets neither eviction nor a capacity: a full store then refuses
        the write itself, which stays pending."""
        return self.ctx.plan.space is not None or self.ctx.plan.target.capacity is not None

    def metered(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """A stream of unknown length: room is made for each chunk before it goes on, so a large
        upload without a Content-Length evicts (or stays pending) as one with a length does."""
        if not self.keeps_room:
            yield from chunks
            return
        for chunk in chunks:
            if chunk:
                self.make_room(len(chunk))
            yield chunk

    def make_room(self, size: int) -> None:
        """Return when ``size`` more bytes fit on the target (evicting if the plan allows);
        raise TargetFull when they cannot."""
        rules = self.ctx.plan.space
        if not self.keeps_room:
            return
        with self._lock:
            space = self._space
            try:
                if space is None or time.monotonic() - self._measured > REFRESH_S or not space.fits(size):
                    space = self._measure()
            except Exception as exc:
                if is_unreachable(exc):
                    raise
                log.warning("%s: free space unknown (%s); writing anyway", self.ctx.standby.name, exc)
                return
            futile = time.monotonic() < self._futile_until
            if not space.fits(size) and rules is not None and rules.evict is not None and not futile:
                before = space.free
                deleted = self._evict(size, space)
                space = self._measure()
                if deleted and before is not None and space.free is not None and space.free <= before:
                    self._futile_until = time.monotonic() + FUTILE_PAUSE_S
                    log.error(
                        "%s: evicting %d files freed no space for plan %s (do snapshots hold the blocks?); "
                        "no evictions for %.0f s",
                        self.ctx.standby.name,
                        deleted,
                        self.ctx.plan.plan,
                        FUTILE_PAUSE_S,
                    )
            if not space.fits(size):
                raise TargetFull(
                    f"{self.ctx.standby.name}: {size} bytes do not fit in {space.free} free ({space.source})"
                    + ("" if rules and rules.evict else "; the plan sets no space.evict")
                )
            if space.free is not None:
                self._space = Space(space.free - size * space.factor, space.used, space.source, space.factor)

    # -- eviction ----------------------------------------------------------------------------
    def _pending_paths(self) -> set[str]:
        """Paths some mark still names (application paths), on every side that answers."""
        names: set[str] = set()
        ctx = self.ctx
        queues: list[tuple[Any, str, str | None]] = [(ctx.standby, PENDING_STORE, p) for p in ctx.primaries]
        queues += [(s, q, None) for s in ctx.primaries.values() for q in (PENDING_BACKUP, INFLIGHT)]
        for side, state, owner in queues:
            journal = ctx.journal(side)
            try:
                ids = journal.ids(state, owner)
            except Exception as exc:  # a side that does not answer: its marks are unknown, keep all
                raise TargetFull(
                    f"{side.name} does not answer: its pending work is unknown, nothing evicted"
                ) from exc
            for mark_id in ids:
                mark = journal.read(mark_id, state, owner)
                if mark is not None:
                    names.update(mark.paths)
        return names

    def _candidates(self) -> list[tuple[int, str, int]]:
        """(write time ms, target path, bytes) of every backup file under the plan's root, oldest first."""
        from tandem.gateway.context import is_gateway_temp

        pending = self._pending_paths()
        root = self.root.rstrip("/")
        found = []
        for entry in self.ctx.standby.store.walk(root or "/"):
            parts = entry.relpath.split("/")
            if (
                entry.status.is_dir
                or ".snapshot" in parts
                or ".tandem" in parts  # journals: this plan's, or one of a plan whose base lies below
                or any(is_gateway_temp(p) for p in parts)
            ):
                continue
            path = posixpath.join(root or "/", entry.relpath)
            app_path = "/" + entry.relpath
            if path.startswith("/.tandem/") or any(within(app_path, p) for p in pending):
                continue
            found.append((entry.status.modification_time, path, entry.status.length))
        return sorted(found)

    def _evict(self, size: int, space: Space) -> int:
        """Delete backups, oldest first, as the plan's rules allow; returns how many."""
        rules = self.ctx.plan.space
        assert rules is not None
        now_ms = self.clock() * 1000
        max_age_ms = rules.max_age.total_seconds() * 1000 if rules.max_age else None
        need = size * space.factor - (space.free or 0)
        run = Evicted()
        store = self.ctx.standby.store
        for written_ms, path, length in self._candidates():
            age_ms = now_ms - written_ms
            old_enough = max_age_ms is not None and age_ms > max_age_ms
            if rules.evict == "older_than_max_age" and not old_enough:
                break  # oldest first: nothing further is old enough either
            if rules.evict == "oldest" and run.bytes * space.factor >= need and not old_enough:
                break
            held = store.status(path)
            if (
                path in self._writing
                or held is None
                or (held.modification_time, held.length)
                != (
                    written_ms,
                    length,
                )
            ):
                continue  # written again since it was listed: not the backup that was old
            if store.delete(path):
                run.files += 1
                run.bytes += length
                run.paths.append((path, age_ms / 1000, length))
                log.warning(
                    "evicted %s from %s: %d bytes, %.0f s old (plan %s needed %d bytes)",
                    path,
                    self.ctx.standby.name,
                    length,
                    age_ms / 1000,
                    self.ctx.plan.plan,
                    size,
                )
        if run.files:
            self._record(run)
            self.evicted.files += run.files
            self.evicted.bytes += run.bytes
            self.evicted.paths += run.paths[-100:]
        return run.files

    def _record(self, run: Evicted) -> None:
        doc = {
            "files": run.files,
            "bytes": run.bytes,
            "paths": [{"path": p, "age_s": round(a, 1), "bytes": b} for p, a, b in run.paths[:1000]],
        }
        try:
            self.ctx.standby.store.write(
                f"{self.ctx.plan.journal}/{EVICTIONS}/{new_id()}", json.dumps(doc).encode(), overwrite=False
            )
        except Exception:
            log.exception("eviction record not written (the evictions are logged above)")
