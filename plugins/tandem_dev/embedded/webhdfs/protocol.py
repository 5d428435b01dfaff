"""WebHDFS requests and answers as the embedded server sees them: the request target and its
parameters, the body (Content-Length or chunked), the cluster a request reached, and the
response every handler returns. A handler is a function ``Request -> Response``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tandem_dev.embedded.hdfs_exceptions import HdfsException, IllegalArgument, InvalidPath
from tandem_dev.embedded.namespace import Namespace, Parts, ReadHandle, path_str
from tandem_dev.embedded.spnego import Spnego

PREFIX = "/webhdfs/v1"
DEFAULT_USER = "dr.who"  # hadoop.http.staticuser.user


class NotWebHdfs(Exception):
    """The request target is not under /webhdfs/v1."""


class BodyReader:
    """The request body, with Content-Length or chunked transfer coding, read in bounded pieces."""

    def __init__(self, rfile: Any, headers: Any) -> None:
        self._rfile = rfile
        encoding = str(headers.get("Transfer-Encoding", "")).lower()
        self.chunked = "chunked" in encoding
        self._remaining = 0
        self._chunk_left = 0
        if not self.chunked:
            length = headers.get("Content-Length")
            try:
                self._remaining = int(length) if length else 0
            except ValueError:
                self._remaining = 0
                self.finished = True
                raise IllegalArgument(f"Invalid Content-Length: {length}") from None
            if self._remaining < 0:
                raise IllegalArgument(f"Invalid Content-Length: {length}")
        self.finished = not self.chunked and self._remaining == 0

    def readinto(self, view: memoryview) -> int:
        """Fill ``view`` as far as the body allows; 0 at the end of the body."""
        filled = 0
        while filled < len(view) and not self.finished:
            count = self._read_some(view[filled:])
            filled += count
        return filled

    def _read_some(self, view: memoryview) -> int:
        if not self.chunked:
            count = self._rfile.readinto(view[: min(len(view), self._remaining)])
            if not count:
                raise ConnectionError("the client closed the connection in the middle of the body")
            self._remaining -= count
            self.finished = self._remaining == 0
            return int(count)
        if self._chunk_left == 0:
            self._next_chunk()
            if self.finished:
                return 0
        count = self._rfile.readinto(view[: min(len(view), self._chunk_left)])
        if not count:
            raise ConnectionError("the client closed the connection in the middle of a chunk")
        self._chunk_left -= count
        if self._chunk_left == 0:
            self._rfile.readline(65537)  # the CRLF after the chunk data
        return int(count)

    def _next_chunk(self) -> None:
        line = self._rfile.readline(65537)
        if not line:
            raise ConnectionError("the client closed the connection before the last chunk")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise IllegalArgument(f"Malformed chunk size line: {line[:40]!r}") from None
        if size == 0:
            while self._rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            self.finished = True
        self._chunk_left = size

    def drain(self, limit: int) -> bool:
        """Discard the rest of the body; False when more than ``limit`` bytes were left."""
        scratch = memoryview(bytearray(64 * 1024))
        seen = 0
        try:
            while not self.finished and seen <= limit:
                seen += self.readinto(scratch)
        except (OSError, HdfsException):
            return False
        return self.finished


@dataclass
class Node:
    """What a request needs to know about the cluster it reached."""

    role: str
    namespace: Namespace
    host: str
    namenode_port: int = 0
    datanode_port: int = 0
    kerberos: Spnego | None = None

    @property
    def namenode_address(self) -> str:
        return f"{self.host}:{self.namenode_port}"

    @property
    def datanode_address(self) -> str:
        return f"{self.host}:{self.datanode_port}"


@dataclass
class Request:
    method: str
    op: str
    parts: Parts
    params: dict[str, str]
    body: BodyReader
    node: Node
    repeated: dict[str, list[str]] = field(default_factory=dict)  # every value of each parameter
    authenticated: str | None = None  # under Kerberos: whom the request runs as (doas applied)

    @property
    def path(self) -> str:
        return path_str(self.parts)

    @property
    def user(self) -> str:
        if self.authenticated is not None:
            return self.authenticated  # user.name means nothing once security is on
        return self.params.get("doas") or self.params.get("user.name") or DEFAULT_USER

    @property
    def ns(self) -> Namespace:
        return self.node.namespace


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    stream: ReadHandle | None = None


Handler = Callable[[Request], Response]


def json_response(payload: object, status: int = 200) -> Response:
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return Response(status, body, "application/json")


def empty_response() -> Response:
    return Response(200, b"", "application/octet-stream")


def error_response(exc: HdfsException) -> Response:
    return json_response(exc.remote_exception(), exc.http_status)


def parse_path(raw: str) -> Parts:
    """Split and percent-decode a WebHDFS path; refuse every component HDFS would refuse.

    Decoding happens per component, so ``%2F`` cannot smuggle a separator and ``%2e%2e`` decodes
    to ``..``, which is refused like a literal one.
    """
    parts: list[str] = []
    for segment in raw.split("/"):
        if not segment:
            continue
        try:
            name = unquote(segment, errors="strict")
        except UnicodeDecodeError:
            raise InvalidPath(f"Invalid path name: {raw}: not UTF-8") from None
        if name in (".", "..") or "/" in name or "\x00" in name or ":" in name:
            raise InvalidPath(f"Invalid path name Invalid file name: {raw}")
        parts.append(name)
    return tuple(parts)


def parse_target(target: str) -> tuple[Parts, dict[str, str], dict[str, list[str]]]:
    split = urlsplit(target)
    if split.path != PREFIX and not split.path.startswith(PREFIX + "/"):
        raise NotWebHdfs(split.path)
    parts = parse_path(split.path[len(PREFIX) :])
    params: dict[str, str] = {}
    repeated: dict[str, list[str]] = {}
    try:
        pairs = parse_qsl(split.query, keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise IllegalArgument("Invalid query string") from None
    for key, value in pairs:
        params.setdefault(key.lower(), value)  # Hadoop's ParamFilter lower-cases names; first wins
        repeated.setdefault(key.lower(), []).append(value)  # for list parameters (xattr.name)
    return parts, params, repeated
