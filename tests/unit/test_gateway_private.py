"""Private-data detection and the envelope encryption of the gateway's targets (pure)."""

from __future__ import annotations

import base64
import itertools

import pytest

from tandem.errors import TandemError
from tandem.gateway.crypto import (
    MAGIC,
    META_ALG,
    TAG,
    CorruptData,
    Envelope,
    KeyMismatch,
    MasterKey,
    decrypt,
    encrypt,
    read_header,
)
from tandem.gateway.private import HEAD, Detector, peek

DETECTOR = Detector.build(
    ["passport", "Salary"], ["id_card_cn", "phone_cn", "email", "credit_card", r"EMP-\d{6}"], True
)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (b"my SALARY is 10", "the word 'salary'"),
        (b"Passport: E1234", "the word 'passport'"),
        (b"id 11010519491231002X here", "a match of id_card_cn"),
        (b"id 440524188001010014;", "a match of id_card_cn"),
        (b"call +86 13812345678", "a match of phone_cn"),
        (b"mail a.b@example.com", "a match of email"),
        (b"card 4111 1111 1111 1111", "a match of credit_card"),
        (b"card 5500-0000-0000-0004", "a match of credit_card"),
        (b"staff EMP-123456", r"a match of EMP-\d{6}"),
        (bytes.fromhex("89504e470d0a1a0a") + b"\x00" * 64, "an image (image/png)"),
        (bytes.fromhex("ffd8ffe000104a464946") + b"\x00" * 64, "an image (image/jpeg)"),
        (b"GIF89a" + b"\x00" * 64, "an image (image/gif)"),
        # UTF-16, as Excel's "Unicode text" and Windows tools export: with a byte-order mark or not
        ("name\tpassport\nAna\tP1234567\n".encode("utf-16"), "the word 'passport'"),
        ("staff list: EMP-123456, Ana".encode("utf-16-le"), r"a match of EMP-\d{6}"),
        ("mail to a.b@example.com please".encode("utf-16-be"), "a match of email"),
    ],
)
def test_private_data_is_recognised(text: bytes, why: str) -> None:
    assert DETECTOR.why(text) == why


@pytest.mark.parametrize(
    "text",
    [
        b"hello world",
        b"id 110105194912310021 (bad check digit)",
        b"id 11010519491331002X (no month 13)",
        b"call 12812345678 (no such mobile prefix)",
        b"call 138123456789 (twelve digits)",
        b"card 4111 1111 1111 1112 (fails Luhn)",
        b"order 1234567890123",
        b"user@localhost is no address",
        b"\x00\x01 binary with salary inside is not text",
    ],
)
def test_clean_data_is_not_taken_for_private(text: bytes) -> None:
    assert DETECTOR.why(text) is None


def test_images_can_be_exempted_and_words_are_case_insensitive() -> None:
    png = bytes.fromhex("89504e470d0a1a0a") + b"\x00" * 64
    assert Detector.build([], [], images=False).why(png) is None
    assert Detector.build(["PaSsPoRt"], [], images=False).why(b"PASSPORT") == "the word 'passport'"


def test_peek_returns_the_head_and_the_whole_stream() -> None:
    chunks = [b"a" * 700_000, b"b" * 700_000, b"c" * 10]
    head, stream = peek(iter(chunks))
    assert head == (b"a" * 700_000 + b"b" * 700_000)[:HEAD]
    assert b"".join(stream) == b"".join(chunks)
    head, stream = peek(iter([]))
    assert head == b"" and b"".join(stream) == b""


KEY = MasterKey.from_text(MasterKey.generate())


def _split(data: bytes, sizes: list[int]) -> list[bytes]:
    out, pos = [], 0
    for size in itertools.cycle(sizes):
        if pos >= len(data):
            return out
        out.append(data[pos : pos + size])
        pos += size
    return out


@pytest.mark.parametrize("length", [0, 1, 15, 16, 17, 31, 32, 33, 1000])
@pytest.mark.parametrize("pieces", [[1], [7, 3], [100]])
def test_sealed_chunks_round_trip_at_every_boundary(length: int, pieces: list[int]) -> None:
    data = bytes(i % 251 for i in range(length))
    envelope, dek = KEY.seal(16)
    sealed = b"".join(encrypt(_split(data, pieces) or [b""], envelope, dek))
    header = envelope.header()
    assert sealed.startswith(MAGIC) and sealed.startswith(header)
    assert len(sealed) == len(header) + length + TAG * max(1, -(-length // 16))
    assert envelope.plain_length(len(sealed)) == length
    found, read, rest = read_header(_split(sealed, [5, 11]))
    assert found == envelope and read == header  # the file describes itself: no metadata needed
    assert b"".join(decrypt(rest, found, KEY.open(found), read)) == data


@pytest.mark.parametrize("data", [b"", b"short", MAGIC[:10], b"x" * 100, MAGIC[:-1] + b"?" + b"tail"])
def test_plain_data_passes_the_header_check_unchanged(data: bytes) -> None:
    found, header, rest = read_header(_split(data, [3]))
    assert (found, header) == (None, b"") and b"".join(rest) == data


def test_every_file_gets_its_own_key_and_nonces() -> None:
    first, dek1 = KEY.seal()
    second, dek2 = KEY.seal()
    assert dek1 != dek2 and first.nonce_prefix != second.nonce_prefix
    assert b"".join(encrypt([b"same"], first, dek1)) != b"".join(encrypt([b"same"], second, dek2))


def test_tampering_truncation_and_reordering_fail_authentication() -> None:
    envelope, dek = KEY.seal(16)
    sealed = b"".join(encrypt([bytes(range(64))], envelope, dek))  # four chunks of 16 + tags
    header = envelope.header()
    body = sealed[len(header) :]
    chunks = [body[i : i + 32] for i in range(0, len(body), 32)]
    for broken in (
        body[:-1] + bytes([body[-1] ^ 1]),  # a flipped bit
        b"".join(chunks[:2]),  # cut at a chunk boundary
        b"".join([chunks[1], chunks[0], *chunks[2:]]),  # reordered
        body + chunks[0],  # a chunk appended
    ):
        with pytest.raises(CorruptData):
            b"".join(decrypt([broken], envelope, dek, header))
    # the header is every chunk's associated data: another chunk size in it fails too
    other = Envelope(envelope.kek_id, envelope.wrapped_key, envelope.nonce_prefix, 32)
    with pytest.raises(CorruptData):
        b"".join(decrypt([body], envelope, dek, other.header()))
    with pytest.raises(CorruptData, match="header is damaged"):
        read_header([MAGIC + b"\x00\x05{bad}"])
    with pytest.raises(CorruptData, match="ends inside its header"):
        read_header([header[:-3]])


def test_a_wrong_master_key_is_refused_by_name_not_by_garbage() -> None:
    envelope, _ = KEY.seal()
    other = MasterKey.from_text(MasterKey.generate())
    with pytest.raises(KeyMismatch, match=f"master key {KEY.id}"):
        other.open(envelope, "/events/a")
    forged = Envelope(other.id, envelope.wrapped_key, envelope.nonce_prefix, envelope.chunk)
    with pytest.raises(KeyMismatch, match="does not unwrap"):
        other.open(forged)


def test_the_envelope_travels_as_metadata() -> None:
    envelope, _ = KEY.seal(4096)
    meta = envelope.to_meta()
    assert meta[META_ALG] == "AES-256-GCM-STREAM-1" and all(len(v) < 200 for v in meta.values())
    assert Envelope.from_meta(meta) == envelope
    assert Envelope.from_meta({"written-ms": "1"}) is None
    with pytest.raises(CorruptData):
        Envelope.from_meta({**meta, "enc-key": "%%%"})
    with pytest.raises(CorruptData, match="unknown encryption"):
        Envelope.from_meta({**meta, META_ALG: "ROT13"})


@pytest.mark.parametrize(
    "text",
    [
        base64.b64encode(b"k" * 32).decode(),
        (b"k" * 32).hex(),
        base64.urlsafe_b64encode(b"\xff" * 32).decode(),
    ],
)
def test_master_keys_are_read_in_base64_or_hex(text: str) -> None:
    assert len(MasterKey.from_text(text).id) == 16


@pytest.mark.parametrize("text", ["", "short", base64.b64encode(b"k" * 16).decode()])
def test_a_key_of_the_wrong_size_is_refused(text: str) -> None:
    with pytest.raises(TandemError, match="32-byte key"):
        MasterKey.from_text(text)


def test_a_plan_may_seal_every_file() -> None:
    from tandem.gateway.plan import PrivateData
    from tandem.gateway.protect import Protection

    key = MasterKey.from_text(MasterKey.generate())
    parquet = b"PAR1" + bytes(range(256)) * 10  # binary: never looked into
    selective = Protection(PrivateData(words=["salary"], key_conn_id="k"), key)
    meta, stream = selective.seal([parquet], "/f.parquet")
    assert meta == {} and b"".join(stream) == parquet
    sealing = Protection(PrivateData(everything=True, key_conn_id="k"), key)
    meta, stream = sealing.seal([parquet], "/f.parquet")
    sealed = b"".join(stream)
    assert meta[META_ALG] and sealed.startswith(MAGIC)
    assert b"".join(sealing.open([sealed], "/f.parquet")) == parquet


@pytest.mark.parametrize("rules", [None, {"words": ["salary"], "key_conn_id": "k"}])
@pytest.mark.parametrize("pieces", [[1], [3, 40], [16, 1, 1000]])
def test_a_plain_file_that_starts_like_a_sealed_one_reads_back_as_written(
    rules: dict[str, object] | None, pieces: list[int]
) -> None:
    """A sealed file archived through the gateway (or any file that happens to start with the
    magic bytes) is stored behind a header saying it is plain, never taken for a sealed one."""
    from tandem.gateway.plan import PrivateData
    from tandem.gateway.protect import Protection

    data = MAGIC + b"\x00\x05hello, this is just data" + bytes(range(256)) * 4
    protection = Protection(PrivateData.model_validate(rules) if rules else None, KEY)
    meta, stream = protection.seal(_split(data, pieces), "/archive/f.sealed")
    stored = b"".join(stream)
    assert meta == {META_ALG: "plain"} and stored != data
    assert Protection.plain_length(meta, len(stored)) == len(data)
    assert b"".join(protection.open(_split(stored, [7, 7, 7]), "/archive/f.sealed")) == data
    assert b"".join(Protection(None).open([stored], "/archive/f.sealed")) == data  # no key needed
    # anything else is stored exactly as written, as before
    meta, stream = protection.seal([b"plain text"], "/f.txt")
    assert (meta, b"".join(stream)) == ({}, b"plain text")
