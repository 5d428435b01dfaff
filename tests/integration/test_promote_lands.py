"""Promotion lands on a restore point: after a backup run is SIGKILLed mid-copy, promoting the
standby restores every business of the pair to its newest published point before any role is
written; it refuses while backups are in flight; a run that outlives a promotion stops before
writing.

Also: with the primary gone, a point on the standby verifies against its per-file records.

Faults and races: a failed read of the points refuses (it is not "no point"); a business whose
first backup died mid-copy is not served half unless allowed; a second promotion at once waits
for the first and then lands nothing; a promotion refused after ``--stop-backups`` fenced the
active cluster gives it back its role; a copy under way when the pair is fenced stops at its
next file.

Roles change and clusters die here, so these tests use a private pair of embedded clusters.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tandem import backup, catalog
from tandem.backup.run import RolesChanged
from tandem.copy.webhdfs import WebHdfsCopier
from tandem.failover import landing as landing_mod
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


# -- faults and races: never active off a point, and a refusal leaves the pair as it was ------
def test_a_failed_read_of_the_points_refuses_instead_of_promoting_unlanded(pair, tmp_path, monkeypatch):
    clusters, zk = pair
    biz = killed_mid_copy(clusters, tmp_path)
    include = include_for(tmp_path, biz)
    real = catalog.list_points

    def reset_once(hdfs, business):
        monkeypatch.setattr(catalog, "list_points", real)
        raise ConnectionError("Connection reset by peer")

    monkeypatch.setattr(catalog, "list_points", reset_once)
    result, _ = promote_standby(clusters, zk, include)
    assert result.outcome == "refused" and "cannot read standby's restore points" in result.reason
    assert roles(clusters) == {"primary": "active", "standby": "standby"}

    result, _ = promote_standby(clusters, zk, include)  # the NameNode answers again
    assert result.promoted, result.reason
    assert biz.live_check(biz.newest()).ok


def test_a_business_whose_first_backup_died_mid_copy_is_not_served_half_unless_allowed(pair, tmp_path):
    clusters, zk = pair
    biz = Business(clusters, tmp_path, "firstkill")
    for i in range(8):
        biz.src.write(f"{biz.top}/bill-{i}", os.urandom(4000))
    biz.add_partition("d1")
    killed_run(biz, 0, "copy_hdfs")
    assert catalog.latest(biz.dst, biz.name) is None
    assert biz.dst.list(biz.top), "the killed run copied nothing: the scenario was not reached"
    include = include_for(tmp_path, biz)

    result, _ = promote_standby(clusters, zk, include)
    assert result.outcome == "refused", result
    assert "firstkill has no restore point on standby" in result.reason
    assert "--allow-no-point" in result.reason
    assert roles(clusters) == {"primary": "active", "standby": "standby"}

    result, landed = promote_standby(clusters, zk, include, allow_no_point=True)
    assert result.promoted, result.reason
    [only] = landed
    assert only.point is None and "promoted as it stands" in only.note and biz.top in only.note


def test_a_business_never_backed_up_and_absent_does_not_stop_a_promotion(pair, tmp_path):
    clusters, zk = pair
    biz = Business(clusters, tmp_path, "newbiz")
    biz.src.write(f"{biz.top}/bill-0", b"not backed up yet")
    result, landed = promote_standby(clusters, zk, include_for(tmp_path, biz))
    assert result.promoted, result.reason
    assert landed[0].point is None and "no published restore point" in landed[0].note


def test_a_second_promotion_at_once_waits_and_never_rolls_back_the_new_active(pair, tmp_path, monkeypatch):
    clusters, zk = pair
    biz = killed_mid_copy(clusters, tmp_path)
    include = include_for(tmp_path, biz)
    real_land = landing_mod.land
    first_landing, second_started = threading.Event(), threading.Event()
    landings: list[str] = []

    def land(*args, **kwargs):
        landings.append(threading.current_thread().name)
        if len(landings) == 1:
            first_landing.set()
            assert second_started.wait(60)
        return real_land(*args, **kwargs)

    monkeypatch.setattr(landing_mod, "land", land)
    results = {}

    def first() -> None:
        results["first"] = promote_standby(clusters, zk, include)[0]
        # an application writes to the new active cluster at once
        biz.dst.write(f"{biz.top}/written-after-failover", b"an application's write")

    one = threading.Thread(target=first, name="first")
    one.start()
    assert first_landing.wait(120)
    second_started.set()
    second, landed = promote_standby(clusters, zk, include)  # waits for the first one's lock
    one.join(120)
    assert results["first"].promoted, results["first"].reason
    assert second.outcome == "unchanged", second
    assert landings == ["first"] and landed == []
    assert biz.dst.status(f"{biz.top}/written-after-failover") is not None
    assert roles(clusters) == {"primary": "standby", "standby": "active"}


def test_a_refused_promotion_gives_the_fenced_cluster_its_role_back(pair, tmp_path):
    clusters, zk = pair
    biz = killed_mid_copy(clusters, tmp_path)
    include = include_for(tmp_path, biz)
    biz.dst.delete(biz.newest().manifest.metadata)  # the point's capture is gone: it cannot land
    calls: list[str] = []

    def running_until_fenced(ids):
        calls.append(roles(clusters)["primary"])
        return list(ids) if len(calls) == 1 else []

    result, _ = promote_standby(clusters, zk, include, running_until_fenced, stop_backups=True)
    assert result.outcome == "refused", result
    assert calls[1] == "standby"  # it was fenced while the runs stopped
    assert "primary, fenced to stop backups, is active again" in result.reason
    assert roles(clusters) == {"primary": "active", "standby": "standby"}
    epochs = {name: clusters.observe(name).record.epoch for name in ("primary", "standby")}
    assert epochs["primary"] > epochs["standby"]


def test_a_copy_under_way_when_the_pair_is_fenced_stops_at_its_next_file(pair, tmp_path, monkeypatch):
    """The copy step checked the pair when it began; a promotion with --stop-backups fences it
    while files are still being copied. The files not yet started are never written into the
    cluster that was landed and made active."""
    clusters, zk = pair
    biz = Business(clusters, tmp_path, "midcopy")
    for i in range(3):
        biz.src.write(f"{biz.top}/bill-{i}", os.urandom(3000))
    biz.add_partition("d1")
    biz.backup(0)
    point = biz.newest()
    for i in range(3, 12):
        biz.src.write(f"{biz.top}/bill-{i}", os.urandom(3000))
    run = backup.Run(biz.policy, clusters.topology, T0 + timedelta(hours=1))
    started = backup.preflight(run, clusters)
    resolved = backup.resolve(run, clusters, started.source, "hdfs")
    tables = backup.resolve(run, clusters, started.source, "hive")
    taken = backup.take(run, clusters, started, resolved + tables)

    one_copied, resume = threading.Event(), threading.Event()
    real_copy_one = WebHdfsCopier.copy_one

    def slow_copy_one(self, item, stats):
        if self.source is not self.target and one_copied.is_set():  # a long transfer under way
            assert resume.wait(120)
        real_copy_one(self, item, stats)
        one_copied.set()

    monkeypatch.setattr(WebHdfsCopier, "copy_one", slow_copy_one)
    failures: list[BaseException] = []

    def copy_step() -> None:
        try:
            backup.copy_component(run, clusters, started, "hdfs", resolved, taken)
        except BaseException as exc:
            failures.append(exc)

    worker = threading.Thread(target=copy_step)
    worker.start()
    assert one_copied.wait(120)
    calls: list[int] = []

    def stopped_in_airflow(ids):  # the runs are marked failed; their task process still copies
        calls.append(1)
        return list(ids) if len(calls) == 1 else []

    include = include_for(tmp_path, biz)
    result, _ = promote_standby(clusters, zk, include, stopped_in_airflow, stop_backups=True)
    assert result.promoted, result.reason
    assert biz.live_check(point).ok
    resume.set()
    worker.join(120)
    assert len(failures) == 1 and isinstance(failures[0], RolesChanged), failures
    assert biz.live_check(point).ok, "the copy went on writing into the promoted cluster"


def test_a_planned_failback_says_what_the_active_cluster_holds_beyond_the_point(pair, tmp_path):
    """Both clusters are up: the standby was promoted, a reverse backup published a point on the
    primary, an application wrote to the standby after it, and the primary is promoted back. The
    primary lands on its point; the newer write stays on the standby, and the result names it."""
    clusters, zk = pair
    biz = Business(clusters, tmp_path, "failback")
    biz.src.write(f"{biz.top}/a", b"a")
    biz.add_partition("d1")
    biz.backup(0)
    include = include_for(tmp_path, biz)
    result, _ = promote_standby(clusters, zk, include)
    assert result.promoted, result.reason
    biz.backup(1)  # the reverse backup: standby -> primary
    newest = catalog.latest(biz.src, biz.name)
    assert newest is not None and newest.source == "standby"
    result, [quiet] = promote_on_points(
        "primary", "primary", "main", clusters.topology, include, clusters, zk, lambda ids: []
    )
    assert result.promoted and quiet.left_behind == [] and quiet.note == "at the point"
    result, _ = promote_standby(clusters, zk, include)  # and over again, to write on the standby
    assert result.promoted, result.reason
    biz.backup(2)
    biz.dst.write(f"{biz.top}/order-after-the-point", b"paid")

    result, [landed] = promote_on_points(
        "primary", "primary", "main", clusters.topology, include, clusters, zk, lambda ids: []
    )
    assert result.promoted, result.reason
    assert landed.left_behind and any("order-after-the-point" in c for c in landed.left_behind)
    assert landed.left_behind[0].startswith("standby: ")
    assert "newer changes on the cluster that was active stay there" in landed.note
    assert biz.dst.status(f"{biz.top}/order-after-the-point") is not None  # kept where it was written


def test_an_error_while_landing_after_stop_backups_gives_the_fenced_cluster_its_role_back(
    pair, tmp_path, monkeypatch
):
    """Not a refusal but an error (the standby's NameNode resets a connection mid-landing): the
    promotion fails, and the cluster it fenced to stop backups is active again."""
    from tandem.errors import RemoteHdfsError

    clusters, zk = pair
    biz = killed_mid_copy(clusters, tmp_path)
    calls: list[str] = []

    def running_until_fenced(ids):
        calls.append(roles(clusters)["primary"])
        return list(ids) if len(calls) == 1 else []

    def land(*args, **kwargs):
        raise RemoteHdfsError("Connection reset by peer", exception="IOException")

    monkeypatch.setattr(landing_mod, "land", land)
    with pytest.raises(RemoteHdfsError, match="Connection reset"):
        promote_standby(clusters, zk, include_for(tmp_path, biz), running_until_fenced, stop_backups=True)
    assert calls[1] == "standby"  # it had been fenced
    assert roles(clusters) == {"primary": "active", "standby": "standby"}


# A promotion in a process of its own, SIGKILLed just after one kind of write it makes
_KILLED_PROMOTION = """
import json, os, signal, sys
from pathlib import Path
from tandem.copy.webhdfs import WebHdfsCopier
from tandem.failover import promote as promote_module
from tandem.failover.landing import promote_on_points
from tandem.hdfs.client import Hdfs
from tandem.policy import load_topology
from tandem.runtime import Clusters

include, zk, after = Path(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
owner, name = {"fence": (promote_module, "_fence"), "restore copy": (WebHdfsCopier, "copy_one"),
               "quarantine": (Hdfs, "rename")}[after]
real = getattr(owner, name)

def then_die(*args, **kwargs):
    real(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)

setattr(owner, name, then_die)
topology = load_topology(include / "clusters.yaml")
promote_on_points("standby", "standby", "main", topology, include, Clusters(topology), zk, lambda ids: [])
sys.exit(3)
"""


@pytest.mark.parametrize("after", ["quarantine", "restore copy", "fence"])
def test_a_promotion_killed_midway_and_run_again_lands_and_promotes(pair, tmp_path, after):
    """Whatever a SIGKILL leaves (a half-restored standby, the primary fenced, the promotion's
    lock held by a dead session), no cluster serves off its point, and the same promotion run
    again (it waits for the dead one's lock) finishes the landing and promotes."""
    clusters, zk = pair
    biz = killed_mid_copy(clusters, tmp_path)
    include = include_for(tmp_path, biz)
    point = biz.newest()
    biz.dst.write(f"{biz.top}/bill-0", b"changed on the standby")  # the landing copies back too
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_PROMOTION, str(include), json.dumps(zk), after],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    if roles(clusters)["standby"] == "active":
        assert biz.live_check(point).ok
    result, _ = promote_standby(clusters, zk, include)
    assert result.promoted, result.reason
    assert roles(clusters) == {"primary": "standby", "standby": "active"}
    assert biz.live_check(point).ok
