"""Extended attributes (HDFS's ``FSDirXAttrOp``): the operations over the inodes; the rules
(namespaces, flags, permission checks, encoding) are in :mod:`tandem_dev.embedded.xattrs`.
"""

from __future__ import annotations

from tandem_dev.embedded import xattrs
from tandem_dev.embedded.hdfs_exceptions import (
    READ_ONLY_SNAPSHOT,
    AccessControl,
    FileNotFound,
    SnapshotAccessControl,
)
from tandem_dev.embedded.namespace.directory import SUPERGROUP, FsDirectory, Inode
from tandem_dev.embedded.namespace.values import Parts, path_str


class XAttrOps(FsDirectory):
    """SETXATTR, REMOVEXATTR and GETXATTRS, checked in HDFS's order."""

    def _caller(self, user: str) -> xattrs.Caller:
        groups = xattrs.groups_of(user)
        return xattrs.Caller(user, groups, user == self.superuser or SUPERGROUP in groups)

    def _xattr_inode(self, parts: Parts, caller: xattrs.Caller, change: xattrs.XAttr | None = None) -> Inode:
        """The inode an xattr operation reads (``change`` None) or changes, checked in HDFS's order.

        Reads see a snapshot's copy under ``.snapshot/<name>/`` (and the directory itself at
        ``<dir>/.snapshot``). Like the rest of this namespace, ancestors' execute bits are not checked.
        """
        resolved = self._resolve(parts)
        if resolved.blocker is not None:  # FSDirectory.resolvePath: not a create, so not PNDE
            raise AccessControl(f"{path_str(resolved.blocker)} (is not a directory)")
        node = resolved.dot_snapshot or resolved.node
        if change is None:
            xattrs.check_read(caller, resolved.path, node)
        else:
            if resolved.read_only:
                raise SnapshotAccessControl(f"{READ_ONLY_SNAPSHOT}: {resolved.path}")
            xattrs.check_change(caller, change, resolved.path, node)
        if node is None:
            raise FileNotFound(f"cannot find {resolved.path}")
        return node

    def set_xattr(self, parts: Parts, user: str, attr: xattrs.XAttr, flags: frozenset[str]) -> None:
        """SETXATTR: atomic; can be retried with the REPLACE flag (CREATE alone finds it taken)."""
        caller = self._caller(user)
        xattrs.check_size(attr)
        xattrs.check_api(attr, caller)
        with self._write():
            node = self._xattr_inode(parts, caller, attr)
            self._store_xattrs(
                node, xattrs.with_set(xattrs.decode(node.xattrs), attr, flags, is_file=not node.is_dir)
            )

    def remove_xattr(self, parts: Parts, user: str, attr: xattrs.XAttr) -> None:
        """REMOVEXATTR: atomic; not idempotent (a retry finds nothing to remove)."""
        caller = self._caller(user)
        xattrs.check_api(attr, caller)
        with self._write():
            node = self._xattr_inode(parts, caller, attr)
            self._store_xattrs(node, xattrs.without(xattrs.decode(node.xattrs), attr))

    def _store_xattrs(self, node: Inode, attrs: list[xattrs.XAttr]) -> None:
        self._db.execute("UPDATE inodes SET xattrs=? WHERE sid=0 AND id=?", (xattrs.encode(attrs), node.id))

    def get_xattrs(
        self, parts: Parts, user: str, names: list[xattrs.XAttr] | None = None
    ) -> list[xattrs.XAttr]:
        """GETXATTRS: the attributes ``user`` may see, or exactly ``names`` (all must exist). Read-only."""
        caller = self._caller(user)
        for name in names or ():
            xattrs.check_api(name, caller)
        with self._lock:
            node = self._xattr_inode(parts, caller)
            return xattrs.select(xattrs.visible(xattrs.decode(node.xattrs), caller), names)
