"""Retiring a change's inflight mark once both sides took it, unless a racing change may have
landed in another order on the two sides.

Every change (a write, a delete, a rename...) is applied to its primary, then to the standby,
its inflight mark living on a primary from before the first step until both are done. Two
changes touching the same paths can interleave so that the primary sees A then B and the standby
B then A (a delete landing between a write's two RENAMEs; a rename of a directory while a child's
backup is still pending). Each change, once it is on both sides, therefore looks at the marks
of every primary before dropping its own: when one touches its paths, a pending-backup mark
naming the paths of both stays, and replay, which makes the standby what the primaries hold now,
settles them. Of two racing changes the first to look finds the other's mark still there, so
at least one mark stays. A change looks, and drops its mark, before it is acknowledged: a
client's next change, which starts after that answer, is never taken for a racing one.

A directory rename also takes along the temporary files of writes still under way below it; they
are removed at their new place (their writes fail to publish: the client gets an error, as it
may retry).
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Iterable
from typing import Any

from tandem.gateway.context import PlanContext, temp_name
from tandem.gateway.marks import INFLIGHT, PENDING_BACKUP, TEMP_PREFIX, Mark, short_id
from tandem.gateway.plan import within
from tandem.gateway.sides import Side, is_unreachable
from tandem.hdfs.client import Hdfs

log = logging.getLogger(__name__)

# changes that remove or move what is below their paths: they race with changes of descendants
MOVING_OPS = frozenset({"delete", "rename"})
SETTLE_OP = "settle"  # a mark made of racing changes' paths: replay backs each path up as it is now


def touches(a: Mark, b: Mark) -> bool:
    """Whether the order of ``a`` and ``b`` matters: a path in common, or (when one removes or
    moves a tree) one's path below the other's."""
    if set(a.paths) & set(b.paths):
        return True
    if a.op not in MOVING_OPS and b.op not in MOVING_OPS:
        return False
    return any(within(p, q) or within(q, p) for p in a.paths for q in b.paths)


def marks_touching(ctx: PlanContext, holder: Side[Hdfs], mark: Mark, states: Iterable[str]) -> list[Mark]:
    """The marks (in ``states``) that touch ``mark``, itself excluded, on ``holder`` and every
    other primary that answers. One that does not is skipped: the marks it holds are replayed when
    it answers again, each making the standby what the primaries hold for its paths, ours too.
    ``holder`` not answering raises: the caller then leaves its own mark for replay. A mark file
    not written yet (listed between its CREATE and its data) is taken as touching, with no paths."""
    found = []
    for side in ctx.primaries.values():
        if side is not holder and not side.healthy():
            continue  # failed a moment ago: not waited for on every change
        journal = ctx.journal(side)
        try:
            listed = [(state, i) for state in states for i in journal.ids(state) if i != mark.id]
        except Exception as exc:
            if side is holder or not is_unreachable(exc):
                raise
            side.failed(exc)
            continue
        for state, mark_id in listed:
            try:
                other = journal.read(mark_id, state)
            except ValueError:
                other = Mark(mark_id, "unknown", (), side.name)
            if other is not None and (not other.paths or touches(mark, other)):
                found.append(other)
    return found


def retire(ctx: PlanContext, holder: Side[Hdfs], mark: Mark, states: Iterable[str] = (INFLIGHT,)) -> None:
    """``mark``'s change is on both sides: drop its inflight mark from ``holder``, or, when marks
    in ``states`` touch it, keep one pending-backup mark for all their paths."""
    journal = ctx.journal(holder)
    others = marks_touching(ctx, holder, mark, states)
    if mark.op == "rename" and others:
        _remove_moved_temps(ctx, mark, others)
    if not others:
        journal.delete(mark.id, INFLIGHT)
        return
    paths = _outermost([*mark.paths, *(p for m in others for p in m.paths)])
    if paths == mark.paths:
        journal.move(mark, INFLIGHT, PENDING_BACKUP)
    else:
        # made durable before the change's own mark goes: the paths are never unmarked
        journal.put(Mark.new_compact(SETTLE_OP, paths, holder.name, mark.user), PENDING_BACKUP)
        journal.delete(mark.id, INFLIGHT)
    log.info(
        "%s %s raced with %d other change(s) of its paths; replay settles %d path(s)",
        mark.op,
        ", ".join(mark.paths),
        len(others),
        len(paths),
    )


def _outermost(paths: Iterable[str]) -> tuple[str, ...]:
    """The paths without those below another of them, in order: replaying a path makes the
    standby's whole tree there what the primaries hold (or removes it), below it included."""
    unique = list(dict.fromkeys(paths))
    return tuple(p for p in unique if not any(q != p and within(p, q) for q in unique))


def _remove_moved_temps(ctx: PlanContext, rename: Mark, others: list[Mark]) -> None:
    """Temporary files a directory rename took along, on the primaries and the standby: those of
    writes below it (named after their marks) and of replay's copies (named after the marks being
    replayed). Their writes and copies fail to publish (their source is gone). Each directory
    they may now be in is listed once, and only the names the marks give are removed: a write
    that began under the new name meanwhile keeps its own."""
    src, dst = rename.paths[0], rename.paths[-1]

    def moved(path: str) -> str | None:
        if not within(path, src) or path == src:
            return None
        return posixpath.join(dst, posixpath.relpath(path, src))

    wanted: set[str] = set()  # temporary names, where the rename put them
    for other in others:
        if other.temp and other.temp not in other.paths and (new := moved(other.temp)):
            wanted.add(new)
        for path in other.paths:
            if new := moved(path):
                wanted.add(temp_name(new, short_id(other.id)))
    by_dir: dict[str, set[str]] = {}
    for path in wanted:
        by_dir.setdefault(posixpath.dirname(path), set()).add(posixpath.basename(path))
    sides: list[Side[Any]] = [*ctx.primaries.values(), ctx.standby]
    for side in sides:
        store = side.store
        for directory, names in by_dir.items():
            where = side.local(directory)
            try:
                held = {s.path_suffix for s in store.list(where)} & names
                for name in held:
                    store.delete(posixpath.join(where, name))
            except Exception:
                log.debug("could not look for moved temporary files in %s", where)
    _remove_moved_replay_temps(ctx, src, dst, others)


def _remove_moved_replay_temps(ctx: PlanContext, src: str, dst: str, others: list[Mark]) -> None:
    """Replay of a directory's mark copies every file below it onto the standby under a name
    made of the mark's id: for each such mark at or below the renamed directory, its new place
    on the standby is walked once and those names removed (a walk only for marks of directories
    being replayed, which a directory rename rarely meets)."""
    prefixes: dict[str, set[str]] = {}
    for other in others:
        if other.op == "write":
            continue  # a write's paths are files: their copies' names are looked for above
        for path in other.paths:
            if within(path, src):
                tree = posixpath.join(dst, posixpath.relpath(path, src)) if path != src else dst
                prefixes.setdefault(tree, set()).add(f"{TEMP_PREFIX}{short_id(other.id)}.")
    standby = ctx.standby
    for tree, starts in prefixes.items():
        where = standby.local(tree)
        try:
            held = standby.store.status(where)
            if held is None or not held.is_dir:
                continue
            for entry in list(standby.store.walk(where)):
                if posixpath.basename(entry.relpath).startswith(tuple(starts)):
                    standby.store.delete(posixpath.join(where, entry.relpath))
        except Exception:
            log.debug("could not look for moved replay copies in %s", where)
