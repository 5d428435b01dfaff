"""The server side of SASL GSSAPI for the embedded metastore, as Hive's Thrift server does it.

No Python Thrift server transport speaks SASL (thrift, thrift_sasl and pure-sasl are clients), so
this is one, on ``gssapi``, for the wire ``thrift_sasl`` speaks: frames of ``>BI`` (status,
length) then the body; START with the mechanism name, OK with the client's AP-REQ, OK with the
acceptor's AP-REP (how the client authenticates the server), an empty OK back, the server's
offer of a quality of protection wrapped with the context (here ``auth`` only: integrity and
privacy are not offered), the client's choice wrapped back, COMPLETE. After that every Thrift
message travels as a 4-byte big-endian length and the bytes (``auth`` adds no wrapping).
"""

from __future__ import annotations

import contextlib
import io
import socket
import struct
from typing import Any

from thrift.transport import TTransport

START, OK, BAD, ERROR, COMPLETE = 1, 2, 3, 4, 5
QOP_AUTH = 1
MAX_BUFFER = 0xFFFFFF
MAX_NEGOTIATION_FRAME = 1 << 16
MAX_MESSAGE_FRAME = 1 << 28  # Hive's default hive.metastore.max.message.size is 100 MiB+


class SaslRefused(Exception):
    """The client did not complete a GSSAPI exchange the server's keytab accepts."""


class GssapiServerTransport(TTransport.TTransportBase):  # type: ignore[misc]
    """One accepted connection: :meth:`negotiate` first (returns the client's principal), then a
    framed transport for the Thrift protocol."""

    def __init__(self, conn: socket.socket, credentials: Any) -> None:
        self._conn = conn
        self._credentials = credentials
        self._rbuf = io.BytesIO()
        self._wbuf = io.BytesIO()

    # -- the exchange --------------------------------------------------------------------------
    def _recv_exact(self, count: int) -> bytes:
        chunks, left = [], count
        while left:
            chunk = self._conn.recv(left)
            if not chunk:
                raise EOFError("the client closed the connection")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _recv(self) -> tuple[int, bytes]:
        status, length = struct.unpack(">BI", self._recv_exact(5))
        # a client that does not speak SASL (a plain Thrift message starts 0x80 0x01) is refused
        # at once, as Hive's TSaslServerTransport does, never waited on for a body it will not send
        if status not in (START, OK, BAD, ERROR, COMPLETE) or length > MAX_NEGOTIATION_FRAME:
            raise self._refuse(f"not a SASL negotiation frame (status {status}, length {length})")
        return status, self._recv_exact(length)

    def _send(self, status: int, body: bytes) -> None:
        self._conn.sendall(struct.pack(">BI", status, len(body)) + body)

    def _refuse(self, message: str) -> SaslRefused:
        with contextlib.suppress(OSError):
            self._send(BAD, message.encode())
        return SaslRefused(message)

    def negotiate(self) -> str:
        """Run the exchange; the client's principal, or :class:`SaslRefused`."""
        import gssapi
        from gssapi.raw.misc import GSSError

        status, mechanism = self._recv()
        if status != START or mechanism != b"GSSAPI":
            raise self._refuse(f"expected START GSSAPI, got status {status} {mechanism[:20]!r}")
        status, token = self._recv()
        if status != OK:
            raise self._refuse(f"expected the initial response, got status {status}")
        try:
            context = gssapi.SecurityContext(creds=self._credentials, usage="accept")
            answer = context.step(token)
            while not context.complete:
                self._send(OK, answer or b"")
                status, token = self._recv()
                answer = context.step(token)
            if answer:  # the AP-REP: the client checks it, then answers with an empty message
                self._send(OK, answer)
                self._recv()
            offer = struct.pack("!I", QOP_AUTH << 24 | MAX_BUFFER)
            self._send(OK, context.wrap(offer, False).message)
            status, chosen = self._recv()
            plain = context.unwrap(chosen).message
        except GSSError as exc:
            raise self._refuse(f"GSSAPI: {exc}") from exc
        if status != OK or len(plain) < 4 or plain[0] != QOP_AUTH:
            raise self._refuse("the client chose a quality of protection this server does not offer")
        self._send(COMPLETE, b"")
        return str(context.initiator_name)

    # -- the framed transport ------------------------------------------------------------------
    def isOpen(self) -> bool:
        return True

    def read(self, sz: int) -> bytes:
        data = self._rbuf.read(sz)
        if data:
            return data
        (length,) = struct.unpack(">I", self._recv_exact(4))
        if length > MAX_MESSAGE_FRAME:
            raise SaslRefused(f"a {length}-byte frame is larger than this server takes")
        self._rbuf = io.BytesIO(self._recv_exact(length))
        return self._rbuf.read(sz)

    def write(self, buf: bytes) -> None:
        self._wbuf.write(buf)

    def flush(self) -> None:
        data = self._wbuf.getvalue()
        self._wbuf = io.BytesIO()
        self._conn.sendall(struct.pack(">I", len(data)) + data)

    def close(self) -> None:
        self._conn.close()
