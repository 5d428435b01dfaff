"""How much a snapshot root grew since a snapshot, from the diff: which paths to size, on which side.

The space a tree takes now minus the space it took at a snapshot is the space, now, of the paths
the diff names in the later tree minus their space in the earlier tree: every other path is the
same file of the same size on both sides. Each side is counted at its top-most named paths, so
a renamed or deleted directory and the changes the diff reports beneath it are counted once (the
whole renamed directory on both sides, which also covers what was created, changed or deleted in
it). A directory MODIFY is a change of its metadata or children, which are named themselves: it
is not sized (it would cost its whole subtree). Pure: the shell sizes the paths.

Paths follow the diff's conventions (:mod:`tandem.plan.replay`): relative to the snapshot root,
``""`` the root; every path in a report is a path in the earlier tree, but for the target of a
RENAME, which is in the later tree. So a CREATE beneath a renamed directory, or a MODIFY of it or
beneath it, is covered by the rename's target; anywhere else its earlier path is its later path.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass

from tandem.hdfs.types import DiffEntry, DiffType
from tandem.plan.paths import _at_or_under, _is_under


@dataclass(frozen=True)
class GrowthPaths:
    """The paths whose space, summed, gives the growth: ``after`` now minus ``before`` then."""

    before: tuple[str, ...]  # earlier-tree paths, sized in the snapshot
    after: tuple[str, ...]  # later-tree paths, sized in the current tree (or the later snapshot)


def modified(entries: Sequence[DiffEntry]) -> list[str]:
    """The MODIFY paths: the shell says which are directories first (:func:`undecided`)."""
    return sorted({e.source for e in entries if e.type is DiffType.MODIFY})


def undecided(entries: Sequence[DiffEntry]) -> list[str]:
    """The MODIFY paths that may be files: the others have entries beneath them, so are
    directories. The shell looks at these in the earlier tree (a file's size then is needed
    anyway)."""
    named = [e.source for e in entries]
    return [m for m in modified(entries) if not any(_is_under(n, m) for n in named)]


def growth_paths(entries: Sequence[DiffEntry], modified_dirs: Set[str]) -> GrowthPaths:
    """The paths to size on each side; ``modified_dirs`` are the MODIFY paths that are directories."""
    renamed = [e.source for e in entries if e.type is DiffType.RENAME]
    before: list[str] = list(renamed)
    after: list[str] = [e.target for e in entries if e.type is DiffType.RENAME and e.target is not None]
    for entry in entries:
        if entry.type is DiffType.DELETE:
            before.append(entry.source)
        elif entry.type is DiffType.MODIFY and entry.source not in modified_dirs:
            before.append(entry.source)
            if not any(_at_or_under(entry.source, r) for r in renamed):  # else the rename target has it
                after.append(entry.source)
        elif entry.type is DiffType.CREATE and not any(_is_under(entry.source, r) for r in renamed):
            after.append(entry.source)  # (a new inode may take a renamed one's old name)
    return GrowthPaths(_top_most(before), _top_most(after))


def _beneath_any(path: str, ancestors: Iterable[str]) -> bool:
    return any(_at_or_under(path, a) for a in ancestors)


def _top_most(paths: Iterable[str]) -> tuple[str, ...]:
    """Each path once, and none beneath another one kept."""
    kept: list[str] = []
    for path in sorted(set(paths), key=lambda p: (p.count("/") + (1 if p else 0), p)):
        if not _beneath_any(path, kept):
            kept.append(path)
    return tuple(sorted(kept))
