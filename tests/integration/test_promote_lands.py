"""Promotion lands on a restore point: after a backup run is SIGKILLed mid-copy, promoting the
standby restores every business of the pair to its newest published point before any role is
written; it refuses while backups are in flight; a run that outlives a promotion stops before
writing.

Also: with the primary gone, a point on the standby verifies against its per-file records.

Roles change and clusters die here, so these tests use a private pair of embedded clusters.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tandem import backup
from tandem.failover.landing import promote_on_points
from tandem.policy import load_topology
from tandem.runtime import Clusters
from tandem_dev.embedded import manager
from tests.integration.test_restore import PROJECT, T0, Business, assert_at_point, killed_run

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture
def pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Clusters, dict[str, str]]]:
    home = tmp_path / "home"
    topology = manager.up(home)
    monkeypatch.setenv("TANDEM_TEST_HOME", str(home))
    try:
        for key, value in manager.connection_env(topology).items():
            monkeypatch.setenv(key, value)
        zk = {name: topology[name].zookeeper_hosts for name in ("primary", "standby")}
        yield Clusters(load_topology(PROJECT / "include" / "clusters.yaml")), zk
    finally:
        manager.down(home)


def include_for(tmp_path: Path, biz: Business) -> Path:
    include = tmp_path / "include"
    (include / "policies").mkdir(parents=True)
    shutil.copy(PROJECT / "include" / "clusters.yaml", include / "clusters.yaml")
    shutil.copy(biz.policy_file, include / "policies" / biz.policy_file.name)
    return include


def killed_mid_copy(clusters: Clusters, tmp_path: Path) -> Business:
    biz = Business(clusters, tmp_path, "landing")
    for i in range(4):
        biz.src.write(f"{biz.top}/bill-{i}", os.urandom(4000))
    biz.add_partition("d1")
    biz.backup(0)
    for i in range(4, 12):
        biz.src.write(f"{biz.top}/bill-{i}", os.urandom(4000))
    biz.add_partition("d2")
    killed_run(biz, 1, "copy_hdfs")
    assert not biz.live_check(biz.newest()).ok
    return biz


def promote_standby(
    clusters: Clusters,
    zk: dict[str, str],
    include: Path,
    in_flight=lambda ids: [],
    confirmation: str = "standby",
    **options,
):
    """``promote_on_points`` of the standby of pair main, as the CLI and the DAG call it."""
    return promote_on_points(
        "standby", confirmation, "main", clusters.topology, include, clusters, zk, in_flight, **options
    )


def roles(clusters: Clusters) -> dict[str, str]:
    return {name: clusters.observe(name).role for name in ("primary", "standby")}


def test_promotion_restores_the_standby_to_its_newest_point_first(pair, tmp_path):
    clusters, zk = pair
    biz = killed_mid_copy(clusters, tmp_path)
    point = biz.newest()

    result, landed = promote_standby(clusters, zk, include_for(tmp_path, biz))
    assert result.promoted, result.reason
    assert roles(clusters) == {"primary": "standby", "standby": "active"}
    [done] = landed
    assert done.business == "landing" and done.point == point.manifest.point and done.restored
    assert biz.live_check(point).ok
    assert_at_point(biz, point)
    assert biz.dst.status(done.quarantine or "") is not None  # what the killed run copied, kept


def test_promotion_refuses_while_backups_run_and_changes_nothing(pair, tmp_path):
    clusters, zk = pair
    biz = killed_mid_copy(clusters, tmp_path)
    include = include_for(tmp_path, biz)

    def running(ids):
        return list(ids)

    result, landed = promote_standby(clusters, zk, include, running)
    assert result.outcome == "refused" and "in flight (tandem_backup__landing)" in result.reason
    assert landed == []
    assert roles(clusters) == {"primary": "active", "standby": "standby"}
    assert not biz.live_check(biz.newest()).ok  # nothing was restored either

    result, _ = promote_standby(clusters, zk, include, confirmation="stanby")
    assert result.outcome == "refused" and "does not repeat" in result.reason
    assert not biz.live_check(biz.newest()).ok

    # asked to stop them: the active cluster is fenced first, then promotion waits for the runs
    calls = []

    def ends_after_fencing(ids):
        calls.append(roles(clusters)["primary"])
        return list(ids) if len(calls) == 1 else []

    result, _ = promote_standby(clusters, zk, include, ends_after_fencing, stop_backups=True)
    assert result.promoted, result.reason
    assert calls[1] == "standby"  # fenced before waiting
    assert biz.live_check(biz.newest()).ok


def test_a_run_that_outlives_a_promotion_stops_before_writing(pair, tmp_path):
    clusters, zk = pair
    biz = Business(clusters, tmp_path, "outlived")
    biz.src.write(f"{biz.top}/a", b"a")
    biz.add_partition("d1")
    run = backup.Run(biz.policy, clusters.topology, T0)
    started = backup.preflight(run, clusters)
    resolved = {c: backup.resolve(run, clusters, started.source, c) for c in ("hdfs", "hive")}
    taken = backup.take(run, clusters, started, resolved["hdfs"] + resolved["hive"])

    result, _ = promote_standby(clusters, zk, include_for(tmp_path, biz))
    assert result.promoted
    with pytest.raises(backup.RolesChanged, match="preflight saw it active"):
        backup.copy_component(run, clusters, started, "hdfs", resolved["hdfs"], taken)
    assert biz.dst.status(biz.top) is None  # nothing reached the new active cluster
    with pytest.raises(backup.RolesChanged):
        backup.register_metadata(run, clusters, started, taken)
    assert biz.dst_ms.get_table(biz.table) is None


def test_promoting_a_cluster_that_already_serves_never_rolls_it_back(pair, tmp_path):
    from kazoo.client import KazooClient

    from tandem.failover.state import CLUSTER_PATH, ClusterRecord

    clusters, zk = pair
    biz = killed_mid_copy(clusters, tmp_path)
    include = include_for(tmp_path, biz)
    result, _ = promote_standby(clusters, zk, include)
    assert result.promoted
    biz.dst.write(f"{biz.top}/written-after-failover", b"an application's write")  # standby serves now

    # the old primary comes back saying active: promoting the standby again ends the split brain
    client = KazooClient(hosts=zk["primary"])
    client.start()
    try:
        client.set(CLUSTER_PATH, ClusterRecord.new("primary", "active", 0).to_bytes())
    finally:
        client.stop()
        client.close()
    result, landed = promote_standby(clusters, zk, include)
    assert result.promoted, result.reason
    assert landed == []
    assert biz.dst.read_bytes(f"{biz.top}/written-after-failover") == b"an application's write"
    assert roles(clusters) == {"primary": "standby", "standby": "active"}


def test_with_the_source_gone_a_point_verifies_against_its_file_records(pair, tmp_path, capsys):
    import argparse

    from tandem.verify import run_verify

    clusters, _ = pair
    biz = Business(clusters, tmp_path, "orphaned")
    for i in range(5):
        biz.src.write(f"{biz.top}/f-{i}", os.urandom(3000))
    biz.add_partition("d1")
    biz.backup(0)
    biz.src.write(f"{biz.top}/f-0", b"changed")
    biz.backup(1)
    manager.kill_cluster(Path(os.environ["TANDEM_TEST_HOME"]), "primary")

    os.environ["TANDEM_INCLUDE"] = str(include_for(tmp_path, biz))
    try:
        args = argparse.Namespace(
            business="orphaned", point=None, cluster="standby", live=False, json=False, home=None
        )
        assert run_verify(args) == 0
        out = capsys.readouterr().out
        assert "against the point's file records: 6 files, 6 checksummed: 0 mismatch(es)" in out
        biz.dst.delete_snapshot(biz.top, biz.newest().manifest.snapshot_name)  # the point's copy is damaged
        assert run_verify(args) == 1
        assert "has no snapshot" in capsys.readouterr().out
    finally:
        os.environ.pop("TANDEM_INCLUDE")
