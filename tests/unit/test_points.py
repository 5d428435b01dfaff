"""Pure parts of restore points: which paths a reverse diff touches, capture fingerprints,
older manifests, point arguments."""

from __future__ import annotations

import pytest
from hmsclient.genthrift.hive_metastore.ttypes import (
    Database,
    FieldSchema,
    Partition,
    SerDeInfo,
    StorageDescriptor,
    Table,
)

from tandem.capture import Capture, TableCapture
from tandem.catalog import Manifest, ManifestDataset
from tandem.errors import RestoreError
from tandem.hdfs.types import DiffEntry, DiffType
from tandem.points import parse_point
from tandem.restore import changed_paths


def entry(kind: DiffType, source: str, target: str | None = None) -> DiffEntry:
    return DiffEntry(kind, source, target)


def test_changed_paths_are_inside_the_subtree_parents_first():
    entries = [
        entry(DiffType.MODIFY, ""),
        entry(DiffType.CREATE, "sub/b/new"),
        entry(DiffType.DELETE, "sub/a"),
        entry(DiffType.RENAME, "sub/x", "elsewhere/x"),
        entry(DiffType.MODIFY, "other/file"),
    ]
    assert changed_paths(entries, "sub") == ["sub/a", "sub/x", "sub/b/new"]
    # a whole root: both names of a rename, never the root itself
    assert changed_paths(entries, "") == ["elsewhere/x", "other/file", "sub/a", "sub/x", "sub/b/new"]


def table(location: str, access: int = 0, ddl: str = "1") -> Table:
    sd = StorageDescriptor(
        cols=[FieldSchema("id", "int", "")],
        location=location,
        serdeInfo=SerDeInfo(parameters={}),
        parameters={},
    )
    return Table(
        tableName="t",
        dbName="db",
        owner="o",
        lastAccessTime=access,
        sd=sd,
        partitionKeys=[FieldSchema("day", "string", "")],
        parameters={"transient_lastDdlTime": ddl, "comment": "c"},
        tableType="MANAGED_TABLE",
    )


def part(day: str, access: int = 0) -> Partition:
    sd = StorageDescriptor(
        location=f"hdfs://p/w/t/day={day}", serdeInfo=SerDeInfo(parameters={}), parameters={}
    )
    return Partition(values=[day], dbName="db", tableName="t", lastAccessTime=access, sd=sd, parameters={})


def capture(t: Table, parts: list[Partition]) -> Capture:
    return Capture((TableCapture("db.t", "hive", Database(name="db"), t, tuple(parts)),))


def test_fingerprints_ignore_access_times_and_ddl_stamps_but_not_definitions():
    base = capture(table("hdfs://p/w/t"), [part("1"), part("2")])
    touched = capture(table("hdfs://p/w/t", access=99, ddl="2"), [part("2", access=5), part("1")])
    assert base.fingerprint() == touched.fingerprint()
    assert base.fingerprint() != capture(table("hdfs://p/w/t"), [part("1")]).fingerprint()
    assert base.fingerprint() != capture(table("hdfs://p/w/other"), [part("1"), part("2")]).fingerprint()


def test_a_capture_round_trips_through_its_json():
    original = capture(table("hdfs://p/w/t"), [part("1")])
    again = Capture.from_json(original.to_json())
    assert again.tables[0].table == original.tables[0].table
    assert again.tables[0].partitions == original.tables[0].partitions
    assert again.tables[0].data_paths() == ("/w/t",)
    with pytest.raises(ValueError, match="format"):
        Capture.from_json({**original.to_json(), "format": 99})


def test_older_manifests_protect_their_dataset_roots_whole():
    fields = dict(
        business="b",
        point="2026-01-01T00:00:00Z",
        pair="main",
        source="primary",
        target="standby",
        snapshot_name="tandem-b-20260101T000000Z",
        mode="full",
        datasets=[ManifestDataset(component="hdfs", name="/d", roots=["/d"])],
        snapshot_times={},
        skew_ms=0,
        files_copied=0,
        bytes_copied=0,
        duration_s=0.0,
    )
    assert Manifest(**fields).subtrees() == [("/d", "")]
    newer = Manifest(**fields, snapshot_roots={"/data": [["/data/d", "d"], ["/data/e", "e"]]})
    assert newer.subtrees() == [("/data", "d"), ("/data", "e")]


def test_points_are_named_either_way():
    assert parse_point("2026-11-20T13:00:00Z") == "2026-11-20T13:00:00Z"
    assert parse_point("20261120T130000Z") == "2026-11-20T13:00:00Z"
    assert parse_point("2026-11-20T14:00:00+01:00") == "2026-11-20T13:00:00Z"
    with pytest.raises(RestoreError, match="not an instant"):
        parse_point("yesterday")
