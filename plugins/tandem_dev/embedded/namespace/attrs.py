"""Attributes of an inode (HDFS's ``FSDirAttrOp`` and ``FSDirAclOp``): owner, permission, times,
replication and ACLs. All idempotent.
"""

from __future__ import annotations

from tandem_dev.embedded import acl as acls
from tandem_dev.embedded.hdfs_exceptions import HdfsException, IllegalArgument
from tandem_dev.embedded.namespace.directory import MAX_REPLICATION
from tandem_dev.embedded.namespace.quota import QuotaOps
from tandem_dev.embedded.namespace.values import Parts


class AttrOps(QuotaOps):
    """SETOWNER, SETPERMISSION, SETTIMES, SETREPLICATION and the ACL operations."""

    def set_owner(self, parts: Parts, owner: str | None, group: str | None) -> None:
        """SETOWNER: None leaves a field unchanged; idempotent."""
        with self._write():
            node = self._existing(self._resolve_live(parts), "File does not exist: {path}")
            self._db.execute(
                "UPDATE inodes SET owner=?, grp=? WHERE sid=0 AND id=?",
                (owner or node.owner, group or node.group, node.id),
            )

    def set_permission(self, parts: Parts, perm: int | None) -> None:
        """SETPERMISSION: None means the parameter's default, 755 for a file too (WebHDFS sets
        ``permission.getDirFsPermission()``); idempotent."""
        with self._write():
            node = self._existing(self._resolve_live(parts), "File does not exist: {path}")
            mode = perm if perm is not None else 0o755
            self._db.execute("UPDATE inodes SET perm=? WHERE sid=0 AND id=?", (mode, node.id))

    def set_times(self, parts: Parts, mtime: int, atime: int) -> None:
        """SETTIMES: -1 leaves a time unchanged; idempotent."""
        with self._write():
            resolved = self._resolve_live(parts)
            node = self._existing(resolved, "File/Directory {path} does not exist.")
            self._db.execute(
                "UPDATE inodes SET mtime=?, atime=? WHERE sid=0 AND id=?",
                (node.mtime if mtime == -1 else mtime, node.atime if atime == -1 else atime, node.id),
            )

    def set_replication(self, parts: Parts, replication: int) -> bool:
        """SETREPLICATION: True for a file (replication is metadata here), False otherwise; idempotent."""
        if not 1 <= replication <= MAX_REPLICATION:
            raise HdfsException(
                f"Requested replication factor of {replication} is outside the allowed range "
                f"1..{MAX_REPLICATION}"
            )
        with self._write():
            resolved = self._resolve_live(parts)
            node = resolved.node
            if node is None or node.is_dir:
                return False
            delta = node.length * (replication - node.replication)
            self._charge([a.id for a in resolved.ancestors], 0, delta)
            self._db.execute("UPDATE inodes SET repl=? WHERE sid=0 AND id=?", (replication, node.id))
            return True

    def change_acl(self, parts: Parts, op: str, spec: str | None = None) -> None:
        """SETACL, MODIFYACLENTRIES, REMOVEACLENTRIES, REMOVEDEFAULTACL, REMOVEACL; all idempotent."""
        with self._write():
            node = self._existing(self._resolve_live(parts), "File does not exist: {path}")
            feature = acls.decode_feature(node.acl)
            if op == "REMOVEACL":
                perm = acls.remove_all(node.perm, feature)
                new_feature: tuple[acls.AclEntry, ...] = ()
            else:
                perm, new_feature = acls.store(
                    self._transform_acl(op, acls.logical_acl(node.perm, feature), spec),
                    node.perm,
                    is_dir=node.is_dir,
                )
            self._db.execute(
                "UPDATE inodes SET perm=?, acl=? WHERE sid=0 AND id=?",
                (perm, acls.encode_feature(new_feature), node.id),
            )

    @staticmethod
    def _transform_acl(op: str, logical: list[acls.AclEntry], spec: str | None) -> list[acls.AclEntry]:
        if op == "REMOVEDEFAULTACL":
            return acls.remove_default(logical)
        if not spec:
            raise IllegalArgument(f"Missing aclspec for {op}")
        if op == "SETACL":
            return acls.replace(logical, acls.parse_spec(spec, with_perm=True))
        if op == "MODIFYACLENTRIES":
            return acls.merge(logical, acls.parse_spec(spec, with_perm=True))
        if op == "REMOVEACLENTRIES":
            return acls.remove_entries(logical, acls.parse_spec(spec, with_perm=False))
        raise IllegalArgument(f"Unknown ACL operation {op}")
