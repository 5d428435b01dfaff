"""A cluster outside ``clusters.yaml`` (``webhdfs://``), through fsspec's own WebHDFS driver."""

from __future__ import annotations

import base64
import functools
from collections.abc import Mapping
from typing import Any

from tandem.errors import RemoteHdfsError
from tandem.gateway.targets.base import Space, hdfs_space
from tandem.gateway.targets.fs import XATTR_PREFIX, FsspecTarget
from tandem.hdfs.types import FsStatus, QuotaUsage


class WebhdfsTarget(FsspecTarget):
    """A cluster outside ``clusters.yaml``, through fsspec's own WebHDFS driver: RENAME with
    ``OVERWRITE`` (fsspec's ``mv`` cannot replace, and a refused RENAME only answers false),
    permissions with SETPERMISSION, metadata as ``user.tandem.*`` extended attributes."""

    def replace(self, src: str, dst: str) -> None:
        answer = self._call(
            src,
            lambda: self.fs._call(
                "RENAME", method="put", path=self._p(src), destination=self._p(dst), renameoptions="OVERWRITE"
            ),
        )
        if answer.content and answer.json().get("boolean") is False:
            raise RemoteHdfsError(f"{self.name} did not move {src} to {dst}", exception="IOException")

    def set_permission(self, path: str, permission: str) -> None:
        self._call(path, lambda: self.fs.chmod(self._p(path), permission))  # WebHDFS takes octal text

    def _after_write(self, path: str, meta: Mapping[str, str], permission: str | None) -> None:
        super()._after_write(path, meta, permission)  # metadata first: then the file may be read-only
        if permission:
            self.set_permission(path, permission)

    def meta(self, path: str) -> dict[str, str]:
        answer = self._call(path, lambda: self.fs._call("GETXATTRS", path=self._p(path), encoding="base64"))
        found = {}
        for entry in answer.json().get("XAttrs", []):
            name, value = str(entry["name"]), str(entry.get("value") or "")
            if name.startswith(XATTR_PREFIX) and value.startswith("0s"):
                found[name[len(XATTR_PREFIX) :]] = base64.b64decode(value[2:]).decode()
        return found

    def _put_meta(self, path: str, meta: Mapping[str, str]) -> None:
        for key, value in meta.items():
            params = {
                "xattr.name": XATTR_PREFIX + key,
                "xattr.value": "0s" + base64.b64encode(value.encode()).decode(),
                "flag": "CREATE,REPLACE",
            }
            call = functools.partial(self.fs._call, "SETXATTR", method="put", path=self._p(path), **params)
            self._call(path, call)

    # room, as for a cluster of clusters.yaml: the root's quota, a capacity, or GETSTATUS
    def space(self, root: str) -> Space:
        def get(op: str, path: str) -> Any:
            return self._call(path, lambda: self.fs._call(op, path=self._p(path)).json())

        def fs_status() -> FsStatus | None:
            try:
                return FsStatus.from_json(get("GETSTATUS", root))
            except ValueError:  # fsspec's IllegalArgument/Unsupported: no GETSTATUS before Hadoop 3.4
                return None

        usage = QuotaUsage.from_json(get("GETQUOTAUSAGE", root)) if self.status(root) is not None else None
        defaults = get("GETSERVERDEFAULTS", "/")
        factor = max(1, int(defaults.get("FsServerDefaults", {}).get("replication", 1)))
        return hdfs_space(usage, factor, self.capacity, fs_status)
