"""After a promotion, backups run the other way, starting from the last restore point both
clusters share: incrementally when the old primary did not change since, and with whatever it
holds beyond that point moved to quarantine (never deleted) when it did.

Roles change here, so these tests use a private pair of embedded clusters.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from tandem import backup, catalog
from tandem.failover.promote import promote
from tandem.policy import Policy, load_policy, load_topology
from tandem.runtime import Clusters
from tandem_dev.embedded import manager
from tests.instants import recent_hour, stamp

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

PROJECT = Path(__file__).resolve().parents[2]
T0 = recent_hour(12)
TOP = "/data/reverse/details"


@pytest.fixture
def private_pair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Clusters, Policy, dict[str, str]]]:
    home = tmp_path / "home"
    topology = manager.up(home)
    try:
        for key, value in manager.connection_env(topology).items():
            monkeypatch.setenv(key, value)
        clusters = Clusters(load_topology(PROJECT / "include" / "clusters.yaml"))
        policy_file = tmp_path / "reverse.yaml"
        policy_file.write_text(
            yaml.safe_dump(
                {
                    "business": "reverse",
                    "description": "reverse backups",
                    "pair": "main",
                    "schedule": {"start": "2026-11-20T13:00:00Z", "every": "1h"},
                    "protection_group": [{"hdfs": TOP}],
                    "user_data": False,
                    "consistency": {"max_skew": "1s", "max_clock_skew": "5s"},
                }
            )
        )
        zk = {name: topology[name].zookeeper_hosts for name in ("primary", "standby")}
        yield clusters, load_policy(policy_file, clusters.topology), zk
    finally:
        manager.down(home)


def backup_at(clusters: Clusters, policy: Policy, hours: int) -> dict[str, object]:
    return backup.run_once(backup.Run(policy, clusters.topology, T0 + timedelta(hours=hours)), clusters)


def files(clusters: Clusters, name: str, top: str = TOP) -> dict[str, bytes]:
    hdfs = clusters.hdfs(name)
    return {e.relpath: hdfs.read_bytes(f"{top}/{e.relpath}") for e in hdfs.walk(top) if not e.status.is_dir}


def test_reverse_backup_is_incremental_from_the_shared_point(private_pair):
    clusters, policy, zk = private_pair
    primary, standby = clusters.hdfs("primary"), clusters.hdfs("standby")
    for i in range(5):
        primary.write(f"{TOP}/f{i}", bytes([i]) * 100)
    shared = backup_at(clusters, policy, 0)
    assert (shared["source"], shared["target"]) == ("primary", "standby")

    assert promote("standby", "standby", zk).promoted
    standby.write(f"{TOP}/written-after-failover", b"new on the standby")
    reverse = backup_at(clusters, policy, 1)

    assert (reverse["source"], reverse["target"]) == ("standby", "primary")
    assert reverse["mode"] == "incremental" and reverse["base_point"] == shared["point"]
    assert reverse["files_copied"] == 1
    assert files(clusters, "primary") == files(clusters, "standby")
    assert catalog.latest(primary, "reverse").point == reverse["point"]
    assert primary.status("/.tandem/quarantine/reverse") is None


def test_writes_the_old_primary_took_after_the_shared_point_are_quarantined(private_pair):
    clusters, policy, zk = private_pair
    primary = clusters.hdfs("primary")
    for i in range(3):
        primary.write(f"{TOP}/f{i}", bytes([i]) * 100)
    shared = backup_at(clusters, policy, 0)
    primary.write(f"{TOP}/late-bill", b"written on the primary after the last point")  # never backed up
    primary.write(f"{TOP}/f0", b"modified on the primary after the last point")

    assert promote("standby", "standby", zk).promoted
    reverse = backup_at(clusters, policy, 1)

    assert reverse["mode"] == "full"
    [dataset] = reverse["datasets"]
    assert sorted(dataset["quarantined"]) == [f"{TOP}/f0", f"{TOP}/late-bill"]  # the run says what it moved
    assert files(clusters, "primary") == files(clusters, "standby")  # back at the standby's state
    parked = f"/.tandem/quarantine/reverse/{stamp(T0 + timedelta(hours=1))}{TOP}"
    assert primary.read_bytes(f"{parked}/late-bill") == b"written on the primary after the last point"
    assert primary.read_bytes(f"{parked}/f0") == b"modified on the primary after the last point"
    assert shared["point"] in [p.point for p in catalog.list_points(primary, "reverse")]
