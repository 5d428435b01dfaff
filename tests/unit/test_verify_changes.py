"""What publish reads from two snapshot diffs (tandem.verify): which records an incremental point
carries over unchanged, which paths it looks up, and when it must compare a dataset whole."""

from __future__ import annotations

from tandem.hdfs.types import DiffEntry, DiffType, SnapshotDiffReport
from tandem.verify import _Changes, _replaced_above, _unchanged

C, M, D, R = DiffType.CREATE, DiffType.MODIFY, DiffType.DELETE, DiffType.RENAME


def diff(*entries: tuple[DiffType, str] | tuple[DiffType, str, str]) -> SnapshotDiffReport:
    return SnapshotDiffReport("/r", "base", "new", tuple(DiffEntry(*e) for e in entries))


def rows(*paths: str) -> dict[str, list[object]]:
    return {p: [1, 2, "MD5:x"] for p in paths}


def test_a_rewritten_file_drops_its_own_record_only():
    before = rows("a/one", "a/two", "a/three", "b/four")
    source = diff((M, ""), (M, "a"), (D, "a/two"), (C, "a/two"))
    changes = _Changes.of([source, diff()], "")
    assert sorted(_unchanged(before, "", changes.changed, changes.gone)) == ["a/one", "a/three", "b/four"]
    # "a" is a directory on both sides (modified with changes below, replaced on neither)
    assert changes.changed - changes.directories == {"a/two"}
    assert changes.created == {"a/two"}


def test_everything_below_a_deleted_or_renamed_away_directory_goes():
    before = rows("a/one", "a/sub/two", "ab/three", "b/four", "c")
    source = diff((M, ""), (D, "a"), (R, "b", "moved"))
    changes = _Changes.of([source, diff()], "")
    assert sorted(_unchanged(before, "", changes.changed, changes.gone)) == ["ab/three", "c"]
    assert changes.created == {"moved"}
    assert changes.directories == set()


def test_a_directory_is_looked_up_when_either_side_replaced_it():
    source = diff((M, "a"), (C, "a/new"))
    target = diff((D, "a"), (C, "a"))  # the target holds something else at "a" now
    changes = _Changes.of([source, target], "")
    assert "a" in changes.changed - changes.directories


def test_a_modified_path_without_changes_below_it_is_looked_up():
    # a file's content or attributes: MODIFY alone, nothing below it
    changes = _Changes.of([diff((M, "a"), (M, "a/file")), diff()], "")
    assert changes.directories == {"a"}
    assert "a/file" in changes.changed - changes.directories


def test_a_dataset_below_its_root_keeps_only_its_own_records():
    before = {**rows("data/x", "data/y"), **rows("other/z")}
    changes = _Changes.of([diff((M, "data"), (D, "data/x"), (C, "other/new")), diff()], "data")
    assert changes.changed == {"data", "data/x"}
    assert _unchanged(before, "data", changes.changed, changes.gone) == rows("data/y")


def test_a_directory_replaced_above_the_dataset_means_a_whole_comparison():
    assert _replaced_above([diff((M, ""), (R, "a", "a-old"), (C, "a")), diff()], "a/d")
    assert _replaced_above([diff(), diff((D, "a"))], "a/d")
    # changes at or below the dataset, or a modified ancestor, are in the diff itself
    assert not _replaced_above([diff((M, "a"), (M, "a/d"), (D, "a/d")), diff((C, "a/d/x"))], "a/d")
    assert not _replaced_above([diff((R, "a", "b"))], "")
    assert not _replaced_above([diff((C, "ab"))], "a/d")
