"""Targets reached through fsspec: a NAS mount (``file://``, :mod:`.local`), an S3-compatible store
(``s3://``, :mod:`.s3`), or any protocol fsspec's registry knows (``webhdfs://`` of a cluster
outside ``clusters.yaml``, :mod:`.webhdfs`).

:class:`FsspecTarget` maps the gateway's absolute paths under the URI's base and turns the
filesystem's errors into the Hadoop exception names the gateway understands. Each protocol's
quirks stay in its subclass, a module each.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import posixpath
import stat as stat_mod
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, TypeVar

from tandem.errors import RemoteHdfsError
from tandem.gateway.sides import SideDown
from tandem.gateway.targets.base import Space, TargetFull
from tandem.hdfs.client import WalkEntry
from tandem.hdfs.types import FileChecksum, FileStatus

T = TypeVar("T")

CHUNK = 1 << 20
UPLOAD_BLOCK = 8 << 20  # S3 multipart parts: memory per upload stays this size, whatever the file
SIDECAR_PREFIX = ".tandem-meta."
XATTR_PREFIX = "user.tandem."
_UNREACHABLE_ERRNOS = {
    errno.EIO,
    errno.EBUSY,  # s3fs: 503 SlowDown / ServiceUnavailable
    errno.EREMOTEIO,  # s3fs: 500 InternalError
    errno.EAGAIN,
    errno.ENOTCONN,
    errno.ESTALE,
    errno.EHOSTDOWN,
    errno.EHOSTUNREACH,
    errno.ETIMEDOUT,
    errno.ECONNREFUSED,
    errno.ECONNRESET,
}
_UNREACHABLE_NAMES = {
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ConnectionClosedError",
    "ClientConnectorError",
    "ServerDisconnectedError",
    "ClientOSError",
}


def _unreachable(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    return any(k.__name__ in _UNREACHABLE_NAMES for k in type(exc).__mro__)


def translate_error(exc: BaseException, path: str, name: str) -> BaseException:
    """The filesystem's error as the gateway understands it: a Hadoop exception name, the side
    down (unreachable, or a server that cannot prove who it is), or the target full."""
    if isinstance(exc, RemoteHdfsError | SideDown | TargetFull):
        return exc
    if isinstance(exc, FileNotFoundError):
        return RemoteHdfsError(f"File does not exist: {path}", exception="FileNotFoundException")
    if isinstance(exc, FileExistsError):
        return RemoteHdfsError(f"{path} already exists", exception="FileAlreadyExistsException")
    if isinstance(exc, PermissionError):
        return RemoteHdfsError(f"{path}: {exc}", exception="AccessControlException")
    if isinstance(exc, OSError) and exc.errno in {errno.ENOSPC, errno.EDQUOT}:
        return TargetFull(f"{name}: no space left for {path}")
    if type(exc).__name__ == "MutualAuthenticationError":  # requests-kerberos: no proof of identity
        # never written to: the side counts as down, its writes stay pending until it proves itself
        return SideDown(f"{name}: the server did not prove it is the Kerberos service it claims to be")
    if _unreachable(exc) or (isinstance(exc, OSError) and exc.errno in _UNREACHABLE_ERRNOS):
        return SideDown(f"{name}: {type(exc).__name__}: {exc}")
    if isinstance(exc, NotADirectoryError | IsADirectoryError | OSError):
        return RemoteHdfsError(f"{path}: {exc}", exception="IOException")
    return exc


class FsspecTarget:
    """A target over one fsspec filesystem, its objects under ``base``."""

    supports_append = False

    def __init__(self, fs: Any, base: str, name: str, protocol: str, capacity: int | None = None) -> None:
        self.fs = fs
        self.base = base.rstrip("/")
        self.name = name
        self.protocol = protocol
        self.capacity = capacity

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, base={self.base!r})"

    # -- plumbing ---------------------------------------------------------------------------
    def _p(self, path: str) -> str:
        return self.base + "/" + path.strip("/") if path.strip("/") else (self.base or "/")

    def _call(self, path: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except Exception as exc:
            raise translate_error(exc, path, self.name) from exc

    def _mtime_ms(self, info: Mapping[str, Any]) -> int:
        for key in ("mtime", "modificationTime", "LastModified", "last_modified", "created"):
            value = info.get(key)
            if isinstance(value, datetime):
                return int(value.timestamp() * 1000)
            if isinstance(value, int | float):
                return int(value * 1000) if value < 1e11 else int(value)
        return 0

    def _status(self, info: Mapping[str, Any], suffix: str) -> FileStatus:
        is_dir = info.get("type") == "directory"
        mtime = self._mtime_ms(info)
        mode = info.get("mode")
        if isinstance(info.get("permission"), str):  # a store that keeps HDFS permissions (WebHDFS)
            permission = str(info["permission"])
        elif isinstance(mode, int):
            permission = format(stat_mod.S_IMODE(mode), "o")
        else:
            permission = "755" if is_dir else "644"
        return FileStatus(
            path_suffix=suffix,
            type="DIRECTORY" if is_dir else "FILE",
            length=0 if is_dir else int(info.get("size") or 0),
            owner=str(info.get("owner") or self._owner(info)),
            group=str(info.get("group") or self._owner(info)),
            permission=permission,
            modification_time=mtime,
            access_time=mtime,
            replication=1,
            block_size=CHUNK,
            file_id=0,
            children_num=0,
        )

    def _owner(self, info: Mapping[str, Any]) -> str:
        return "tandem"

    @staticmethod
    def _hidden(name: str) -> bool:
        return name.startswith(SIDECAR_PREFIX)

    # -- Store ------------------------------------------------------------------------------
    def status(self, path: str) -> FileStatus | None:
        try:
            info = self._call(path, lambda: self.fs.info(self._p(path)))
        except RemoteHdfsError as exc:
            if exc.exception == "FileNotFoundException":
                return None
            raise
        return self._status(info, "")

    def list(self, path: str) -> list[FileStatus]:
        full = self._p(path)
        entries = self._call(path, lambda: self.fs.ls(full, detail=True))
        if not entries and not self._call(path, lambda: self.fs.isdir(full)):
            raise RemoteHdfsError(f"File {path} does not exist.", exception="FileNotFoundException")
        out = []
        for info in entries:
            name = posixpath.basename(str(info["name"]).rstrip("/"))
            if str(info["name"]).rstrip("/") == full.rstrip("/") or self._hidden(name):
                continue
            out.append(self._status(info, name))
        return sorted(out, key=lambda s: s.path_suffix)

    def walk(self, top: str) -> Iterator[WalkEntry]:
        full = self._p(top).rstrip("/")
        found = self._call(top, lambda: self.fs.find(full, withdirs=True, detail=True))
        for name in sorted(found):
            rel = str(name).rstrip("/")[len(full) + 1 :]
            if rel and not any(self._hidden(part) for part in rel.split("/")):
                yield WalkEntry(rel, self._status(found[name], posixpath.basename(rel)))

    def mkdirs(self, path: str, permission: str | None = None) -> None:
        self._call(path, lambda: self.fs.makedirs(self._p(path), exist_ok=True))

    def delete(self, path: str, recursive: bool = False) -> bool:
        if self.status(path) is None:
            return False
        self._call(path, lambda: self.fs.rm(self._p(path), recursive=recursive))
        self._drop_meta(path)
        return True

    def rename(self, src: str, dst: str) -> None:
        held = self.status(dst)
        if held is not None and not held.is_dir:
            raise RemoteHdfsError(f"{dst} already exists", exception="FileAlreadyExistsException")
        if held is not None:
            dst = posixpath.join(dst, posixpath.basename(src))  # into a directory, as HDFS does
        self._move(src, dst)

    def replace(self, src: str, dst: str) -> None:
        self._move(src, dst)

    def _move(self, src: str, dst: str) -> None:
        if self.status(src) is None:
            raise RemoteHdfsError(f"File does not exist: {src}", exception="FileNotFoundException")
        self._call(src, lambda: self.fs.mv(self._p(src), self._p(dst), recursive=True))
        # some drivers ignore a refused move (fsspec's webhdfs: RENAME answering false)
        if self.status(src) is not None or self.status(dst) is None:
            raise RemoteHdfsError(f"{self.name} did not move {src} to {dst}", exception="IOException")

    @contextlib.contextmanager
    def open(self, path: str, offset: int = 0, length: int | None = None) -> Iterator[Iterator[bytes]]:
        handle = self._call(path, lambda: self.fs.open(self._p(path), "rb"))
        with handle:
            if offset:
                handle.seek(offset)

            def chunks() -> Iterator[bytes]:
                left = length
                while left is None or left > 0:
                    want = CHUNK if left is None else min(CHUNK, left)
                    block = self._call(path, functools.partial(handle.read, want))
                    if not block:
                        return
                    if left is not None:
                        left -= len(block)
                    yield block

            yield chunks()

    def write(
        self,
        path: str,
        data: Iterable[bytes] | bytes,
        *,
        overwrite: bool = True,
        permission: str | None = None,
        append: bool = False,
    ) -> None:
        if append:
            self._append(path, data)
            return
        if not overwrite and self.status(path) is not None:
            raise RemoteHdfsError(f"{path} already exists", exception="FileAlreadyExistsException")
        self.write_with_meta(path, data, {}, permission=permission)

    def _append(self, path: str, data: Iterable[bytes] | bytes) -> None:
        raise RemoteHdfsError(
            f"{self.protocol} targets cannot append ({path})", exception="UnsupportedOperationException"
        )

    def write_with_meta(
        self,
        path: str,
        data: Iterable[bytes] | bytes,
        meta: Mapping[str, str],
        *,
        permission: str | None = None,
    ) -> None:
        full = self._p(path)
        self._call(path, lambda: self.fs.makedirs(posixpath.dirname(full), exist_ok=True))
        handle = self._call(path, lambda: self._open_write(full, meta))
        try:
            for block in [data] if isinstance(data, bytes) else data:
                self._call(path, lambda b=block: handle.write(b))  # type: ignore[misc]
            self._call(path, handle.close)
        except BaseException:
            self._discard(handle, full)  # never a partial object under the name
            raise
        self._after_write(path, meta, permission)

    def _discard(self, handle: Any, full: str) -> None:
        discard = getattr(handle, "discard", None)
        with contextlib.suppress(Exception):
            if discard is not None:
                discard()  # an upload in progress is aborted, not completed
                handle.closed = True  # nothing left to flush when the object is collected
            else:
                handle.close()
                self.fs.rm(full)

    def _open_write(self, full: str, meta: Mapping[str, str]) -> Any:
        return self.fs.open(full, "wb")

    def _after_write(self, path: str, meta: Mapping[str, str], permission: str | None) -> None:
        if meta:
            self._put_meta(path, meta)

    def read_bytes(self, path: str) -> bytes:
        data: bytes = self._call(path, lambda: self.fs.cat_file(self._p(path)))
        return data

    def checksum(self, path: str) -> FileChecksum | None:
        return None  # no checksum comparable with HDFS's; copies compare length and write time

    def content_summary(self, path: str) -> dict[str, int]:
        files = dirs = length = 0
        for entry in self.walk(path):
            if entry.status.is_dir:
                dirs += 1
            else:
                files += 1
                length += entry.status.length
        return {
            "directoryCount": dirs + 1,
            "fileCount": files,
            "length": length,
            "spaceConsumed": length,
            "quota": -1,
            "spaceQuota": -1,
        }

    def set_owner(self, path: str, owner: str | None, group: str | None) -> None:
        return None  # HDFS owners live on the primaries; a NAS or bucket keeps the data

    def set_permission(self, path: str, permission: str) -> None:
        return None

    def set_times(self, path: str, modification_time: int, access_time: int | None = None) -> None:
        return None  # an object's time is the store's; Tandem's write time travels with the upload

    # -- Target -----------------------------------------------------------------------------
    def meta(self, path: str) -> dict[str, str]:
        return {}

    def _put_meta(self, path: str, meta: Mapping[str, str]) -> None:
        return None

    def _drop_meta(self, path: str) -> None:
        return None

    def used(self, root: str) -> int:
        return (
            sum(e.status.length for e in self.walk(root) if not e.status.is_dir) if self.status(root) else 0
        )

    def space(self, root: str) -> Space:
        used = self.used(root)
        if self.capacity is not None:
            return Space(max(0, self.capacity - used), used, "capacity")
        return Space(None, used, "unlimited")
