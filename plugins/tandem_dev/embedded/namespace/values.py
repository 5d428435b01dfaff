"""The values the embedded namespace answers with: what WebHDFS's JSON bodies are made of.

Plain records, no behaviour beyond closing a read handle: the WebHDFS layer turns them into
Hadoop's JSON shapes (``FileStatus``, ``ContentSummary``, ``QuotaUsage``, ``AclStatus``...).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from tandem_dev.embedded.snapshots import DiffEntry

Parts = tuple[str, ...]


def path_str(parts: Parts) -> str:
    return "/" + "/".join(parts)


@dataclass(frozen=True)
class FileInfo:
    """What ``FileStatus`` JSON is made of (``HdfsFileStatus`` in Hadoop)."""

    name: str
    is_dir: bool
    length: int
    owner: str
    group: str
    perm: int
    acl_bit: bool
    atime: int
    mtime: int
    block_size: int
    replication: int
    file_id: int
    children: int
    snapshot_enabled: bool


@dataclass(frozen=True)
class ContentSummary:
    directories: int
    files: int
    length: int
    space_consumed: int
    quota: int
    space_quota: int


@dataclass(frozen=True)
class QuotaUsage:
    count: int
    space_consumed: int
    quota: int
    space_quota: int


@dataclass(frozen=True)
class AclStatus:
    owner: str
    group: str
    perm: int
    sticky: bool
    entries: tuple[str, ...]


@dataclass(frozen=True)
class SnapshotInfo:
    """One entry of ``GETSNAPSHOTLIST``: the snapshot root's status and where it lives."""

    snapshot_id: int
    status: FileInfo
    parent_path: str


@dataclass(frozen=True)
class SnapshottableInfo:
    """One entry of ``GETSNAPSHOTTABLEDIRECTORYLIST``."""

    status: FileInfo
    parent_path: str
    snapshot_number: int
    snapshot_quota: int


@dataclass(frozen=True)
class DiffReport:
    root: str
    from_snapshot: str
    to_snapshot: str
    entries: tuple[DiffEntry, ...]


@dataclass
class ReadHandle:
    """An open blob and the byte range to send; the caller closes ``fd`` (-1 when empty)."""

    fd: int
    offset: int
    count: int

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
