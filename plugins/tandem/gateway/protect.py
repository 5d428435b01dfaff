"""A plan's private-data rule at work: private files are sealed on their way to the target and
opened on their way back (replay to a primary, a read served by the target, ``tandem gateway
decrypt``). The primary keeps data as written.

The master key is an Airflow connection's password (``private_data.key_conn_id``), read once,
when the first private file needs it; it never reaches the target.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping

from tandem.errors import TandemError
from tandem.gateway.crypto import (
    MAGIC,
    META_ALG,
    PLAIN,
    PLAIN_HEADER,
    Envelope,
    MasterKey,
    decrypt,
    encrypt,
    read_header,
    wrap_plain,
)
from tandem.gateway.plan import PrivateData
from tandem.gateway.private import Detector, peek

log = logging.getLogger(__name__)


def load_key(conn_id: str) -> MasterKey:
    """The master key held as the password of Airflow connection ``conn_id``."""
    from airflow.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception as exc:
        raise TandemError(f"the master key's connection {conn_id!r} cannot be read: {exc}") from exc
    if not conn.password:
        raise TandemError(f"connection {conn_id!r} has no password: put the master key there")
    return MasterKey.from_text(conn.password, f"the password of connection {conn_id!r}")


class Protection:
    """Seal and open data for one plan."""

    def __init__(self, rules: PrivateData | None, key: MasterKey | None = None) -> None:
        self.rules = rules
        self.detector = (
            Detector.build(rules.words, rules.patterns, rules.images) if rules is not None else None
        )
        self._key = key
        self._lock = threading.Lock()

    @property
    def key(self) -> MasterKey:
        with self._lock:
            if self._key is None:
                if self.rules is None:
                    raise TandemError(
                        "the plan has no private_data.key_conn_id: encrypted data cannot be read"
                    )
                self._key = load_key(self.rules.key_conn_id)
            return self._key

    def seal(self, chunks: Iterable[bytes], where: str) -> tuple[dict[str, str], Iterator[bytes]]:
        """The metadata to store and the bytes to send: sealed when ``chunks`` are private; plain
        otherwise, behind a header that says so when they start like a sealed file."""
        if self.detector is None or self.rules is None:
            head, stream = peek(chunks, len(MAGIC))
            return self._plain(head, stream)
        head, stream = peek(chunks)
        why = "the plan seals every file" if self.rules.everything else self.detector.why(head)
        if why is None:
            return self._plain(head, stream)
        envelope, dek = self.key.seal(self.rules.chunk)
        log.info("%s holds private data (%s): encrypted on the target", where, why)
        return envelope.to_meta(), encrypt(stream, envelope, dek)

    @staticmethod
    def _plain(head: bytes, stream: Iterator[bytes]) -> tuple[dict[str, str], Iterator[bytes]]:
        if head.startswith(MAGIC):
            return {META_ALG: PLAIN}, wrap_plain(stream)
        return {}, stream

    def open(self, chunks: Iterable[bytes], where: str) -> Iterator[bytes]:
        """The plaintext of stored bytes: a sealed file (it says so in its header) is decrypted,
        anything else passes as it is."""
        envelope, header, rest = read_header(chunks)
        if envelope is None:
            return rest
        return decrypt(rest, envelope, self.key.open(envelope, where), header, where)

    @staticmethod
    def plain_length(meta: Mapping[str, str], stored: int) -> int:
        if meta.get(META_ALG) == PLAIN:
            return max(0, stored - len(PLAIN_HEADER))
        envelope = Envelope.from_meta(meta)
        return stored if envelope is None else envelope.plain_length(stored)
