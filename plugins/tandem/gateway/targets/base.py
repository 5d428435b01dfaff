"""What a plan's target must offer the gateway, whatever stores it.

The gateway runs the same few operations on every side: the primaries are HDFS clusters reached
through the provider's WebHDFS hook (:class:`~tandem.hdfs.client.Hdfs`), the target may also be
a NAS directory or an object store. :class:`Store` is what all sides offer (``Hdfs`` has it
already); :class:`Target` adds what only the target needs: metadata kept with each object (the
write timestamp, the encryption envelope), whether it can append, and its free space.

Paths are absolute in the target's own namespace (``/<root>/<path as written>`` and the plan's
journal under ``/.tandem/gateway``); a driver maps them onto its store (a bucket and prefix, a
directory). Every refusal is a :class:`~tandem.errors.RemoteHdfsError` carrying the Hadoop
exception name the gateway already understands (``FileNotFoundException``,
``FileAlreadyExistsException``...); a store that cannot be reached raises
:class:`~tandem.gateway.sides.SideDown`, a full one :class:`TargetFull`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from tandem.errors import TandemError
from tandem.hdfs.client import WalkEntry
from tandem.hdfs.types import FileChecksum, FileStatus, FsStatus, QuotaUsage

# metadata names, without the store's own prefix (``user.tandem.`` xattrs, ``x-amz-meta-tandem-``)
WRITTEN_MS = "written-ms"


class TargetFull(TandemError):
    """The target has no room for a write; the write is pending until space is made."""


@dataclass(frozen=True)
class Space:
    """Room for a plan's backups on its target, in bytes as the store counts them (HDFS counts
    every replica). ``free`` is None when the store sets no limit (an object store without a
    configured capacity)."""

    free: int | None
    used: int | None
    source: str  # quota | fs-status | disk | capacity | unlimited
    factor: int = 1  # bytes the store counts per byte written (HDFS: the replication)

    def fits(self, size: int) -> bool:
        return self.free is None or size * self.factor <= self.free


def hdfs_space(
    usage: QuotaUsage | None, factor: int, capacity: int | None, fs_status: Callable[[], FsStatus | None]
) -> Space:
    """Room under a plan's root on an HDFS cluster, in the order HDFS itself enforces it: the
    root's space quota (minus what it consumes, replicas counted), else a configured capacity
    (bytes as written), else the filesystem's remaining space (GETSTATUS, Hadoop 3.4+; ``fs_status``
    returns None where the server has no such call). ``usage`` is None when the root does not exist."""
    if usage is not None and usage.space_quota >= 0:
        return Space(max(0, usage.space_quota - usage.space_consumed), usage.space_consumed, "quota", factor)
    used = usage.space_consumed if usage is not None else 0
    if capacity is not None:
        return Space(max(0, capacity - used // factor), used // factor, "capacity")
    status = fs_status()
    if status is None:
        return Space(None, used, "unlimited")
    return Space(status.remaining, used, "fs-status", factor)


class Store(Protocol):
    """Operations the gateway runs on any side (primary or target)."""

    def status(self, path: str) -> FileStatus | None: ...

    def list(self, path: str) -> list[FileStatus]: ...

    def walk(self, top: str) -> Iterator[WalkEntry]: ...

    def mkdirs(self, path: str, permission: str | None = None) -> None: ...

    def delete(self, path: str, recursive: bool = False) -> bool: ...

    def rename(self, src: str, dst: str) -> None: ...

    def replace(self, src: str, dst: str) -> None: ...

    def open(
        self, path: str, offset: int = 0, length: int | None = None
    ) -> AbstractContextManager[Iterator[bytes]]: ...

    def write(
        self,
        path: str,
        data: Iterable[bytes] | bytes,
        *,
        overwrite: bool = True,
        permission: str | None = None,
        append: bool = False,
    ) -> None: ...

    def read_bytes(self, path: str) -> bytes: ...

    def checksum(self, path: str) -> FileChecksum | None: ...

    def content_summary(self, path: str) -> dict[str, int]: ...

    def set_owner(self, path: str, owner: str | None, group: str | None) -> None: ...

    def set_permission(self, path: str, permission: str) -> None: ...

    def set_times(self, path: str, modification_time: int, access_time: int | None = None) -> None: ...


class Target(Store, Protocol):
    """A plan's target: a :class:`Store` that keeps metadata with its objects and knows its room."""

    name: str
    protocol: str
    supports_append: bool

    def write_with_meta(
        self,
        path: str,
        data: Iterable[bytes] | bytes,
        meta: Mapping[str, str],
        *,
        permission: str | None = None,
    ) -> None:
        """Write ``path`` whole with ``meta`` attached (object metadata, xattrs or a sidecar)."""
        ...

    def meta(self, path: str) -> dict[str, str]:
        """The metadata Tandem attached to ``path`` (empty when none)."""
        ...

    def space(self, root: str) -> Space:
        """Room left for the plan whose backups live under ``root``."""
        ...
