"""Pure planning: restore-point names, snapshot roots, full or incremental, diff -> copy plan, retention.

Nothing here talks to a cluster. The shell gathers facts (snapshottable directories, a snapshot
diff report, the published points) and these functions decide, each decision with its reason.

Snapshot diff path convention (HDFS ``getSnapshotDiffReport`` and WebHDFS ``GETSNAPSHOTDIFF``,
from the NameNode walking the *earlier* snapshot's tree):

* every path is relative to the snapshot root, ``""`` being the root itself;
* DELETE and MODIFY paths, and a RENAME's source, are the item's path in the *from* snapshot;
* a RENAME's target is the item's full path in the *to* snapshot;
* a CREATE path is the new item's name under its parent's path *as named in the from snapshot*:
  a file created in ``a/`` after ``a`` was renamed to ``b`` is reported as ``+ a/f``, and is
  ``b/f`` on the target (DistCp's ``-diff`` translates it the same way);
* a created directory is reported once, not its content; a deleted directory likewise;
* an item renamed out of the snapshot root is a DELETE, one renamed in is a CREATE;
* a CREATE at a rename's source path is a new item that took the old name, not the renamed one;
  a MODIFY there is the renamed item itself.

Plan paths are relative to the dataset's subtree root (``""`` is the dataset's top directory),
not to the snapshot root.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Literal, NamedTuple

from tandem.errors import CopyError, SnapshotRootError
from tandem.hdfs.types import DiffEntry, DiffType

# --------------------------------------------------------------------------------------------
# Names of restore points and their snapshots

POINT_FORMAT = "%Y%m%dT%H%M%SZ"
SNAPSHOT_PREFIX = "tandem-"
_SNAPSHOT_NAME = re.compile(r"tandem-([a-z][a-z0-9_]*)-(\d{8}T\d{6}Z)")


def _utc(instant: datetime) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{instant.isoformat()} has no time zone: restore points are named in UTC")
    return instant.astimezone(UTC)


def point_id(instant: datetime) -> str:
    """``2026-11-20T13:00:00Z`` -> ``20261120T130000Z``; refuses naive and sub-second instants.

    A fraction of a second would be dropped from the name, so two points could share it.
    """
    utc = _utc(instant)
    if utc.microsecond:
        raise ValueError(f"{utc.isoformat()} has a fraction of a second: points are named to the second")
    return utc.strftime(POINT_FORMAT)


def parse_point_id(text: str) -> datetime:
    """The inverse of :func:`point_id`; ValueError when ``text`` is not one."""
    return datetime.strptime(text, POINT_FORMAT).replace(tzinfo=UTC)


def snapshot_name(business: str, instant: datetime) -> str:
    """``tandem-<business>-<%Y%m%dT%H%M%SZ>``: the name of every snapshot of one restore point."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", business):
        raise ValueError(f"{business!r} is not a business name")
    return f"{SNAPSHOT_PREFIX}{business}-{point_id(instant)}"


def parse_snapshot_name(name: str) -> tuple[str, datetime] | None:
    """``(business, instant)`` of a Tandem snapshot name; None for any other snapshot."""
    match = _SNAPSHOT_NAME.fullmatch(name)
    if match is None:
        return None
    try:
        return match.group(1), parse_point_id(match.group(2))
    except ValueError:  # digits in the right places but no such date
        return None


# --------------------------------------------------------------------------------------------
# Paths


def _norm_abs(path: str) -> str:
    if not path.startswith("/"):
        raise ValueError(f"{path!r} is not an absolute HDFS path")
    return posixpath.normpath(re.sub("/+", "/", path))


def _norm_rel(path: str) -> str:
    """A snapshot-relative path: no leading ``/`` or ``./``, no trailing ``/``; root is ``""``."""
    cleaned = posixpath.normpath("/" + path.strip()).lstrip("/")
    return cleaned


def _is_under(path: str, ancestor: str) -> bool:
    """Strictly beneath ``ancestor``; relative paths, ``""`` is the root."""
    if ancestor == "":
        return path != ""
    return path.startswith(ancestor + "/")


def _at_or_under(path: str, ancestor: str) -> bool:
    return path == ancestor or _is_under(path, ancestor)


def _abs_under(path: str, ancestor: str) -> bool:
    return path != ancestor and path.startswith(ancestor.rstrip("/") + "/")


def _parts(path: str) -> tuple[str, ...]:
    return tuple(path.split("/")) if path else ()


def _join(base: str, rest: str) -> str:
    return f"{base}/{rest}" if base and rest else base or rest


# --------------------------------------------------------------------------------------------
# Snapshot roots


@dataclass(frozen=True)
class RootMember:
    """One protected path inside a snapshot root; ``subtree`` is relative to the root."""

    dataset: str
    path: str
    subtree: str
    reason: str


@dataclass(frozen=True)
class SnapshotRoot:
    """A directory snapshotted once per restore point for every member inside it.

    ``make_snapshottable``: it is not snapshottable yet and must be allowed first.
    """

    path: str
    make_snapshottable: bool
    members: tuple[RootMember, ...]

    @property
    def datasets(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m.dataset for m in self.members))

    @property
    def reason(self) -> str:
        return "; ".join(dict.fromkeys(m.reason for m in self.members))


@dataclass(frozen=True)
class RootDecision:
    """Where one path is snapshotted: ``root`` itself, with the path's ``subtree`` under it."""

    path: str
    root: str
    subtree: str
    make_snapshottable: bool
    reason: str


def decide_root(path: str, snapshottable: Iterable[str]) -> RootDecision:
    """The snapshot root of one protected path, given the snapshottable directories.

    The path itself or its nearest snapshottable ancestor when there is one (the diff is then
    filtered to the path's subtree); the path itself, to be made snapshottable, when nothing
    around it is. A snapshottable descendant (and no snapshottable ancestor) raises
    :class:`SnapshotRootError`: HDFS forbids nesting, so the path cannot be snapshotted at once.
    """
    target = _norm_abs(path)
    existing = {_norm_abs(p) for p in snapshottable}
    if target in existing:
        return RootDecision(target, target, "", False, f"{target} is already snapshottable")
    ancestors = [p for p in existing if _abs_under(target, p)]
    if ancestors:
        root = max(ancestors, key=len)
        subtree = target[len(root) :].lstrip("/")
        return RootDecision(
            target,
            root,
            subtree,
            False,
            f"{root} is already snapshottable: it is the root for {target}, whose changes are "
            f"filtered to {subtree}/",
        )
    below = sorted(p for p in existing if _abs_under(p, target))
    if below:
        raise SnapshotRootError(
            f"{target} cannot be snapshotted in one piece: {', '.join(below)} inside it "
            f"{'is' if len(below) == 1 else 'are'} already snapshottable and HDFS does not nest "
            f"snapshottable directories; protect {' and '.join(below)} instead, or delete "
            f"{'its' if len(below) == 1 else 'their'} snapshots and disallow them"
        )
    return RootDecision(
        target, target, "", True, f"nothing around {target} is snapshottable: it will be made snapshottable"
    )


def plan_snapshot_roots(
    datasets: Mapping[str, Sequence[str]], snapshottable: Iterable[str]
) -> dict[str, SnapshotRoot]:
    """Root path -> :class:`SnapshotRoot` for every path of every dataset, shared roots merged.

    ``datasets`` maps a dataset name (``/data/billing/details``, ``billing.customers``) to its
    paths (for tables: the location and each partition location outside it). Paths that would
    each be made snapshottable but lie one inside another share the outer one, since HDFS cannot
    nest them. Raises :class:`SnapshotRootError` naming every path that cannot be snapshotted.
    """
    existing = tuple(snapshottable)
    decisions: list[tuple[str, RootDecision]] = []
    problems: list[str] = []
    for dataset, paths in datasets.items():
        for path in paths:
            try:
                decisions.append((dataset, decide_root(path, existing)))
            except SnapshotRootError as exc:
                problems.append(f"{dataset}: {exc}")
    if problems:
        raise SnapshotRootError("; ".join(problems))
    new_roots = {d.root for _, d in decisions if d.make_snapshottable}
    outermost = {r for r in new_roots if not any(_abs_under(r, other) for other in new_roots)}
    members: dict[str, list[RootMember]] = {}
    for dataset, decision in decisions:
        root, reason = decision.root, decision.reason
        if decision.make_snapshottable and root not in outermost:
            root = next(r for r in outermost if _abs_under(decision.path, r))
            reason = f"{root} will be made snapshottable and holds {decision.path}, so they share it"
        subtree = decision.path[len(root) :].lstrip("/")
        member = RootMember(dataset, decision.path, subtree, reason)
        if member not in members.setdefault(root, []):
            members[root].append(member)
    return {
        root: SnapshotRoot(
            root, root in outermost, tuple(sorted(found, key=lambda m: (m.subtree, m.dataset)))
        )
        for root, found in sorted(members.items())
    }


# --------------------------------------------------------------------------------------------
# Full or incremental

Mode = Literal["full", "incremental"]


class ModeChoice(NamedTuple):
    mode: Mode
    reason: str


def choose_mode(last_point: datetime | None, force_full: bool, target_changed_since_last: bool) -> ModeChoice:
    """Full the first time, when asked, or when the target moved away from the last point.

    An incremental copy replays the source's diff on the target, which is only right when the
    target still equals the last point (the rule DistCp ``-diff`` checks too).
    """
    if force_full:
        return ModeChoice("full", "a full copy was requested")
    if last_point is None:
        return ModeChoice("full", "no restore point has been published yet: the first copy is full")
    since = point_id(last_point)
    if target_changed_since_last:
        return ModeChoice(
            "full",
            f"the target changed since restore point {since}, so the source's diff no longer applies: "
            "copying in full",
        )
    return ModeChoice("incremental", f"copying the changes since restore point {since}")


# --------------------------------------------------------------------------------------------
# Snapshot diff -> copy plan

DEFAULT_TMP_DIR = ".tandem-diff-tmp"


@dataclass(frozen=True)
class Rename:
    """``source`` moves to ``target``, through ``tmp`` so that chains, swaps and cycles work."""

    source: str
    target: str
    tmp: str
    reason: str


@dataclass(frozen=True)
class Delete:
    """Delete ``path`` (recursively), addressed where it is once renames sit in the tmp dir.

    ``original`` is its path in the from snapshot; ``path`` differs when a renamed directory
    carried it into the tmp dir.
    """

    path: str
    original: str
    reason: str


@dataclass(frozen=True)
class Copy:
    """Copy ``path`` from the to snapshot.

    ``recursive``: a created item, copied whole, except ``exclude`` (items renamed into it,
    already in place). The directory may already exist, made as the parent of such an item:
    the copier merges into it. Not recursive: a modified item; a file's data is copied, a
    directory only gets its attributes (the planner cannot always tell which it is, the copier
    can).
    """

    path: str
    recursive: bool
    reason: str
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class SyncMetadata:
    """A directory whose own attributes (owner, permission, times, ACL) may have changed."""

    path: str
    reason: str


@dataclass(frozen=True)
class Move:
    """One rename step. ``make_parents``: create the target's missing parent directories first."""

    source: str
    target: str
    make_parents: bool
    reason: str


Step = Move | Delete | Copy | SyncMetadata


@dataclass(frozen=True)
class CopyPlan:
    """What to do on the target to turn the from point into the to point, for one dataset.

    Apply :meth:`steps` in order. ``full_copy_reason`` set: the diff cannot be replayed for
    this dataset (its directory itself was moved, deleted or replaced) and the caller must copy
    it in full; the other fields are then empty.
    """

    renames: tuple[Rename, ...] = ()
    deletes: tuple[Delete, ...] = ()
    copies: tuple[Copy, ...] = ()
    metadata: tuple[SyncMetadata, ...] = ()
    tmp_dir: str = DEFAULT_TMP_DIR
    full_copy_reason: str | None = None

    @property
    def needs_tmp_dir(self) -> bool:
        return bool(self.renames)

    @property
    def is_empty(self) -> bool:
        return (
            not (self.renames or self.deletes or self.copies or self.metadata) and not self.full_copy_reason
        )

    def steps(self) -> tuple[Step, ...]:
        """The plan in the order it must run.

        Every rename source into the tmp dir, children first (a child's from-path is valid only
        while its parent is still in place); the deletes; every parked item to its target,
        parents first; the copies, parents first; last the directory attributes, children
        first, so that neither a copy nor a child's update meets a permission it would trip on.
        """
        into_tmp = sorted(self.renames, key=lambda r: _parts(r.source), reverse=True)
        out_of_tmp = sorted(self.renames, key=lambda r: _parts(r.target))
        return (
            *(Move(r.source, r.tmp, True, f"{r.reason}: parked in the tmp dir") for r in into_tmp),
            *self.deletes,
            *(Move(r.tmp, r.target, True, r.reason) for r in out_of_tmp),
            *sorted(self.copies, key=lambda c: _parts(c.path)),
            *sorted(self.metadata, key=lambda m: _parts(m.path), reverse=True),
        )

    def summary(self) -> str:
        if self.full_copy_reason:
            return f"full copy needed: {self.full_copy_reason}"
        recursive = sum(c.recursive for c in self.copies)
        return (
            f"{len(self.renames)} renames, {len(self.deletes)} deletes, {len(self.copies)} copies "
            f"({recursive} created, {len(self.copies) - recursive} modified), "
            f"{len(self.metadata)} directory attribute updates"
        )


class _Renames:
    """Every rename of a report, to map a from-snapshot path to where the item is afterwards."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._target = dict(pairs)

    def carrier(self, path: str, include_self: bool) -> str | None:
        """The deepest renamed source that is ``path``'s ancestor (or ``path``, if allowed)."""
        probe = path if include_self else posixpath.dirname(path)
        while probe:
            if probe in self._target:
                return probe
            probe = posixpath.dirname(probe)
        return None

    def final(self, path: str, include_self: bool) -> str:
        """Where an item at from-path ``path`` is in the to snapshot (targets are full paths)."""
        source = self.carrier(path, include_self)
        if source is None:
            return path
        return _join(self._target[source], path[len(source) :].lstrip("/"))


def _subtree_replaced(entries: Sequence[DiffEntry], subtree: str, renames: _Renames) -> str | None:
    """Why the dataset's own directory was moved, deleted or replaced, if it was.

    Entries are scanned in a fixed order, and the old directory leaving is named before a new
    one arriving, so the reason does not depend on the report's order.
    """

    def holds(path: str) -> bool:
        return path != "" and _at_or_under(subtree, path)

    left: list[str] = []
    arrived: list[str] = []
    for entry in sorted(entries, key=lambda e: (e.type.value, e.source, e.target or "")):
        if entry.type is DiffType.DELETE and holds(entry.source):
            left.append(f"{entry.source} was deleted, and with it the dataset directory {subtree}")
        elif entry.type is DiffType.RENAME and holds(entry.source):
            left.append(
                f"{entry.source} was renamed to {entry.target}, moving the dataset directory {subtree}"
            )
        elif entry.type is DiffType.RENAME and holds(entry.target or ""):
            arrived.append(
                f"{entry.source} was renamed to {entry.target}, replacing the dataset directory {subtree}"
            )
        elif entry.type is DiffType.CREATE and holds(renames.final(entry.source, include_self=False)):
            arrived.append(f"{entry.source} was created, replacing the dataset directory {subtree}")
    reasons = left + arrived
    return reasons[0] if reasons else None


@dataclass(frozen=True)
class _Facts:
    """What the report tells beyond each entry: known directories and deleted paths.

    A path with entries beneath it is a directory: from-paths by their sources, final paths by
    rename targets and translated creates. Deleted from-paths let stale entries beneath them
    be dropped (DistCp drops them too).
    """

    from_dirs: frozenset[str]
    to_dirs: frozenset[str]
    deleted: frozenset[str]

    @classmethod
    def of(cls, entries: Sequence[DiffEntry], renames: _Renames) -> _Facts:
        from_dirs, to_dirs = {""}, {""}
        for entry in entries:
            from_dirs.update(_ancestors(entry.source))
            if entry.type is DiffType.RENAME and entry.target is not None:
                to_dirs.update(_ancestors(entry.target))
            elif entry.type is DiffType.CREATE:
                to_dirs.update(_ancestors(renames.final(entry.source, include_self=False)))
        deleted = frozenset(e.source for e in entries if e.type is DiffType.DELETE)
        return cls(frozenset(from_dirs), frozenset(to_dirs), deleted)

    def is_dir(self, source: str, final: str) -> bool:
        return source in self.from_dirs or final in self.to_dirs

    def beneath_deleted(self, path: str, include_self: bool) -> bool:
        return (include_self and path in self.deleted) or any(a in self.deleted for a in _ancestors(path))


@dataclass
class _Draft:
    """The plan being built, relative to the subtree; final paths unless said otherwise."""

    subtree: str
    renames: list[tuple[str, str, str]] = field(default_factory=list)  # source, target, reason
    deletes: list[tuple[str, str]] = field(default_factory=list)  # from-path, reason
    creates: list[tuple[str, str]] = field(default_factory=list)  # final path, reason
    modifies: list[tuple[str, str, bool]] = field(default_factory=list)  # final, reason, is a dir

    def inside(self, path: str) -> bool:
        return _at_or_under(path, self.subtree)

    def rel(self, path: str) -> str:
        return path[len(self.subtree) :].lstrip("/") if self.subtree else path

    def add_rename(self, source: str, target: str) -> None:
        if self.inside(source) and self.inside(target):
            self.renames.append((self.rel(source), self.rel(target), f"renamed from {self.rel(source)}"))
        elif self.inside(source):
            self.deletes.append((self.rel(source), f"moved out of the dataset to {target}"))
        elif self.inside(target):
            self.creates.append((self.rel(target), f"moved into the dataset from {source}"))

    def add_create(self, source: str, final: str) -> None:
        if self.inside(final):
            moved = f" (reported as {source}, beneath a renamed directory)" if final != source else ""
            self.creates.append((self.rel(final), f"created{moved}"))

    def add_modify(self, source: str, final: str, is_dir: bool) -> None:
        # Anything whose from or final path is outside is covered by the rename that moved it
        # across the edge: a delete of its old ancestor or a whole copy of its new one.
        if self.inside(source) and self.inside(final):
            moved = f" (renamed from {self.rel(source)})" if final != source else ""
            self.modifies.append((self.rel(final), f"modified{moved}", is_dir))


def _classify(entries: Sequence[DiffEntry], subtree: str, renames: _Renames) -> _Draft:
    draft = _Draft(subtree)
    facts = _Facts.of(entries, renames)
    for entry in entries:
        if entry.type is DiffType.RENAME:
            draft.add_rename(entry.source, entry.target or "")
        elif entry.type is DiffType.DELETE:
            if draft.inside(entry.source):
                draft.deletes.append((draft.rel(entry.source), "deleted"))
        elif facts.beneath_deleted(entry.source, include_self=entry.type is DiffType.MODIFY):
            # A create may reuse a deleted name; anything else beneath a delete is stale.
            continue
        elif entry.type is DiffType.CREATE:
            draft.add_create(entry.source, renames.final(entry.source, include_self=False))
        else:
            final = renames.final(entry.source, include_self=True)
            draft.add_modify(entry.source, final, facts.is_dir(entry.source, final))
    return draft


def _ancestors(path: str) -> Iterator[str]:
    """Strict ancestors, nearest first, down to the top ``""``."""
    while path:
        path = posixpath.dirname(path)
        yield path


def _top_most(items: Iterable[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """Drop deletes beneath another delete (or repeated): deleting the top removes them."""
    kept: list[tuple[str, str, str]] = []
    kept_paths: set[str] = set()
    for item in sorted(items, key=lambda i: _parts(i[0])):  # ancestors come first
        path = item[0]
        if path not in kept_paths and not any(a in kept_paths for a in _ancestors(path)):
            kept_paths.add(path)
            kept.append(item)
    return kept


def _covered(path: str, creates: Mapping[str, object], rename_targets: Set[str]) -> bool:
    """Whether a whole copy of a created ancestor already brings ``path``.

    It does not when ``path`` is at or under an item renamed into that ancestor, which is
    excluded from the whole copy, being already in place: the nearest of the two decides.
    """
    if path in rename_targets:
        return False
    for ancestor in _ancestors(path):
        if ancestor in creates:
            return True
        if ancestor in rename_targets:
            return False
    return False


def plan_incremental(
    entries: Iterable[DiffEntry], subtree: str = "", tmp_dir: str = DEFAULT_TMP_DIR
) -> CopyPlan:
    """The operations that replay a snapshot diff on the target, for the dataset at ``subtree``.

    ``entries`` follow the convention in this module's docstring; ``subtree`` is the dataset's
    path relative to the snapshot root (``""``: the dataset is the root). Entries outside the
    subtree are dropped; a rename across its edge becomes a delete (moved out) or a create
    (moved in). Plan paths are relative to the subtree. ``tmp_dir`` is a directory, relative to
    the subtree, that must not exist on the target; renames park their items there.
    """
    normalised = [
        DiffEntry(e.type, _norm_rel(e.source), _norm_rel(e.target) if e.target is not None else None)
        for e in entries
    ]
    subtree = _norm_rel(subtree)
    tmp_dir = _norm_rel(tmp_dir)
    if not tmp_dir:
        raise CopyError("the tmp dir for renames must be a directory under the dataset, not its top")
    for entry in normalised:
        for path in (entry.source, entry.target):
            if path is not None and _at_or_under(path, _join(subtree, tmp_dir)):
                raise CopyError(
                    f"the diff touches {path}, inside the tmp dir {tmp_dir}: choose another tmp dir"
                )
    renames = _Renames((e.source, e.target) for e in normalised if e.type is DiffType.RENAME and e.target)
    if subtree:
        replaced = _subtree_replaced(normalised, subtree, renames)
        if replaced:
            return CopyPlan(tmp_dir=tmp_dir, full_copy_reason=replaced)
    draft = _classify(normalised, subtree, renames)
    return _assemble(draft, tmp_dir)


def _assemble(draft: _Draft, tmp_dir: str) -> CopyPlan:
    into_tmp_order = sorted(draft.renames, key=lambda r: _parts(r[0]), reverse=True)
    parked = {
        source: (target, f"{tmp_dir}/{index}.{posixpath.basename(source)}", reason)
        for index, (source, target, reason) in enumerate(into_tmp_order)
    }
    moved = _Renames((source, tmp) for source, (_, tmp, _) in parked.items())
    renames = tuple(
        Rename(source, target, tmp, reason)
        for source, (target, tmp, reason) in sorted(parked.items(), key=lambda kv: _parts(kv[1][0]))
    )
    # A delete runs after every renamed item is parked: one beneath a renamed directory is
    # addressed inside the tmp dir, and one at a rename's target removes the old item before
    # the renamed one arrives.
    located = []
    for path, reason in draft.deletes:
        carrier = moved.carrier(path, include_self=False)
        if carrier is None:
            located.append((path, path, reason))
        else:
            where = moved.final(path, include_self=False)
            located.append(
                (where, path, f"{reason} inside {carrier}, which is parked in the tmp dir to be renamed")
            )
    deletes = tuple(Delete(where, path, reason) for where, path, reason in _top_most(located))

    rename_targets = {r.target for r in renames}
    creates: dict[str, str] = {}
    for path, reason in sorted(draft.creates, key=lambda c: _parts(c[0])):  # ancestors first
        if path not in creates and not _covered(path, creates, rename_targets):
            creates[path] = reason
    excludes: dict[str, list[str]] = {}
    for target in sorted(rename_targets):
        for ancestor in _ancestors(target):
            if ancestor in rename_targets:
                break  # excluding that outer renamed item excludes this one too
            if ancestor in creates:
                excludes.setdefault(ancestor, []).append(target)
                break
    copies = [Copy(path, True, reason, tuple(excludes.get(path, ()))) for path, reason in creates.items()]
    metadata = []
    seen: set[str] = set()
    for path, reason, is_dir in draft.modifies:
        if path in seen or path in creates or _covered(path, creates, rename_targets):
            continue
        seen.add(path)
        if is_dir:
            metadata.append(SyncMetadata(path, f"directory {reason}"))
        else:
            copies.append(Copy(path, False, reason))
    return CopyPlan(
        renames=renames,
        deletes=deletes,
        copies=tuple(sorted(copies, key=lambda c: _parts(c.path))),
        metadata=tuple(sorted(metadata, key=lambda m: _parts(m.path))),
        tmp_dir=tmp_dir,
    )


# --------------------------------------------------------------------------------------------
# Retention


class RetentionChoice(NamedTuple):
    """Points to keep and to expire, newest first, and a reason for every point."""

    keep: tuple[datetime, ...]
    expire: tuple[datetime, ...]
    reasons: Mapping[datetime, str]


def _span(span: timedelta) -> str:
    """``7d``, ``8d2h``, ``1h30m``, ``45s``: whole seconds, largest units first."""
    seconds = int(span.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def choose_expired(
    points: Iterable[datetime], keep_last: int, max_age: timedelta | None, now: datetime
) -> RetentionChoice:
    """Which published points to delete.

    A point expires when it is beyond the ``keep_last`` newest or older than ``max_age``
    (None: no age limit); the newest point never expires, so one always remains.
    """
    if keep_last < 1:
        raise ValueError("keep_last must be at least 1: the newest restore point is always kept")
    now = _utc(now)
    ordered = sorted({_utc(p) for p in points}, reverse=True)
    keep: list[datetime] = []
    expire: list[datetime] = []
    reasons: dict[datetime, str] = {}
    limit = f"max_age {_span(max_age)}" if max_age is not None else "no age limit"
    for rank, point in enumerate(ordered):
        age = now - point
        if rank == 0:
            keep.append(point)
            reasons[point] = "the newest restore point is always kept"
        elif rank >= keep_last:
            expire.append(point)
            reasons[point] = f"beyond the {keep_last} newest restore points"
        elif max_age is not None and age > max_age:
            expire.append(point)
            reasons[point] = f"{_span(age)} old, older than {limit}"
        else:
            keep.append(point)
            reasons[point] = f"among the {keep_last} newest and within {limit}"
    return RetentionChoice(tuple(keep), tuple(expire), MappingProxyType(reasons))
