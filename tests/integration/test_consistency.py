"""What Tandem exists for: every restore point of a business agrees with itself.

A workload keeps adding customers, then bills that reference them. Tandem's restore points
(every root snapshotted at one instant) never hold a bill whose customer is missing. The same
workload snapshotted component by component with a delay, as per-component tools do, does:
the test can tell the two apart.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from tandem import backup
from tandem.hdfs.client import Hdfs
from tandem.policy import load_policy, load_topology
from tandem.runtime import Clusters
from tests.instants import recent_hour

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

PROJECT = Path(__file__).resolve().parents[2]
CUSTOMERS, BILLS = "/data/consistency/customers", "/data/consistency/bills"


class Workload(threading.Thread):
    """Customer i is written, then bill i that references it; paced like a real application."""

    def __init__(self, hdfs: Hdfs, pace_s: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.hdfs, self.pace_s = hdfs, pace_s
        self.stop_event = threading.Event()
        self.written = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                i = self.written
                self.hdfs.write(f"{CUSTOMERS}/customer-{i:06d}", str(i).encode())
                time.sleep(self.pace_s)
                self.hdfs.write(f"{BILLS}/bill-{i:06d}", f"customer={i}".encode())
                time.sleep(self.pace_s)
                self.written += 1
        except BaseException as exc:  # surfaced by the test, not swallowed
            self.error = exc


def ids(hdfs: Hdfs, path: str) -> set[int]:
    return {int(s.path_suffix.rsplit("-", 1)[1]) for s in hdfs.list(path)}


def violations(hdfs: Hdfs, customers_at: str, bills_at: str) -> int:
    """Bills whose customer is missing (bill i references customer i)."""
    return len(ids(hdfs, bills_at) - ids(hdfs, customers_at))


def test_restore_points_are_consistent_and_sequential_snapshots_are_not(airflow_conns, tmp_path):
    topology = load_topology(PROJECT / "include" / "clusters.yaml")
    policy_file = tmp_path / "consistency.yaml"
    policy_file.write_text(
        yaml.safe_dump(
            {
                "business": "consistency",
                "pair": "main",
                "schedule": {"start": "2026-11-20T13:00:00Z", "every": "1m"},
                "protection_group": [{"hdfs": CUSTOMERS}, {"hdfs": BILLS}],
                "consistency": {"max_skew": "50ms", "max_clock_skew": "5s"},
                "retention": {"keep_last": 10, "max_age": "30d"},
                "user_data": False,
            }
        )
    )
    policy = load_policy(policy_file, topology)
    clusters = Clusters(topology)
    primary, standby = clusters.hdfs("primary"), clusters.hdfs("standby")
    primary.mkdirs(CUSTOMERS)
    primary.mkdirs(BILLS)

    workload = Workload(primary)
    workload.start()
    try:
        time.sleep(0.3)
        start = recent_hour(12)
        tandem_points = []
        for k in range(5):
            run = backup.Run(policy, topology, start + timedelta(minutes=k))
            manifest = backup.run_once(run, clusters)
            name = manifest["snapshot_name"]
            tandem_points.append(
                (
                    manifest["skew_ms"],
                    violations(standby, f"{CUSTOMERS}/.snapshot/{name}", f"{BILLS}/.snapshot/{name}"),
                )
            )
            time.sleep(0.1)

        # the same workload, snapshotted one component after the other
        sequential = []
        for k in range(5):
            name = f"sequential-{k}"
            primary.create_snapshot(CUSTOMERS, name)
            time.sleep(0.3)
            primary.create_snapshot(BILLS, name)
            sequential.append(
                violations(primary, f"{CUSTOMERS}/.snapshot/{name}", f"{BILLS}/.snapshot/{name}")
            )
    finally:
        workload.stop_event.set()
        workload.join(timeout=10)
    assert workload.error is None, workload.error
    assert workload.written > 20, "the workload must keep writing through the points"

    assert all(skew <= 50 for skew, _ in tandem_points), tandem_points
    assert [v for _, v in tandem_points] == [0, 0, 0, 0, 0], tandem_points
    assert sum(sequential) > 0, f"sequential snapshots showed no violation: {sequential}"
