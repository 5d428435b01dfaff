"""HDFS file checksums (MD5MD5CRC32FileChecksum) of the embedded WebHDFS server.

HDFS: each DataNode answers the MD5 of its block's CRCs (one big-endian CRC per 512 bytes, the
last one over a partial chunk); the client takes the MD5 of the block MD5s. The value serialises
as ``int32 bytesPerCRC, int64 crcPerBlock, 16-byte MD5``; ``crcPerBlock`` is only set when the
file has more than one block (FileChecksumHelper). The expected values here are computed
independently with hashlib/zlib/struct.
"""

from __future__ import annotations

import hashlib
import os
import random
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tandem_dev.embedded.checksum import ChecksumCache, FileChecksum, compute

MiB = 1 << 20


def md5(data: bytes) -> bytes:
    return hashlib.md5(data, usedforsecurity=False).digest()


def crc(data: bytes) -> bytes:
    return struct.pack(">I", zlib.crc32(data))


def reference(data: bytes, block_size: int) -> FileChecksum:
    """HDFS's MD5-of-MD5-of-CRC32, written out plainly."""
    blocks = [data[i : i + block_size] for i in range(0, len(data), block_size)]
    block_md5s = [md5(b"".join(crc(b[j : j + 512]) for j in range(0, len(b), 512))) for b in blocks]
    crc_per_block = block_size // 512 if len(blocks) > 1 else 0
    return FileChecksum(
        f"MD5-of-{crc_per_block}MD5-of-512CRC32",
        struct.pack(">iq", 512, crc_per_block) + md5(b"".join(block_md5s)),
    )


@pytest.fixture
def checksum_of(tmp_path: Path):
    """``checksum_of(data, block_size[, length])``: the module's checksum of a file holding ``data``."""

    @contextmanager
    def opened(data: bytes) -> Iterator[int]:
        path = tmp_path / f"blob-{len(list(tmp_path.iterdir()))}"
        path.write_bytes(data)
        fd = os.open(path, os.O_RDONLY)
        try:
            yield fd
        finally:
            os.close(fd)

    def checksum(data: bytes, block_size: int, length: int | None = None) -> FileChecksum:
        with opened(data) as fd:
            return compute(fd, len(data) if length is None else length, block_size)

    return checksum


def data(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


# ---------------------------------------------------------------------------------- values


def test_an_empty_file_has_hadoops_fixed_checksum():
    # TestDistributedFileSystem: "MD5-of-0MD5-of-0CRC32:70bc8f4b72a86921468bf8e8441dce51"
    result = compute(-1, 0, 128 * MiB)
    assert result.algorithm == "MD5-of-0MD5-of-0CRC32"
    assert result.raw.hex() == "00000000" + "0000000000000000" + "70bc8f4b72a86921468bf8e8441dce51"
    assert result.length == 28


def test_a_tiny_file_is_the_md5_of_the_md5_of_its_one_crc(checksum_of):
    content = b"hello, hdfs\n"
    block_md5 = md5(struct.pack(">I", zlib.crc32(content)))
    expected = struct.pack(">i", 512) + struct.pack(">q", 0) + md5(block_md5)
    result = checksum_of(content, 128 * MiB)
    assert (result.algorithm, result.raw, result.length) == ("MD5-of-0MD5-of-512CRC32", expected, 28)


def test_a_partial_last_chunk_gets_its_own_crc(checksum_of):
    content = data(1300)
    crcs = crc(content[:512]) + crc(content[512:1024]) + crc(content[1024:])
    assert checksum_of(content, 128 * MiB).raw == struct.pack(">iq", 512, 0) + md5(md5(crcs))


def test_a_two_block_file_combines_the_block_md5s_and_records_crc_per_block(checksum_of):
    content = data(1100)
    first = md5(crc(content[:512]) + crc(content[512:1024]))
    second = md5(crc(content[1024:]))
    result = checksum_of(content, 1024)
    assert result.algorithm == "MD5-of-2MD5-of-512CRC32"
    assert result.raw == struct.pack(">iq", 512, 2) + md5(first + second)


@pytest.mark.parametrize(
    ("size", "block_size"),
    [
        (1, 512),
        (511, 512),
        (512, 512),
        (513, 512),
        (5 * 512, 1024),
        (MiB + 700, 128 * MiB),  # one block read in more than one 1 MiB piece
        (2 * MiB + 1, MiB),  # blocks the size of a read piece
        (MiB + 3000, 512 * 1024 + 512),  # blocks not aligned on read pieces
    ],
)
def test_checksum_matches_an_independent_computation(checksum_of, size, block_size):
    content = data(size, seed=size)
    assert checksum_of(content, block_size) == reference(content, block_size)


@pytest.mark.parametrize(("block_size", "crc_per_block"), [(1024, 2), (4096, 8), (64 * 1024, 128)])
def test_algorithm_name_gives_crc_per_block_of_a_multi_block_file(checksum_of, block_size, crc_per_block):
    result = checksum_of(data(block_size + 1), block_size)
    assert result.algorithm == f"MD5-of-{crc_per_block}MD5-of-512CRC32"
    assert struct.unpack(">iq16s", result.raw)[:2] == (512, crc_per_block)


def test_only_the_first_length_bytes_count(checksum_of):
    content = data(3000)
    assert checksum_of(content, 1024, length=2000) == reference(content[:2000], 1024)


def test_a_file_shorter_than_its_length_is_a_short_read(checksum_of):
    with pytest.raises(OSError, match="short read"):
        checksum_of(data(100), 1024, length=200)


# ---------------------------------------------------------------------------------- equality


def test_equal_bytes_and_block_size_give_equal_checksums(checksum_of):
    assert checksum_of(data(5000, seed=1), 1024) == checksum_of(bytes(data(5000, seed=1)), 1024)


@pytest.mark.parametrize("position", [0, 511, 512, 4999])
def test_one_changed_byte_changes_the_checksum(checksum_of, position):
    content = data(5000)
    changed = bytearray(content)
    changed[position] ^= 0x01
    assert checksum_of(bytes(changed), 1024) != checksum_of(content, 1024)


def test_same_bytes_in_other_blocks_give_another_checksum(checksum_of):
    content = data(5000)
    assert checksum_of(content, 1024) != checksum_of(content, 2048)


def test_a_single_block_file_has_the_same_checksum_whatever_the_block_size(checksum_of):
    # HDFS leaves crcPerBlock at 0 for one block, so nothing depends on the block size
    content = data(1000)
    assert checksum_of(content, 1024) == checksum_of(content, 128 * MiB)


def test_extending_a_file_changes_its_checksum(checksum_of):
    content = data(2048)
    assert checksum_of(content + b"x", 1024) != checksum_of(content, 1024)


# ---------------------------------------------------------------------------------- cache


def _value(tag: str) -> FileChecksum:
    return FileChecksum(tag, bytes(28))


def test_cache_returns_what_was_put_under_the_key():
    cache = ChecksumCache()
    cache.put((1, 100, 1024), _value("a"))
    assert cache.get((1, 100, 1024)) == _value("a")
    assert cache.get((1, 100, 2048)) is None


@pytest.mark.parametrize("other", [(2, 100, 1024), (1, 101, 1024), (1, 100, 2048)])
def test_cache_keys_differing_in_blob_length_or_block_size_do_not_collide(other):
    cache = ChecksumCache()
    cache.put((1, 100, 1024), _value("a"))
    cache.put(other, _value("b"))
    assert (cache.get((1, 100, 1024)), cache.get(other)) == (_value("a"), _value("b"))


def test_cache_evicts_the_least_recently_used_entry():
    cache = ChecksumCache(capacity=2)
    cache.put((1, 1, 1), _value("a"))
    cache.put((2, 1, 1), _value("b"))
    assert cache.get((1, 1, 1)) == _value("a")  # (1, 1, 1) is now the most recent
    cache.put((3, 1, 1), _value("c"))
    assert [cache.get((i, 1, 1)) for i in (1, 2, 3)] == [_value("a"), None, _value("c")]


def test_cache_put_of_a_known_key_replaces_it_without_evicting_others():
    cache = ChecksumCache(capacity=2)
    cache.put((1, 1, 1), _value("a"))
    cache.put((2, 1, 1), _value("b"))
    cache.put((1, 1, 1), _value("a2"))
    assert [cache.get((i, 1, 1)) for i in (1, 2)] == [_value("a2"), _value("b")]
