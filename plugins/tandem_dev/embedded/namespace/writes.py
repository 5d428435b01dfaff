"""CREATE, APPEND and TRUNCATE (HDFS's ``FSDirWriteFileOp``, ``FSDirAppendOp``,
``FSDirTruncateOp``) with HDFS's leases: one writer per file, bytes invisible until the commit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from tandem_dev.embedded.checksum import RunningChecksum
from tandem_dev.embedded.hdfs_exceptions import (
    AlreadyBeingCreated,
    FileAlreadyExists,
    FileNotFound,
    HadoopIllegalArgument,
    HdfsException,
)
from tandem_dev.embedded.namespace.directory import (
    LIVE,
    MAX_REPLICATION,
    MIN_BLOCK_SIZE,
    Resolved,
    now_ms,
    validate_name,
)
from tandem_dev.embedded.namespace.mkdir import MkdirOps
from tandem_dev.embedded.namespace.quota import QuotaLimit
from tandem_dev.embedded.namespace.values import Parts, path_str


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
    limit: QuotaLimit | None = None
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


class WriteOps(MkdirOps):
    """Writing files: a write begins, streams into its blob, then commits or aborts."""

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

    def _check_create_target(self, resolved: Resolved, overwrite: bool, *, own: bool = False) -> None:
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
