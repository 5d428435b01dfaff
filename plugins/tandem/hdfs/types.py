"""Immutable values parsed once from WebHDFS JSON payloads.

Every parser takes the decoded JSON of one response and either returns a frozen value or
raises :class:`~tandem.errors.ClusterError` naming the field that was missing or malformed.
Nothing downstream touches raw payload dictionaries.
"""

from __future__ import annotations

import base64
import binascii
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tandem.errors import ClusterError


def _field(payload: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in payload:
        raise ClusterError(f"malformed WebHDFS {where}: missing {key!r}")
    value = payload[key]
    if kind is int and isinstance(value, bool):
        raise ClusterError(f"malformed WebHDFS {where}: {key!r} is not an integer")
    if not isinstance(value, kind):
        raise ClusterError(f"malformed WebHDFS {where}: {key!r} is not {kind.__name__}: {value!r}")
    return value


def _unwrap(payload: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(payload, Mapping) or not isinstance(payload.get(key), Mapping):
        raise ClusterError(f"malformed WebHDFS response: expected an object under {key!r}")
    inner: Mapping[str, Any] = payload[key]
    return inner


@dataclass(frozen=True)
class FileStatus:
    """One file or directory as the NameNode describes it (``FileStatus`` JSON)."""

    path_suffix: str
    type: str  # FILE | DIRECTORY | SYMLINK
    length: int
    owner: str
    group: str
    permission: str  # octal string, e.g. "755" or "1777"
    modification_time: int  # ms since the epoch
    access_time: int
    replication: int
    block_size: int
    file_id: int
    children_num: int
    acl_bit: bool = False
    snapshot_enabled: bool = False

    @property
    def is_dir(self) -> bool:
        return self.type == "DIRECTORY"

    def to_json(self) -> dict[str, Any]:
        """The ``FileStatus`` JSON object WebHDFS sends for this entry."""
        return {
            "pathSuffix": self.path_suffix,
            "type": self.type,
            "length": self.length,
            "owner": self.owner,
            "group": self.group,
            "permission": self.permission,
            "modificationTime": self.modification_time,
            "accessTime": self.access_time,
            "replication": self.replication,
            "blockSize": self.block_size,
            "fileId": self.file_id,
            "childrenNum": self.children_num,
            "aclBit": self.acl_bit,
            "snapshotEnabled": self.snapshot_enabled,
        }

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> FileStatus:
        where = "FileStatus"
        return cls(
            path_suffix=_field(item, "pathSuffix", str, where),
            type=_field(item, "type", str, where),
            length=_field(item, "length", int, where),
            owner=_field(item, "owner", str, where),
            group=_field(item, "group", str, where),
            permission=_field(item, "permission", str, where),
            modification_time=_field(item, "modificationTime", int, where),
            access_time=int(item.get("accessTime", 0)),
            replication=int(item.get("replication", 0)),
            block_size=int(item.get("blockSize", 0)),
            file_id=int(item.get("fileId", 0)),
            children_num=int(item.get("childrenNum", 0)),
            acl_bit=bool(item.get("aclBit", False)),
            snapshot_enabled=bool(item.get("snapshotEnabled", False)),
        )


class DiffType(enum.StrEnum):
    CREATE = "CREATE"
    MODIFY = "MODIFY"
    DELETE = "DELETE"
    RENAME = "RENAME"


@dataclass(frozen=True)
class DiffEntry:
    """One line of a snapshot diff. Paths are relative to the snapshot root ("" is the root)."""

    type: DiffType
    source: str
    target: str | None = None

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> DiffEntry:
        raw = _field(item, "type", str, "DiffReportEntry")
        try:
            kind = DiffType(raw)
        except ValueError:
            raise ClusterError(f"malformed WebHDFS DiffReportEntry: unknown type {raw!r}") from None
        source = _field(item, "sourcePath", str, "DiffReportEntry")
        target = item.get("targetPath")
        if kind is DiffType.RENAME and not isinstance(target, str):
            raise ClusterError("malformed WebHDFS DiffReportEntry: RENAME without targetPath")
        return cls(kind, source, target if kind is DiffType.RENAME else None)


@dataclass(frozen=True)
class SnapshotDiffReport:
    """``GETSNAPSHOTDIFF``: what changed under ``root`` from ``from_snapshot`` to ``to_snapshot``.

    An empty snapshot name means the current state of the tree, as in HDFS.
    """

    root: str
    from_snapshot: str
    to_snapshot: str
    entries: tuple[DiffEntry, ...]

    @classmethod
    def from_json(cls, payload: Any) -> SnapshotDiffReport:
        report = _unwrap(payload, "SnapshotDiffReport")
        where = "SnapshotDiffReport"
        entries = _field(report, "diffList", list, where)
        return cls(
            root=_field(report, "snapshotRoot", str, where),
            from_snapshot=str(report.get("fromSnapshot") or ""),
            to_snapshot=str(report.get("toSnapshot") or ""),
            entries=tuple(DiffEntry.from_json(e) for e in entries),
        )


@dataclass(frozen=True)
class SnapshottableDir:
    """One entry of ``GETSNAPSHOTTABLEDIRECTORYLIST``."""

    path: str
    snapshot_number: int
    snapshot_quota: int
    owner: str

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> SnapshottableDir:
        where = "SnapshottableDirectoryStatus"
        status = FileStatus.from_json(_field(item, "dirStatus", dict, where))
        parent = _field(item, "parentFullPath", str, where)
        path = parent.rstrip("/") + "/" + status.path_suffix if status.path_suffix else parent
        return cls(
            path=path or "/",
            snapshot_number=int(item.get("snapshotNumber", 0)),
            snapshot_quota=int(item.get("snapshotQuota", 0)),
            owner=status.owner,
        )

    @staticmethod
    def list_from_json(payload: Any) -> tuple[SnapshottableDir, ...]:
        if not isinstance(payload, Mapping):
            raise ClusterError("malformed WebHDFS response: expected SnapshottableDirectoryList")
        items = payload.get("SnapshottableDirectoryList")
        if items is None:  # Hadoop answers null when there is none
            return ()
        if not isinstance(items, list):
            raise ClusterError("malformed WebHDFS SnapshottableDirectoryList: not a list")
        return tuple(SnapshottableDir.from_json(i) for i in items)


@dataclass(frozen=True)
class SnapshotInfo:
    """One entry of ``GETSNAPSHOTLIST``: a snapshot's name, id and creation time (ms)."""

    name: str
    snapshot_id: int
    created_ms: int

    @staticmethod
    def list_from_json(payload: Any) -> tuple[SnapshotInfo, ...]:
        if not isinstance(payload, Mapping):
            raise ClusterError("malformed WebHDFS response: expected SnapshotList")
        items = payload.get("SnapshotList") or []
        if not isinstance(items, list):
            raise ClusterError("malformed WebHDFS SnapshotList: not a list")
        out = []
        for item in items:
            status = FileStatus.from_json(_field(item, "dirStatus", dict, "SnapshotStatus"))
            out.append(
                SnapshotInfo(
                    name=status.path_suffix,
                    snapshot_id=int(_field(item, "snapshotID", int, "SnapshotStatus")),
                    created_ms=status.modification_time,
                )
            )
        return tuple(out)


@dataclass(frozen=True)
class AclStatus:
    """``GETACLSTATUS``: extended entries only (``user:carla:rw-``); base bits are in ``permission``."""

    owner: str
    group: str
    permission: str
    sticky: bool
    entries: tuple[str, ...]

    @classmethod
    def from_json(cls, payload: Any) -> AclStatus:
        body = _unwrap(payload, "AclStatus")
        where = "AclStatus"
        entries = _field(body, "entries", list, where)
        return cls(
            owner=_field(body, "owner", str, where),
            group=_field(body, "group", str, where),
            permission=str(body.get("permission", "")),
            sticky=bool(body.get("stickyBit", False)),
            entries=tuple(str(e) for e in entries),
        )


@dataclass(frozen=True)
class QuotaUsage:
    """``GETQUOTAUSAGE``; -1 means no quota."""

    file_and_directory_count: int
    quota: int
    space_consumed: int
    space_quota: int

    @classmethod
    def from_json(cls, payload: Any) -> QuotaUsage:
        body = _unwrap(payload, "QuotaUsage")
        where = "QuotaUsage"
        return cls(
            file_and_directory_count=_field(body, "fileAndDirectoryCount", int, where),
            quota=_field(body, "quota", int, where),
            space_consumed=_field(body, "spaceConsumed", int, where),
            space_quota=_field(body, "spaceQuota", int, where),
        )


@dataclass(frozen=True)
class FsStatus:
    """``GETSTATUS``: the filesystem's capacity and the bytes used and remaining on it."""

    capacity: int
    used: int
    remaining: int

    @classmethod
    def from_json(cls, payload: Any) -> FsStatus:
        body = _unwrap(payload, "FsStatus")
        where = "FsStatus"
        return cls(
            capacity=_field(body, "capacity", int, where),
            used=_field(body, "used", int, where),
            remaining=_field(body, "remaining", int, where),
        )


def xattrs_from_json(payload: Any) -> dict[str, bytes]:
    """``GETXATTRS``: prefixed name -> value. Values come as ``0s`` base64, ``0x`` hex or
    ``"text"`` (XAttrCodec); an attribute without a value (JSON null) is ``b""``."""
    if not isinstance(payload, Mapping) or not isinstance(payload.get("XAttrs"), list):
        raise ClusterError("malformed WebHDFS response: expected a list under 'XAttrs'")
    out: dict[str, bytes] = {}
    for item in payload["XAttrs"]:
        if not isinstance(item, Mapping):
            raise ClusterError(f"malformed WebHDFS XAttr: not an object: {item!r}")
        name = _field(item, "name", str, "XAttr")
        value = item.get("value")
        if value is not None and not isinstance(value, str):
            raise ClusterError(f"malformed WebHDFS XAttr: 'value' is not str: {value!r}")
        out[name] = _xattr_value(value)
    return out


def _xattr_value(text: str | None) -> bytes:
    if text is None:
        return b""
    prefix = text[:2].lower()
    try:
        if prefix == "0s":
            return base64.b64decode(text[2:], validate=True)
        if prefix == "0x":
            return bytes.fromhex(text[2:])
    except (ValueError, binascii.Error):
        raise ClusterError(f"malformed WebHDFS XAttr value: {text!r}") from None
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].encode("utf-8")
    raise ClusterError(f"malformed WebHDFS XAttr value: {text!r}")


@dataclass(frozen=True)
class FileChecksum:
    """``GETFILECHECKSUM``: comparable only between files written with the same block layout."""

    algorithm: str
    bytes: str
    length: int

    @classmethod
    def from_json(cls, payload: Any) -> FileChecksum:
        body = _unwrap(payload, "FileChecksum")
        where = "FileChecksum"
        return cls(
            algorithm=_field(body, "algorithm", str, where),
            bytes=_field(body, "bytes", str, where),
            length=_field(body, "length", int, where),
        )
