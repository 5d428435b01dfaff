"""A NAS mount or local directory (``file://``) as a gateway target.

RENAME is the kernel's (atomic); metadata are ``user.tandem.*`` extended attributes, or a hidden
sidecar file ``.tandem-meta.<name>`` beside the object where the filesystem has none (NFS before
4.2); the write timestamp is also the file's mtime; room is the filesystem's free space
(``statvfs``), or a configured capacity.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import posixpath
import pwd
import shutil
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tandem.errors import RemoteHdfsError
from tandem.gateway.targets.base import WRITTEN_MS, Space
from tandem.gateway.targets.fs import SIDECAR_PREFIX, XATTR_PREFIX, FsspecTarget, translate_error


class LocalTarget(FsspecTarget):
    """A directory, typically a NAS mount."""

    supports_append = True

    def _p(self, path: str) -> str:
        """The path under the directory, refused when a symbolic link on the way leads out of
        it (whoever can write to the NAS could otherwise send backups, and their deletes,
        anywhere the gateway may write)."""
        full = super()._p(path)
        base = os.path.realpath(self.base or "/")
        real = os.path.realpath(full)
        if real != base and not real.startswith(base.rstrip("/") + "/"):
            raise RemoteHdfsError(
                f"{path} leads out of {self.name}'s directory {self.base} through a symbolic link",
                exception="AccessControlException",
            )
        return full

    def _owner(self, info: Mapping[str, Any]) -> str:
        uid = info.get("uid")
        if not isinstance(uid, int):
            return "tandem"
        try:
            return pwd.getpwuid(uid).pw_name
        except KeyError:
            return str(uid)

    def _sidecar(self, path: str) -> str:
        parent, name = posixpath.split(self._p(path))
        return posixpath.join(parent, SIDECAR_PREFIX + name)

    def _append(self, path: str, data: Iterable[bytes] | bytes) -> None:
        full = self._p(path)
        with self._call(path, lambda: open(full, "r+b")) as handle:
            handle.seek(0, os.SEEK_END)
            for block in [data] if isinstance(data, bytes) else data:
                self._call(path, lambda b=block: handle.write(b))  # type: ignore[misc]
            handle.flush()
            os.fsync(handle.fileno())

    def _open_write(self, full: str, meta: Mapping[str, str]) -> Any:
        return open(full, "wb")

    def _after_write(self, path: str, meta: Mapping[str, str], permission: str | None) -> None:
        super()._after_write(path, meta, permission)  # first: a read-only file takes no xattr
        if permission:
            full = self._p(path)
            self._call(path, lambda: os.chmod(full, int(permission, 8) & 0o7777))

    def _move(self, src: str, dst: str) -> None:
        if self.status(src) is None:
            raise RemoteHdfsError(f"File does not exist: {src}", exception="FileNotFoundException")
        source, target = self._p(src), self._p(dst)
        self._call(dst, lambda: os.makedirs(posixpath.dirname(target), exist_ok=True))
        self._call(src, lambda: os.replace(source, target))  # atomic, as HDFS RENAME
        with contextlib.suppress(FileNotFoundError):
            os.replace(self._sidecar(src), self._sidecar(dst))

    def set_permission(self, path: str, permission: str) -> None:
        self._call(path, lambda: os.chmod(self._p(path), int(permission, 8) & 0o7777))

    def set_times(self, path: str, modification_time: int, access_time: int | None = None) -> None:
        self._put_meta(path, {WRITTEN_MS: str(modification_time)})

    def meta(self, path: str) -> dict[str, str]:
        full = self._p(path)
        found: dict[str, str] = {}
        with contextlib.suppress(FileNotFoundError):
            found.update(json.loads(Path(self._sidecar(path)).read_bytes()))
        try:
            names = os.listxattr(full)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                raise translate_error(FileNotFoundError(full), path, self.name) from exc
            return found
        for name in names:
            if name.startswith(XATTR_PREFIX):
                found[name[len(XATTR_PREFIX) :]] = os.getxattr(full, name).decode()
        return found

    def _put_meta(self, path: str, meta: Mapping[str, str]) -> None:
        full = self._p(path)
        try:
            for key, value in meta.items():
                os.setxattr(full, XATTR_PREFIX + key, value.encode())
        except OSError as exc:
            if exc.errno not in {errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM}:
                raise translate_error(exc, path, self.name) from exc
            sidecar = self._sidecar(path)
            current = self.meta(path)
            scratch = f"{sidecar}.{os.getpid()}.{threading.get_ident()}.tmp"
            with open(scratch, "w") as handle:
                json.dump({**current, **meta}, handle)
            os.replace(scratch, sidecar)
        if WRITTEN_MS in meta:
            seconds = int(meta[WRITTEN_MS]) / 1000
            self._call(path, lambda: os.utime(full, (seconds, seconds)))

    def _drop_meta(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(self._sidecar(path))

    def space(self, root: str) -> Space:
        if self.capacity is not None:
            return super().space(root)
        usage = self._call(root, lambda: shutil.disk_usage(self.base or "/"))
        return Space(usage.free, None, "disk")
