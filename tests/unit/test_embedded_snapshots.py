"""Snapshot diff reports of the embedded WebHDFS server, as the HDFS NameNode computes them.

Trees are written as ``{inode: (parent, name)}`` for directories plus ``{inode: (parent, name,
content)}`` for files; the root is inode 1. Expected reports follow HDFS (SnapshotDiffInfo and
DirectorySnapshottableFeature.computeDiffRecursively, HdfsSnapshots.md): paths are relative to the
root and are the paths of the earlier tree, a changed directory is a MODIFY followed by its
CREATE/DELETE/RENAME children, created and deleted subtrees are reported once at their top.
"""

from __future__ import annotations

import pytest

from tandem_dev.embedded.snapshots import (
    DiffEntry,
    DiffListing,
    ListingEntry,
    Tree,
    TreeNode,
    diff_listing,
    diff_trees,
)

ROOT = 1
DIR_META = ("hdfs", "supergroup", 0o755, None, -1, -1)


def tree(
    dirs: dict[int, tuple[int, str]], files: dict[int, tuple] | None = None, *, root_meta=DIR_META
) -> Tree:
    """A tree with the root (inode 1), directories ``id: (parent, name[, meta])`` and files
    ``id: (parent, name, content[, meta])``."""
    t = Tree(ROOT)
    t.add(ROOT, TreeNode(0, "", True, root_meta, ()))
    for inode, (parent, name, *meta) in dirs.items():
        t.add(inode, TreeNode(parent, name, True, tuple(meta) or DIR_META, ()))
    for inode, (parent, name, content, *meta) in (files or {}).items():
        t.add(inode, TreeNode(parent, name, False, tuple(meta) or ("hdfs", "supergroup", 0o644), (content,)))
    return t


def report(earlier: Tree, later: Tree, *, from_earlier: bool = True) -> list[tuple[str, ...]]:
    entries = diff_trees(earlier, later, from_earlier=from_earlier)
    return [(e.type, e.source) if e.target is None else (e.type, e.source, e.target) for e in entries]


# Each case: earlier tree, later tree, report from earlier to later.
CASES = [
    pytest.param(
        tree({2: (1, "d")}, {3: (2, "f", "v1")}),
        tree({2: (1, "d")}, {3: (2, "f", "v1")}),
        [],
        id="unchanged",
    ),
    pytest.param(
        tree({}, {2: (1, "f", "v1")}),
        tree({}, {2: (1, "f", "v2")}),
        [("MODIFY", "f")],
        id="file-content",
    ),
    pytest.param(
        tree({}, {2: (1, "f", "v1", "hdfs", "supergroup", 0o644)}),
        tree({}, {2: (1, "f", "v1", "hdfs", "supergroup", 0o600)}),
        [("MODIFY", "f")],
        id="file-metadata",
    ),
    pytest.param(
        tree({2: (1, "d")}),
        tree({2: (1, "d", "hdfs", "supergroup", 0o700, None, -1, -1)}),
        [("MODIFY", "d")],
        id="directory-metadata-only",
    ),
    pytest.param(
        tree({}, {2: (1, "a", "v1")}),
        tree({}, {2: (1, "a", "v1"), 3: (1, "b", "v1")}),
        [("MODIFY", ""), ("CREATE", "b")],
        id="file-created",
    ),
    pytest.param(
        tree({}, {2: (1, "a", "v1"), 3: (1, "b", "v1")}),
        tree({}, {2: (1, "a", "v1")}),
        [("MODIFY", ""), ("DELETE", "b")],
        id="file-deleted",
    ),
    pytest.param(
        tree({2: (1, "d")}),
        tree({2: (1, "d"), 3: (2, "new"), 4: (3, "sub")}, {5: (3, "f", "v1"), 6: (4, "g", "v1")}),
        [("MODIFY", "d"), ("CREATE", "d/new")],
        id="created-subtree-reported-once-at-its-top",
    ),
    pytest.param(
        tree({2: (1, "d"), 3: (2, "old"), 4: (3, "sub")}, {5: (3, "f", "v1"), 6: (4, "g", "v1")}),
        tree({2: (1, "d")}),
        [("MODIFY", "d"), ("DELETE", "d/old")],
        id="deleted-subtree-reported-once-at-its-top",
    ),
    pytest.param(
        tree({}, {2: (1, "a", "v1")}),
        tree({}, {2: (1, "b", "v1")}),
        [("MODIFY", ""), ("RENAME", "a", "b")],
        id="rename-in-place",
    ),
    pytest.param(
        tree({2: (1, "x"), 3: (1, "y")}, {4: (2, "f", "v1")}),
        tree({2: (1, "x"), 3: (1, "y")}, {4: (3, "f", "v1")}),
        [("MODIFY", "x"), ("RENAME", "x/f", "y/f"), ("MODIFY", "y")],
        id="rename-across-directories",
    ),
    pytest.param(
        tree({}, {2: (1, "a", "v1")}),
        tree({}, {2: (1, "b", "v2")}),
        [("MODIFY", ""), ("RENAME", "a", "b"), ("MODIFY", "a")],
        id="renamed-and-modified-file-modify-uses-earlier-path",
    ),
    pytest.param(
        tree({2: (1, "old")}, {3: (2, "f", "v1"), 4: (2, "gone", "v1")}),
        tree({2: (1, "new")}, {3: (2, "f", "v2"), 5: (2, "added", "v1")}),
        [
            ("MODIFY", ""),
            ("RENAME", "old", "new"),
            ("MODIFY", "old"),
            ("CREATE", "old/added"),
            ("DELETE", "old/gone"),
            ("MODIFY", "old/f"),
        ],
        id="changes-beneath-a-renamed-directory-use-earlier-paths",
    ),
    pytest.param(
        tree({2: (1, "a"), 3: (2, "b")}, {4: (3, "f", "v1")}),
        tree({2: (1, "A"), 3: (2, "B")}, {4: (3, "f", "v2")}),
        [
            ("MODIFY", ""),
            ("RENAME", "a", "A"),
            ("MODIFY", "a"),
            ("RENAME", "a/b", "A/B"),
            ("MODIFY", "a/b/f"),
        ],
        id="nested-renames-keep-earlier-source-and-later-target",
    ),
    pytest.param(
        tree({}, {2: (1, "f", "v1")}),
        tree({3: (1, "made")}, {2: (3, "f", "v1")}),
        [("MODIFY", ""), ("CREATE", "made"), ("RENAME", "f", "made/f")],
        id="rename-into-a-created-directory",
    ),
    pytest.param(
        tree({}, {2: (1, "a", "v1"), 3: (1, "b", "v2")}),
        tree({}, {2: (1, "b", "v1"), 3: (1, "a", "v2")}),
        [("MODIFY", ""), ("RENAME", "a", "b"), ("RENAME", "b", "a")],
        id="swapped-names",
    ),
    pytest.param(
        tree({}, {2: (1, "a", "v1")}),
        tree({}, {}),
        [("MODIFY", ""), ("DELETE", "a")],
        id="rename-out-of-the-root-is-delete",
    ),
    pytest.param(
        tree({}, {2: (1, "a", "v1")}),
        tree({}, {2: (99, "a", "v1")}),
        [("MODIFY", ""), ("DELETE", "a")],
        id="rename-under-a-parent-outside-the-root-is-delete",
    ),
    pytest.param(
        tree({}, {}),
        tree({}, {2: (1, "a", "v1")}),
        [("MODIFY", ""), ("CREATE", "a")],
        id="rename-into-the-root-is-create",
    ),
    pytest.param(
        tree({}, {2: (1, "a", "v1")}),
        tree({}, {3: (1, "a", "v2")}),
        [("MODIFY", ""), ("CREATE", "a"), ("DELETE", "a")],
        id="overwrite-is-create-and-delete",
    ),
    pytest.param(
        tree({}, {2: (1, "a", "v1")}),
        tree({}, {2: (1, "b", "v1"), 3: (1, "a", "v2")}),
        [("MODIFY", ""), ("CREATE", "a"), ("RENAME", "a", "b")],
        id="rename-then-recreate",
    ),
]


@pytest.mark.parametrize(("earlier", "later", "expected"), CASES)
def test_diff_reports_changes_as_hdfs_does(earlier, later, expected):
    assert report(earlier, later) == expected


def _invert(entry: tuple[str, ...]) -> tuple[str, ...]:
    kind = {"CREATE": "DELETE", "DELETE": "CREATE"}.get(entry[0], entry[0])
    return (kind, entry[2], entry[1]) if kind == "RENAME" else (kind, *entry[1:])


@pytest.mark.parametrize(("earlier", "later", "expected"), CASES)
def test_diff_from_the_later_state_inverts_the_report(earlier, later, expected):
    assert report(earlier, later, from_earlier=False) == [_invert(e) for e in expected]


def test_diff_entries_serialise_as_webhdfs_diff_list_items():
    assert DiffEntry("MODIFY", "").to_json() == {"type": "MODIFY", "sourcePath": ""}
    assert DiffEntry("RENAME", "a", "b").to_json() == {"type": "RENAME", "sourcePath": "a", "targetPath": "b"}


def test_a_missing_root_gives_an_empty_report():
    assert diff_trees(tree({}, {2: (1, "a", "v1")}), Tree(ROOT)) == []


def test_tree_paths_are_relative_to_the_root_or_none_outside_it():
    t = tree({2: (1, "d"), 3: (2, "e")}, {4: (3, "f", "v1"), 5: (77, "stray", "v1")})
    assert [t.path(i) for i in (1, 2, 4, 5, 123)] == [(), ("d",), ("d", "e", "f"), None, None]


@pytest.mark.xfail(
    strict=True,
    reason="divergence: HDFS sorts the report's MODIFY entries with SnapshotDiffInfo.INODE_COMPARATOR, "
    "which compares parents first, so shallower inodes come first (b before a/x); diff_trees sorts "
    "by full path (a/x before b)",
)
def test_report_lists_shallower_changes_first_like_hdfs():
    earlier = tree({2: (1, "a")}, {3: (2, "x", "v1"), 4: (1, "b", "v1")})
    later = tree({2: (1, "a")}, {3: (2, "x", "v2"), 4: (1, "b", "v2")})
    assert report(earlier, later) == [("MODIFY", "b"), ("MODIFY", "a/x")]


@pytest.mark.xfail(
    strict=True,
    reason="divergence: HDFS orders names with SignedBytes.lexicographicalComparator (UTF-8 bytes "
    ">= 0x80 are negative, so 'é' sorts before 'z'); the module compares unsigned bytes",
)
def test_children_are_ordered_by_signed_bytes_like_hdfs():
    earlier = tree({}, {})
    later = tree({}, {2: (1, "z", "v1"), 3: (1, "é", "v1")})
    assert report(earlier, later) == [("MODIFY", ""), ("CREATE", "é"), ("CREATE", "z")]


# ---------------------------------------------------------------------------------- listing


def test_listing_shapes_the_same_walk_as_snapshot_diff_report_listing():
    earlier = tree(
        {2: (1, "d"), 3: (1, "old")}, {4: (2, "f", "v1"), 5: (2, "gone", "v1"), 6: (1, "out", "v1")}
    )
    later = tree({2: (1, "d"), 3: (1, "new")}, {4: (2, "f", "v2"), 7: (2, "made", "v1")})
    assert diff_listing(earlier, later) == DiffListing(
        modified=(
            ListingEntry(1, 1, "", True),
            ListingEntry(2, 2, "d", True),
            ListingEntry(4, 4, "d/f", False),
        ),
        created=(ListingEntry(1, 3, "new", True), ListingEntry(2, 7, "d/made", False)),
        deleted=(
            ListingEntry(1, 3, "old", True, "new"),
            ListingEntry(1, 6, "out", False),
            ListingEntry(2, 5, "d/gone", False),
        ),
    )


def test_listing_of_identical_trees_is_empty():
    t = tree({2: (1, "d")}, {3: (2, "f", "v1")})
    assert diff_listing(t, tree({2: (1, "d")}, {3: (2, "f", "v1")})) == DiffListing((), (), ())


def test_listing_entries_serialise_as_webhdfs_listing_items():
    assert ListingEntry(1, 3, "old", True, "new").to_json() == {
        "dirId": 1,
        "fileId": 3,
        "isReference": True,
        "sourcePath": "old",
        "targetPath": "new",
    }
    assert "targetPath" not in ListingEntry(2, 5, "d/gone", False).to_json()


@pytest.mark.xfail(
    strict=True,
    reason="divergence: HDFS fills the created/deleted lists while walking directories in name order "
    "(pre-order of DirectorySnapshottableFeature.computeDiffRecursively); diff_listing walks with a "
    "stack and appends them in reverse insertion order (b/... before a/...)",
)
def test_listing_created_entries_follow_the_directory_walk_order_like_hdfs():
    earlier = tree({2: (1, "a"), 3: (1, "b")})
    later = tree({2: (1, "a"), 3: (1, "b")}, {4: (2, "x", "v1"), 5: (3, "y", "v1")})
    assert [e.source for e in diff_listing(earlier, later).created] == ["a/x", "b/y"]
