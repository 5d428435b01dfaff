"""The filesystem model of the embedded NameNode: tree, metadata, snapshots, quotas, ACLs.

:class:`Namespace` is what a NameNode is to HDFS, over a local directory (see
:mod:`tandem_dev.embedded.store` for the layout). It knows nothing about HTTP; the WebHDFS layer in
:mod:`tandem_dev.embedded.webhdfs` maps requests onto it and its exceptions onto HTTP errors.

Guarantees, shared by every method:

* **Atomic metadata.** Each operation runs in one SQLite transaction under one namespace lock
  (HDFS has a global namesystem lock too): it happens completely or not at all, and concurrent
  operations are serialised. A restart over the same root sees exactly the committed state.
* **Atomic data.** CREATE streams into a temporary blob and becomes visible only when complete;
  APPEND writes past the committed length and moves the length only on success. A failed or
  interrupted write (quota, dropped connection) leaves no partial file and no partial append.
* **Frozen snapshots.** A snapshot is copy-on-write, as in HDFS: taking it costs the same whatever
  the size of the tree, and the first change to an inode afterwards saves the inode's metadata as
  it was (:mod:`.snapshot_ops`). File bytes are shared: a blob's first ``length`` bytes never
  change for any recorded length (appends extend, truncation copies), so nothing done to the live
  tree changes what a snapshot shows.
* **Stable ids.** Inode ids (``fileId``) come from a persisted counter, start after the root's
  16385 as in HDFS, are never reused and are shared by an inode and its snapshot copies.

Permissions are recorded, returned and snapshotted but **not enforced**, as on a cluster with
``dfs.permissions.enabled=false``, except by the extended-attribute operations, which check them as
HDFS does (:mod:`tandem_dev.embedded.xattrs`); the superuser (default: the process user) owns ``/``.
Idempotence follows HDFS: MKDIRS, SETOWNER, SETPERMISSION, SETTIMES, SETREPLICATION, SETQUOTA,
the ACL setters, SETXATTR with the REPLACE flag and ALLOWSNAPSHOT/DISALLOWSNAPSHOT can be retried;
DELETE of a missing path answers False; CREATE with overwrite can be retried; APPEND, RENAME,
REMOVEXATTR and CREATESNAPSHOT cannot be blindly retried (the second attempt appends twice, finds
the source gone or the attribute gone, or finds the name taken).

Laid out as HDFS lays out its NameNode: :mod:`.directory` is the tree (``FSDirectory``: inodes,
the lock, transactions, path resolution); each family of operations is a class over it in its own
module (``FSDirMkdirOp``, ``FSDirRenameOp``... here :mod:`.mkdir`, :mod:`.writes`, :mod:`.delete`,
:mod:`.rename`, :mod:`.attrs`, :mod:`.quota`, :mod:`.xattr_ops`, :mod:`.snapshot_ops`,
:mod:`.reads`), and :class:`Namespace` joins them. :mod:`.values` holds what the operations answer.
"""

from __future__ import annotations

from tandem_dev.embedded.namespace.attrs import AttrOps
from tandem_dev.embedded.namespace.delete import DeleteOps
from tandem_dev.embedded.namespace.directory import QUOTA_DONT_SET, FsDirectory
from tandem_dev.embedded.namespace.mkdir import MkdirOps
from tandem_dev.embedded.namespace.quota import QuotaOps
from tandem_dev.embedded.namespace.reads import ReadOps
from tandem_dev.embedded.namespace.rename import RenameOps
from tandem_dev.embedded.namespace.snapshot_ops import SnapshotOps
from tandem_dev.embedded.namespace.values import (
    AclStatus,
    ContentSummary,
    DiffReport,
    FileInfo,
    Parts,
    QuotaUsage,
    ReadHandle,
    SnapshotInfo,
    SnapshottableInfo,
    path_str,
)
from tandem_dev.embedded.namespace.writes import PendingWrite, WriteOps
from tandem_dev.embedded.namespace.xattr_ops import XAttrOps

__all__ = [
    "QUOTA_DONT_SET",
    "AclStatus",
    "ContentSummary",
    "DiffReport",
    "FileInfo",
    "Namespace",
    "Parts",
    "PendingWrite",
    "QuotaUsage",
    "ReadHandle",
    "SnapshotInfo",
    "SnapshottableInfo",
    "path_str",
]


class Namespace(
    ReadOps,
    WriteOps,
    MkdirOps,
    RenameOps,
    DeleteOps,
    AttrOps,
    QuotaOps,
    XAttrOps,
    SnapshotOps,
    FsDirectory,
):
    """The NameNode state over ``root``; thread-safe, every public method is one atomic step."""
