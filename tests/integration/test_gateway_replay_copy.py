"""Replay's file copy when the file changes under it: two marks of one path replayed at once (one
worker's threads, or the worker, the DAG and the command) must never leave the standby with the
older write's bytes once both marks are gone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tandem.gateway import replay
from tandem.hdfs.client import Hdfs
from tandem.policy import load_topology
from tandem.runtime import Clusters

pytestmark = [pytest.mark.integration]

PROJECT = Path(__file__).resolve().parents[2]


class NewerWriteLandsFirst:
    """The standby's store, where a newer write of the path lands on the source (and its own
    replay finishes) just before this copy's RENAME over the final name: the older copy's
    bytes then arrive last."""

    def __init__(self, store: Hdfs, source: Hdfs, path: str, newer: bytes) -> None:
        self.store, self.source, self.path, self.newer = store, source, path, newer
        self.landed = False

    def replace(self, tmp: str, final: str) -> None:
        if not self.landed:
            self.landed = True
            self.source.write(self.path, self.newer, overwrite=True)
            self.store.write(final, self.newer, overwrite=True)  # the newer mark's own copy
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
    racing = NewerWriteLandsFirst(standby, source, path, b"newer write " * 120)
    report = replay.ReplayReport()
    replay.copy_file(source, path, older, racing, copy, older.modification_time, report, "tag")  # type: ignore[arg-type]
    assert racing.landed
    assert standby.read_bytes(copy) == b"newer write " * 120
    assert report.files == 2
    assert standby.status(copy).length == source.status(path).length  # type: ignore[union-attr]
