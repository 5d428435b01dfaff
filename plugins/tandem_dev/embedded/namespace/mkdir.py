"""MKDIRS and the creation of inodes (HDFS's ``FSDirMkdirOp``: missing parents are made by
CREATE too, with the same inheritance of ACL defaults).
"""

from __future__ import annotations

from tandem_dev.embedded import acl as acls
from tandem_dev.embedded.hdfs_exceptions import FileAlreadyExists
from tandem_dev.embedded.namespace.directory import COLS, Inode, Resolved, now_ms, validate_name
from tandem_dev.embedded.namespace.quota import QuotaOps
from tandem_dev.embedded.namespace.values import Parts


class MkdirOps(QuotaOps):
    """Making directories and inserting new inodes."""

    def mkdirs(self, parts: Parts, user: str, perm: int = 0o755) -> bool:
        """MKDIRS: create the directory and missing parents; idempotent (True if it exists)."""
        with self._write():
            resolved = self._resolve_live(parts)
            if resolved.node is not None:
                if not resolved.node.is_dir:
                    raise FileAlreadyExists(f"Path is not a directory: {resolved.path}")
                return True
            self._check_not_through_file(resolved)
            self._make_missing_dirs(resolved, user, perm | 0o300, last_perm=perm)
            return True

    def _make_missing_dirs(
        self, resolved: Resolved, user: str, perm: int, *, last_perm: int | None = None
    ) -> Inode:
        """Create the missing directories of ``resolved`` (all but the last one when last_perm is None)."""
        parent = resolved.parent
        assert parent is not None
        missing = list(resolved.missing_parts)
        if last_perm is None:
            missing = missing[:-1]
        for name in missing:
            validate_name(name)
        if not missing:
            return parent
        self._charge([a.id for a in resolved.ancestors], len(missing), 0)
        now = now_ms()
        self._touch(parent.id, now)
        for index, name in enumerate(missing):
            mode = last_perm if last_perm is not None and index == len(missing) - 1 else perm
            parent = self._insert(parent, name, user, mode, now, is_dir=True)
            resolved.ancestors.append(parent)
        return parent

    def _insert(
        self,
        parent: Inode,
        name: str,
        user: str,
        perm: int,
        now: int,
        *,
        is_dir: bool,
        replication: int = 0,
        block_size: int = 0,
        length: int = 0,
        blob: int | None = None,
    ) -> Inode:
        mode, feature = acls.inherit(acls.decode_feature(parent.acl), perm, is_dir=is_dir)
        node = Inode(
            self._alloc_inode(),
            parent.id,
            name,
            is_dir,
            user,
            parent.group,
            mode,
            acls.encode_feature(feature),
            now,
            0 if is_dir else now,
            replication,
            block_size,
            length,
            blob,
            -1,
            -1,
        )
        self._db.execute(
            f"INSERT INTO inodes ({COLS}, sid, born) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,0,?)",
            (
                node.id,
                node.parent,
                node.name,
                int(node.is_dir),
                node.owner,
                node.group,
                node.perm,
                node.acl,
                node.mtime,
                node.atime,
                node.replication,
                node.block_size,
                node.length,
                node.blob,
                -1,
                -1,
                None,
                self._last_snapshot,  # no snapshot taken so far shows it
            ),
        )
        return node
