"""Envelope encryption of private data on its way to the target.

Each file gets a fresh 256-bit data key (DEK); the data is sealed with AES-256-GCM in chunks, so
files of any size stream in bounded memory (one GCM message is limited to 2 GiB); the DEK is
wrapped with the plan's master key (RFC 3394 AES key wrap), as HDFS transparent encryption
keeps each file's EDEK and S3 client-side encryption its envelope.

A sealed file describes itself: it starts with :data:`MAGIC`, a two-byte length and the
envelope as JSON (the master key's id, the wrapped key, the nonce prefix, the chunk size), and
that header is the associated data of every chunk, so it cannot be altered either. Nothing
needed to decrypt lives outside the file: a store that loses or never had metadata (a copy of
an object over 5 GiB, a NAS without extended attributes, a crash between writing data and
metadata) still holds a file that decrypts, and a reader never mistakes ciphertext for
plaintext. The same envelope is also kept as metadata, for listings and operators. A plain file
that happens to start with :data:`MAGIC` is stored behind :data:`PLAIN_HEADER`, whose envelope
says ``plain``: no plain file is ever taken for a sealed one.

Chunk ``i`` is sealed under the nonce ``prefix (7 bytes) || i (4 bytes) || last (1 byte)``:
reordering, dropping or appending chunks, or cutting the file at a chunk boundary, fails
authentication instead of yielding other plaintext (the STREAM construction). The master key
never reaches the target.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from tandem.errors import TandemError

ALGORITHM = "AES-256-GCM-STREAM-1"
TAG = 16
PREFIX = 7
DEFAULT_CHUNK = 1 << 20
MAGIC = b"\x89TNDM-SEALED\r\n\x1a\n"  # 16 bytes, PNG-style: binary, and no text starts so
# metadata names (without the store's prefix)
META_ALG, META_KEK, META_KEY, META_NONCE, META_CHUNK = (
    "enc-alg",
    "enc-kek-id",
    "enc-key",
    "enc-nonce",
    "enc-chunk",
)


# A plain file whose first bytes happen to be MAGIC is stored behind this header, so that it is
# never taken for a sealed one; readers strip it (its metadata say META_ALG "plain")
PLAIN = "plain"
_PLAIN_BODY = b'{"alg":"plain"}'
PLAIN_HEADER = MAGIC + len(_PLAIN_BODY).to_bytes(2, "big") + _PLAIN_BODY


def wrap_plain(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Plain data that starts like a sealed file, behind a header that says it is plain."""
    yield PLAIN_HEADER
    yield from chunks


class KeyMismatch(TandemError):
    """The key given is not the key a file was encrypted with."""


class CorruptData(TandemError):
    """Encrypted data failed authentication: altered, reordered or truncated."""


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@dataclass(frozen=True)
class Envelope:
    """What a reader needs, besides the master key, to decrypt one object."""

    kek_id: str
    wrapped_key: bytes
    nonce_prefix: bytes
    chunk: int

    def to_meta(self) -> dict[str, str]:
        return {
            META_ALG: ALGORITHM,
            META_KEK: self.kek_id,
            META_KEY: _b64(self.wrapped_key),
            META_NONCE: _b64(self.nonce_prefix),
            META_CHUNK: str(self.chunk),
        }

    @classmethod
    def from_meta(cls, meta: Mapping[str, str]) -> Envelope | None:
        """The envelope in an object's metadata; None for an object stored in the clear."""
        if META_ALG not in meta or meta[META_ALG] == PLAIN:
            return None
        if meta[META_ALG] != ALGORITHM:
            raise CorruptData(f"unknown encryption {meta[META_ALG]!r} (this Tandem reads {ALGORITHM})")
        try:
            return cls(
                meta[META_KEK],
                base64.b64decode(meta[META_KEY], validate=True),
                base64.b64decode(meta[META_NONCE], validate=True),
                int(meta[META_CHUNK]),
            )
        except (KeyError, ValueError, binascii.Error) as exc:
            raise CorruptData(f"the encryption metadata is incomplete or damaged: {exc}") from exc

    def header(self) -> bytes:
        """The bytes a sealed file starts with (also every chunk's associated data)."""
        body = json.dumps(
            {
                "alg": ALGORITHM,
                "kek": self.kek_id,
                "key": _b64(self.wrapped_key),
                "nonce": _b64(self.nonce_prefix),
                "chunk": self.chunk,
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
        return MAGIC + len(body).to_bytes(2, "big") + body

    @classmethod
    def from_header(cls, body: bytes) -> Envelope:
        try:
            doc = json.loads(body)
            if doc["alg"] != ALGORITHM:
                raise CorruptData(f"unknown encryption {doc['alg']!r} (this Tandem reads {ALGORITHM})")
            found = cls(
                str(doc["kek"]),
                base64.b64decode(doc["key"], validate=True),
                base64.b64decode(doc["nonce"], validate=True),
                int(doc["chunk"]),
            )
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise CorruptData(f"the sealed file's header is damaged: {exc}") from exc
        if len(found.nonce_prefix) != PREFIX or not 16 <= found.chunk <= 1 << 30:
            raise CorruptData("the sealed file's header is damaged: bad nonce prefix or chunk size")
        return found

    def plain_length(self, stored: int) -> int:
        """The plaintext's length from the stored (sealed) length."""
        body = stored - len(self.header())
        chunks = max(1, -(-body // (self.chunk + TAG)))
        return max(0, body - chunks * TAG)


class MasterKey:
    """A plan's key-encryption key: 32 bytes, given as base64 or hex (an Airflow connection's
    password). Its id (a hash, not the key) is stored with each object to name the key needed."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise TandemError(f"a master key is 32 bytes (AES-256); this one has {len(key)}")
        self._key = key
        self.id = hashlib.sha256(b"tandem-kek:" + key).hexdigest()[:16]

    @classmethod
    def from_text(cls, text: str, source: str = "the key") -> MasterKey:
        text = text.strip()
        for decode in (bytes.fromhex, lambda t: base64.b64decode(t, validate=True), base64.urlsafe_b64decode):
            try:
                raw = decode(text)
            except (ValueError, binascii.Error):
                continue
            if len(raw) == 32:
                return cls(raw)
        raise TandemError(
            f"{source} is not a 32-byte key in base64 or hex; make one with `tandem gateway key`"
        )

    @staticmethod
    def generate() -> str:
        return _b64(AESGCM.generate_key(bit_length=256))

    def seal(self, chunk: int = DEFAULT_CHUNK) -> tuple[Envelope, bytes]:
        """A new envelope and its data key, for one object."""
        dek = AESGCM.generate_key(bit_length=256)
        return Envelope(self.id, aes_key_wrap(self._key, dek), os.urandom(PREFIX), chunk), dek

    def open(self, envelope: Envelope, where: str = "the file") -> bytes:
        """The data key of ``envelope``; KeyMismatch when this is not its master key."""
        if envelope.kek_id != self.id:
            raise KeyMismatch(
                f"{where} was encrypted with master key {envelope.kek_id}; the key given is {self.id}"
            )
        try:
            return aes_key_unwrap(self._key, envelope.wrapped_key)
        except InvalidUnwrap as exc:
            raise KeyMismatch(f"{where}: the master key does not unwrap its data key") from exc


def _pieces(chunks: Iterable[bytes], size: int) -> Iterator[tuple[bytes, bool]]:
    """``chunks`` re-cut into pieces of ``size`` bytes (the last may be shorter or empty), each
    with whether it is the last."""
    buffer = bytearray()
    ready: bytes | None = None
    for chunk in chunks:
        buffer += chunk
        while len(buffer) > size or (ready is None and len(buffer) == size):
            if ready is not None:
                yield ready, False
            ready = bytes(buffer[:size])
            del buffer[:size]
    if ready is not None and buffer:
        yield ready, False
        ready = None
    yield (ready if ready is not None else bytes(buffer)), True


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    if index >= 1 << 32:
        raise TandemError("file too large for one envelope (2^32 chunks)")
    return prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def encrypt(chunks: Iterable[bytes], envelope: Envelope, dek: bytes) -> Iterator[bytes]:
    """The sealed file: its header, then each chunk sealed with the header as associated data."""
    aead = AESGCM(dek)
    header = envelope.header()
    yield header
    for index, (piece, last) in enumerate(_pieces(chunks, envelope.chunk)):
        yield aead.encrypt(_nonce(envelope.nonce_prefix, index, last), piece, header)


def read_header(chunks: Iterable[bytes]) -> tuple[Envelope | None, bytes, Iterator[bytes]]:
    """Whether a stream is a sealed file: its envelope and header (None, b"" for plain data),
    and the rest of the stream (for plain data, the whole of it; for plain data stored behind
    :data:`PLAIN_HEADER`, what follows the header)."""
    source = iter(chunks)
    buffer = bytearray()

    def fill(size: int) -> bool:
        for chunk in source:
            buffer.extend(chunk)
            if len(buffer) >= size:
                return True
        return len(buffer) >= size

    def rest(skip: int) -> Iterator[bytes]:
        if len(buffer) > skip:
            yield bytes(buffer[skip:])
        yield from source

    fill(len(MAGIC) + 2)
    if bytes(buffer[: len(MAGIC)]) != MAGIC:
        return None, b"", rest(0)
    size = len(MAGIC) + 2 + int.from_bytes(buffer[len(MAGIC) : len(MAGIC) + 2], "big")
    if not fill(size):
        raise CorruptData("the sealed file ends inside its header")
    header = bytes(buffer[:size])
    if header == PLAIN_HEADER:
        return None, b"", rest(size)
    return Envelope.from_header(header[len(MAGIC) + 2 :]), header, rest(size)


def decrypt(
    chunks: Iterable[bytes], envelope: Envelope, dek: bytes, header: bytes, where: str = "the file"
) -> Iterator[bytes]:
    """The plaintext of the chunks after a sealed file's header."""
    aead = AESGCM(dek)
    for index, (piece, last) in enumerate(_pieces(chunks, envelope.chunk + TAG)):
        try:
            yield aead.decrypt(_nonce(envelope.nonce_prefix, index, last), piece, header)
        except InvalidTag as exc:
            raise CorruptData(
                f"{where}: chunk {index} fails authentication (altered, reordered or truncated)"
            ) from exc
