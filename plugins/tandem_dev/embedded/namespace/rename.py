"""RENAME, both HDFS flavours (HDFS's ``FSDirRenameOp``): ``FileSystem.rename`` answering False,
and ``FileContext.rename`` with options raising instead; quota usage moves with the subtree.
"""

from __future__ import annotations

from tandem_dev.embedded.hdfs_exceptions import (
    FileAlreadyExists,
    FileNotFound,
    HdfsException,
    ParentNotDirectory,
)
from tandem_dev.embedded.namespace.delete import DeleteOps
from tandem_dev.embedded.namespace.directory import LIVE, ROOT_ID, Inode, Resolved, now_ms, validate_name
from tandem_dev.embedded.namespace.values import Parts, path_str


class RenameOps(DeleteOps):
    """Moving an inode to another parent or name."""

    def rename(self, src: Parts, dst: Parts) -> bool:
        """RENAME (``FileSystem.rename``): True on success, False where HDFS answers false.

        Into an existing directory it moves the source inside it. False when the source is
        missing, the destination exists or its parent is missing. Atomic; not idempotent.
        """
        with self._write():
            source = self._resolve_live(src)
            target = self._resolve_live(dst)
            node = source.node
            if node is None or node.id == ROOT_ID:
                return False
            if target.node is not None and target.node.is_dir and target.node.id != node.id:
                target = self._resolve_live((*dst, node.name))
            if target.parts == source.parts:
                return True
            self._check_not_under(source, target)
            if target.node is not None or len(target.missing_parts) != 1:
                return False
            self._move(source, target, node)
            return True

    def rename_overwrite(self, src: Parts, dst: Parts, *, overwrite: bool) -> None:
        """RENAME with ``renameoptions`` (``FileContext.rename``): raises instead of answering False."""
        with self._write() as release:
            source = self._resolve_live(src)
            target = self._resolve_live(dst)
            node = self._existing(source, "rename source {path} is not found.")
            if node.id == ROOT_ID:
                raise HdfsException("rename source cannot be the root")
            self._check_not_under(source, target)
            if target.blocker is not None:
                raise ParentNotDirectory(f"rename destination parent {path_str(target.blocker)} is a file.")
            if target.node is None and len(target.missing_parts) != 1:
                raise FileNotFound(f"rename destination parent {path_str(dst[:-1])} not found.")
            if target.node is not None:
                if target.node.id == node.id:
                    return
                self._replace_target(source, target, node, overwrite, release)
            self._move(source, target, node)

    def _replace_target(
        self, source: Resolved, target: Resolved, node: Inode, overwrite: bool, release: list[int]
    ) -> None:
        existing = target.node
        assert existing is not None
        if not overwrite:
            raise FileAlreadyExists(f"rename destination {target.path} already exists.")
        if existing.is_dir != node.is_dir:
            kind = "directories" if node.is_dir else "files"
            raise HdfsException(f"Source {source.path} and destination {target.path} must both be {kind}")
        if existing.is_dir and self._count_children(LIVE, existing.id):
            raise HdfsException(f"rename destination directory is not empty: {target.path}")
        self._check_no_snapshots_within([existing.id], "deleted")
        self._remove_subtree(target, existing, [existing.id], release)
        target.node = None

    @staticmethod
    def _check_not_under(source: Resolved, target: Resolved) -> None:
        if target.parts[: len(source.parts)] == source.parts and len(target.parts) > len(source.parts):
            raise HdfsException(
                f"Rename destination {target.path} is a directory or file under source {source.path}"
            )

    def _move(self, source: Resolved, target: Resolved, node: Inode) -> None:
        name = target.parts[-1]
        validate_name(name)
        if node.is_dir:
            self._check_no_snapshots_within(self._subtree_ids(node.id), "renamed")
        src_anc = [a.id for a in source.ancestors]
        dst_anc = [a.id for a in target.ancestors]
        common = 0
        while common < min(len(src_anc), len(dst_anc)) and src_anc[common] == dst_anc[common]:
            common += 1
        if any(a in self._quota_dirs for a in src_anc[common:] + dst_anc[common:]):
            dirs, files, _, space = self._subtree_totals(LIVE, node.id)
            self._charge(dst_anc[common:], dirs + files, space)
            self._charge(src_anc[common:], -(dirs + files), -space, check=False)
        new_parent = target.parent
        assert new_parent is not None and source.parent is not None
        self._db.execute(
            "UPDATE inodes SET parent=?, name=? WHERE sid=0 AND id=?", (new_parent.id, name, node.id)
        )
        now = now_ms()
        self._touch(source.parent.id, now)
        self._touch(new_parent.id, now)
