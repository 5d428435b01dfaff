"""A Hadoop cluster of ``clusters.yaml`` as a plan's target, through the provider's WebHDFS hook.

Metadata are ``user.tandem.*`` extended attributes (they follow the inode through RENAME, so a
copy published by renaming keeps them). Room is the space quota of the plan's root when it has
one (``spaceQuota - spaceConsumed``, replicas counted, as HDFS enforces it), else the
filesystem's remaining space (``GETSTATUS``, Hadoop 3.4+), else a configured capacity.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tandem.errors import RemoteHdfsError
from tandem.gateway.targets.base import Space, TargetFull, hdfs_space
from tandem.hdfs.client import Hdfs
from tandem.hdfs.types import FsStatus

XATTR_PREFIX = "user.tandem."
QUOTA_EXCEEDED = {"DSQuotaExceededException", "QuotaExceededException", "NSQuotaExceededException"}


class ClusterTarget(Hdfs):
    """:class:`Hdfs` with what a target adds (metadata as xattrs, space)."""

    protocol = "webhdfs"
    supports_append = True

    def __init__(self, client: object, name: str, capacity: int | None = None) -> None:
        super().__init__(client)
        self.name = name
        self.capacity = capacity

    def write_with_meta(
        self,
        path: str,
        data: Iterable[bytes] | bytes,
        meta: Mapping[str, str],
        *,
        permission: str | None = None,
        location: str | None = None,
    ) -> None:
        """``location``: the DataNode URL of ``create_location(path)``, asked ahead of the data."""
        # a list would reach requests as form fields: stream anything that is not bytes
        body = data if isinstance(data, bytes) else iter(data)
        try:
            self.write(path, body, overwrite=True, location=location)
        except RemoteHdfsError as exc:
            if exc.exception in QUOTA_EXCEEDED:
                raise TargetFull(f"{self.name}: {exc}") from exc
            raise
        if meta:
            self.set_xattrs(path, {XATTR_PREFIX + k: v.encode() for k, v in meta.items()})
        if permission:  # last: a read-only file still takes its metadata first
            self.set_permission(path, permission)

    def meta(self, path: str) -> dict[str, str]:
        return {
            name[len(XATTR_PREFIX) :]: value.decode()
            for name, value in self.xattrs(path).items()
            if name.startswith(XATTR_PREFIX)
        }

    def space(self, root: str) -> Space:
        def fs_status() -> FsStatus | None:
            try:
                return self.fs_status(root)
            except RemoteHdfsError as exc:  # before Hadoop 3.4 WebHDFS has no GETSTATUS
                if exc.exception not in {"IllegalArgumentException", "UnsupportedOperationException"}:
                    raise
                return None

        usage = self.quota_usage(root) if self.status(root) is not None else None
        # quotas and the filesystem count every replica
        return hdfs_space(usage, max(1, self.default_replication()), self.capacity, fs_status)
