"""A snapshot diff -> the copy plan that replays it on the target, as DistCp ``-diff`` does. Pure.

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
from collections.abc import Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field

from tandem.errors import CopyError
from tandem.hdfs.types import DiffEntry, DiffType
from tandem.plan.paths import _at_or_under, _join, _norm_rel, _parts

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
