"""The JSON bodies of WebHDFS answers, as Hadoop's ``JsonUtil`` writes them."""

from __future__ import annotations

from tandem_dev.embedded.checksum import FileChecksum
from tandem_dev.embedded.namespace import (
    ContentSummary,
    DiffReport,
    FileInfo,
    QuotaUsage,
    SnapshotInfo,
    SnapshottableInfo,
)


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


def content_summary_json(summary: ContentSummary) -> dict[str, object]:
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


def quota_usage_json(usage: QuotaUsage) -> dict[str, object]:
    return {
        "QuotaUsage": {
            "fileAndDirectoryCount": usage.count,
            "quota": usage.quota,
            "spaceConsumed": usage.space_consumed,
            "spaceQuota": usage.space_quota,
            "typeQuota": {},
        }
    }


def checksum_json(checksum: FileChecksum) -> dict[str, object]:
    return {
        "FileChecksum": {
            "algorithm": checksum.algorithm,
            "bytes": checksum.raw.hex(),
            "length": checksum.length,
        }
    }


def diff_json(report: DiffReport) -> dict[str, object]:
    return {
        "SnapshotDiffReport": {
            "diffList": [entry.to_json() for entry in report.entries],
            "fromSnapshot": report.from_snapshot,
            "snapshotRoot": report.root,
            "toSnapshot": report.to_snapshot,
        }
    }


def snapshot_json(item: SnapshotInfo) -> dict[str, object]:
    return {
        "deletionStatus": "ACTIVE",
        "dirStatus": file_status_json(item.status),
        "fullPath": item.parent_path,
        "snapshotID": item.snapshot_id,
    }


def snapshottable_json(item: SnapshottableInfo) -> dict[str, object]:
    return {
        "dirStatus": file_status_json(item.status),
        "parentFullPath": item.parent_path,
        "snapshotNumber": item.snapshot_number,
        "snapshotQuota": item.snapshot_quota,
    }
