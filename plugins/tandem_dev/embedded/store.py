"""Durable state of the embedded NameNode: one SQLite database and a directory of blobs.

Layout under the cluster root::

    namespace.db        SQLite (WAL): inodes (with their ACLs and extended attributes) of the
                        current tree, and as they were in each snapshot where they have changed
                        since (copy-on-write), quotas
    blobs/<xx>/<id>     file contents, one local file per blob, named by number only
    tmp/<id>            uploads in flight; emptied at start-up

HDFS paths never become local paths: a blob is named by an integer, so no HDFS name (``..``,
a symlink, an encoded slash) can reach outside ``blobs/``, and blobs are opened with
``O_NOFOLLOW`` so a symlink planted there is refused rather than followed.

A blob's first ``length`` bytes, for any length some inode row records, never change: appends
only add bytes past every recorded length, truncation writes a new blob. That is what lets a
snapshot share a blob with the live file and still read its own frozen bytes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS inodes (
    sid INTEGER NOT NULL,          -- 0: current tree; otherwise the snapshot id
    id INTEGER NOT NULL,           -- the HDFS inode id (fileId), stable for the inode's life
    parent INTEGER NOT NULL,
    name TEXT NOT NULL,
    dir INTEGER NOT NULL,
    owner TEXT NOT NULL,
    grp TEXT NOT NULL,
    perm INTEGER NOT NULL,
    acl TEXT,
    mtime INTEGER NOT NULL,
    atime INTEGER NOT NULL,
    repl INTEGER NOT NULL,
    bsize INTEGER NOT NULL,
    length INTEGER NOT NULL,
    blob INTEGER,
    nsq INTEGER NOT NULL DEFAULT -1,
    ssq INTEGER NOT NULL DEFAULT -1,
    xattrs TEXT,                   -- extended attributes, JSON (see tandem_dev.embedded.xattrs)
    born INTEGER NOT NULL DEFAULT 0, -- the newest snapshot id when the inode was created
    PRIMARY KEY (sid, id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS inodes_child ON inodes (sid, parent, name);
CREATE INDEX IF NOT EXISTS inodes_blob ON inodes (blob) WHERE blob IS NOT NULL;
CREATE TABLE IF NOT EXISTS snapshottable (id INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS snapshots (
    sid INTEGER PRIMARY KEY,
    root INTEGER NOT NULL,
    name TEXT NOT NULL,
    ctime INTEGER NOT NULL,
    UNIQUE (root, name)
);
-- every change to the current tree, in order; snapshots record their position (tandem_dev.embedded.journal)
CREATE TABLE IF NOT EXISTS journal (seq INTEGER PRIMARY KEY AUTOINCREMENT, id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS snapshot_marks (sid INTEGER PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TRIGGER IF NOT EXISTS journal_insert AFTER INSERT ON inodes WHEN NEW.sid=0
BEGIN INSERT INTO journal (id) VALUES (NEW.id); END;
CREATE TRIGGER IF NOT EXISTS journal_update AFTER UPDATE ON inodes WHEN NEW.sid=0 OR OLD.sid=0
BEGIN INSERT INTO journal (id) VALUES (OLD.id); INSERT INTO journal (id) VALUES (NEW.id); END;
CREATE TRIGGER IF NOT EXISTS journal_delete AFTER DELETE ON inodes WHEN OLD.sid=0
BEGIN INSERT INTO journal (id) VALUES (OLD.id); END;
CREATE TABLE IF NOT EXISTS quota_usage (
    id INTEGER PRIMARY KEY,        -- a current directory with a namespace or space quota
    ns_used INTEGER NOT NULL,
    ss_used INTEGER NOT NULL
);
"""
# The inode as it was, under the newest snapshot, unless it is younger than that snapshot, already
# saved there, or the newest snapshot is a full copy (taken before copy-on-write: cow_from).
_SAVE = """INSERT OR IGNORE INTO inodes (sid, id, parent, name, dir, owner, grp, perm, acl, mtime, atime,
    repl, bsize, length, blob, nsq, ssq, xattrs, born)
  SELECT last.value, OLD.id, OLD.parent, OLD.name, OLD.dir, OLD.owner, OLD.grp, OLD.perm, OLD.acl,
    OLD.mtime, OLD.atime, OLD.repl, OLD.bsize, OLD.length, OLD.blob, OLD.nsq, OLD.ssq, OLD.xattrs, OLD.born
  FROM meta last JOIN meta cow ON cow.key='cow_from'
  WHERE last.key='last_snapshot_id' AND last.value > OLD.born AND last.value >= cow.value;"""
# after _migrate: a database written before copy-on-write gets the ``born`` column first
COPY_ON_WRITE = """
-- copy-on-write snapshots (tandem_dev.embedded.namespace.snapshot_ops): the first change to a
-- current inode after a snapshot saves the inode as it was, under the newest snapshot's id
CREATE INDEX IF NOT EXISTS inodes_saved_id ON inodes (id, sid) WHERE sid>0;
CREATE INDEX IF NOT EXISTS inodes_saved_child ON inodes (parent, sid) WHERE sid>0;
CREATE TRIGGER IF NOT EXISTS saved_update BEFORE UPDATE ON inodes WHEN OLD.sid=0
BEGIN {save} END;
CREATE TRIGGER IF NOT EXISTS saved_delete BEFORE DELETE ON inodes WHEN OLD.sid=0
BEGIN {save} END;
""".replace("{save}", _SAVE)


def connect(path: Path) -> sqlite3.Connection:
    """Open the namespace database; the caller serialises all use behind one lock."""
    db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    # WAL + NORMAL: a commit is atomic and survives a process crash; only an OS crash may lose
    # the last commits, which is acceptable for an embedded test and demo cluster.
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA temp_store=MEMORY")
    db.execute("PRAGMA cache_size=-65536")
    db.executescript(SCHEMA)
    _migrate(db)
    db.executescript(COPY_ON_WRITE)
    return db


def _migrate(db: sqlite3.Connection) -> None:
    """Bring a database written by an older version up to SCHEMA (columns added since)."""
    columns = {str(row[1]) for row in db.execute("PRAGMA table_info(inodes)")}
    if "xattrs" not in columns:
        db.execute("ALTER TABLE inodes ADD COLUMN xattrs TEXT")
    if "born" not in columns:
        db.execute("ALTER TABLE inodes ADD COLUMN born INTEGER NOT NULL DEFAULT 0")
    # Snapshots taken before copy-on-write are full copies of their subtree: they keep being read
    # as such, and the first snapshot taken from now on starts the copy-on-write ones.
    db.execute(
        "INSERT OR IGNORE INTO meta SELECT 'cow_from', value + 1 FROM meta WHERE key='last_snapshot_id'"
    )


class BlobStore:
    """Blob files under ``<root>/blobs``; every method is safe to call from any thread."""

    def __init__(self, root: Path) -> None:
        self.blobs = root / "blobs"
        self.tmp = root / "tmp"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        for shard in range(256):  # made once here so that installing a blob is a bare rename
            (self.blobs / f"{shard:02x}").mkdir(exist_ok=True)

    def path(self, blob: int) -> Path:
        return self.blobs / f"{blob & 0xFF:02x}" / str(blob)

    def temp_path(self, blob: int) -> Path:
        return self.tmp / str(blob)

    def create_temp(self, blob: int) -> int:
        """A new, empty temporary blob open for writing (fails if it already exists)."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        return os.open(self.temp_path(blob), flags, 0o600)

    def install(self, blob: int) -> None:
        """Move a finished temporary blob into place (atomic rename on the same filesystem)."""
        os.rename(self.temp_path(blob), self.path(blob))

    def open_read(self, blob: int) -> int:
        return os.open(self.path(blob), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)

    def open_write(self, blob: int) -> int:
        return os.open(self.path(blob), os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)

    def copy_prefix(self, source: int, target: int, length: int) -> None:
        """Write the first ``length`` bytes of ``source`` as the new blob ``target``."""
        src = self.open_read(source)
        try:
            dst = self.create_temp(target)
            try:
                _copy_range(src, dst, length)
            finally:
                os.close(dst)
        finally:
            os.close(src)
        self.install(target)

    def discard_temp(self, blob: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.temp_path(blob))

    def unlink(self, blob: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(blob))

    def clear_temp(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True, exist_ok=True)

    def sweep(self, referenced: set[int]) -> int:
        """Delete blob files no inode refers to (left by a crash between commit and unlink)."""
        removed = 0
        for shard in self.blobs.iterdir():
            if not shard.is_dir() or shard.is_symlink():
                continue
            for entry in shard.iterdir():
                if entry.name.isdigit() and int(entry.name) in referenced:
                    continue
                with contextlib.suppress(OSError):  # a stray directory is left for a human to look at
                    entry.unlink()
                    removed += 1
        return removed


def _copy_range(src: int, dst: int, length: int) -> None:
    offset = 0
    while offset < length:
        try:
            copied = os.copy_file_range(src, dst, length - offset, offset, offset)
        except OSError:
            copied = 0
        if copied <= 0:
            chunk = os.pread(src, min(1 << 20, length - offset), offset)
            if not chunk:
                raise OSError("blob shorter than its recorded length")
            copied = os.pwrite(dst, chunk, offset)
        offset += copied
