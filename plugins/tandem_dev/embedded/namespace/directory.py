"""The embedded NameNode's in-memory tree, as HDFS's ``FSDirectory``: inodes, the namespace lock,
the write transaction, path resolution (``.snapshot`` paths included) and the lookups every
operation shares.

:class:`FsDirectory` holds the state; the operations live in their own modules beside it, each a
class over it (as HDFS's ``FSDirMkdirOp``, ``FSDirRenameOp``...), and
:class:`tandem_dev.embedded.namespace.Namespace` joins them. The guarantees are in the package's
docstring.
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
from pathlib import Path

from tandem.errors import EmbeddedError
from tandem_dev.embedded import store
from tandem_dev.embedded.checksum import ChecksumCache
from tandem_dev.embedded.hdfs_exceptions import (
    READ_ONLY_SNAPSHOT,
    FileNotFound,
    HadoopIllegalArgument,
    HdfsException,
    InvalidPath,
    ParentNotDirectory,
    PathComponentTooLong,
    SnapshotAccessControl,
)
from tandem_dev.embedded.namespace.values import FileInfo, Parts, path_str

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


COLS = (
    "id, parent, name, dir, owner, grp, perm, acl, mtime, atime, repl, bsize, length, blob, nsq, ssq, xattrs"
)


# Copy-on-write reads of a snapshot :s (see FsDirectory._saved_sid). The rows that may hold a child of
# directory :p there: its current children and the rows saved under :s or a later snapshot...
def candidates(columns: str, where: str = "") -> str:
    extra = f" AND {where}" if where else ""
    return (
        f"SELECT {columns}, sid, born FROM inodes INDEXED BY inodes_child WHERE sid=0 AND parent=:p{extra} "
        "UNION ALL "
        f"SELECT {columns}, sid, born FROM inodes INDEXED BY inodes_saved_child WHERE sid>0 AND parent=:p "
        f"AND sid>=:s{extra}"
    )


# ... the same, as the two join steps of a walk down from the rows of ``sub`` ...
def saved_children_of_sub(columns: str) -> str:
    return (
        f"SELECT {columns} FROM sub JOIN inodes c INDEXED BY inodes_child ON c.sid=0 AND c.parent=sub.id "
        f"WHERE {VISIBLE} UNION ALL SELECT {columns} FROM sub JOIN inodes c INDEXED BY inodes_saved_child "
        f"ON c.sid>0 AND c.parent=sub.id AND c.sid>=:s WHERE {VISIBLE}"
    )


# ... and of those, each row ``c`` that is its inode's state at :s (no row saved nearer to :s)
VISIBLE = (
    "c.born<:s AND NOT EXISTS (SELECT 1 FROM inodes v INDEXED BY inodes_saved_id "
    "WHERE v.sid>0 AND v.id=c.id AND v.sid>=:s AND (c.sid=0 OR v.sid<c.sid))"
)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


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


@dataclass
class Resolved:
    """A path looked up in the tree: the inode found (if any), its ancestors, and any snapshot crossed."""

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


# dfs.namenode.fs-limits.max-component-length's default, in UTF-8 bytes
MAX_COMPONENT_LENGTH = 255


def validate_name(name: str, parent: str = "") -> None:
    """Names HDFS refuses to create (``FSDirectory.verifyINodeName``, ``DFSUtil.isValidName`` and
    ``verifyMaxComponentLength``)."""
    if name == DOT_SNAPSHOT:
        raise HadoopIllegalArgument(f'"{DOT_SNAPSHOT}" is a reserved name.')
    if not name or name in (".", "..") or "/" in name or ":" in name or "\x00" in name:
        raise InvalidPath(f"Invalid path name Invalid file name: {name}")
    length = len(name.encode("utf-8", "surrogatepass"))
    if length > MAX_COMPONENT_LENGTH:
        raise PathComponentTooLong(
            f"The maximum path component name limit of {name} in directory {parent or '/'} is exceeded: "
            f"limit={MAX_COMPONENT_LENGTH} length={length}"
        )


class FsDirectory:
    """The NameNode state over ``root``: thread-safe; the operations' classes build on it."""

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
            f"INSERT INTO inodes ({COLS}, sid) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,0)",
            (ROOT_ID, 0, "", 1, self.superuser, SUPERGROUP, 0o755, None, now, 0, 0, 0, 0, None, -1, -1, None),
        )
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('last_inode_id', ?)", (ROOT_ID,))
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('last_snapshot_id', 0)")
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('cow_from', 1)")
        self._db.execute("COMMIT")

    def _load_state(self) -> None:
        meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        self._last_inode = int(meta.get("last_inode_id", ROOT_ID))
        self._last_snapshot = int(meta.get("last_snapshot_id", 0))
        self._cow_from = int(meta.get("cow_from", 1))
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

    def _copy_on_write(self, sid: int) -> bool:
        """Whether snapshot ``sid`` is read copy-on-write (see :meth:`_saved_sid`); a snapshot taken
        before that layout is a full copy of its subtree's rows, read by its sid alone."""
        return sid != LIVE and sid >= self._cow_from

    def _saved_sid(self, sid: int, inode_id: int) -> int | None:
        """Where snapshot ``sid`` finds an inode: the first change to a current inode after a
        snapshot saves the inode as it was under the newest snapshot's id, so the inode's state at
        ``sid`` is its row saved under the smallest snapshot id at or after ``sid``, or else its
        current row; None when it was created after ``sid`` (or is gone and was never saved)."""
        row = self._db.execute(
            "SELECT sid, born FROM inodes INDEXED BY inodes_saved_id WHERE sid>0 AND id=? AND sid>=? "
            "ORDER BY sid LIMIT 1",
            (inode_id, sid),
        ).fetchone()
        if row is None:
            row = self._db.execute(
                "SELECT sid, born FROM inodes WHERE sid=0 AND id=?", (inode_id,)
            ).fetchone()
        return int(row[0]) if row is not None and int(row[1]) < sid else None

    def _row(self, sid: int, inode_id: int) -> Inode | None:
        if self._copy_on_write(sid):
            found = self._saved_sid(sid, inode_id)
            if found is None:
                return None
            sid = found
        row = self._db.execute(f"SELECT {COLS} FROM inodes WHERE sid=? AND id=?", (sid, inode_id)).fetchone()
        return Inode.from_row(row) if row else None

    def _child(self, sid: int, parent: int, name: str) -> Inode | None:
        if self._copy_on_write(sid):
            rows = self._db.execute(
                f"SELECT {COLS} FROM ({candidates(COLS, 'name=:name')}) c WHERE {VISIBLE}",
                {"s": sid, "p": parent, "name": name},
            ).fetchall()
            return Inode.from_row(rows[0]) if rows else None
        row = self._db.execute(
            f"SELECT {COLS} FROM inodes WHERE sid=? AND parent=? AND name=?", (sid, parent, name)
        ).fetchone()
        return Inode.from_row(row) if row else None

    def _children(self, sid: int, parent: int, after: str | None = None) -> list[Inode]:
        if self._copy_on_write(sid):
            rows = self._db.execute(
                f"SELECT {COLS} FROM ({candidates(COLS, 'name>:after')}) c WHERE {VISIBLE} ORDER BY name",
                {"s": sid, "p": parent, "after": "" if after is None else after},
            )
            return [Inode.from_row(r) for r in rows]
        if after is None:
            rows = self._db.execute(
                f"SELECT {COLS} FROM inodes WHERE sid=? AND parent=? ORDER BY name", (sid, parent)
            )
        else:
            rows = self._db.execute(
                f"SELECT {COLS} FROM inodes WHERE sid=? AND parent=? AND name>? ORDER BY name",
                (sid, parent, after),
            )
        return [Inode.from_row(r) for r in rows]

    def _count_children(self, sid: int, parent: int) -> int:
        if self._copy_on_write(sid):
            (count,) = self._db.execute(
                f"SELECT COUNT(*) FROM ({candidates('id')}) c WHERE {VISIBLE}", {"s": sid, "p": parent}
            ).fetchone()
            return int(count)
        (count,) = self._db.execute(
            "SELECT COUNT(*) FROM inodes WHERE sid=? AND parent=?", (sid, parent)
        ).fetchone()
        return int(count)

    def _snapshot(self, root: int, name: str) -> tuple[int, int] | None:
        row = self._db.execute(
            "SELECT sid, ctime FROM snapshots WHERE root=? AND name=?", (root, name)
        ).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    def _snapshot_count(self, root: int) -> int:
        (count,) = self._db.execute("SELECT COUNT(*) FROM snapshots WHERE root=?", (root,)).fetchone()
        return int(count)

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

    def _subtree_totals(self, sid: int, inode_id: int) -> tuple[int, int, int, int]:
        """(directories, files, length, space consumed) of a subtree, the root included."""
        if self._copy_on_write(sid):
            found = self._saved_sid(sid, inode_id)
            row = self._db.execute(
                f"""WITH RECURSIVE sub(id, dir, length, repl) AS (
                     SELECT id, dir, length, repl FROM inodes WHERE sid=:root_sid AND id=:id
                     UNION ALL
                     {saved_children_of_sub("c.id, c.dir, c.length, c.repl")}
                   )
                   SELECT COALESCE(SUM(dir),0), COALESCE(SUM(1-dir),0),
                          COALESCE(SUM(CASE WHEN dir THEN 0 ELSE length END),0),
                          COALESCE(SUM(CASE WHEN dir THEN 0 ELSE length*repl END),0) FROM sub""",
                {"s": sid, "id": inode_id, "root_sid": -1 if found is None else found},
            ).fetchone()
            return int(row[0]), int(row[1]), int(row[2]), int(row[3])
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

    def _resolve(self, parts: Parts) -> Resolved:
        self._check_open()
        result = Resolved(parts)
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

    def _enter_snapshot(self, result: Resolved, node: Inode, index: int) -> tuple[Inode, int] | None:
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

    def _resolve_live(self, parts: Parts) -> Resolved:
        """Resolve a path that is about to be modified: snapshot paths are read-only."""
        resolved = self._resolve(parts)
        if resolved.read_only:
            raise SnapshotAccessControl(f"{READ_ONLY_SNAPSHOT}: {resolved.path}")
        return resolved

    @staticmethod
    def _existing(resolved: Resolved, message: str) -> Inode:
        if resolved.node is None:
            raise FileNotFound(message.format(path=resolved.path))
        return resolved.node

    def _file(self, resolved: Resolved) -> Inode:
        node = self._existing(resolved, "File does not exist: {path}")
        if node.is_dir:
            raise FileNotFound(f"Path is not a file: {resolved.path}")
        return node

    def _check_not_through_file(self, resolved: Resolved) -> None:
        if resolved.blocker is not None:
            raise ParentNotDirectory(f"Parent path is not a directory: {path_str(resolved.blocker)}")

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
