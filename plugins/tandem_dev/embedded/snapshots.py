"""Snapshot difference reports computed the way the HDFS NameNode computes them.

Input: two immutable trees of the same directory (an earlier and a later state, each a snapshot
or the current state), keyed by inode id, so identity is what tells a rename from a delete plus
a create. The walk mirrors ``DirectorySnapshottableFeature.computeDiffRecursively``:

* it walks the **earlier** tree from the scope directory, so every path in the report,
  including paths beneath a renamed directory, is the path in the earlier tree (HdfsSnapshots.md:
  "the changes on the files/directories under a renamed directory is reported using the original
  path before the rename"); only the ``targetPath`` of a RENAME is a later-tree path;
* a directory whose children changed (or whose own metadata changed) gets a MODIFY entry,
  followed by CREATE for each child that appeared and DELETE or RENAME for each that went;
* a created or deleted subtree is reported once, at its top;
* a child that left the directory but still exists (same inode) under the scope in the later tree
  is a RENAME (source in the earlier tree, target in the later one); one that moved outside the
  scope is a DELETE, one that came from outside is a CREATE;
* an overwrite by CREATE is a new inode under the old name: CREATE and DELETE of that name;
* a file is MODIFY when its length, content or metadata (owner, group, permission, ACL,
  replication, block size) differ; times alone do not count, as in HDFS.

When ``from`` is later than ``to`` HDFS still walks the earlier tree and then swaps CREATE with
DELETE and the two sides of each RENAME; so does :func:`diff_trees`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class TreeNode:
    """One inode of a tree: where it is, and signatures of what a diff compares."""

    parent: int
    name: str
    is_dir: bool
    meta: tuple[object, ...]
    content: tuple[object, ...]


@dataclass
class Tree:
    """The subtree under ``root`` in one state (a snapshot or the current tree)."""

    root: int
    nodes: dict[int, TreeNode] = field(default_factory=dict)
    children: dict[int, dict[str, int]] = field(default_factory=dict)
    _paths: dict[int, tuple[str, ...] | None] = field(default_factory=dict)

    def add(self, inode_id: int, node: TreeNode) -> None:
        self.nodes[inode_id] = node
        if inode_id != self.root:
            self.children.setdefault(node.parent, {})[node.name] = inode_id

    def path(self, inode_id: int) -> tuple[str, ...] | None:
        """Path relative to ``root``, or None when the inode is not under it."""
        if inode_id in self._paths:
            return self._paths[inode_id]
        chain: list[int] = []
        current = inode_id
        result: tuple[str, ...] | None = None
        while True:
            if current == self.root:
                result = ()
                break
            node = self.nodes.get(current)
            if node is None or current in chain:
                break
            chain.append(current)
            current = node.parent
        if result is not None:
            names = [self.nodes[i].name for i in reversed(chain)]
            result = tuple(names)
        self._paths[inode_id] = result
        return result


@dataclass(frozen=True, slots=True)
class DiffEntry:
    type: str
    source: str
    target: str | None = None

    def to_json(self) -> dict[str, str]:
        out = {"type": self.type, "sourcePath": self.source}
        if self.target is not None:
            out["targetPath"] = self.target
        return out


@dataclass(frozen=True, slots=True)
class ListingEntry:
    """One entry of ``GETSNAPSHOTDIFFLISTING`` (Hadoop's ``DiffReportListingEntry``)."""

    dir_id: int
    file_id: int
    source: str
    is_reference: bool
    target: str | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "dirId": self.dir_id,
            "fileId": self.file_id,
            "isReference": self.is_reference,
            "sourcePath": self.source,
        }
        if self.target is not None:
            out["targetPath"] = self.target
        return out


@dataclass(frozen=True)
class DiffListing:
    """The three lists of ``SnapshotDiffReportListing``, in the earlier-to-later direction."""

    modified: tuple[ListingEntry, ...]
    created: tuple[ListingEntry, ...]
    deleted: tuple[ListingEntry, ...]


@dataclass
class _DirChange:
    dir_id: int
    path: tuple[str, ...]
    created: list[tuple[str, int]]
    deleted: list[tuple[str, int]]


def _join(parts: tuple[str, ...]) -> str:
    return "/".join(parts)


def _sort_key(parts: tuple[str, ...]) -> tuple[bytes, ...]:
    return tuple(p.encode("utf-8") for p in parts)


class _Walk:
    def __init__(self, earlier: Tree, later: Tree) -> None:
        self.earlier = earlier
        self.later = later
        self.dirs: list[_DirChange] = []
        self.files: list[tuple[tuple[str, ...], int]] = []
        self.renames: dict[int, tuple[tuple[str, ...], tuple[str, ...]]] = {}

    def run(self) -> None:
        if self.earlier.root not in self.earlier.nodes or self.later.root not in self.later.nodes:
            return
        stack: list[tuple[int, tuple[str, ...]]] = [(self.earlier.root, ())]
        while stack:
            dir_id, path = stack.pop()
            stack.extend(self._visit_dir(dir_id, path))

    def _visit_dir(self, dir_id: int, path: tuple[str, ...]) -> list[tuple[int, tuple[str, ...]]]:
        before = self.earlier.children.get(dir_id, {})
        after = self.later.children.get(dir_id, {})
        created = sorted(((n, i) for n, i in after.items() if before.get(n) != i), key=_name_key)
        deleted = sorted(((n, i) for n, i in before.items() if after.get(n) != i), key=_name_key)
        if created or deleted or self.earlier.nodes[dir_id].meta != self.later.nodes[dir_id].meta:
            self.dirs.append(_DirChange(dir_id, path, created, deleted))
        todo: list[tuple[int, tuple[str, ...]]] = []
        for name, child in before.items():
            child_path = (*path, name)
            if after.get(name) != child:
                target = self.later.path(child) if child in self.later.nodes else None
                if target is None:
                    continue
                self.renames[child] = (child_path, target)
            self._visit_child(child, child_path, todo)
        return todo

    def _visit_child(
        self, child: int, path: tuple[str, ...], todo: list[tuple[int, tuple[str, ...]]]
    ) -> None:
        old, new = self.earlier.nodes[child], self.later.nodes[child]
        if old.is_dir:
            todo.append((child, path))
        elif old.meta != new.meta or old.content != new.content:
            self.files.append((path, child))


def _name_key(item: tuple[str, int]) -> bytes:
    return item[0].encode("utf-8")


def diff_trees(earlier: Tree, later: Tree, *, from_earlier: bool = True) -> list[DiffEntry]:
    """The diff list HDFS would report between two states of one directory.

    ``earlier``/``later`` are in time order; ``from_earlier`` is False when the caller asked for
    the diff from the later state to the earlier one (entries are then inverted, as HDFS does).
    """
    walk = _Walk(earlier, later)
    walk.run()
    items: list[tuple[tuple[bytes, ...], tuple[str, ...], _DirChange | None]] = [
        (_sort_key(c.path), c.path, c) for c in walk.dirs
    ]
    items += [(_sort_key(p), p, None) for p, _ in walk.files]
    items.sort(key=lambda item: item[0])
    report: list[DiffEntry] = []
    for _, path, change in items:
        report.append(DiffEntry("MODIFY", _join(path)))
        if change is not None:
            report += _children_entries(change, walk.renames, from_earlier)
    return report


def _children_entries(
    change: _DirChange, renames: dict[int, tuple[tuple[str, ...], tuple[str, ...]]], from_earlier: bool
) -> list[DiffEntry]:
    out: list[DiffEntry] = []
    for name, inode_id in change.created:
        if inode_id not in renames:
            out.append(DiffEntry("CREATE" if from_earlier else "DELETE", _join((*change.path, name))))
    for name, inode_id in change.deleted:
        rename = renames.get(inode_id)
        if rename is None:
            out.append(DiffEntry("DELETE" if from_earlier else "CREATE", _join((*change.path, name))))
        elif from_earlier:
            out.append(DiffEntry("RENAME", _join(rename[0]), _join(rename[1])))
        else:
            out.append(DiffEntry("RENAME", _join(rename[1]), _join(rename[0])))
    return out


def diff_listing(earlier: Tree, later: Tree) -> DiffListing:
    """The same walk as :func:`diff_trees`, shaped as ``SnapshotDiffReportListing`` lists.

    As in HDFS, a changed directory is listed in ``modified`` with ``isReference`` true, a created
    entry is a reference when it is the target of a rename, and a deleted entry that was renamed
    carries its ``targetPath``.
    """
    walk = _Walk(earlier, later)
    walk.run()
    modified: list[tuple[tuple[bytes, ...], ListingEntry]] = []
    created: list[ListingEntry] = []
    deleted: list[ListingEntry] = []
    for change in walk.dirs:
        modified.append(
            (_sort_key(change.path), ListingEntry(change.dir_id, change.dir_id, _join(change.path), True))
        )
        for name, inode_id in change.created:
            entry = ListingEntry(
                change.dir_id, inode_id, _join((*change.path, name)), inode_id in walk.renames
            )
            created.append(entry)
        for name, inode_id in change.deleted:
            rename = walk.renames.get(inode_id)
            target = _join(rename[1]) if rename else None
            deleted.append(
                ListingEntry(change.dir_id, inode_id, _join((*change.path, name)), bool(rename), target)
            )
    for file_path, inode_id in walk.files:
        modified.append((_sort_key(file_path), ListingEntry(inode_id, inode_id, _join(file_path), False)))
    modified.sort(key=lambda item: item[0])
    return DiffListing(tuple(e for _, e in modified), tuple(created), tuple(deleted))
