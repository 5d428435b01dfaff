"""User data that makes restored data usable: who owns it, who may read it, how much fits.

Three syncs, each idempotent and each reporting what it changed:

- HDFS metadata of every protected tree: owner, group, permission and ACL of each path on the
  target made equal to the source snapshot's (copies already carry them; this catches drift).
- Hive authorization: roles, role memberships and privileges on the protected databases and
  tables, as captured at the point (:func:`tandem.capture.apply_grants`). Roles and memberships
  are only added (other businesses may use them); privileges on protected objects follow the
  capture exactly (added and revoked).
- Quotas of the business's tenant directories (namespace and space quotas).
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Iterable

from tandem.hdfs.client import Hdfs
from tandem.hdfs.types import FileStatus

log = logging.getLogger(__name__)

BUILTIN_ROLES = {"admin", "public"}


def _acl(hdfs: Hdfs, path: str, status: FileStatus) -> tuple[str, ...]:
    return tuple(sorted(hdfs.acl_status(path).entries)) if status.acl_bit else ()


def sync_tree_metadata(
    src: Hdfs, src_top: str, dst: Hdfs, dst_top: str, *, dry_run: bool = False
) -> dict[str, int]:
    """Make owner, group, permission and ACL under ``dst_top`` equal those under ``src_top``.

    Compares directory listings (one LISTSTATUS per directory on each side); ACLs are read
    only where either side has one. Paths missing on the target are left to the copy.
    ``dry_run`` counts the changes without making them.
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
            if not dry_run:
                dst.set_owner(dst_path, wanted.owner, wanted.group)
            counts["owner_changes"] += 1
        if current.permission != wanted.permission:
            if not dry_run:
                dst.set_permission(dst_path, wanted.permission)
            counts["permission_changes"] += 1
        if wanted.acl_bit or current.acl_bit:
            src_path = posixpath.join(src_top, rel) if rel else src_top
            wanted_acl = _acl(src, src_path, wanted)
            if wanted_acl != _acl(dst, dst_path, current):
                if not dry_run:
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


def sync_quotas(src: Hdfs, dst: Hdfs, dirs: Iterable[str], *, dry_run: bool = False) -> dict[str, int]:
    """Namespace and space quotas of tenant directories, source -> target (``dry_run``: counted,
    not changed)."""
    changes = 0
    for path in dirs:
        if src.status(path) is None:
            log.warning("tenant directory %s does not exist on the source; skipped", path)
            continue
        want = src.quota_usage(path)
        if dry_run and dst.status(path) is None:
            changes += int((want.quota, want.space_quota) != (-1, -1))
            continue
        if not dry_run:
            dst.mkdirs(path)
        have = dst.quota_usage(path)
        if (have.quota, have.space_quota) != (want.quota, want.space_quota):
            if not dry_run:
                dst.set_quota(path, want.quota, want.space_quota)
            changes += 1
    return {"quota_changes": changes}
