"""User data that makes restored data usable: who owns it, who may read it, how much fits.

Three syncs, each idempotent and each reporting what it changed:

- HDFS metadata of every protected tree: owner, group, permission and ACL of each path on the
  target made equal to the source snapshot's (copies already carry them; this catches drift).
- Hive authorization: roles, role memberships and privileges on the protected databases and
  tables. Roles and memberships are only added (other businesses may use them); privileges on
  protected objects follow the source exactly (added and revoked).
- Quotas of the business's tenant directories (namespace and space quotas).
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Iterable
from typing import Any

from tandem.hdfs.client import Hdfs
from tandem.hdfs.types import FileStatus
from tandem.metastore import Metastore, TableRef

log = logging.getLogger(__name__)

BUILTIN_ROLES = {"admin", "public"}


def _acl(hdfs: Hdfs, path: str, status: FileStatus) -> tuple[str, ...]:
    return tuple(sorted(hdfs.acl_status(path).entries)) if status.acl_bit else ()


def sync_tree_metadata(src: Hdfs, src_top: str, dst: Hdfs, dst_top: str) -> dict[str, int]:
    """Make owner, group, permission and ACL under ``dst_top`` equal those under ``src_top``.

    Compares directory listings (one LISTSTATUS per directory on each side); ACLs are read
    only where either side has one. Paths missing on the target are left to the copy.
    """
    counts = {"owner_changes": 0, "permission_changes": 0, "acl_changes": 0}
    want = _listing(src, src_top)
    have = _listing(dst, dst_top)
    for rel, wanted in want.items():
        current = have.get(rel)
        if current is None:
            continue
        dst_path = posixpath.join(dst_top, rel) if rel else dst_top
        if (current.owner, current.group) != (wanted.owner, wanted.group):
            dst.set_owner(dst_path, wanted.owner, wanted.group)
            counts["owner_changes"] += 1
        if current.permission != wanted.permission:
            dst.set_permission(dst_path, wanted.permission)
            counts["permission_changes"] += 1
        if wanted.acl_bit or current.acl_bit:
            src_path = posixpath.join(src_top, rel) if rel else src_top
            wanted_acl = _acl(src, src_path, wanted)
            if wanted_acl != _acl(dst, dst_path, current):
                dst.set_acl(dst_path, wanted_acl)
                counts["acl_changes"] += 1
    return counts


def _listing(hdfs: Hdfs, top: str) -> dict[str, FileStatus]:
    """relpath -> status for ``top`` ("") and everything under it; empty if ``top`` is missing."""
    status = hdfs.status(top)
    if status is None:
        return {}
    out = {"": status}
    if status.is_dir:
        out.update((e.relpath, e.status) for e in hdfs.walk(top))
    return out


def sync_quotas(src: Hdfs, dst: Hdfs, dirs: Iterable[str]) -> dict[str, int]:
    """Namespace and space quotas of tenant directories, source -> target."""
    changes = 0
    for path in dirs:
        if src.status(path) is None:
            log.warning("tenant directory %s does not exist on the source; skipped", path)
            continue
        want = src.quota_usage(path)
        dst.mkdirs(path)
        have = dst.quota_usage(path)
        if (have.quota, have.space_quota) != (want.quota, want.space_quota):
            dst.set_quota(path, want.quota, want.space_quota)
            changes += 1
    return {"quota_changes": changes}


def _grant_key(priv: Any) -> tuple[Any, ...]:
    info = priv.grantInfo
    return (priv.principalName, priv.principalType, info.privilege, bool(info.grantOption))


def _object_refs(tables: Iterable[TableRef]) -> list[Any]:
    from hmsclient.genthrift.hive_metastore.ttypes import HiveObjectRef, HiveObjectType

    refs, dbs = [], []
    for ref in tables:
        if ref.db not in dbs:
            dbs.append(ref.db)
        refs.append(HiveObjectRef(objectType=HiveObjectType.TABLE, dbName=ref.db, objectName=ref.name))
    return [HiveObjectRef(objectType=HiveObjectType.DATABASE, dbName=db) for db in dbs] + refs


def sync_roles(src: Metastore, dst: Metastore) -> dict[str, int]:
    """Roles and role memberships of the source exist on the target (added, never removed)."""
    from hmsclient.genthrift.hive_metastore.ttypes import GetPrincipalsInRoleRequest, Role

    counts = {"roles_created": 0, "role_grants_added": 0}
    with src.session() as s, dst.session() as d:
        target_roles = set(d.get_role_names())
        for role in sorted(set(s.get_role_names()) - BUILTIN_ROLES):
            if role not in target_roles:
                d.create_role(Role(roleName=role, ownerName="tandem"))
                counts["roles_created"] += 1
            want = s.get_principals_in_role(GetPrincipalsInRoleRequest(roleName=role)).principalGrants or []
            have = d.get_principals_in_role(GetPrincipalsInRoleRequest(roleName=role)).principalGrants or []
            present = {(g.principalName, g.principalType) for g in have}
            for grant in want:
                if (grant.principalName, grant.principalType) not in present:
                    d.grant_role(
                        role,
                        grant.principalName,
                        grant.principalType,
                        grant.grantorName,
                        grant.grantorPrincipalType,
                        grant.grantOption,
                    )
                    counts["role_grants_added"] += 1
    return counts


def sync_privileges(src: Metastore, dst: Metastore, tables: Iterable[TableRef]) -> dict[str, int]:
    """Privileges on the protected databases and tables: the target's equal the source's."""
    from hmsclient.genthrift.hive_metastore.ttypes import PrivilegeBag

    counts = {"grants_added": 0, "grants_revoked": 0}
    with src.session() as s, dst.session() as d:
        for obj in _object_refs(tables):
            # principal None lists every principal's grants on the object, as the metastore does
            want = {_grant_key(p): p for p in s.list_privileges(None, None, obj)}
            have = {_grant_key(p): p for p in d.list_privileges(None, None, obj)}
            added = [p for k, p in want.items() if k not in have]
            revoked = [p for k, p in have.items() if k not in want]
            if added:
                d.grant_privileges(PrivilegeBag(privileges=added))
            if revoked:
                d.revoke_privileges(PrivilegeBag(privileges=revoked))
            counts["grants_added"] += len(added)
            counts["grants_revoked"] += len(revoked)
    return counts
