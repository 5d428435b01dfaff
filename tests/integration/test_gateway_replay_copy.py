"""Replay's file copy when the file changes under it: two marks of one path replayed at once (one
worker's threads, or the worker, the DAG and the command) must never leave the standby with the
older write's bytes once both marks are gone, nor bring back a file deleted while it was copied."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tandem.gateway import replay
from tandem.gateway.plan import Target as TargetSpec
from tandem.gateway.targets import connect_target
from tandem.hdfs.client import Hdfs
from tandem.policy import load_topology
from tandem.runtime import Clusters
from tandem_dev.s3 import SeaweedS3

pytestmark = [pytest.mark.integration]

PROJECT = Path(__file__).resolve().parents[2]


class LandsFirst:
    """The standby's store, where another change of the path (``change(final)``) lands just
    before this copy's first RENAME over the final name."""

    def __init__(self, store: Hdfs, change: Callable[[str], None]) -> None:
        self.store, self.change = store, change
        self.landed = False

    def replace(self, tmp: str, final: str) -> None:
        if not self.landed:
            self.landed = True
            self.change(final)
        self.store.replace(tmp, final)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def test_an_older_copy_that_lands_after_a_newer_one_is_copied_again(airflow_conns: dict[str, str]) -> None:
    clusters = Clusters(load_topology(PROJECT / "include" / "clusters.yaml"))
    source, standby = clusters.hdfs("primary"), clusters.hdfs("standby")
    path, copy = "/gwrace/data/file.bin", "/backup/gwrace/data/file.bin"
    source.write(path, b"older write " * 100, overwrite=True)
    older = source.status(path)
    assert older is not None
    newer = b"newer write " * 120

    def newer_write(final: str) -> None:
        """A newer write lands on the source and its own replay finishes: the older copy's bytes
        then arrive last."""
        source.write(path, newer, overwrite=True)
        standby.write(final, newer, overwrite=True)

    racing = LandsFirst(standby, newer_write)
    report = replay.ReplayReport()
    replay.copy_file(source, path, older, racing, copy, older.modification_time, report, "tag")  # type: ignore[arg-type]
    assert racing.landed
    assert standby.read_bytes(copy) == b"newer write " * 120
    assert report.files == 2
    assert standby.status(copy).length == source.status(path).length  # type: ignore[union-attr]


def test_a_file_deleted_while_it_is_copied_is_not_brought_back(airflow_conns: dict[str, str]) -> None:
    clusters = Clusters(load_topology(PROJECT / "include" / "clusters.yaml"))
    source, standby = clusters.hdfs("primary"), clusters.hdfs("standby")
    path, copy = "/gwrace/data/deleted.bin", "/backup/gwrace/data/deleted.bin"
    source.write(path, b"old " * 100, overwrite=True)
    standby.write(copy, b"older " * 10, overwrite=True)
    written = source.status(path)
    assert written is not None

    def deleted(final: str) -> None:
        """The application's DELETE, applied to the primary and the standby as the gateway does:
        the copy would bring the file back on the standby alone."""
        source.delete(path)
        standby.delete(final)

    racing = LandsFirst(standby, deleted)
    report = replay.ReplayReport()
    replay.copy_file(source, path, written, racing, copy, written.modification_time, report, "tag")  # type: ignore[arg-type]
    assert racing.landed
    assert source.status(path) is None
    assert standby.status(copy) is None, "the deleted file came back on the standby"
    assert report.deleted == 1


def test_a_file_deleted_while_it_is_copied_is_not_brought_back_on_an_object_store(
    airflow_conns: dict[str, str], s3_server: SeaweedS3, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same on S3, where an object's own time is its upload's: the copy is known as this
    replay's by the write time it carries in its metadata."""
    monkeypatch.setenv("AIRFLOW_CONN_TANDEM_TEST_S3", s3_server.airflow_connection())
    topology = load_topology(PROJECT / "include" / "clusters.yaml")
    source = Clusters(topology).hdfs("primary")
    spec = TargetSpec(uri=f"s3://{s3_bucket}/t", conn_id="tandem_test_s3", root="/backup")
    target = connect_target(spec, topology)()
    path, copy = "/gwrace/data/deleted-s3.bin", "/backup/gwrace/data/deleted-s3.bin"
    source.write(path, b"old " * 100, overwrite=True)
    written = source.status(path)
    assert written is not None
    publish = target.replace

    def deleted_first(tmp: str, final: str) -> None:
        source.delete(path)  # the application's DELETE reached the primary (the target had none)
        publish(tmp, final)

    monkeypatch.setattr(target, "replace", deleted_first)
    report = replay.ReplayReport()
    replay.copy_file(source, path, written, target, copy, written.modification_time, report, "tag")
    assert target.status(copy) is None, "the deleted file came back on the object store"
    assert report.deleted == 1
