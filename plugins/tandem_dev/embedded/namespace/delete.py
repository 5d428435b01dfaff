"""DELETE (HDFS's ``FSDirDeleteOp``): a subtree goes in one transaction, its quota usage with it;
refused while it holds a directory with snapshots.
"""

from __future__ import annotations

from tandem_dev.embedded.hdfs_exceptions import PathIsNotEmptyDirectory, SnapshotError
from tandem_dev.embedded.namespace.directory import LIVE, ROOT_ID, Inode, Resolved, now_ms
from tandem_dev.embedded.namespace.quota import QuotaOps
from tandem_dev.embedded.namespace.values import Parts


class DeleteOps(QuotaOps):
    """Removing subtrees."""

    def _check_no_snapshots_within(self, ids: list[int], verb: str) -> None:
        for inode_id in ids:
            if inode_id in self._snapshottable and self._snapshot_count(inode_id):
                path = self._live_path(inode_id)
                raise SnapshotError(
                    f"The directory {path} cannot be {verb} since {path} is snapshottable and already "
                    "has snapshots"
                )

    def delete(self, parts: Parts, recursive: bool = False) -> bool:
        """DELETE: False when nothing exists there (or for ``/``), as in HDFS; safe to retry.

        Refused with SnapshotException when the subtree holds a directory with snapshots; the
        bytes stay on disk while a snapshot still refers to them.
        """
        with self._write() as release:
            resolved = self._resolve_live(parts)
            node = resolved.node
            if node is None or node.id == ROOT_ID:
                return False
            if node.is_dir and not recursive and self._count_children(LIVE, node.id):
                raise PathIsNotEmptyDirectory(f"`{resolved.path} is non empty': Directory is not empty")
            ids = self._subtree_ids(node.id) if node.is_dir else [node.id]
            self._check_no_snapshots_within(ids, "deleted")
            self._remove_subtree(resolved, node, ids, release)
            return True

    def _remove_subtree(self, resolved: Resolved, node: Inode, ids: list[int], release: list[int]) -> None:
        ancestors = [a.id for a in resolved.ancestors]
        if any(a in self._quota_dirs for a in ancestors):
            dirs, files, _, space = self._subtree_totals(LIVE, node.id)
            self._charge(ancestors, -(dirs + files), -space, check=False)
        self._db.execute("CREATE TEMP TABLE IF NOT EXISTS doomed (id INTEGER PRIMARY KEY)")
        self._db.execute("DELETE FROM doomed")
        self._db.executemany("INSERT INTO doomed VALUES (?)", ((i,) for i in ids))
        release.extend(
            int(b)
            for (b,) in self._db.execute(
                "SELECT blob FROM inodes WHERE sid=0 AND blob IS NOT NULL AND id IN (SELECT id FROM doomed)"
            )
        )
        self._db.execute("DELETE FROM inodes WHERE sid=0 AND id IN (SELECT id FROM doomed)")
        self._db.execute("DELETE FROM quota_usage WHERE id IN (SELECT id FROM doomed)")
        self._db.execute("DELETE FROM snapshottable WHERE id IN (SELECT id FROM doomed)")
        doomed = set(ids)
        self._quota_dirs -= doomed
        self._snapshottable -= doomed
        assert resolved.parent is not None
        self._touch(resolved.parent.id, now_ms())
