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
* **Frozen snapshots.** A snapshot copies the metadata rows of its subtree at creation and shares
  the file bytes: a blob's first ``length`` bytes never change for any recorded length (appends
  extend, truncation copies), so nothing done to the live tree changes what a snapshot shows.
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
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tandem.errors import EmbeddedError
from tandem_dev.embedded import acl as acls
from tandem_dev.embedded import journal, store, xattrs
from tandem_dev.embedded.checksum import ChecksumCache, FileChecksum, RunningChecksum, compute
from tandem_dev.embedded.hdfs_exceptions import (
    READ_ONLY_SNAPSHOT,
    AccessControl,
    AlreadyBeingCreated,
    DSQuotaExceeded,
    EndOfFile,
    FileAlreadyExists,
    FileNotFound,
    HadoopIllegalArgument,
    HdfsException,
    IllegalArgument,
    InvalidPath,
    NSQuotaExceeded,
    ParentNotDirectory,
    PathIsNotDirectory,
    PathIsNotEmptyDirectory,
    SnapshotAccessControl,
    SnapshotError,
)
from tandem_dev.embedded.snapshots import DiffEntry, DiffListing, Tree, diff_listing, diff_trees

LOG = logging.getLogger(__name__)

ROOT_ID = 16385  # INodeId.ROOT_INODE_ID in HDFS
SUPERGROUP = "supergroup"
DOT_SNAPSHOT = ".snapshot"
SNAPSHOT_QUOTA = 65536
MIN_BLOCK_SIZE = 1 << 20  # dfs.namenode.fs-limits.min-block-size
MAX_REPLICATION = 512
QUOTA_DONT_SET = (1 << 63) - 1
QUOTA_RESET = -1
LIVE = 0

Parts = tuple[str, ...]

_COLS = (
    "id, parent, name, dir, owner, grp, perm, acl, mtime, atime, repl, bsize, length, blob, nsq, ssq, xattrs"
)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def path_str(parts: Parts) -> str:
    return "/" + "/".join(parts)


@dataclass(frozen=True, slots=True)
class Inode:
    """One row of the inode table: a file or directory in the current tree or in a snapshot."""

    id: int
    parent: int
    name: str
    is_dir: bool
    owner: str
    group: str
    perm: int
    acl: str | None
    mtime: int
    atime: int
    replication: int
    block_size: int
    length: int
    blob: int | None
    nsq: int
    ssq: int
    xattrs: str | None = None  # xattrs.encode()

    @classmethod
    def from_row(cls, row: tuple[object, ...]) -> Inode:
        values = list(row)
        values[3] = bool(values[3])
        return cls(*values)  # type: ignore[arg-type]

    @property
    def space(self) -> int:
        return 0 if self.is_dir else self.length * self.replication


@dataclass(frozen=True)
class FileInfo:
    """What ``FileStatus`` JSON is made of (``HdfsFileStatus`` in Hadoop)."""

    name: str
    is_dir: bool
    length: int
    owner: str
    group: str
    perm: int
    acl_bit: bool
    atime: int
    mtime: int
    block_size: int
    replication: int
    file_id: int
    children: int
    snapshot_enabled: bool


@dataclass(frozen=True)
class ContentSummary:
    directories: int
    files: int
    length: int
    space_consumed: int
    quota: int
    space_quota: int


@dataclass(frozen=True)
class QuotaUsage:
    count: int
    space_consumed: int
    quota: int
    space_quota: int


@dataclass(frozen=True)
class AclStatus:
    owner: str
    group: str
    perm: int
    sticky: bool
    entries: tuple[str, ...]


@dataclass(frozen=True)
class SnapshotInfo:
    """One entry of ``GETSNAPSHOTLIST``: the snapshot root's status and where it lives."""

    snapshot_id: int
    status: FileInfo
    parent_path: str


@dataclass(frozen=True)
class SnapshottableInfo:
    """One entry of ``GETSNAPSHOTTABLEDIRECTORYLIST``."""

    status: FileInfo
    parent_path: str
    snapshot_number: int
    snapshot_quota: int


@dataclass(frozen=True)
class DiffReport:
    root: str
    from_snapshot: str
    to_snapshot: str
    entries: tuple[DiffEntry, ...]


@dataclass
class ReadHandle:
    """An open blob and the byte range to send; the caller closes ``fd`` (-1 when empty)."""

    fd: int
    offset: int
    count: int

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@dataclass
class _QuotaLimit:
    """The tightest space quota above a write, to stop a stream as soon as it goes past it."""

    max_bytes: int
    path: str
    quota: int
    base_used: int
    replication: int

    def error(self, written: int) -> DSQuotaExceeded:
        return _ds_error(self.path, self.quota, self.base_used + written * self.replication)


@dataclass
class PendingWrite:
    """A CREATE or APPEND in flight: bytes go to ``fd`` at ``base_length + written``.

    Nothing is visible until :meth:`Namespace.commit_write`; :meth:`Namespace.abort_write`
    undoes everything. Not thread-safe: one request thread owns it.
    """

    kind: str  # "create" | "append"
    parts: Parts
    user: str
    blob: int
    fd: int
    base_length: int = 0
    file_id: int = 0
    overwrite: bool = False
    perm: int = 0o644
    replication: int = 1
    block_size: int = 0
    limit: _QuotaLimit | None = None
    written: int = 0
    done: bool = False
    crcs: RunningChecksum | None = None  # a CREATE's checksum, kept as its bytes arrive

    def write(self, data: memoryview | bytes) -> None:
        """Write the next bytes; raises DSQuotaExceededException once past the quota."""
        size = len(data)
        if self.limit is not None and self.written + size > self.limit.max_bytes:
            raise self.limit.error(self.written + size)
        offset = self.base_length + self.written
        view = memoryview(data)
        while view:
            count = os.pwrite(self.fd, view, offset)
            offset += count
            view = view[count:]
        self.written += size
        if self.crcs is not None:
            self.crcs.update(data)


@dataclass
class _Resolved:
    parts: Parts
    sid: int = LIVE
    node: Inode | None = None
    ancestors: list[Inode] = field(default_factory=list)
    dot_snapshot: Inode | None = None
    blocker: Parts | None = None  # a path component that is a file, for ParentNotDirectory

    @property
    def path(self) -> str:
        return path_str(self.parts)

    @property
    def read_only(self) -> bool:
        return self.sid != LIVE or self.dot_snapshot is not None

    @property
    def parent(self) -> Inode | None:
        return self.ancestors[-1] if self.ancestors else None

    @property
    def missing_parts(self) -> Parts:
        """The trailing components that do not exist (ancestors hold the root plus existing ones)."""
        if self.node is not None or self.blocker is not None:
            return ()
        return self.parts[len(self.ancestors) - 1 :]


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    return f"{size} B"


def _ds_error(path: str, quota: int, consumed: int) -> DSQuotaExceeded:
    return DSQuotaExceeded(
        f"The DiskSpace quota of {path} is exceeded: quota = {quota} B = {_human(quota)} "
        f"but diskspace consumed = {consumed} B = {_human(consumed)}"
    )


def validate_name(name: str) -> None:
    """Names HDFS refuses to create (``FSDirectory.verifyINodeName`` and ``DFSUtil.isValidName``)."""
    if name == DOT_SNAPSHOT:
        raise HadoopIllegalArgument(f'"{DOT_SNAPSHOT}" is a reserved name.')
    if not name or name in (".", "..") or "/" in name or ":" in name or "\x00" in name:
        raise InvalidPath(f"Invalid path name Invalid file name: {name}")


class Namespace:
    """The NameNode state over ``root``; thread-safe, every public method is one atomic step."""

    def __init__(
        self,
        root: Path,
        *,
        superuser: str | None = None,
        replication: int = 1,
        block_size: int = 128 * 1024 * 1024,
    ) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self._lock_fd = self._take_root(root)
        try:
            self._open(superuser, replication, block_size)
        except BaseException:
            os.close(self._lock_fd)
            raise

    def _open(self, superuser: str | None, replication: int, block_size: int) -> None:
        root = self.root
        self.superuser = superuser or getpass.getuser()
        self.default_replication = replication
        self.default_block_size = block_size
        self._lock = threading.RLock()
        self._db = store.connect(root / "namespace.db")
        self._blobs = store.BlobStore(root)
        self._checksums = ChecksumCache()
        self._creating: set[Parts] = set()
        self._appending: set[int] = set()
        self._closed = False
        with self._lock:
            self._init_root()
            self._load_state()
            self._blobs.clear_temp()
            referenced = {
                b for (b,) in self._db.execute("SELECT DISTINCT blob FROM inodes WHERE blob IS NOT NULL")
            }
            self._blobs.sweep(referenced)

    # ------------------------------------------------------------------ lifecycle and helpers

    @staticmethod
    def _take_root(root: Path) -> int:
        """One namespace per root: counters and leases live in this process's memory."""
        fd = os.open(root / "namespace.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise EmbeddedError(
                f"{root} is already served by another embedded NameNode; stop it first or use another root"
            ) from None
        return fd

    def close(self) -> None:
        """Close the database and release the root; idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()
                os.close(self._lock_fd)  # closing drops the flock

    def _init_root(self) -> None:
        if self._db.execute("SELECT 1 FROM inodes WHERE sid=0 AND id=?", (ROOT_ID,)).fetchone():
            return
        now = now_ms()
        self._db.execute("BEGIN IMMEDIATE")
        self._db.execute(
            f"INSERT INTO inodes ({_COLS}, sid) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,0)",
            (ROOT_ID, 0, "", 1, self.superuser, SUPERGROUP, 0o755, None, now, 0, 0, 0, 0, None, -1, -1, None),
        )
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('last_inode_id', ?)", (ROOT_ID,))
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('last_snapshot_id', 0)")
        self._db.execute("COMMIT")

    def _load_state(self) -> None:
        meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        self._last_inode = int(meta.get("last_inode_id", ROOT_ID))
        self._last_snapshot = int(meta.get("last_snapshot_id", 0))
        (max_blob,) = self._db.execute(
            "SELECT COALESCE(MAX(blob), 0) FROM inodes WHERE blob IS NOT NULL"
        ).fetchone()
        self._last_blob = max(getattr(self, "_last_blob", 0), int(max_blob))
        self._snapshottable = {i for (i,) in self._db.execute("SELECT id FROM snapshottable")}
        self._quota_dirs = {i for (i,) in self._db.execute("SELECT id FROM quota_usage")}

    @contextlib.contextmanager
    def _write(self) -> Iterator[list[int]]:
        """One write transaction; yields the list of blobs to release once it has committed."""
        with self._lock:
            self._check_open()
            self._db.execute("BEGIN IMMEDIATE")
            release: list[int] = []
            try:
                yield release
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._load_state()
                raise
            self._release_blobs(release)

    def _check_open(self) -> None:
        if self._closed:
            raise HdfsException("The NameNode is shut down")

    def _release_blobs(self, blobs: list[int]) -> None:
        # The operation has committed: failing to free space must not turn it into an error. A
        # blob left behind is swept at the next start.
        for blob in set(blobs):
            try:
                if self._db.execute("SELECT 1 FROM inodes WHERE blob=? LIMIT 1", (blob,)).fetchone() is None:
                    self._blobs.unlink(blob)
            except OSError:
                LOG.warning("could not free blob %d; it will be swept at the next start", blob, exc_info=True)

    def _alloc_inode(self) -> int:
        self._last_inode += 1
        self._db.execute("UPDATE meta SET value=? WHERE key='last_inode_id'", (self._last_inode,))
        return self._last_inode

    def _alloc_blob(self) -> int:
        with self._lock:
            self._last_blob += 1
            return self._last_blob

    def _row(self, sid: int, inode_id: int) -> Inode | None:
        row = self._db.execute(f"SELECT {_COLS} FROM inodes WHERE sid=? AND id=?", (sid, inode_id)).fetchone()
        return Inode.from_row(row) if row else None

    def _child(self, sid: int, parent: int, name: str) -> Inode | None:
        row = self._db.execute(
            f"SELECT {_COLS} FROM inodes WHERE sid=? AND parent=? AND name=?", (sid, parent, name)
        ).fetchone()
        return Inode.from_row(row) if row else None

    def _children(self, sid: int, parent: int, after: str | None = None) -> list[Inode]:
        if after is None:
            rows = self._db.execute(
                f"SELECT {_COLS} FROM inodes WHERE sid=? AND parent=? ORDER BY name", (sid, parent)
            )
        else:
            rows = self._db.execute(
                f"SELECT {_COLS} FROM inodes WHERE sid=? AND parent=? AND name>? ORDER BY name",
                (sid, parent, after),
            )
        return [Inode.from_row(r) for r in rows]

    def _count_children(self, sid: int, parent: int) -> int:
        (count,) = self._db.execute(
            "SELECT COUNT(*) FROM inodes WHERE sid=? AND parent=?", (sid, parent)
        ).fetchone()
        return int(count)

    def _snapshot(self, root: int, name: str) -> tuple[int, int] | None:
        row = self._db.execute(
            "SELECT sid, ctime FROM snapshots WHERE root=? AND name=?", (root, name)
        ).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    def _live_path(self, inode_id: int) -> str:
        names: list[str] = []
        current = self._row(LIVE, inode_id)
        while current is not None and current.id != ROOT_ID:
            names.append(current.name)
            current = self._row(LIVE, current.parent)
        return path_str(tuple(reversed(names)))

    def _ancestor_ids(self, inode: Inode) -> list[int]:
        ids: list[int] = []
        current = inode.parent
        while current:
            ids.append(current)
            row = self._db.execute("SELECT parent FROM inodes WHERE sid=0 AND id=?", (current,)).fetchone()
            current = int(row[0]) if row else 0
        return ids

    def _touch(self, inode_id: int, when: int) -> None:
        self._db.execute("UPDATE inodes SET mtime=? WHERE sid=0 AND id=?", (when, inode_id))

    # ------------------------------------------------------------------ path resolution

    def _resolve(self, parts: Parts) -> _Resolved:
        self._check_open()
        result = _Resolved(parts)
        node = self._row(LIVE, ROOT_ID)
        assert node is not None
        index = 0
        while index < len(parts):
            if not node.is_dir:
                result.blocker = parts[:index]
                return result
            name = parts[index]
            if name == DOT_SNAPSHOT and result.sid == LIVE and node.id in self._snapshottable:
                stepped = self._enter_snapshot(result, node, index)
                if stepped is None:
                    return result
                node, index = stepped
                continue
            child = self._child(result.sid, node.id, name)
            result.ancestors.append(node)
            if child is None:
                return result
            node = child
            index += 1
        result.node = node
        return result

    def _enter_snapshot(self, result: _Resolved, node: Inode, index: int) -> tuple[Inode, int] | None:
        """Step over ``<dir>/.snapshot/<name>``; None when the path ends there or the name is unknown."""
        if index == len(result.parts) - 1:
            result.dot_snapshot = node
            result.ancestors.append(node)
            return None
        snap = self._snapshot(node.id, result.parts[index + 1])
        result.ancestors.append(node)
        if snap is None:
            result.sid = -1  # no such snapshot: read-only and nothing found beneath
            return None
        result.sid = snap[0]
        root = self._row(snap[0], node.id)
        assert root is not None
        return root, index + 2

    def _resolve_live(self, parts: Parts) -> _Resolved:
        """Resolve a path that is about to be modified: snapshot paths are read-only."""
        resolved = self._resolve(parts)
        if resolved.read_only:
            raise SnapshotAccessControl(f"{READ_ONLY_SNAPSHOT}: {resolved.path}")
        return resolved

    @staticmethod
    def _existing(resolved: _Resolved, message: str) -> Inode:
        if resolved.node is None:
            raise FileNotFound(message.format(path=resolved.path))
        return resolved.node

    # ------------------------------------------------------------------ status and listing

    def _info(self, sid: int, node: Inode, name: str) -> FileInfo:
        children = self._count_children(sid, node.id) if node.is_dir else 0
        return self._info_with(sid, node, name, children)

    def _info_with(self, sid: int, node: Inode, name: str, children: int) -> FileInfo:
        return FileInfo(
            name=name,
            is_dir=node.is_dir,
            length=0 if node.is_dir else node.length,
            owner=node.owner,
            group=node.group,
            perm=node.perm,
            acl_bit=node.acl is not None,
            atime=node.atime,  # 0 for a directory until SETTIMES gives it one, as in HDFS
            mtime=node.mtime,
            block_size=0 if node.is_dir else node.block_size,
            replication=0 if node.is_dir else node.replication,
            file_id=node.id,
            children=children,
            snapshot_enabled=sid == LIVE and node.id in self._snapshottable,
        )

    def _dot_snapshot_info(self, directory: Inode) -> FileInfo:
        count = self._snapshot_count(directory.id)
        return FileInfo(
            "", True, 0, directory.owner, directory.group, 0o555, False, 0, 0, 0, 0, 0, count, False
        )

    def _snapshot_count(self, root: int) -> int:
        (count,) = self._db.execute("SELECT COUNT(*) FROM snapshots WHERE root=?", (root,)).fetchone()
        return int(count)

    def status(self, parts: Parts) -> FileInfo:
        """GETFILESTATUS: read-only, atomic. ``pathSuffix`` is "" as in HDFS."""
        with self._lock:
            resolved = self._resolve(parts)
            if resolved.dot_snapshot is not None:
                return self._dot_snapshot_info(resolved.dot_snapshot)
            node = self._existing(resolved, "File does not exist: {path}")
            return self._info(resolved.sid, node, "")

    def list_status(
        self, parts: Parts, *, start_after: str | None = None, limit: int | None = None
    ) -> tuple[list[FileInfo], int]:
        """LISTSTATUS / LISTSTATUS_BATCH: entries sorted by name, and how many remain after them."""
        with self._lock:
            resolved = self._resolve(parts)
            if resolved.dot_snapshot is not None:
                return self._list_snapshots(resolved.dot_snapshot, start_after, limit)
            node = self._existing(resolved, "File {path} does not exist.")
            if not node.is_dir:
                return [self._info(resolved.sid, node, "")], 0
            children = self._children(resolved.sid, node.id, start_after)
            shown = children if limit is None else children[:limit]
            counts = self._children_counts(resolved.sid, [c.id for c in shown if c.is_dir])
            infos = [self._info_with(resolved.sid, c, c.name, counts.get(c.id, 0)) for c in shown]
            return infos, len(children) - len(shown)

    def _children_counts(self, sid: int, ids: list[int]) -> dict[int, int]:
        counts: dict[int, int] = {}
        for start in range(0, len(ids), 500):
            batch = ids[start : start + 500]
            marks = ",".join("?" * len(batch))
            rows = self._db.execute(
                f"SELECT parent, COUNT(*) FROM inodes WHERE sid=? AND parent IN ({marks}) GROUP BY parent",
                (sid, *batch),
            )
            counts.update((int(p), int(c)) for p, c in rows)
        return counts

    def _list_snapshots(
        self, directory: Inode, start_after: str | None, limit: int | None
    ) -> tuple[list[FileInfo], int]:
        rows = self._db.execute(
            "SELECT sid, name FROM snapshots WHERE root=? AND name>? ORDER BY name",
            (directory.id, start_after or ""),
        ).fetchall()
        shown = rows if limit is None else rows[:limit]
        infos = []
        for sid, name in shown:
            root = self._row(int(sid), directory.id)
            assert root is not None
            infos.append(self._info(int(sid), root, str(name)))
        return infos, len(rows) - len(shown)

    def _subtree_totals(self, sid: int, inode_id: int) -> tuple[int, int, int, int]:
        """(directories, files, length, space consumed) of a subtree, the root included."""
        row = self._db.execute(
            """WITH RECURSIVE sub(id, dir, length, repl) AS (
                 SELECT id, dir, length, repl FROM inodes WHERE sid=:sid AND id=:id
                 UNION ALL
                 SELECT i.id, i.dir, i.length, i.repl
                 FROM inodes i INDEXED BY inodes_child JOIN sub s ON i.sid=:sid AND i.parent=s.id
               )
               SELECT COALESCE(SUM(dir),0), COALESCE(SUM(1-dir),0),
                      COALESCE(SUM(CASE WHEN dir THEN 0 ELSE length END),0),
                      COALESCE(SUM(CASE WHEN dir THEN 0 ELSE length*repl END),0) FROM sub""",
            {"sid": sid, "id": inode_id},
        ).fetchone()
        return int(row[0]), int(row[1]), int(row[2]), int(row[3])

    def content_summary(self, parts: Parts) -> ContentSummary:
        """GETCONTENTSUMMARY: counts of the subtree; snapshot paths count the snapshot's bytes."""
        with self._lock:
            resolved = self._resolve(parts)
            if resolved.dot_snapshot is not None:
                return self._dot_snapshot_summary(resolved.dot_snapshot)
            node = self._existing(resolved, "File does not exist: {path}")
            if not node.is_dir:
                return ContentSummary(0, 1, node.length, node.space, -1, -1)
            dirs, files, length, space = self._subtree_totals(resolved.sid, node.id)
            return ContentSummary(dirs, files, length, space, node.nsq, node.ssq)

    def _dot_snapshot_summary(self, directory: Inode) -> ContentSummary:
        dirs, files, length, space = 1, 0, 0, 0
        for (sid,) in self._db.execute("SELECT sid FROM snapshots WHERE root=?", (directory.id,)).fetchall():
            d, f, n, s = self._subtree_totals(int(sid), directory.id)
            dirs, files, length, space = dirs + d, files + f, length + n, space + s
        return ContentSummary(dirs, files, length, space, -1, -1)

    def quota_usage(self, parts: Parts) -> QuotaUsage:
        """GETQUOTAUSAGE: namespace and space used against the quotas (-1: none)."""
        with self._lock:
            resolved = self._resolve(parts)
            node = self._existing(resolved, "File does not exist: {path}")
            if not node.is_dir:
                return QuotaUsage(1, node.space, -1, -1)
            if resolved.sid == LIVE and node.id in self._quota_dirs:
                row = self._db.execute(
                    "SELECT ns_used, ss_used FROM quota_usage WHERE id=?", (node.id,)
                ).fetchone()
                return QuotaUsage(int(row[0]), int(row[1]), node.nsq, node.ssq)
            dirs, files, _, space = self._subtree_totals(resolved.sid, node.id)
            return QuotaUsage(dirs + files, space, node.nsq, node.ssq)

    def acl_status(self, parts: Parts) -> AclStatus:
        """GETACLSTATUS: extended entries only; the base entries are in ``perm``."""
        with self._lock:
            node = self._existing(self._resolve(parts), "File does not exist: {path}")
            feature = acls.decode_feature(node.acl)
            return AclStatus(
                node.owner,
                node.group,
                node.perm,
                bool(node.perm & 0o1000),
                tuple(acls.status_entries(feature)),
            )

    # ------------------------------------------------------------------ reading data

    def open_read(self, parts: Parts, offset: int = 0, length: int | None = None) -> ReadHandle:
        """OPEN: an open descriptor on the file's bytes and the range to send.

        The range is fixed at open: later appends, truncations or deletes of the live file do not
        change what this handle reads.
        """
        with self._lock:
            node = self._file(self._resolve(parts))
            if offset > node.length:
                raise EndOfFile(f"Cannot seek after EOF: offset {offset} > file length {node.length}")
            count = node.length - offset if length is None else min(length, node.length - offset)
            if count <= 0 or node.blob is None:
                return ReadHandle(-1, offset, 0)
            return ReadHandle(self._blobs.open_read(node.blob), offset, count)

    def _file(self, resolved: _Resolved) -> Inode:
        node = self._existing(resolved, "File does not exist: {path}")
        if node.is_dir:
            raise FileNotFound(f"Path is not a file: {resolved.path}")
        return node

    def checksum(self, parts: Parts) -> FileChecksum:
        """GETFILECHECKSUM: HDFS's MD5-of-MD5-of-CRC32, cached per (blob, length, block size)."""
        with self._lock:
            node = self._file(self._resolve(parts))
            key = (node.blob or 0, node.length, node.block_size)
            cached = self._checksums.get(key)
            if cached is not None:
                return cached
            fd = self._blobs.open_read(node.blob) if node.blob is not None else -1
        try:
            result = compute(fd, node.length, node.block_size)
        finally:
            if fd >= 0:
                os.close(fd)
        self._checksums.put(key, result)
        return result

    @staticmethod
    def home_directory(user: str) -> str:
        """GETHOMEDIRECTORY: ``/user/<user>``, whether or not it exists (as in HDFS)."""
        return f"/user/{user}"

    # ------------------------------------------------------------------ directories

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

    def _check_not_through_file(self, resolved: _Resolved) -> None:
        if resolved.blocker is not None:
            raise ParentNotDirectory(f"Parent path is not a directory: {path_str(resolved.blocker)}")

    def _make_missing_dirs(
        self, resolved: _Resolved, user: str, perm: int, *, last_perm: int | None = None
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
            f"INSERT INTO inodes ({_COLS}, sid) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,0)",
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
            ),
        )
        return node

    # ------------------------------------------------------------------ quotas

    def _quota_rows(self, ancestor_ids: list[int]) -> list[tuple[int, int, int, int, int]]:
        """(id, nsq, ssq, ns_used, ss_used) of the quota directories among ``ancestor_ids``."""
        ids = [i for i in ancestor_ids if i in self._quota_dirs]
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = self._db.execute(
            f"""SELECT q.id, i.nsq, i.ssq, q.ns_used, q.ss_used FROM quota_usage q
                JOIN inodes i ON i.sid=0 AND i.id=q.id WHERE q.id IN ({marks})""",
            ids,
        ).fetchall()
        return [(int(a), int(b), int(c), int(d), int(e)) for a, b, c, d, e in rows]

    def _check_quota(self, rows: list[tuple[int, int, int, int, int]], names: int, space: int) -> None:
        for inode_id, nsq, ssq, ns_used, ss_used in rows:
            if names > 0 and nsq >= 0 and ns_used + names > nsq:
                raise NSQuotaExceeded(
                    f"The NameSpace quota (directories and files) of directory {self._live_path(inode_id)} "
                    f"is exceeded: quota={nsq} file count={ns_used + names}"
                )
            if space > 0 and ssq >= 0 and ss_used + space > ssq:
                raise _ds_error(self._live_path(inode_id), ssq, ss_used + space)

    def _check_names(self, ancestor_ids: list[int], names: int) -> None:
        """Refuse early what a commit adding ``names`` inodes would refuse."""
        self._check_quota(self._quota_rows(ancestor_ids), names, 0)

    def _charge(self, ancestor_ids: list[int], names: int, space: int, *, check: bool = True) -> None:
        """Add usage to every quota directory among ``ancestor_ids``; refuse what would exceed a quota."""
        if names == 0 and space == 0:
            return
        rows = self._quota_rows(ancestor_ids)
        if not rows:
            return
        if check:
            self._check_quota(rows, names, space)
        ids = [r[0] for r in rows]
        self._db.execute(
            "UPDATE quota_usage SET ns_used=ns_used+?, ss_used=ss_used+? "
            f"WHERE id IN ({','.join('?' * len(ids))})",
            (names, space, *ids),
        )

    def _space_limit(self, ancestor_ids: list[int], replication: int, credit: int) -> _QuotaLimit | None:
        best: _QuotaLimit | None = None
        for inode_id, _, ssq, _, ss_used in self._quota_rows(ancestor_ids):
            if ssq < 0:
                continue
            base = ss_used - credit
            allowed = max(0, (ssq - base) // max(1, replication))
            if best is None or allowed < best.max_bytes:
                best = _QuotaLimit(allowed, self._live_path(inode_id), ssq, base, replication)
        return best

    def set_quota(self, parts: Parts, namespace_quota: int, space_quota: int) -> None:
        """SETQUOTA: Long.MAX_VALUE leaves a quota unchanged, -1 clears it; idempotent."""
        for value in (namespace_quota, space_quota):
            if value < 0 and value not in (QUOTA_RESET, QUOTA_DONT_SET):
                raise IllegalArgument(
                    f"Illegal value for nsQuota or ssQuota : {namespace_quota} and {space_quota}"
                )
        with self._write():
            resolved = self._resolve_live(parts)
            node = self._existing(resolved, "Directory does not exist: {path}")
            if not node.is_dir:
                raise PathIsNotDirectory(f"`{resolved.path}': Is not a directory")
            if node.id == ROOT_ID and namespace_quota == QUOTA_RESET:
                raise IllegalArgument("Cannot clear namespace quota on root.")
            nsq = node.nsq if namespace_quota == QUOTA_DONT_SET else namespace_quota
            ssq = node.ssq if space_quota == QUOTA_DONT_SET else space_quota
            self._db.execute("UPDATE inodes SET nsq=?, ssq=? WHERE sid=0 AND id=?", (nsq, ssq, node.id))
            if nsq < 0 and ssq < 0:
                self._db.execute("DELETE FROM quota_usage WHERE id=?", (node.id,))
                self._quota_dirs.discard(node.id)
            elif node.id not in self._quota_dirs:
                dirs, files, _, space = self._subtree_totals(LIVE, node.id)
                self._db.execute("INSERT INTO quota_usage VALUES (?,?,?)", (node.id, dirs + files, space))
                self._quota_dirs.add(node.id)

    # ------------------------------------------------------------------ writing files

    def _check_write_params(self, replication: int, block_size: int) -> None:
        if not 1 <= replication <= MAX_REPLICATION:
            raise HdfsException(
                f"Requested replication factor of {replication} is outside the allowed range "
                f"1..{MAX_REPLICATION}"
            )
        if block_size < MIN_BLOCK_SIZE:
            raise HdfsException(
                "Specified block size is less than configured minimum value "
                f"(dfs.namenode.fs-limits.min-block-size): {block_size} < {MIN_BLOCK_SIZE}"
            )
        if block_size % 512:
            raise HdfsException(f"io.bytes.per.checksum(512) and blockSize({block_size}) do not match")

    def _check_create_target(self, resolved: _Resolved, overwrite: bool, *, own: bool = False) -> None:
        if not resolved.parts or resolved.dot_snapshot is not None:
            raise FileAlreadyExists(f"{resolved.path} already exists as a directory")
        self._check_not_through_file(resolved)
        node = resolved.node
        if node is not None and node.is_dir:
            raise FileAlreadyExists(f"{resolved.path} already exists as a directory")
        if (resolved.parts in self._creating and not own) or (
            node is not None and node.id in self._appending
        ):
            raise AlreadyBeingCreated(
                f"Failed to CREATE_FILE {resolved.path} because this file lease is currently owned by "
                "another client"
            )
        if node is not None and not overwrite:
            raise FileAlreadyExists(f"{resolved.path} for client 127.0.0.1 already exists")
        for name in resolved.missing_parts:
            validate_name(name)

    def begin_create(
        self,
        parts: Parts,
        user: str,
        *,
        overwrite: bool = False,
        perm: int = 0o644,
        replication: int | None = None,
        block_size: int | None = None,
    ) -> PendingWrite:
        """Start a CREATE: checks what HDFS checks at create time, then opens a temporary blob.

        Nothing is visible until :meth:`commit_write`; a second CREATE of the same path while this
        one is open gets AlreadyBeingCreatedException, as with an HDFS lease.
        """
        replication = replication or self.default_replication
        block_size = block_size or self.default_block_size
        self._check_write_params(replication, block_size)
        with self._lock:
            resolved = self._resolve_live(parts)
            self._check_create_target(resolved, overwrite)
            old = resolved.node
            ancestors = [a.id for a in resolved.ancestors]
            self._check_names(ancestors, len(resolved.missing_parts))
            limit = self._space_limit(ancestors, replication, old.space if old else 0)
            self._creating.add(parts)
        blob = self._alloc_blob()
        try:
            fd = self._blobs.create_temp(blob)
        except BaseException:
            with self._lock:
                self._creating.discard(parts)
            raise
        return PendingWrite(
            "create",
            parts,
            user,
            blob,
            fd,
            overwrite=overwrite,
            perm=perm,
            replication=replication,
            block_size=block_size,
            limit=limit,
            crcs=RunningChecksum(block_size),
        )

    def open_files(self) -> int:
        """How many files have a writer now (HDFS: ``dfsadmin -listOpenFiles``)."""
        with self._lock:
            return len(self._creating) + len(self._appending)

    def begin_append(self, parts: Parts, user: str) -> PendingWrite:
        """Start an APPEND: the file must exist and have no other writer (HDFS lease)."""
        with self._lock:
            resolved = self._resolve_live(parts)
            node = resolved.node
            if node is None:
                raise FileNotFound(
                    f"Failed to append to non-existent file {resolved.path} for client 127.0.0.1"
                )
            if node.is_dir:
                raise FileNotFound(f"Path is not a file: {resolved.path}")
            if node.id in self._appending or parts in self._creating:
                raise AlreadyBeingCreated(
                    f"Failed to APPEND_FILE {resolved.path} for {user} because this file lease is currently "
                    "owned by another client"
                )
            assert node.blob is not None
            limit = self._space_limit([a.id for a in resolved.ancestors], node.replication, 0)
            fd = self._blobs.open_write(node.blob)
            self._appending.add(node.id)
        # Bytes past the committed length belong to nobody (a crash mid-append can leave some).
        os.ftruncate(fd, node.length)
        return PendingWrite(
            "append",
            parts,
            user,
            node.blob,
            fd,
            base_length=node.length,
            file_id=node.id,
            replication=node.replication,
            block_size=node.block_size,
            limit=limit,
        )

    def commit_write(self, pending: PendingWrite) -> None:
        """Make a CREATE or APPEND visible, atomically; on error everything is undone."""
        try:
            if pending.kind == "create":
                self._commit_create(pending)
                if pending.crcs is not None:  # GETFILECHECKSUM of it need not read it again
                    key = (pending.blob, pending.written, pending.block_size)
                    self._checksums.put(key, pending.crcs.result())
            else:
                self._commit_append(pending)
            pending.done = True
        finally:
            self._finish_write(pending)

    def abort_write(self, pending: PendingWrite) -> None:
        """Forget a CREATE or APPEND: no file, no appended bytes; idempotent."""
        self._finish_write(pending)

    def _finish_write(self, pending: PendingWrite) -> None:
        if pending.fd < 0:
            return
        try:
            if not pending.done and pending.kind == "append":
                os.ftruncate(pending.fd, pending.base_length)
        finally:
            os.close(pending.fd)
            pending.fd = -1
            with self._lock:
                if pending.kind == "create":
                    self._creating.discard(pending.parts)
                    if not pending.done:
                        self._blobs.discard_temp(pending.blob)
                else:
                    self._appending.discard(pending.file_id)

    def _commit_create(self, pending: PendingWrite) -> None:
        installed = False
        try:
            with self._write() as release:
                resolved = self._resolve_live(pending.parts)
                self._check_create_target(resolved, pending.overwrite, own=True)
                parent = self._make_missing_dirs(resolved, pending.user, 0o755)
                old = resolved.node
                ancestors = [a.id for a in resolved.ancestors]
                space = pending.written * pending.replication - (old.space if old else 0)
                self._charge(ancestors, 0 if old else 1, space)
                if old is not None:
                    self._db.execute("DELETE FROM inodes WHERE sid=0 AND id=?", (old.id,))
                    release.append(old.blob or 0)
                self._blobs.install(pending.blob)
                installed = True
                now = now_ms()
                self._insert(
                    parent,
                    pending.parts[-1],
                    pending.user,
                    pending.perm,
                    now,
                    is_dir=False,
                    replication=pending.replication,
                    block_size=pending.block_size,
                    length=pending.written,
                    blob=pending.blob,
                )
                self._touch(parent.id, now)
        except BaseException:
            if installed:
                self._blobs.unlink(pending.blob)
            raise

    def _commit_append(self, pending: PendingWrite) -> None:
        with self._write():
            node = self._row(LIVE, pending.file_id)
            if node is None or node.blob != pending.blob:
                raise FileNotFound(
                    f"File does not exist: {path_str(pending.parts)} (inode {pending.file_id})"
                )
            self._charge(self._ancestor_ids(node), 0, pending.written * node.replication)
            self._db.execute(
                "UPDATE inodes SET length=?, mtime=? WHERE sid=0 AND id=?",
                (pending.base_length + pending.written, now_ms(), node.id),
            )

    def truncate(self, parts: Parts, new_length: int) -> bool:
        """TRUNCATE: always completes at once (True). The live file gets a new blob holding the
        kept prefix, so snapshots and readers of the old bytes are unaffected. Idempotent."""
        if new_length < 0:
            raise HadoopIllegalArgument(f"Cannot truncate to a negative file size: {new_length}.")
        with self._write() as release:
            resolved = self._resolve_live(parts)
            node = self._file(resolved)
            if node.id in self._appending:
                raise AlreadyBeingCreated(
                    f"Failed to TRUNCATE_FILE {resolved.path}: the file is being written"
                )
            if new_length > node.length:
                raise HadoopIllegalArgument(
                    f"Cannot truncate to a larger file size. Current size: {node.length}, "
                    f"truncate size: {new_length}."
                )
            if new_length == node.length:
                return True
            assert node.blob is not None
            blob = self._alloc_blob()
            self._blobs.copy_prefix(node.blob, blob, new_length)
            try:
                self._charge(
                    [a.id for a in resolved.ancestors], 0, (new_length - node.length) * node.replication
                )
                self._db.execute(
                    "UPDATE inodes SET length=?, blob=?, mtime=? WHERE sid=0 AND id=?",
                    (new_length, blob, now_ms(), node.id),
                )
            except BaseException:
                self._blobs.unlink(blob)
                raise
            release.append(node.blob)
            return True

    # ------------------------------------------------------------------ delete and rename

    def _subtree_ids(self, inode_id: int) -> list[int]:
        return [
            int(i)
            for (i,) in self._db.execute(
                """WITH RECURSIVE sub(id) AS (
                     SELECT :id UNION ALL
                     SELECT i.id FROM inodes i INDEXED BY inodes_child JOIN sub s ON i.sid=0 AND i.parent=s.id
                   ) SELECT id FROM sub""",
                {"id": inode_id},
            )
        ]

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

    def _remove_subtree(self, resolved: _Resolved, node: Inode, ids: list[int], release: list[int]) -> None:
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
        self, source: _Resolved, target: _Resolved, node: Inode, overwrite: bool, release: list[int]
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
    def _check_not_under(source: _Resolved, target: _Resolved) -> None:
        if target.parts[: len(source.parts)] == source.parts and len(target.parts) > len(source.parts):
            raise HdfsException(
                f"Rename destination {target.path} is a directory or file under source {source.path}"
            )

    def _move(self, source: _Resolved, target: _Resolved, node: Inode) -> None:
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

    # ------------------------------------------------------------------ attributes

    def set_owner(self, parts: Parts, owner: str | None, group: str | None) -> None:
        """SETOWNER: None leaves a field unchanged; idempotent."""
        with self._write():
            node = self._existing(self._resolve_live(parts), "File does not exist: {path}")
            self._db.execute(
                "UPDATE inodes SET owner=?, grp=? WHERE sid=0 AND id=?",
                (owner or node.owner, group or node.group, node.id),
            )

    def set_permission(self, parts: Parts, perm: int | None) -> None:
        """SETPERMISSION: None means the HDFS default (755 for directories, 644 for files); idempotent."""
        with self._write():
            node = self._existing(self._resolve_live(parts), "File does not exist: {path}")
            mode = perm if perm is not None else (0o755 if node.is_dir else 0o644)
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

    # ------------------------------------------------------------------ extended attributes

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

    # ------------------------------------------------------------------ snapshots

    def _snapshottable_dir(self, parts: Parts) -> tuple[_Resolved, Inode]:
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
        """CREATESNAPSHOT: returns ``<dir>/.snapshot/<name>``. Atomic; cost is one metadata copy of
        the subtree (no data is copied). Not idempotent: a retry finds the name taken."""
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
            self._db.execute(
                f"""INSERT INTO inodes (sid, {_COLS})
                    WITH RECURSIVE sub(id) AS (
                      SELECT :id UNION ALL
                      SELECT i.id FROM inodes i INDEXED BY inodes_child
                      JOIN sub s ON i.sid=0 AND i.parent=s.id
                    )
                    SELECT :sid, {_COLS} FROM inodes WHERE sid=0 AND id IN (SELECT id FROM sub)""",
                {"id": node.id, "sid": sid},
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
            release.extend(
                int(b)
                for (b,) in self._db.execute(
                    "SELECT DISTINCT blob FROM inodes WHERE sid=? AND blob IS NOT NULL", (sid,)
                )
            )
            self._db.execute("DELETE FROM inodes WHERE sid=?", (sid,))
            self._db.execute("DELETE FROM snapshots WHERE sid=?", (sid,))
            journal.forget(self._db, sid)

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

    def _snapshot_root_of(self, resolved: _Resolved, scope: Inode) -> int:
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
            journal.partial_tree(self._db, earlier, root, changed),
            journal.partial_tree(self._db, later, root, changed),
        )

    def _load_tree(self, sid: int, root: int) -> Tree:
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
