"""HDFS's file checksum, ``MD5MD5CRC32FileChecksum``, computed from a local byte range.

A DataNode keeps one CRC per ``bytesPerCRC`` (512) bytes of each block and answers a block
checksum request with the MD5 of those CRCs (4 bytes each, big-endian, the last one covering a
partial chunk). The client then takes the MD5 of the concatenated block MD5s. The serialised
checksum is ``int32 bytesPerCRC`` + ``int64 crcPerBlock`` + the 16-byte MD5, 28 bytes, and
``crcPerBlock`` is only filled in when the file has more than one block (it stays 0 otherwise),
which is why small files read ``MD5-of-0MD5-of-512CRC32``. An empty file has the fixed value
Hadoop uses: ``MD5-of-0MD5-of-0CRC32`` over 32 zero bytes.

CRC type: Hadoop's default is CRC32C; this server uses CRC32 (``zlib.crc32``, Hadoop's
"CRC32"/gzip type) and says so in the algorithm name, so checksums are comparable between files
served by this server (equal bytes and block size give equal checksums), not with a real
cluster's CRC32C checksums.
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass

BYTES_PER_CRC = 512
_READ_SIZE = 2048 * BYTES_PER_CRC  # 1 MiB, a whole number of CRC chunks


@dataclass(frozen=True)
class FileChecksum:
    """The value ``GETFILECHECKSUM`` returns: algorithm name and the 28 serialised bytes."""

    algorithm: str
    raw: bytes

    @property
    def length(self) -> int:
        return len(self.raw)


class RunningChecksum:
    """The checksum of bytes fed in order, in any piece sizes: what a DataNode keeps as it
    receives a block (its CRCs), so that GETFILECHECKSUM of a file just written is not a second
    read of it. Memory: one partial CRC chunk and a digest per block."""

    def __init__(self, block_size: int) -> None:
        self.block_size = block_size
        self.block_md5s: list[bytes] = []
        self._digest = hashlib.md5(usedforsecurity=False)
        self._in_block = 0
        self._partial = b""  # the start of a CRC chunk not yet complete

    def update(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            take = view[: self.block_size - self._in_block]
            view = view[len(take) :]
            self._in_block += len(take)
            piece = memoryview(self._partial + bytes(take)) if self._partial else take
            whole = len(piece) - len(piece) % BYTES_PER_CRC
            self._crcs(piece[:whole])
            self._partial = bytes(piece[whole:])
            if self._in_block == self.block_size:
                self._end_block()

    def _crcs(self, view: memoryview) -> None:
        if view:
            crcs = [zlib.crc32(view[i : i + BYTES_PER_CRC]) for i in range(0, len(view), BYTES_PER_CRC)]
            self._digest.update(struct.pack(f">{len(crcs)}I", *crcs))

    def _end_block(self) -> None:
        if self._partial:
            self._crcs(memoryview(self._partial))
            self._partial = b""
        self.block_md5s.append(self._digest.digest())
        self._digest = hashlib.md5(usedforsecurity=False)
        self._in_block = 0

    def result(self) -> FileChecksum:
        """The file's checksum; call once, after the last bytes."""
        if self._in_block:
            self._end_block()
        if not self.block_md5s:
            md5 = hashlib.md5(bytes(32), usedforsecurity=False).digest()
            return FileChecksum("MD5-of-0MD5-of-0CRC32", struct.pack(">iq", 0, 0) + md5)
        crc_per_block = self.block_size // BYTES_PER_CRC if len(self.block_md5s) > 1 else 0
        file_md5 = hashlib.md5(b"".join(self.block_md5s), usedforsecurity=False).digest()
        algorithm = f"MD5-of-{crc_per_block}MD5-of-{BYTES_PER_CRC}CRC32"
        return FileChecksum(algorithm, struct.pack(">iq", BYTES_PER_CRC, crc_per_block) + file_md5)


def compute(fd: int, length: int, block_size: int) -> FileChecksum:
    """Checksum of the first ``length`` bytes of ``fd`` laid out in blocks of ``block_size``.

    Reads the range once in 1 MiB pieces; memory use is bounded whatever the file size.
    """
    running = RunningChecksum(block_size)
    done = 0
    while done < length:
        chunk = os.pread(fd, min(_READ_SIZE, length - done), done)
        if not chunk:
            raise OSError(f"short read at offset {done}")
        running.update(chunk)
        done += len(chunk)
    return running.result()


class ChecksumCache:
    """Bounded LRU of computed checksums, keyed by what identifies the bytes (blob, length, block size).

    A blob's first ``length`` bytes never change (appends only extend, truncation copies), so the
    key is enough to reuse a result; safe to share between threads.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._items: OrderedDict[tuple[int, int, int], FileChecksum] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, int, int]) -> FileChecksum | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple[int, int, int], value: FileChecksum) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)
