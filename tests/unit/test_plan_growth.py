"""Which paths size a snapshot root's growth since a snapshot (tandem.plan.growth). Pure."""

from __future__ import annotations

from tandem.hdfs.types import DiffEntry, DiffType
from tandem.plan.growth import GrowthPaths, growth_paths, undecided

C, M, D, R = DiffType.CREATE, DiffType.MODIFY, DiffType.DELETE, DiffType.RENAME


def test_an_overwritten_file_is_sized_on_both_sides_and_its_directory_not_at_all() -> None:
    entries = [DiffEntry(M, ""), DiffEntry(M, "d"), DiffEntry(C, "d/f"), DiffEntry(D, "d/f")]
    assert undecided(entries) == []  # "" and "d" have entries beneath: directories
    assert growth_paths(entries, {"", "d"}) == GrowthPaths(("d/f",), ("d/f",))


def test_a_modified_file_is_undecided_until_the_shell_looks() -> None:
    entries = [DiffEntry(M, ""), DiffEntry(M, "f"), DiffEntry(M, "meta-only-dir")]
    assert undecided(entries) == ["f", "meta-only-dir"]
    assert growth_paths(entries, {"", "meta-only-dir"}) == GrowthPaths(("f",), ("f",))


def test_a_renamed_directory_covers_what_changed_beneath_it() -> None:
    entries = [
        DiffEntry(M, ""),
        DiffEntry(R, "old", "new"),
        DiffEntry(M, "old"),
        DiffEntry(C, "old/made"),
        DiffEntry(D, "old/gone"),
        DiffEntry(M, "old/changed"),
        DiffEntry(R, "old/moved", "elsewhere/moved"),
    ]
    paths = growth_paths(entries, {"", "old"})
    assert paths == GrowthPaths(("old",), ("elsewhere/moved", "new"))


def test_a_new_inode_under_a_renamed_ones_old_name_is_counted() -> None:
    entries = [DiffEntry(M, ""), DiffEntry(R, "a", "b"), DiffEntry(C, "a")]
    assert growth_paths(entries, {""}) == GrowthPaths(("a",), ("a", "b"))


def test_what_moved_into_a_created_directory_is_counted_once() -> None:
    entries = [DiffEntry(M, ""), DiffEntry(C, "new"), DiffEntry(R, "f", "new/f"), DiffEntry(D, "tree")]
    assert growth_paths(entries, {""}) == GrowthPaths(("f", "tree"), ("new",))


def test_no_change_sizes_nothing() -> None:
    assert growth_paths([], set()) == GrowthPaths((), ())
