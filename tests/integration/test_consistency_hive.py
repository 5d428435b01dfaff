"""The consistency test extended to Hive: HDFS files and Hive partitions agree at every point.

A workload keeps adding batches of customers the way Hive does (the batch's data file first,
then its partition in the metastore), then a bill in HDFS that references the batch. At any
single instant, every bill's batch is a registered partition and every registered partition
has its data. Proven here against the embedded clusters:

- five Tandem restore points taken while the workload runs hold no violation, on the standby
  (its snapshots read together with the metastore capture stored with the point), and the
  standby's live metastore matches each capture after its run. For each point, the workload is
  made to register a partition between the HDFS snapshots and ``take``'s second read of the
  metastore (:class:`PartitionDuringSnapshots`): ``take`` must notice and snapshot again;
- restoring the standby to each point in turn leaves its live data and live metastore without a
  violation, and verified;
- the same workload taken component by component (HDFS snapshots, then the metastore read a
  little later, as per-component tools do) shows violations in every round: the check can fail.
"""

from __future__ import annotations

import itertools
import posixpath
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tandem import backup, catalog, restore
from tandem.backup import snapshot as snapshot_step
from tandem.capture import Capture
from tandem.errors import ConsistencyError
from tandem.hdfs.client import Hdfs
from tandem.metastore import Metastore, TableRef, location_path
from tandem.points import PointOnCluster, load_capture
from tandem.policy import Policy, Topology, load_policy, load_topology
from tandem.runtime import Clusters
from tests.instants import iso, recent_hour
from tests.integration.hive_support import add_partition, ensure_partitioned_table

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

PROJECT = Path(__file__).resolve().parents[2]
BUSINESS = "consistency_hive"
BILLS = "/data/chive/bills"
TABLE = TableRef("chive", "customers")
DB_DIR = "/warehouse/chive.db"
TABLE_DIR = f"{DB_DIR}/customers"
DATA_FILE = "part-0"
POINTS = 5
ROUNDS = 5


# -- the business on the primary -------------------------------------------------------------------
def write_policy(tmp_path: Path, topology: Topology) -> Policy:
    path = tmp_path / f"{BUSINESS}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "business": BUSINESS,
                "pair": "main",
                "schedule": {"start": iso(recent_hour(24)), "every": "1m"},
                "protection_group": [{"hdfs": BILLS}, {"hive": str(TABLE)}],
                "consistency": {"max_skew": "50ms", "max_clock_skew": "5s"},
                "retention": {"keep_last": 10, "max_age": "30d"},
                "user_data": False,
            }
        )
    )
    return load_policy(path, topology)


class Workload(threading.Thread):
    """Batch k: its customers' file, then partition batch=k (Hive's order), then a bill that
    references those customers. ``registered`` counts the partitions added so far."""

    def __init__(self, clusters: Clusters, pace_s: float) -> None:
        super().__init__(daemon=True)
        # clients of its own: the test's are busy with backups and checks at the same time
        self.hdfs = clusters.hdfs("primary")
        self.metastore = clusters.metastore("primary")
        self.nameservice = clusters.spec("primary").nameservice
        self.pace_s = pace_s
        self.stop_event = threading.Event()
        self.changed = threading.Condition()
        self.registered = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            table = self.metastore.get_table(TABLE)
            while not self.stop_event.is_set():
                k = self.registered
                customers = [str(k * 10 + i) for i in range(3)]
                part_dir = f"{TABLE_DIR}/batch={k:05d}"
                self.hdfs.write(f"{part_dir}/{DATA_FILE}", "\n".join(customers).encode())
                add_partition(self.metastore, table, f"{k:05d}", self.nameservice + part_dir)
                with self.changed:
                    self.registered = k + 1
                    self.changed.notify_all()
                self.hdfs.write(f"{BILLS}/bill-{k:05d}", f"customers={','.join(customers)}".encode())
                self.stop_event.wait(self.pace_s)
        except BaseException as exc:  # surfaced by the test, not swallowed
            with self.changed:
                self.error = exc
                self.changed.notify_all()

    def wait_for(self, registered: int, timeout_s: float = 60) -> None:
        """Until at least ``registered`` partitions were added."""
        with self.changed:
            self.changed.wait_for(lambda: self.registered >= registered or self.error is not None, timeout_s)
        assert self.error is None, self.error
        assert self.registered >= registered, f"workload stuck at {self.registered} partitions"

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=30)


# -- the check ---------------------------------------------------------------------------------------
def bill_batches(hdfs: Hdfs, bills_at: str) -> set[int]:
    """The batch each bill references (bill-k references customers of batch k)."""
    return {int(s.path_suffix.rsplit("-", 1)[1]) for s in hdfs.list(bills_at)}


def registered(partitions: Any) -> dict[int, str]:
    """Registered batch -> its partition's directory relative to the table location."""
    return {int(p.values[0]): posixpath.relpath(location_path(p.sd.location), TABLE_DIR) for p in partitions}


def data_dirs(hdfs: Hdfs, table_at: str) -> set[str]:
    """Directories (relative to the table) that hold a customers file."""
    return {posixpath.dirname(e.relpath) for e in hdfs.walk(table_at) if e.status.path_suffix == DATA_FILE}


def violations(bills: set[int], partitions: dict[int, str], data: set[str]) -> list[str]:
    """Bills whose batch is no registered partition, and registered partitions without data."""
    return [f"bill of batch {b}: no partition registered" for b in sorted(bills - partitions.keys())] + [
        f"partition batch={b}: no data in {d}" for b, d in sorted(partitions.items()) if d not in data
    ]


def snapshot_of(manifest: dict[str, Any], dataset: str) -> str:
    """Where ``dataset`` is in the point's snapshot (its root's ``.snapshot/<name>``)."""
    for root, members in manifest["snapshot_roots"].items():
        for name, subtree in members:
            if name == dataset:
                return posixpath.join(root, ".snapshot", manifest["snapshot_name"], subtree).rstrip("/")
    raise AssertionError(f"{dataset} is in no snapshot root of {manifest['point']}")


def point_capture(hdfs: Hdfs, manifest: dict[str, Any]) -> Any:
    """The point's capture of chive.customers, as stored on ``hdfs``."""
    captured = Capture.from_json(catalog.read_json(hdfs, manifest["metadata"]))
    (table,) = [t for t in captured.tables if t.ref == TABLE]
    return table


def at_point(hdfs: Hdfs, manifest: dict[str, Any]) -> list[str]:
    """Violations in a point: its snapshots on ``hdfs`` with the partitions of its capture."""
    return violations(
        bill_batches(hdfs, snapshot_of(manifest, BILLS)),
        registered(point_capture(hdfs, manifest).partitions),
        data_dirs(hdfs, snapshot_of(manifest, str(TABLE))),
    )


def live(hdfs: Hdfs, metastore: Metastore) -> list[str]:
    """Violations in a cluster's live data with its live metastore."""
    return violations(
        bill_batches(hdfs, BILLS), registered(metastore.get_partitions(TABLE)), data_dirs(hdfs, TABLE_DIR)
    )


def partition_names(partitions: Any) -> list[str]:
    return sorted(f"batch={p.values[0]}" for p in partitions)


# -- taking points -----------------------------------------------------------------------------------
def take_point(run: backup.Run, clusters: Clusters, attempts: int = 10) -> dict[str, Any]:
    """One backup run. A ConsistencyError (the metastore kept changing while ``take`` snapshotted,
    or the snapshots were too far apart) publishes nothing; the next scheduled run tries again,
    and so does this, at the same instant."""
    for _ in range(attempts - 1):
        try:
            return backup.run_once(run, clusters)
        except ConsistencyError:
            continue
    return backup.run_once(run, clusters)


class PartitionDuringSnapshots:
    """Wraps ``tandem.backup.snapshot._snapshot_all``: once armed, the next snapshots taken on the source are
    followed by two more partitions of the workload before ``take`` reads the metastore again.
    Batch ``seen + 1`` is then written after the snapshots and registered before that read, so
    a point kept from this attempt would show it registered without data: ``take`` must try
    again. ``calls`` counts the attempts on the source."""

    def __init__(self, source: Hdfs, workload: Workload) -> None:
        self.real = snapshot_step._snapshot_all
        self.source, self.workload = source, workload
        self.armed, self.calls = False, 0

    def __call__(self, hdfs: Hdfs, roots: list[str], name: str) -> dict[str, int]:
        times = self.real(hdfs, roots, name)
        if hdfs is self.source:
            self.calls += 1
            if self.armed:
                self.armed = False
                self.workload.wait_for(self.workload.registered + 2)
        return times

    def arm(self) -> None:
        self.armed, self.calls = True, 0


def component_by_component(
    hdfs: Hdfs, metastore: Metastore, workload: Workload, manifest: dict[str, Any], name: str
) -> list[str]:
    """HDFS snapshots of both roots, then the metastore read 0.3 s later (and after two more
    partitions, so batch ``seen + 1``, written after the snapshots, is registered)."""
    roots = sorted(manifest["snapshot_roots"])
    for root in roots:
        hdfs.create_snapshot(root, name)
    seen = workload.registered
    time.sleep(0.3)
    workload.wait_for(seen + 2)
    partitions = metastore.get_partitions(TABLE)
    sequential = {**manifest, "snapshot_name": name}
    found = violations(
        bill_batches(hdfs, snapshot_of(sequential, BILLS)),
        registered(partitions),
        data_dirs(hdfs, snapshot_of(sequential, str(TABLE))),
    )
    for root in roots:
        hdfs.delete_snapshot(root, name)
    return found


def test_points_and_restores_agree_across_hdfs_and_hive(airflow_conns, tmp_path, monkeypatch):
    topology = load_topology(PROJECT / "include" / "clusters.yaml")
    clusters = Clusters(topology)
    primary, standby = clusters.hdfs("primary"), clusters.hdfs("standby")
    primary_ms, standby_ms = clusters.metastore("primary"), clusters.metastore("standby")
    ensure_partitioned_table(primary_ms, TABLE, TABLE_DIR, clusters.spec("primary").nameservice)
    primary.mkdirs(BILLS)
    primary.mkdirs(TABLE_DIR)
    policy = write_policy(tmp_path, topology)

    workload = Workload(Clusters(topology), pace_s=0.1)
    during = PartitionDuringSnapshots(primary, workload)
    monkeypatch.setattr(snapshot_step, "_snapshot_all", during)
    workload.start()
    points: list[dict[str, Any]] = []
    attempts: list[int] = []
    at_points: list[list[str]] = []
    sequential: list[list[str]] = []
    try:
        workload.wait_for(3)
        start = recent_hour(12)
        for k in range(POINTS):
            during.arm()
            manifest = take_point(backup.Run(policy, topology, start + timedelta(minutes=k)), clusters)
            points.append(manifest)
            attempts.append(during.calls)
            at_points.append(at_point(standby, manifest))
            # register_metadata made the standby's metastore the point's capture
            captured = point_capture(standby, manifest)
            assert partition_names(standby_ms.get_partitions(TABLE)) == partition_names(captured.partitions)
            workload.wait_for(len(captured.partitions) + 2)  # the next point holds more
        for k in range(ROUNDS):
            sequential.append(component_by_component(primary, primary_ms, workload, points[-1], f"seq-{k}"))
    finally:
        workload.stop()
    assert workload.error is None, workload.error

    sizes = [len(point_capture(standby, m).partitions) for m in points]
    assert sizes == sorted(set(sizes)) and sizes[0] >= 3, f"points not taken under live writes: {sizes}"
    assert all(m["skew_ms"] <= 50 for m in points), [m["skew_ms"] for m in points]
    assert all(n >= 2 for n in attempts), f"a partition added during the snapshots went unseen: {attempts}"
    assert at_points == [[]] * POINTS, at_points

    # oldest first: back from the newest point (partitions dropped), then forward (added)
    changes = [("partitions_dropped", sizes[-1] - sizes[0])]
    changes += [("partitions_added", later - earlier) for earlier, later in itertools.pairwise(sizes)]
    for manifest, (change, count) in zip(points, changes, strict=True):
        point = catalog.Manifest.model_validate(manifest)
        landing = PointOnCluster(policy, topology, "standby", point)
        outcome = restore.restore(landing, standby, standby_ms, load_capture(standby, point))
        assert outcome.check is not None and outcome.check.ok, outcome.check and outcome.check.lines()
        assert outcome.metadata[change] == count, (point.point, outcome.metadata)
        assert live(standby, standby_ms) == [], point.point
        captured = point_capture(standby, manifest)
        assert partition_names(standby_ms.get_partitions(TABLE)) == partition_names(captured.partitions)

    assert all(sequential), f"a round taken component by component showed no violation: {sequential}"
