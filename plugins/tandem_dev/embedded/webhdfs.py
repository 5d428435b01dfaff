"""An embedded HDFS that speaks the WebHDFS REST protocol, for the demo and the tests.

:class:`WebHdfsServer` runs two HTTP/1.1 listeners on 127.0.0.1, like a one-node cluster:

* the **NameNode** port answers every metadata operation and redirects data operations
  (``CREATE``, ``APPEND``, ``OPEN``, ``GETFILECHECKSUM``) with ``307 Temporary Redirect`` (or
  ``200 {"Location": ...}`` with ``noredirect=true``) to
* the **DataNode** port, which takes the bytes (``201 Created`` for CREATE, 200 for APPEND, with
  Content-Length or chunked bodies) and streams them out for OPEN with ``sendfile``.

Everything follows Hadoop's WebHDFS.md and the server code (``JsonUtil``, ``ExceptionHandler``,
``NamenodeWebHdfsMethods``), not any one client: JSON shapes, parameter names (case-insensitive,
as Hadoop's ``ParamFilter`` makes them), ``RemoteException`` bodies and HTTP codes (404
FileNotFoundException, 400 IllegalArgumentException and bad parameters, 403 other IOExceptions).
The filesystem semantics live in :class:`tandem_dev.embedded.namespace.Namespace`.

Authentication is Hadoop's: none by default (``user.name``/``doas`` are trusted, as on a cluster
with security off), or with ``kerberos`` (a :class:`~tandem_dev.embedded.spnego.Spnego`) SPNEGO on
the NameNode, delegation tokens on the DataNode and ``doas`` for proxy users only. Permissions
are recorded but not enforced (``dfs.permissions.enabled=false``), except by the
extended-attribute operations (SETXATTR, REMOVEXATTR, GETXATTRS, LISTXATTRS), which check them
as a Hadoop 3 NameNode does. Paths are
still confined: ``..``, ``.``, encoded slashes, NUL and the other names HDFS refuses are rejected
with 400, and no HDFS path ever maps to a local path (see :mod:`tandem_dev.embedded.store`).
"""

from __future__ import annotations

import argparse
import contextlib
import http
import json
import logging
import os
import signal
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from tandem.errors import EmbeddedError
from tandem_dev.embedded import xattrs
from tandem_dev.embedded.checksum import FileChecksum
from tandem_dev.embedded.hdfs_exceptions import (
    FileNotFound,
    HdfsException,
    IllegalArgument,
    InvalidPath,
    ServerRuntimeError,
    UnsupportedOperation,
)
from tandem_dev.embedded.namespace import (
    QUOTA_DONT_SET,
    ContentSummary,
    DiffReport,
    FileInfo,
    Namespace,
    Parts,
    PendingWrite,
    QuotaUsage,
    ReadHandle,
    SnapshotInfo,
    SnapshottableInfo,
    path_str,
)
from tandem_dev.embedded.request_log import RequestLog
from tandem_dev.embedded.spnego import Refusal, Spnego

LOG = logging.getLogger(__name__)

PREFIX = "/webhdfs/v1"
DEFAULT_USER = "dr.who"  # hadoop.http.staticuser.user
LS_LIMIT = 1000  # dfs.ls.limit
CHUNK = 1 << 20
DRAIN_LIMIT = 256 << 20  # after an error, read at most this much of an unread body to keep the connection
IDLE_TIMEOUT_S = 120.0

# Every operation Hadoop knows, per HTTP method (GetOpParam, PutOpParam, PostOpParam, DeleteOpParam):
# an op outside these is a bad parameter (400 IllegalArgumentException); one inside that this server
# does not implement is UnsupportedOperationException (also 400).
KNOWN_OPS = {
    "GET": {
        "OPEN",
        "GETFILESTATUS",
        "LISTSTATUS",
        "LISTSTATUS_BATCH",
        "GETCONTENTSUMMARY",
        "GETQUOTAUSAGE",
        "GETFILECHECKSUM",
        "GETHOMEDIRECTORY",
        "GETDELEGATIONTOKEN",
        "GETTRASHROOT",
        "GETXATTRS",
        "LISTXATTRS",
        "CHECKACCESS",
        "GETALLSTORAGEPOLICY",
        "GETSTORAGEPOLICY",
        "GETSNAPSHOTDIFF",
        "GETSNAPSHOTDIFFLISTING",
        "GETSNAPSHOTTABLEDIRECTORYLIST",
        "GETSNAPSHOTLIST",
        "GETFILEBLOCKLOCATIONS",
        "GETECPOLICY",
        "GETSERVERDEFAULTS",
        "GETLINKTARGET",
        "GETFILELINKSTATUS",
        "GETSTATUS",
        "GETECPOLICIES",
        "GETACLSTATUS",
        "GET_BLOCK_LOCATIONS",
        "GETTRASHROOTS",
        "GETECCODECS",
    },
    "PUT": {
        "CREATE",
        "MKDIRS",
        "CREATESYMLINK",
        "RENAME",
        "SETREPLICATION",
        "SETOWNER",
        "SETPERMISSION",
        "SETTIMES",
        "RENEWDELEGATIONTOKEN",
        "CANCELDELEGATIONTOKEN",
        "ALLOWSNAPSHOT",
        "DISALLOWSNAPSHOT",
        "CREATESNAPSHOT",
        "RENAMESNAPSHOT",
        "SETXATTR",
        "REMOVEXATTR",
        "SETSTORAGEPOLICY",
        "SATISFYSTORAGEPOLICY",
        "ENABLEECPOLICY",
        "DISABLEECPOLICY",
        "SETECPOLICY",
        "SETQUOTA",
        "SETQUOTABYSTORAGETYPE",
        "MODIFYACLENTRIES",
        "REMOVEACLENTRIES",
        "REMOVEDEFAULTACL",
        "REMOVEACL",
        "SETACL",
    },
    "POST": {"APPEND", "CONCAT", "TRUNCATE", "UNSETSTORAGEPOLICY", "UNSETECPOLICY"},
    "DELETE": {"DELETE", "DELETESNAPSHOT"},
}


class _NotWebHdfs(Exception):
    """The request target is not under /webhdfs/v1."""


# ---------------------------------------------------------------------------------------- requests


class _BodyReader:
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
class Request:
    method: str
    op: str
    parts: Parts
    params: dict[str, str]
    body: _BodyReader
    node: _Node
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


def _json(payload: object, status: int = 200) -> Response:
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return Response(status, body, "application/json")


def _empty() -> Response:
    return Response(200, b"", "application/octet-stream")


def _error(exc: HdfsException) -> Response:
    return _json(exc.remote_exception(), exc.http_status)


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


def _parse_target(target: str) -> tuple[Parts, dict[str, str], dict[str, list[str]]]:
    split = urlsplit(target)
    if split.path != PREFIX and not split.path.startswith(PREFIX + "/"):
        raise _NotWebHdfs(split.path)
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


# ------------------------------------------------------------------------------------- parameters


def _bad(name: str, value: str, reason: str) -> IllegalArgument:
    return IllegalArgument(f'Invalid value for webhdfs parameter "{name}": {reason}: "{value}"')


def _bool(req: Request, name: str, default: bool = False) -> bool:
    value = req.params.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _bad(name, value, "Failed to parse to Boolean")


def _long(req: Request, name: str, default: int | None = None, *, minimum: int | None = None) -> int | None:
    value = req.params.get(name)
    if value is None or value == "" or value.lower() == "null":
        return default
    try:
        number = int(value)
    except ValueError:
        raise _bad(name, value, "Failed to parse to a number") from None
    if minimum is not None and number < minimum:
        raise _bad(name, value, f"must be >= {minimum}")
    return number


def _required(req: Request, name: str) -> str:
    value = req.params.get(name)
    if not value:
        raise IllegalArgument(f'Required param "{name}" for op {req.op} is null or empty')
    return value


def _perm(req: Request, default: int | None) -> int | None:
    value = req.params.get("permission")
    if value is None or value == "":
        return default
    try:
        mode = int(value, 8)
    except ValueError:
        raise _bad("permission", value, "not an octal number") from None
    if not 0 <= mode <= 0o1777:
        raise _bad("permission", value, "outside 0 - 1777")
    return mode


def _destination(req: Request) -> Parts:
    value = _required(req, "destination")
    if not value.startswith("/"):
        raise _bad("destination", value, "not an absolute path")
    return parse_path(quote(value, safe="/"))


# --------------------------------------------------------------------------------- JSON (JsonUtil)


def file_status_json(info: FileInfo) -> dict[str, object]:
    """``JsonUtil.toJsonMap(HdfsFileStatus)``: aclBit and snapshotEnabled only when true."""
    status: dict[str, object] = {
        "accessTime": info.atime,
        "blockSize": info.block_size,
        "childrenNum": info.children,
        "fileId": info.file_id,
        "group": info.group,
        "length": info.length,
        "modificationTime": info.mtime,
        "owner": info.owner,
        "pathSuffix": info.name,
        "permission": format(info.perm, "o"),
        "replication": info.replication,
        "storagePolicy": 0,
        "type": "DIRECTORY" if info.is_dir else "FILE",
    }
    if info.acl_bit:
        status["aclBit"] = True
    if info.snapshot_enabled:
        status["snapshotEnabled"] = True
    return status


def _content_summary_json(summary: ContentSummary) -> dict[str, object]:
    return {
        "ContentSummary": {
            "directoryCount": summary.directories,
            "ecPolicy": "",
            "fileCount": summary.files,
            "length": summary.length,
            "quota": summary.quota,
            "spaceConsumed": summary.space_consumed,
            "spaceQuota": summary.space_quota,
            "typeQuota": {},
        }
    }


def _quota_usage_json(usage: QuotaUsage) -> dict[str, object]:
    return {
        "QuotaUsage": {
            "fileAndDirectoryCount": usage.count,
            "quota": usage.quota,
            "spaceConsumed": usage.space_consumed,
            "spaceQuota": usage.space_quota,
            "typeQuota": {},
        }
    }


def _checksum_json(checksum: FileChecksum) -> dict[str, object]:
    return {
        "FileChecksum": {
            "algorithm": checksum.algorithm,
            "bytes": checksum.raw.hex(),
            "length": checksum.length,
        }
    }


def _diff_json(report: DiffReport) -> dict[str, object]:
    return {
        "SnapshotDiffReport": {
            "diffList": [entry.to_json() for entry in report.entries],
            "fromSnapshot": report.from_snapshot,
            "snapshotRoot": report.root,
            "toSnapshot": report.to_snapshot,
        }
    }


def _snapshot_json(item: SnapshotInfo) -> dict[str, object]:
    return {
        "deletionStatus": "ACTIVE",
        "dirStatus": file_status_json(item.status),
        "fullPath": item.parent_path,
        "snapshotID": item.snapshot_id,
    }


def _snapshottable_json(item: SnapshottableInfo) -> dict[str, object]:
    return {
        "dirStatus": file_status_json(item.status),
        "parentFullPath": item.parent_path,
        "snapshotNumber": item.snapshot_number,
        "snapshotQuota": item.snapshot_quota,
    }


# ----------------------------------------------------------------------------- NameNode: reads


def _redirect(req: Request, op: str) -> Response:
    """The NameNode half of a data operation: point the client at the DataNode."""
    query = {"op": op, **{k: v for k, v in req.params.items() if k not in ("op", "noredirect")}}
    query["namenoderpcaddress"] = req.node.namenode_address
    if req.node.kerberos is not None:  # the DataNode checks this token, not SPNEGO
        query["delegation"] = req.node.kerberos.delegation_token(req.user)
    location = f"http://{req.node.datanode_address}{PREFIX}{quote(req.path, safe='/')}?{urlencode(query)}"
    if _bool(req, "noredirect"):
        return _json({"Location": location})
    return Response(307, b"", "application/octet-stream", [("Location", location)])


def _require_file(req: Request) -> None:
    if req.ns.status(req.parts).is_dir:
        raise FileNotFound(f"Path is not a file: {req.path}")


def _nn_open(req: Request) -> Response:
    _long(req, "offset", 0, minimum=0)
    _long(req, "length", None, minimum=0)
    _require_file(req)
    return _redirect(req, "OPEN")


def _nn_checksum(req: Request) -> Response:
    _require_file(req)
    return _redirect(req, "GETFILECHECKSUM")


def _get_file_status(req: Request) -> Response:
    return _json({"FileStatus": file_status_json(req.ns.status(req.parts))})


def _list_status(req: Request) -> Response:
    infos, _ = req.ns.list_status(req.parts)
    return _json({"FileStatuses": {"FileStatus": [file_status_json(i) for i in infos]}})


def _list_status_batch(req: Request) -> Response:
    start_after = req.params.get("startafter") or None
    infos, remaining = req.ns.list_status(req.parts, start_after=start_after, limit=LS_LIMIT)
    listing = {"partialListing": {"FileStatuses": {"FileStatus": [file_status_json(i) for i in infos]}}}
    return _json({"DirectoryListing": {**listing, "remainingEntries": remaining}})


def _content_summary(req: Request) -> Response:
    return _json(_content_summary_json(req.ns.content_summary(req.parts)))


def _quota_usage(req: Request) -> Response:
    return _json(_quota_usage_json(req.ns.quota_usage(req.parts)))


def _home_directory(req: Request) -> Response:
    return _json({"Path": Namespace.home_directory(req.user)})


def _trash_root(req: Request) -> Response:
    return _json({"Path": f"{Namespace.home_directory(req.user)}/.Trash"})


def _acl_status(req: Request) -> Response:
    status = req.ns.acl_status(req.parts)
    return _json(
        {
            "AclStatus": {
                "entries": list(status.entries),
                "group": status.group,
                "owner": status.owner,
                "permission": format(status.perm, "o"),
                "stickyBit": status.sticky,
            }
        }
    )


def _check_access(req: Request) -> Response:
    action = req.params.get("fsaction", "")
    if len(action) != 3 or any(
        c not in allowed for c, allowed in zip(action, ("r-", "w-", "x-"), strict=True)
    ):
        raise _bad("fsaction", action, "must match [r-][w-][x-]")
    req.ns.status(req.parts)  # permissions are not enforced: existing is enough
    return _empty()


def _op_param(req: Request, name: str) -> str:
    """``NamenodeWebHdfsMethods.validateOpParams`` (Hadoop 3's wording)."""
    value = req.params.get(name)
    if not value:
        raise IllegalArgument(f"Required param {name} for op: {req.op} is null or empty")
    return value


def _get_xattrs(req: Request) -> Response:
    encoding = xattrs.parse_encoding(req.params.get("encoding"))
    if encoding is None:
        raise IllegalArgument(f"Required param encoding for op: {req.op} is null or empty")
    names = [xattrs.build(n) for n in req.repeated.get("xattr.name", []) if n]
    found = req.ns.get_xattrs(req.parts, req.user, names or None)
    values = [None if a.value is None else xattrs.encode_value(a.value, encoding) for a in found]
    return _json({"XAttrs": [{"name": a.prefixed, "value": v} for a, v in zip(found, values, strict=True)]})


def _list_xattrs(req: Request) -> Response:
    names = [a.prefixed for a in req.ns.get_xattrs(req.parts, req.user)]
    return _json({"XAttrNames": json.dumps(names, ensure_ascii=False, separators=(",", ":"))})


def _snapshot_diff(req: Request) -> Response:
    old = req.params.get("oldsnapshotname")
    new = req.params.get("snapshotname")
    return _json(_diff_json(req.ns.snapshot_diff(req.parts, old, new)))


def _snapshot_diff_listing(req: Request) -> Response:
    """One batch holds the whole diff: ``lastPath`` "" with ``lastIndex`` -1 tells the client it is done."""
    _long(req, "snapshotdiffindex", -1, minimum=-1)
    listing, from_earlier = req.ns.snapshot_diff_listing(
        req.parts, req.params.get("oldsnapshotname"), req.params.get("snapshotname")
    )
    return _json(
        {
            "SnapshotDiffReportListing": {
                "createList": [e.to_json() for e in listing.created],
                "deleteList": [e.to_json() for e in listing.deleted],
                "isFromEarlier": from_earlier,
                "lastIndex": -1,
                "lastPath": "",
                "modifyList": [e.to_json() for e in listing.modified],
            }
        }
    )


def _snapshot_list(req: Request) -> Response:
    return _json({"SnapshotList": [_snapshot_json(s) for s in req.ns.snapshot_list(req.parts)]})


def _snapshottable_list(req: Request) -> Response:
    items = req.ns.snapshottable_list(req.user)
    return _json(
        {"SnapshottableDirectoryList": None if items is None else [_snapshottable_json(i) for i in items]}
    )


def _server_defaults(req: Request) -> Response:
    ns = req.ns
    return _json(
        {
            "FsServerDefaults": {
                "blockSize": ns.default_block_size,
                "bytesPerChecksum": 512,
                "checksumType": 1,  # DataChecksum.Type.CRC32
                "defaultStoragePolicyId": 7,
                "encryptDataTransfer": False,
                "fileBufferSize": 4096,
                "keyProviderUri": "",
                "replication": ns.default_replication,
                "trashInterval": 0,
                "writePacketSize": 65536,
            }
        }
    )


def _fs_status(req: Request) -> Response:
    stats = os.statvfs(req.ns.root)
    capacity = stats.f_blocks * stats.f_frsize
    remaining = stats.f_bavail * stats.f_frsize
    return _json({"FsStatus": {"capacity": capacity, "remaining": remaining, "used": capacity - remaining}})


# ---------------------------------------------------------------------------- NameNode: writes


def _nn_create(req: Request) -> Response:
    _bool(req, "overwrite")
    _perm(req, None)
    _long(req, "blocksize", None, minimum=1)
    _long(req, "replication", None, minimum=1)
    _long(req, "buffersize", None, minimum=1)
    return _redirect(req, "CREATE")


def _nn_append(req: Request) -> Response:
    _long(req, "buffersize", None, minimum=1)
    _require_file(req)
    return _redirect(req, "APPEND")


def _mkdirs(req: Request) -> Response:
    mode = _perm(req, 0o755)
    return _json({"boolean": req.ns.mkdirs(req.parts, req.user, 0o755 if mode is None else mode)})


def _rename(req: Request) -> Response:
    destination = _destination(req)
    options = {o.strip().upper() for o in req.params.get("renameoptions", "").split(",") if o.strip()}
    if not options:
        return _json({"boolean": req.ns.rename(req.parts, destination)})
    unknown = options - {"NONE", "OVERWRITE", "TO_TRASH"}
    if unknown:
        raise _bad("renameoptions", ",".join(sorted(unknown)), "unknown rename option")
    req.ns.rename_overwrite(req.parts, destination, overwrite="OVERWRITE" in options)
    return _empty()


def _set_replication(req: Request) -> Response:
    replication = _long(req, "replication", req.ns.default_replication, minimum=1)
    assert replication is not None
    return _json({"boolean": req.ns.set_replication(req.parts, replication)})


def _set_owner(req: Request) -> Response:
    owner, group = req.params.get("owner") or None, req.params.get("group") or None
    if owner is None and group is None:
        raise IllegalArgument("Both owner and group are empty.")
    req.ns.set_owner(req.parts, owner, group)
    return _empty()


def _set_permission(req: Request) -> Response:
    req.ns.set_permission(req.parts, _perm(req, None))
    return _empty()


def _set_times(req: Request) -> Response:
    mtime = _long(req, "modificationtime", -1, minimum=-1)
    atime = _long(req, "accesstime", -1, minimum=-1)
    assert mtime is not None and atime is not None
    req.ns.set_times(req.parts, mtime, atime)
    return _empty()


def _set_quota(req: Request) -> Response:
    nsq = _long(req, "namespacequota", QUOTA_DONT_SET)
    ssq = _long(req, "storagespacequota", QUOTA_DONT_SET)
    assert nsq is not None and ssq is not None
    req.ns.set_quota(req.parts, nsq, ssq)
    return _empty()


def _acl_op(req: Request) -> Response:
    req.ns.change_acl(req.parts, req.op, req.params.get("aclspec"))
    return _empty()


def _set_xattr(req: Request) -> Response:
    flags = xattrs.parse_flags(req.params.get("flag"))
    name = _op_param(req, "xattr.name")
    _op_param(req, "flag")
    value = xattrs.decode_value(req.params.get("xattr.value"))
    req.ns.set_xattr(req.parts, req.user, xattrs.build(name, value), flags)
    return _empty()


def _remove_xattr(req: Request) -> Response:
    req.ns.remove_xattr(req.parts, req.user, xattrs.build(_op_param(req, "xattr.name")))
    return _empty()


def _allow_snapshot(req: Request) -> Response:
    req.ns.allow_snapshot(req.parts)
    return _empty()


def _disallow_snapshot(req: Request) -> Response:
    req.ns.disallow_snapshot(req.parts)
    return _empty()


def _create_snapshot(req: Request) -> Response:
    return _json({"Path": req.ns.create_snapshot(req.parts, req.params.get("snapshotname") or None)})


def _rename_snapshot(req: Request) -> Response:
    req.ns.rename_snapshot(req.parts, _required(req, "oldsnapshotname"), _required(req, "snapshotname"))
    return _empty()


def _delete_snapshot(req: Request) -> Response:
    req.ns.delete_snapshot(req.parts, _required(req, "snapshotname"))
    return _empty()


def _truncate(req: Request) -> Response:
    new_length = _long(req, "newlength", None, minimum=0)
    if new_length is None:
        raise IllegalArgument('Required param "newlength" for op TRUNCATE is null or empty')
    return _json({"boolean": req.ns.truncate(req.parts, new_length)})


def _delete(req: Request) -> Response:
    return _json({"boolean": req.ns.delete(req.parts, _bool(req, "recursive"))})


NAMENODE_OPS: dict[tuple[str, str], Handler] = {
    ("GET", "OPEN"): _nn_open,
    ("GET", "GETFILECHECKSUM"): _nn_checksum,
    ("GET", "GETFILESTATUS"): _get_file_status,
    ("GET", "LISTSTATUS"): _list_status,
    ("GET", "LISTSTATUS_BATCH"): _list_status_batch,
    ("GET", "GETCONTENTSUMMARY"): _content_summary,
    ("GET", "GETQUOTAUSAGE"): _quota_usage,
    ("GET", "GETHOMEDIRECTORY"): _home_directory,
    ("GET", "GETTRASHROOT"): _trash_root,
    ("GET", "GETACLSTATUS"): _acl_status,
    ("GET", "GETXATTRS"): _get_xattrs,
    ("GET", "LISTXATTRS"): _list_xattrs,
    ("GET", "CHECKACCESS"): _check_access,
    ("GET", "GETSNAPSHOTDIFF"): _snapshot_diff,
    ("GET", "GETSNAPSHOTDIFFLISTING"): _snapshot_diff_listing,
    ("GET", "GETSNAPSHOTLIST"): _snapshot_list,
    ("GET", "GETSNAPSHOTTABLEDIRECTORYLIST"): _snapshottable_list,
    ("GET", "GETSERVERDEFAULTS"): _server_defaults,
    ("GET", "GETSTATUS"): _fs_status,
    ("PUT", "CREATE"): _nn_create,
    ("PUT", "MKDIRS"): _mkdirs,
    ("PUT", "RENAME"): _rename,
    ("PUT", "SETREPLICATION"): _set_replication,
    ("PUT", "SETOWNER"): _set_owner,
    ("PUT", "SETPERMISSION"): _set_permission,
    ("PUT", "SETTIMES"): _set_times,
    ("PUT", "SETQUOTA"): _set_quota,
    ("PUT", "SETACL"): _acl_op,
    ("PUT", "MODIFYACLENTRIES"): _acl_op,
    ("PUT", "REMOVEACLENTRIES"): _acl_op,
    ("PUT", "REMOVEDEFAULTACL"): _acl_op,
    ("PUT", "REMOVEACL"): _acl_op,
    ("PUT", "SETXATTR"): _set_xattr,
    ("PUT", "REMOVEXATTR"): _remove_xattr,
    ("PUT", "ALLOWSNAPSHOT"): _allow_snapshot,
    ("PUT", "DISALLOWSNAPSHOT"): _disallow_snapshot,
    ("PUT", "CREATESNAPSHOT"): _create_snapshot,
    ("PUT", "RENAMESNAPSHOT"): _rename_snapshot,
    ("POST", "APPEND"): _nn_append,
    ("POST", "TRUNCATE"): _truncate,
    ("DELETE", "DELETE"): _delete,
    ("DELETE", "DELETESNAPSHOT"): _delete_snapshot,
}


# ------------------------------------------------------------------------------------- DataNode

_buffers = threading.local()


def _buffer() -> memoryview:
    view: memoryview | None = getattr(_buffers, "view", None)
    if view is None:
        view = memoryview(bytearray(CHUNK))
        _buffers.view = view
    return view


def _receive(req: Request, pending: PendingWrite) -> None:
    """Stream the body into a pending write and commit it; on any failure nothing is kept."""
    try:
        view = _buffer()
        while True:
            count = req.body.readinto(view)
            if not count:
                break
            pending.write(view[:count])
        req.ns.commit_write(pending)
    except BaseException:
        req.ns.abort_write(pending)
        raise


def _dn_create(req: Request) -> Response:
    pending = req.ns.begin_create(
        req.parts,
        req.user,
        overwrite=_bool(req, "overwrite"),
        perm=_perm(req, 0o644) or 0,
        replication=_long(req, "replication", None, minimum=1),
        block_size=_long(req, "blocksize", None, minimum=1),
    )
    _receive(req, pending)
    location = f"webhdfs://{req.node.namenode_address}{quote(req.path, safe='/')}"
    return Response(201, b"", "application/octet-stream", [("Location", location)])


def _dn_append(req: Request) -> Response:
    _receive(req, req.ns.begin_append(req.parts, req.user))
    return _empty()


def _dn_open(req: Request) -> Response:
    offset = _long(req, "offset", 0, minimum=0)
    length = _long(req, "length", None, minimum=0)
    assert offset is not None
    handle = req.ns.open_read(req.parts, offset, length)
    return Response(200, b"", "application/octet-stream", stream=handle)


def _dn_checksum(req: Request) -> Response:
    return _json(_checksum_json(req.ns.checksum(req.parts)))


DATANODE_OPS: dict[tuple[str, str], Handler] = {
    ("PUT", "CREATE"): _dn_create,
    ("POST", "APPEND"): _dn_append,
    ("GET", "OPEN"): _dn_open,
    ("GET", "GETFILECHECKSUM"): _dn_checksum,
}


# ----------------------------------------------------------------------------------- HTTP server


class _RequestHandler(BaseHTTPRequestHandler):
    """One connection; HTTP/1.1 keep-alive, one thread per connection."""

    protocol_version = "HTTP/1.1"
    server_version = "TandemWebHDFS/1.0"
    sys_version = ""
    timeout = IDLE_TIMEOUT_S
    disable_nagle_algorithm = True
    server: _HttpServer

    def do_GET(self) -> None:
        self._serve("GET")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        LOG.debug("%s %s", self.server.node.role, format % args)

    def _serve(self, method: str) -> None:
        started = time.perf_counter()
        response, body = self._handle(method)
        if body is None or (not body.finished and not body.drain(DRAIN_LIMIT)):
            self.close_connection = True  # whatever is left of the body would be read as a request
        if self.server.request_log is not None:  # before the answer: whoever has it finds the line
            target = urlsplit(self.path)
            op = next((v for k, v in parse_qsl(target.query) if k.lower() == "op"), "")
            self.server.request_log.request(
                self.server.node.role,
                method,
                op.upper(),
                response.status,
                target.path,
                time.perf_counter() - started,
            )
        self._send(response)
        LOG.debug(
            "%s %s %s -> %d in %.1f ms",
            self.server.node.role,
            method,
            self.path,
            response.status,
            (time.perf_counter() - started) * 1000,
        )

    def _handle(self, method: str) -> tuple[Response, _BodyReader | None]:
        body: _BodyReader | None = None
        try:
            body = _BodyReader(self.rfile, self.headers)
            parts, params, repeated = _parse_target(self.path)
            op = params.get("op", "").upper()
            request = Request(method, op, parts, params, body, self.server.node, repeated)
            granted = self._authenticate(request)
            if isinstance(granted, Response):
                return granted, body
            try:
                response = self._dispatch(request)
            except HdfsException as exc:
                response = _error(exc)
            # the filter's headers (the AP-REP, the cookie) go with every answer, errors too
            response.headers += granted
            return response, body
        except HdfsException as exc:
            return _error(exc), body
        except _NotWebHdfs:
            return Response(404, b"Not a WebHDFS path\n", "text/plain"), body
        except (ConnectionError, TimeoutError) as exc:
            LOG.debug("connection lost while serving %s %s: %s", method, self.path, exc)
            self.close_connection = True
            return Response(400, b"", "text/plain"), None
        except Exception as exc:
            LOG.exception("%s %s failed", method, self.path)
            return _error(ServerRuntimeError(f"{type(exc).__name__}: {exc}")), body

    def _authenticate(self, request: Request) -> Response | list[tuple[str, str]]:
        """Under Kerberos, who the request runs as (set on it) and the headers its answer carries;
        or the filter's refusal. Without Kerberos, nothing to check."""
        auth = self.server.node.kerberos
        if auth is None:
            return []
        if self.server.node.role == "datanode":
            request.authenticated = auth.token_user(request.params.get("delegation"))
            return []
        try:
            caller = auth.authenticate(self.headers)
        except Refusal as refused:
            page = f"<html><body><h2>HTTP ERROR {refused.status}</h2><p>{refused.message}</p></body></html>"
            return Response(refused.status, page.encode(), "text/html;charset=iso-8859-1", refused.headers)
        try:
            request.authenticated = auth.effective_user(caller, request.params.get("doas"))
        except HdfsException as exc:  # the filter let it through: its answer still proves the server
            refusal = _error(exc)
            refusal.headers += caller.headers
            return refusal
        return list(caller.headers)

    def _dispatch(self, request: Request) -> Response:
        handler = self.server.ops.get((request.method, request.op))
        if handler is not None:
            return handler(request)
        if request.op in KNOWN_OPS.get(request.method, set()):
            raise UnsupportedOperation(
                f"{request.op} is not supported by {self.server.node.role} of this server"
            )
        kind = {"GET": "GetOpParam", "PUT": "PutOpParam", "POST": "PostOpParam", "DELETE": "DeleteOpParam"}
        raise IllegalArgument(
            f'Invalid value for webhdfs parameter "op": No enum constant '
            f"org.apache.hadoop.hdfs.web.resources.{kind[request.method]}.Op.{request.op}"
        )

    def _send(self, response: Response) -> None:
        try:
            phrase = http.HTTPStatus(response.status).phrase
        except ValueError:
            phrase = "Unknown"
        length = response.stream.count if response.stream is not None else len(response.body)
        lines = [
            f"HTTP/1.1 {response.status} {phrase}",
            f"Date: {self.date_time_string()}",
            f"Server: {self.server_version}",
            "Cache-Control: no-cache",
            f"Content-Length: {length}",
        ]
        if response.content_type:
            lines.append(f"Content-Type: {response.content_type}")
        lines += [f"{name}: {value}" for name, value in response.headers]
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            if response.stream is None:
                self.wfile.write(head + response.body)
            else:
                self.wfile.write(head)
                self._send_stream(response.stream)
        except OSError as exc:
            LOG.debug("client went away: %s", exc)
            self.close_connection = True
        finally:
            if response.stream is not None:
                response.stream.close()

    def _send_stream(self, handle: ReadHandle) -> None:
        if handle.count == 0:
            return
        with os.fdopen(handle.fd, "rb", buffering=0, closefd=False) as source:
            sent = self.connection.sendfile(source, handle.offset, handle.count)
        if sent != handle.count:
            self.close_connection = True  # the client was promised more bytes than could be sent


@dataclass
class _Node:
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


class _HttpServer(ThreadingHTTPServer):
    """A threaded HTTP server that can close its live connections and join their threads."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        node: _Node,
        ops: dict[tuple[str, str], Handler],
        request_log: RequestLog | None = None,
    ) -> None:
        self.node = node
        self.ops = ops
        self.request_log = request_log
        self._live: dict[socket.socket, threading.Thread] = {}
        self._live_lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn) that can stall; skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        if self.request_log is not None:
            self.request_log.connection(self.node.role)
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            daemon=True,
            name=f"webhdfs-{self.node.role}-{client_address[1]}",
        )
        with self._live_lock:
            self._live[request] = thread
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            LOG.debug("connection from %s ended with an error", client_address, exc_info=True)
        finally:
            self.shutdown_request(request)
            with self._live_lock:
                self._live.pop(request, None)

    def close_live_connections(self, timeout: float) -> None:
        with self._live_lock:
            live = dict(self._live)
        for conn in live:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread in live.values():
            thread.join(max(0.0, deadline - time.monotonic()))


class WebHdfsServer:
    """An embedded one-node HDFS over ``root``, reachable by any WebHDFS client.

    ``start()`` returns once both listeners accept connections (``port`` and ``data_port`` then
    hold the bound ports, ``url`` the NameNode URL) and raises EmbeddedError if a port is taken or
    another server already serves ``root``; ``stop()`` is idempotent. A new server over the same
    ``root`` sees the same files, metadata and snapshots. Usable as a context manager.

    ``superuser`` (default: the process user) owns ``/`` and sees every snapshottable directory;
    ``replication`` and ``block_size`` are the defaults for new files; ``request_log``, when
    given, gets a line per request and per connection (benchmarks count calls with it).
    Permissions and ACLs are kept and returned but not enforced (``dfs.permissions.enabled=false``),
    except for extended attributes (see :mod:`tandem_dev.embedded.xattrs`).
    """

    def __init__(
        self,
        root: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        data_port: int = 0,
        superuser: str | None = None,
        replication: int = 1,
        block_size: int = 128 * 1024 * 1024,
        kerberos: Spnego | None = None,
        request_log: RequestLog | None = None,
    ) -> None:
        self.root = Path(root)
        self.kerberos = kerberos
        self.request_log = request_log
        self.host = host
        self.port = port
        self.data_port = data_port
        self.superuser = superuser
        self.replication = replication
        self.block_size = block_size
        self._namespace: Namespace | None = None
        self._servers: list[_HttpServer] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def namespace(self) -> Namespace:
        """The running namespace, for in-process callers (tests, bulk loading in benchmarks)."""
        if self._namespace is None:
            raise EmbeddedError("the WebHDFS server is not running; call start() first")
        return self._namespace

    def start(self) -> None:
        """Open the namespace and both listeners; raises EmbeddedError if a port is taken."""
        with self._lock:
            if self._namespace is not None:
                return
            try:
                namespace = Namespace(
                    self.root,
                    superuser=self.superuser,
                    replication=self.replication,
                    block_size=self.block_size,
                )
            except OSError as exc:
                raise EmbeddedError(f"cannot open the HDFS root {self.root}: {exc}") from exc
            try:
                self._bind(namespace)
            except BaseException:
                self._close_servers()
                namespace.close()
                raise
            self._namespace = namespace
            for server in self._servers:
                thread = threading.Thread(
                    target=server.serve_forever,
                    kwargs={"poll_interval": 0.2},
                    daemon=True,
                    name=f"webhdfs-{server.node.role}",
                )
                thread.start()
                self._threads.append(thread)
            LOG.info("WebHDFS on %s (datanode %s:%d) over %s", self.url, self.host, self.data_port, self.root)

    def _bind(self, namespace: Namespace) -> None:
        namenode_node = _Node("namenode", namespace, self.host, kerberos=self.kerberos)
        datanode_node = _Node("datanode", namespace, self.host, kerberos=self.kerberos)
        for node, port, ops in (
            (namenode_node, self.port, NAMENODE_OPS),
            (datanode_node, self.data_port, DATANODE_OPS),
        ):
            try:
                self._servers.append(_HttpServer((self.host, port), node, ops, self.request_log))
            except OSError as exc:
                raise EmbeddedError(
                    f"cannot listen on {self.host}:{port} for the WebHDFS {node.role}: "
                    f"{exc.strerror or exc}; "
                    "stop whatever holds that port or pass port 0 to pick a free one"
                ) from exc
        self.port = int(self._servers[0].server_address[1])
        self.data_port = int(self._servers[1].server_address[1])
        for node in (namenode_node, datanode_node):
            node.namenode_port, node.datanode_port = self.port, self.data_port

    def stop(self) -> None:
        """Close listeners and connections, join their threads, close the namespace; idempotent."""
        with self._lock:
            for server, thread in zip(self._servers, self._threads, strict=False):
                if thread.is_alive():
                    server.shutdown()
                thread.join(5)
            self._close_servers()
            self._threads.clear()
            if self._namespace is not None:
                self._namespace.close()
                self._namespace = None

    def _close_servers(self) -> None:
        for server in self._servers:
            server.server_close()
            server.close_live_connections(timeout=5.0)
        self._servers.clear()

    def __enter__(self) -> WebHdfsServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """Run a server in the foreground: prints one JSON line with the ports, stops on SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m tandem_dev.embedded.webhdfs", description=main.__doc__)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--data-port", type=int, default=0)
    parser.add_argument("--superuser")
    parser.add_argument("--replication", type=int, default=1)
    args = parser.parse_args(argv)
    server = WebHdfsServer(
        args.root,
        host=args.host,
        port=args.port,
        data_port=args.data_port,
        superuser=args.superuser,
        replication=args.replication,
    )
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    server.start()
    print(json.dumps({"url": server.url, "port": server.port, "data_port": server.data_port}), flush=True)
    try:
        stopping.wait()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
