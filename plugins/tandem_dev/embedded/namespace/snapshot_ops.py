"""Snapshots (HDFS's ``FSDirSnapshotOp`` and ``SnapshotManager``): copy-on-write, as in HDFS. Taking
one saves nothing but its root; the first change to a current inode afterwards saves the inode as
it was under the newest snapshot's id (triggers in :mod:`tandem_dev.embedded.store`), and a
snapshot reads each inode from the row saved under the nearest snapshot at or after it, or else
from the current tree (:meth:`FsDirectory._saved_sid`). File bytes are shared. The tree diff
itself is :mod:`tandem_dev.embedded.snapshots`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from tandem_dev.embedded import journal
from tandem_dev.embedded.hdfs_exceptions import (
    HadoopIllegalArgument,
    InvalidPath,
    PathIsNotDirectory,
    SnapshotError,
)
from tandem_dev.embedded.namespace.directory import (
    COLS,
    DOT_SNAPSHOT,
    LIVE,
    ROOT_ID,
    SNAPSHOT_QUOTA,
    FsDirectory,
    Inode,
    Resolved,
    now_ms,
    saved_children_of_sub,
)
from tandem_dev.embedded.namespace.values import DiffReport, Parts, SnapshotInfo, SnapshottableInfo
from tandem_dev.embedded.snapshots import DiffListing, Tree, diff_listing, diff_trees


class SnapshotOps(FsDirectory):
    """ALLOWSNAPSHOT to GETSNAPSHOTDIFF: making, naming, listing and comparing snapshots."""

    def _snapshottable_dir(self, parts: Parts) -> tuple[Resolved, Inode]:
        resolved = self._resolve_live(parts)
        node = self._existing(resolved, "Directory does not exist: {path}")
        if not node.is_dir:
            raise PathIsNotDirectory(f"`{resolved.path}': Is not a directory")
        if node.id not in self._snapshottable:
            raise SnapshotError(f"Directory is not a snapshottable directory: {resolved.path}")
        return resolved, node

    def allow_snapshot(self, parts: Parts) -> None:
        """ALLOWSNAPSHOT: idempotent; refused when an ancestor or descendant is snapshottable."""
        with self._write():
            resolved = self._resolve_live(parts)
            node = self._existing(resolved, "Directory does not exist: {path}")
            if not node.is_dir:
                raise PathIsNotDirectory(f"`{resolved.path}': Is not a directory")
            if node.id in self._snapshottable:
                return
            for ancestor in resolved.ancestors:
                if ancestor.id in self._snapshottable:
                    raise SnapshotError(
                        f"Nested snapshottable directories not allowed: path={resolved.path}, the ancestor "
                        f"{self._live_path(ancestor.id)} is already a snapshottable directory."
                    )
            inside = set(self._subtree_ids(node.id)) & self._snapshottable
            if inside:
                raise SnapshotError(
                    f"Nested snapshottable directories not allowed: path={resolved.path}, the subdirectory "
                    f"{self._live_path(min(inside))} is already a snapshottable directory."
                )
            self._db.execute("INSERT INTO snapshottable VALUES (?)", (node.id,))
            self._snapshottable.add(node.id)

    def disallow_snapshot(self, parts: Parts) -> None:
        """DISALLOWSNAPSHOT: idempotent; refused while the directory has snapshots."""
        with self._write():
            resolved = self._resolve_live(parts)
            node = self._existing(resolved, "Directory does not exist: {path}")
            if not node.is_dir:
                # SnapshotManager.resetSnapshottable: INodeDirectory.valueOf refuses a file
                raise PathIsNotDirectory(f"`{resolved.path}': Is not a directory")
            if node.id not in self._snapshottable:
                return
            if self._snapshot_count(node.id):
                raise SnapshotError(
                    f"The directory {resolved.path} has snapshot(s). Please redo the operation after "
                    "removing "
                    "all the snapshots."
                )
            self._db.execute("DELETE FROM snapshottable WHERE id=?", (node.id,))
            self._snapshottable.discard(node.id)

    @staticmethod
    def default_snapshot_name(when_ms: int) -> str:
        """HDFS's default name, ``'s'yyyyMMdd-HHmmss.SSS`` in the server's local time."""
        moment = datetime.fromtimestamp(when_ms / 1000)
        return moment.strftime("s%Y%m%d-%H%M%S.") + f"{when_ms % 1000:03d}"

    @staticmethod
    def _check_snapshot_name(name: str) -> None:
        if "/" in name:
            raise HadoopIllegalArgument('Snapshot name cannot contain "/"')
        if name == DOT_SNAPSHOT:
            raise HadoopIllegalArgument(f'"{DOT_SNAPSHOT}" is a reserved name.')
        if not name or name in (".", "..") or "\x00" in name:
            raise InvalidPath(f"Invalid snapshot name: {name!r}")

    def create_snapshot(self, parts: Parts, name: str | None = None) -> str:
        """CREATESNAPSHOT: returns ``<dir>/.snapshot/<name>``. Atomic; costs the same whatever the
        size of the tree (copy-on-write, as in HDFS). Not idempotent: a retry finds the name taken."""
        with self._write():
            resolved, node = self._snapshottable_dir(parts)
            now = now_ms()
            name = name or self.default_snapshot_name(now)
            self._check_snapshot_name(name)
            if self._snapshot(node.id, name) is not None:
                raise SnapshotError(
                    f'Failed to add snapshot: there is already a snapshot with the same name "{name}".'
                )
            count = self._snapshot_count(node.id)
            if count >= SNAPSHOT_QUOTA:
                raise SnapshotError(
                    f"Failed to add snapshot: there are already {count} snapshot(s) and the snapshot "
                    "quota is "
                    f"{SNAPSHOT_QUOTA}"
                )
            self._last_snapshot += 1
            sid = self._last_snapshot
            self._db.execute("UPDATE meta SET value=? WHERE key='last_snapshot_id'", (sid,))
            # Copy-on-write: only the root is saved now, with the creation time as its modification
            # time (what the snapshot shows); any other inode is saved by its first change from now
            # on (the triggers in tandem_dev.embedded.store), so the cost does not grow with the tree.
            self._db.execute(
                f"INSERT INTO inodes (sid, {COLS}, born) "
                f"SELECT ?, {COLS}, born FROM inodes WHERE sid=0 AND id=?",
                (sid, node.id),
            )
            self._db.execute("UPDATE inodes SET mtime=? WHERE sid=? AND id=?", (now, sid, node.id))
            self._touch(node.id, now)
            self._db.execute("INSERT INTO snapshots VALUES (?,?,?,?)", (sid, node.id, name, now))
            journal.mark(self._db, sid)
            return f"{resolved.path.rstrip('/')}/{DOT_SNAPSHOT}/{name}"

    def delete_snapshot(self, parts: Parts, name: str) -> None:
        """DELETESNAPSHOT: atomic; bytes only that snapshot held are freed. Not idempotent."""
        with self._write() as release:
            resolved, node = self._snapshottable_dir(parts)
            snap = self._snapshot(node.id, name)
            if snap is None:
                raise SnapshotError(
                    f"Cannot delete snapshot {name} from path {resolved.path}: the snapshot does not exist."
                )
            sid = snap[0]
            if self._copy_on_write(sid):
                self._hand_down(sid)
            release.extend(
                int(b)
                for (b,) in self._db.execute(
                    "SELECT DISTINCT blob FROM inodes WHERE sid=? AND blob IS NOT NULL", (sid,)
                )
            )
            self._db.execute("DELETE FROM inodes WHERE sid=?", (sid,))
            self._db.execute("DELETE FROM snapshots WHERE sid=?", (sid,))
            journal.forget(self._db, sid)

    def _hand_down(self, sid: int) -> None:
        """Before snapshot ``sid`` goes: the rows saved under it also hold what older snapshots see
        of those inodes (their state at ``sid`` when nothing changed them in between), so each moves
        to the next older snapshot unless that one has its own row or the inode is younger than it.
        That older snapshot may belong to any directory: rows are saved under the newest snapshot
        id of the whole namespace. Cost: the rows saved under ``sid``."""
        (older,) = self._db.execute("SELECT MAX(sid) FROM snapshots WHERE sid<?", (sid,)).fetchone()
        if older is None or not self._copy_on_write(int(older)):
            return
        self._db.execute(
            """UPDATE inodes SET sid=:older WHERE sid=:sid AND born<:older AND NOT EXISTS (
                 SELECT 1 FROM inodes d WHERE d.sid=:older AND d.id=inodes.id)""",
            {"sid": sid, "older": int(older)},
        )

    def rename_snapshot(self, parts: Parts, old: str, new: str) -> None:
        """RENAMESNAPSHOT: atomic; renaming to the same name does nothing."""
        with self._write():
            resolved, node = self._snapshottable_dir(parts)
            if old == new:
                return
            self._check_snapshot_name(new)
            if self._snapshot(node.id, old) is None:
                raise SnapshotError(f"The snapshot {old} does not exist for directory {resolved.path}")
            if self._snapshot(node.id, new) is not None:
                raise SnapshotError(f"The snapshot {new} already exists for directory {resolved.path}")
            self._db.execute("UPDATE snapshots SET name=? WHERE root=? AND name=?", (new, node.id, old))

    def snapshot_list(self, parts: Parts) -> list[SnapshotInfo]:
        """GETSNAPSHOTLIST: the directory's snapshots in creation order."""
        with self._lock:
            resolved, node = self._snapshottable_dir(parts)
            rows = self._db.execute(
                "SELECT sid, name FROM snapshots WHERE root=? ORDER BY sid", (node.id,)
            ).fetchall()
            out = []
            for sid, name in rows:
                root = self._row(int(sid), node.id)
                assert root is not None
                out.append(SnapshotInfo(int(sid), self._info(int(sid), root, str(name)), resolved.path))
            return out

    def snapshottable_list(self, user: str) -> list[SnapshottableInfo] | None:
        """GETSNAPSHOTTABLEDIRECTORYLIST: all of them for the superuser, else the user's own;
        None when the cluster has no snapshottable directory (HDFS answers null)."""
        with self._lock:
            self._check_open()
            if not self._snapshottable:
                return None
            out = []
            for inode_id in sorted(self._snapshottable):
                node = self._row(LIVE, inode_id)
                if node is None or (user != self.superuser and node.owner != user):
                    continue
                path = self._live_path(inode_id)
                parent = path.rsplit("/", 1)[0] or "/" if inode_id != ROOT_ID else ""
                out.append(
                    SnapshottableInfo(
                        self._info(LIVE, node, node.name),
                        parent,
                        self._snapshot_count(inode_id),
                        SNAPSHOT_QUOTA,
                    )
                )
            return out

    def snapshot_diff_listing(
        self, parts: Parts, from_name: str | None, to_name: str | None
    ) -> tuple[DiffListing, bool]:
        """GETSNAPSHOTDIFFLISTING in one batch: the lists in earlier-to-later order, and whether
        ``from`` is the earlier side (clients swap the lists otherwise). Read-only."""
        with self._lock:
            resolved = self._resolve_live(parts)
            scope = self._existing(resolved, "Directory does not exist: {path}")
            root_id = self._snapshot_root_of(resolved, scope)
            root_path = self._live_path(root_id)
            from_sid = self._snapshot_sid(root_id, root_path, from_name)
            to_sid = self._snapshot_sid(root_id, root_path, to_name)
            from_earlier = to_sid == LIVE or (from_sid != LIVE and from_sid <= to_sid)
            if from_sid == to_sid:
                return DiffListing((), (), ()), from_earlier
            earlier, later = (from_sid, to_sid) if from_earlier else (to_sid, from_sid)
            trees = self._load_trees(earlier, later, scope.id)
        return diff_listing(*trees), from_earlier

    def snapshot_diff(self, parts: Parts, from_name: str | None, to_name: str | None) -> DiffReport:
        """GETSNAPSHOTDIFF between two snapshots, or a snapshot and the current tree ("", "." or None).

        ``parts`` may be the snapshottable directory or a directory under it (HDFS's
        snapshot-root-descendant diff): paths are then relative to that directory. Read-only.
        """
        with self._lock:
            resolved = self._resolve_live(parts)
            scope = self._existing(resolved, "Directory does not exist: {path}")
            root_id = self._snapshot_root_of(resolved, scope)
            root_path = self._live_path(root_id)
            from_sid = self._snapshot_sid(root_id, root_path, from_name)
            to_sid = self._snapshot_sid(root_id, root_path, to_name)
            from_label = "" if from_sid == LIVE else str(from_name)
            to_label = "" if to_sid == LIVE else str(to_name)
            if from_sid == to_sid:
                return DiffReport(root_path, from_label, to_label, ())
            from_earlier = to_sid == LIVE or (from_sid != LIVE and from_sid < to_sid)
            earlier, later = (from_sid, to_sid) if from_earlier else (to_sid, from_sid)
            trees = self._load_trees(earlier, later, scope.id)
        entries = diff_trees(trees[0], trees[1], from_earlier=from_earlier)
        return DiffReport(root_path, from_label, to_label, tuple(entries))

    def _snapshot_root_of(self, resolved: Resolved, scope: Inode) -> int:
        if scope.id in self._snapshottable:
            return scope.id
        for ancestor in reversed(resolved.ancestors):
            if ancestor.id in self._snapshottable:
                return ancestor.id
        raise SnapshotError(f"Directory is not a snapshottable directory: {resolved.path}")

    def _snapshot_sid(self, root_id: int, root_path: str, name: str | None) -> int:
        if name is None or name in ("", "."):
            return LIVE
        snap = self._snapshot(root_id, name)
        if snap is None:
            raise SnapshotError(f"Cannot find the snapshot of directory {root_path} with name {name}")
        return snap[0]

    def _load_trees(self, earlier: int, later: int, root: int) -> tuple[Tree, Tree]:
        """Both states of the subtree a diff compares: only the changed inodes and the directories
        above them when the journal knows them (the cost of the change), else the whole subtrees."""
        changed = journal.changed_between(self._db, earlier, later)
        if changed is None:
            return self._load_tree(earlier, root), self._load_tree(later, root)
        return (
            journal.partial_tree(self._db, earlier, root, changed, self._locator(earlier)),
            journal.partial_tree(self._db, later, root, changed, self._locator(later)),
        )

    def _locator(self, sid: int) -> Callable[[int], int | None]:
        """Where state ``sid`` keeps each inode's row (the sid of the row, None: not there)."""
        if self._copy_on_write(sid):
            return lambda inode: self._saved_sid(sid, inode)
        return lambda inode: sid

    def _load_tree(self, sid: int, root: int) -> Tree:
        if self._copy_on_write(sid):
            return self._load_saved_tree(sid, root)
        tree = Tree(root)
        columns = journal.TREE_COLUMNS
        rows = self._db.execute(
            f"""WITH RECURSIVE
               sub({columns})
               AS (
                 SELECT {columns}
                 FROM inodes WHERE sid=:sid AND id=:root
                 UNION ALL
                 SELECT i.id, i.parent, i.name, i.dir, i.owner, i.grp, i.perm, i.acl, i.repl, i.bsize, i.nsq,
                        i.ssq, i.length, i.blob, i.xattrs
                 FROM inodes i INDEXED BY inodes_child JOIN sub s ON i.sid=:sid AND i.parent=s.id
               ) SELECT * FROM sub""",
            {"sid": sid, "root": root},
        )
        for row in rows:
            tree.add(int(row[0]), journal.tree_node(row))
        return tree

    def _load_saved_tree(self, sid: int, root: int) -> Tree:
        """A copy-on-write snapshot's subtree; children by name, as :meth:`_load_tree` yields them."""
        tree = Tree(root)
        found = self._saved_sid(sid, root)
        columns = journal.TREE_COLUMNS
        step = ", ".join(f"c.{c.strip()}" for c in columns.split(","))
        rows = self._db.execute(
            f"""WITH RECURSIVE
               sub({columns})
               AS (
                 SELECT {columns} FROM inodes WHERE sid=:root_sid AND id=:root
                 UNION ALL
                 {saved_children_of_sub(step)}
               ) SELECT * FROM sub""",
            {"s": sid, "root": root, "root_sid": -1 if found is None else found},
        ).fetchall()
        for row in sorted(rows, key=lambda r: str(r[2]).encode("utf-8")):
            tree.add(int(row[0]), journal.tree_node(row))
        return tree
