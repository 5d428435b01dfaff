import pytest

from tandem.errors import ClusterError
from tandem.hdfs.types import (
    AclStatus,
    DiffEntry,
    DiffType,
    FileStatus,
    QuotaUsage,
    SnapshotDiffReport,
    SnapshotInfo,
    SnapshottableDir,
)

STATUS = {
    "pathSuffix": "a",
    "type": "FILE",
    "length": 3,
    "owner": "ann",
    "group": "fin",
    "permission": "640",
    "accessTime": 1,
    "modificationTime": 2,
    "blockSize": 128,
    "replication": 1,
    "fileId": 16390,
    "childrenNum": 0,
    "storagePolicy": 0,
}


def test_file_status_parses_the_hadoop_shape():
    s = FileStatus.from_json(STATUS)
    assert (s.path_suffix, s.length, s.owner, s.permission, s.file_id, s.is_dir) == (
        "a",
        3,
        "ann",
        "640",
        16390,
        False,
    )


@pytest.mark.parametrize(
    "payload",
    [
        {k: v for k, v in STATUS.items() if k != "owner"},
        {**STATUS, "length": "3"},
        {**STATUS, "length": True},
    ],
)
def test_file_status_rejects_corrupt_payloads(payload):
    with pytest.raises(ClusterError, match="malformed WebHDFS FileStatus"):
        FileStatus.from_json(payload)


def test_snapshot_diff_report_parses_every_entry_kind():
    report = SnapshotDiffReport.from_json(
        {
            "SnapshotDiffReport": {
                "snapshotRoot": "/d",
                "fromSnapshot": "s1",
                "toSnapshot": "",
                "diffList": [
                    {"type": "MODIFY", "sourcePath": ""},
                    {"type": "CREATE", "sourcePath": "n"},
                    {"type": "DELETE", "sourcePath": "o"},
                    {"type": "RENAME", "sourcePath": "a", "targetPath": "b"},
                ],
            }
        }
    )
    assert report.entries == (
        DiffEntry(DiffType.MODIFY, ""),
        DiffEntry(DiffType.CREATE, "n"),
        DiffEntry(DiffType.DELETE, "o"),
        DiffEntry(DiffType.RENAME, "a", "b"),
    )
    assert report.to_snapshot == ""


@pytest.mark.parametrize(
    "entry",
    [{"type": "RENAME", "sourcePath": "a"}, {"type": "COPY", "sourcePath": "a"}, {"sourcePath": "a"}],
)
def test_diff_entries_reject_corrupt_payloads(entry):
    with pytest.raises(ClusterError):
        DiffEntry.from_json(entry)


def test_lists_and_small_values():
    dirs = SnapshottableDir.list_from_json(
        {
            "SnapshottableDirectoryList": [
                {
                    "dirStatus": {**STATUS, "type": "DIRECTORY", "pathSuffix": "d"},
                    "parentFullPath": "/data",
                    "snapshotNumber": 2,
                    "snapshotQuota": 65536,
                }
            ]
        }
    )
    assert dirs[0].path == "/data/d" and dirs[0].snapshot_number == 2
    assert SnapshottableDir.list_from_json({"SnapshottableDirectoryList": None}) == ()
    snaps = SnapshotInfo.list_from_json(
        {"SnapshotList": [{"dirStatus": {**STATUS, "pathSuffix": "s1"}, "snapshotID": 4}]}
    )
    assert snaps[0].name == "s1" and snaps[0].created_ms == 2
    acl = AclStatus.from_json(
        {"AclStatus": {"entries": ["user:bob:r-x"], "owner": "o", "group": "g", "permission": "750"}}
    )
    assert acl.entries == ("user:bob:r-x",)
    quota = QuotaUsage.from_json(
        {"QuotaUsage": {"fileAndDirectoryCount": 3, "quota": -1, "spaceConsumed": 9, "spaceQuota": 100}}
    )
    assert quota.space_quota == 100
    with pytest.raises(ClusterError, match="QuotaUsage"):
        QuotaUsage.from_json({"Quota": {}})
