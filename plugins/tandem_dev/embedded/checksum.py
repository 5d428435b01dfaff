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


def _block_md5(fd: int, start: int, length: int) -> bytes:
    digest = hashlib.md5(usedforsecurity=False)
    done = 0
    while done < length:
        chunk = os.pread(fd, min(_READ_SIZE, length - done), start + done)
        if not chunk:
            raise OSError(f"short read at offset {start + done}")
        view = memoryview(chunk)
        crcs = [zlib.crc32(view[i : i + BYTES_PER_CRC]) for i in range(0, len(view), BYTES_PER_CRC)]
        digest.update(struct.pack(f">{len(crcs)}I", *crcs))
        done += len(chunk)
    return digest.digest()


def compute(fd: int, length: int, block_size: int) -> FileChecksum:
    """Checksum of the first ``length`` bytes of ``fd`` laid out in blocks of ``block_size``.

    Reads the range once in 1 MiB pieces; memory use is bounded whatever the file size.
    """
    if length == 0:
        md5 = hashlib.md5(bytes(32), usedforsecurity=False).digest()
        return FileChecksum("MD5-of-0MD5-of-0CRC32", struct.pack(">iq", 0, 0) + md5)
    block_md5s = [
        _block_md5(fd, start, min(block_size, length - start)) for start in range(0, length, block_size)
    ]
    crc_per_block = block_size // BYTES_PER_CRC if len(block_md5s) > 1 else 0
    file_md5 = hashlib.md5(b"".join(block_md5s), usedforsecurity=False).digest()
    algorithm = f"MD5-of-{crc_per_block}MD5-of-{BYTES_PER_CRC}CRC32"
    return FileChecksum(algorithm, struct.pack(">iq", BYTES_PER_CRC, crc_per_block) + file_md5)


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
