"""The read-only operations (HDFS's ``FSDirStatAndListingOp``, ``getContentSummary``, OPEN and
GETFILECHECKSUM): each runs under the namespace lock and changes nothing.
"""

from __future__ import annotations

import os

from tandem_dev.embedded import acl as acls
from tandem_dev.embedded.checksum import FileChecksum, compute
from tandem_dev.embedded.hdfs_exceptions import EndOfFile
from tandem_dev.embedded.namespace.directory import LIVE, FsDirectory, Inode
from tandem_dev.embedded.namespace.values import (
    AclStatus,
    ContentSummary,
    FileInfo,
    Parts,
    QuotaUsage,
    ReadHandle,
)


class ReadOps(FsDirectory):
    """Status, listings, summaries, ACL status, data and checksums."""

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
        if self._copy_on_write(sid):
            return {i: self._count_children(sid, i) for i in ids}
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
