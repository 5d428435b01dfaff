"""Which inodes changed between two states of the namespace, so a snapshot diff costs the change.

HDFS keeps a diff list per directory and snapshot, so ``GETSNAPSHOTDIFF`` walks only what changed.
Comparing two whole states of the embedded namespace would cost the size of the tree. Instead,
SQLite triggers (in :data:`tandem_dev.embedded.store.SCHEMA`) append the id of every current-tree
inode that is inserted, updated or deleted to the ``journal`` table, and each snapshot records the
journal position it was taken at (``snapshot_marks``). The inodes changed between two snapshots
(or a snapshot and the current tree) are then the journal's ids between the two positions, and the
diff loads only them and their ancestors
(:func:`partial_tree`): every entry of a diff names a changed inode or a directory above one, so
the report is the same as from the whole trees (the walk compares the same nodes).

A snapshot taken before the journal existed has no mark: its diffs load the whole trees, as before.
The journal keeps only what the oldest marked snapshot may still need.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from tandem_dev.embedded.snapshots import Tree, TreeNode

LIVE = 0
# beyond this many changed inodes, loading the whole trees in one query is as cheap
MAX_PARTIAL = 20_000

TREE_COLUMNS = "id, parent, name, dir, owner, grp, perm, acl, repl, bsize, nsq, ssq, length, blob, xattrs"


def tree_node(row: tuple[object, ...]) -> TreeNode:
    """A row of TREE_COLUMNS as the diff sees it: where it is, and what a change compares."""
    is_dir = bool(row[3])
    # extended attributes are metadata too: a change is MODIFY, as in HDFS
    meta = (*row[4:8], row[10], row[11], row[14]) if is_dir else (*row[4:10], row[14])
    content = () if is_dir else (row[12], row[13])
    return TreeNode(int(row[1]), str(row[2]), is_dir, meta, content)  # type: ignore[call-overload]


def mark(db: sqlite3.Connection, sid: int) -> None:
    """Record the journal position of a snapshot just copied (inside its write transaction),
    then drop the entries no marked snapshot needs any more."""
    db.execute(
        "INSERT OR REPLACE INTO snapshot_marks VALUES "
        "(?, COALESCE((SELECT seq FROM sqlite_sequence WHERE name='journal'), 0))",
        (sid,),
    )
    db.execute("DELETE FROM journal WHERE seq <= (SELECT MIN(seq) FROM snapshot_marks)")


def forget(db: sqlite3.Connection, sid: int) -> None:
    """A deleted snapshot's mark goes with it."""
    db.execute("DELETE FROM snapshot_marks WHERE sid=?", (sid,))


def changed_between(db: sqlite3.Connection, earlier: int, later: int) -> set[int] | None:
    """Ids of the inodes changed from snapshot ``earlier`` to ``later`` (LIVE: the current tree);
    None when a side has no mark or too much changed (then the whole trees are compared)."""
    marks = dict(db.execute("SELECT sid, seq FROM snapshot_marks WHERE sid IN (?, ?)", (earlier, later)))
    if earlier not in marks or (later != LIVE and later not in marks):
        return None
    upper = marks[later] if later != LIVE else None
    query = "SELECT DISTINCT id FROM journal WHERE seq > ?" + ("" if upper is None else " AND seq <= ?")
    args = (marks[earlier],) if upper is None else (marks[earlier], upper)
    ids = {int(i) for (i,) in db.execute(query + f" LIMIT {MAX_PARTIAL + 1}", args)}
    return None if len(ids) > MAX_PARTIAL else ids


def partial_tree(
    db: sqlite3.Connection, sid: int, root: int, changed: set[int], locate: Callable[[int], int | None]
) -> Tree:
    """The part of ``sid``'s tree under ``root`` that a diff of ``changed`` needs: those inodes
    and every directory between them and ``root``; an inode not under ``root`` in this state
    (moved out, or never there) is left out, exactly as loading the whole subtree would.
    ``locate`` says under which sid this state keeps an inode's row (None: it has none)."""
    tree = Tree(root)
    rows: dict[int, tuple[object, ...] | None] = {}
    reachable: dict[int, bool] = {}

    def row(inode: int) -> tuple[object, ...] | None:
        if inode not in rows:
            where = locate(inode)
            rows[inode] = (
                None
                if where is None
                else db.execute(
                    f"SELECT {TREE_COLUMNS} FROM inodes WHERE sid=? AND id=?", (where, inode)
                ).fetchone()
            )
        return rows[inode]

    for start in (root, *changed):
        chain: list[int] = []
        current = start
        verdict = False
        while True:
            if current in reachable:
                verdict = reachable[current]
                break
            found = row(current)
            if found is None or current in chain:
                break
            chain.append(current)
            if current == root:
                verdict = True
                break
            current = int(found[1])  # type: ignore[call-overload]
        for inode in chain:
            reachable[inode] = verdict
    # children by name, as the whole-tree query yields them (its index order): the walk, and so
    # the order of GETSNAPSHOTDIFFLISTING's lists, is the same
    kept = sorted(
        ((inode, found) for inode, ok in reachable.items() if ok and (found := rows.get(inode)) is not None),
        key=lambda item: str(item[1][2]).encode("utf-8"),
    )
    for inode, found in kept:
        tree.add(inode, tree_node(found))
    return tree
