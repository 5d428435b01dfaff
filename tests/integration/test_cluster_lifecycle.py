"""``tandem up|status|down`` run as a user runs them, checked through real clients."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hdfs import InsecureClient
from hmsclient.genthrift.hive_metastore.ttypes import Database
from hmsclient.hmsclient import HMSClient
from kazoo.client import KazooClient

from tandem.environment import project_root
from tandem.failover.state import ALIVE_PATH, CLUSTER_PATH, ClusterRecord
from tandem_dev.embedded import manager, zookeeper
from tandem_dev.embedded.manager import RunningClusters

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TANDEM = str(Path(sys.executable).parent / "tandem")
UP_TARGET_S = 30.0
# the clusters `tandem up` starts and the role each gets on its first start
ROLES = {"primary": "active", "standby": "standby", "primary2": "active"}


def tandem(*args: str, home: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed ``tandem`` command as a user would, isolated from any real Airflow."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "TANDEM_"))}
    # a home with no Airflow DB: `tandem up` must skip syncing connections
    base["AIRFLOW_HOME"] = str(home.parent / "no-airflow-here")
    base.update(env or {})
    return subprocess.run(
        [TANDEM, *args, "--home", str(home)], env=base, cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def ok(done: subprocess.CompletedProcess[str], home: Path) -> str:
    assert done.returncode == 0, f"{done.args}\n{done.stdout}\n{done.stderr}\n{manager.log_tails(home)}"
    return done.stdout


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def recorded_pids(home: Path) -> list[int]:
    state = json.loads((home / "state.json").read_text())
    return [
        pid
        for entry in state["clusters"].values()
        for pid in (entry["zookeeper"]["pid"], entry["process"]["pid"])
        if pid
    ]


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def zk_view(hosts: str) -> tuple[ClusterRecord, bool]:
    zk = KazooClient(hosts=hosts)
    zk.start(timeout=10)
    try:
        return ClusterRecord.parse(zk.get(CLUSTER_PATH)[0]), zk.exists(ALIVE_PATH) is not None
    finally:
        zk.stop()
        zk.close()


def hms(uri: str) -> HMSClient:
    host, port = uri.removeprefix("thrift://").rsplit(":", 1)
    return HMSClient(host=host, port=int(port))


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "tandem-home"
    yield home
    # whatever a failing test left running is stopped, by pid, through the command under test
    if (home / "state.json").exists():
        tandem("down", home=home)


def check_document(doc: dict[str, Any], home: Path) -> None:
    assert set(doc) == {"home", "clusters"}
    assert doc["home"] == str(home)
    assert set(doc["clusters"]) == set(ROLES)
    for endpoints in doc["clusters"].values():
        assert set(endpoints) == {"webhdfs", "metastore", "zookeeper"}
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", endpoints["webhdfs"])
        assert re.fullmatch(r"thrift://127\.0\.0\.1:\d+", endpoints["metastore"])
        assert re.fullmatch(r"127\.0\.0\.1:\d+", endpoints["zookeeper"])
    ports = [port_of(a) for c in doc["clusters"].values() for a in c.values()]
    assert len(set(ports)) == 3 * len(ROLES)


def test_up_status_down_and_up_again_keep_the_data(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    began = time.monotonic()
    doc = json.loads(ok(tandem("up", "--json", home=home), home))
    up_seconds = time.monotonic() - began
    check_document(doc, home)
    primary, standby, second = (doc["clusters"][n] for n in ("primary", "standby", "primary2"))
    assert up_seconds < UP_TARGET_S, f"tandem up took {up_seconds:.1f} s"

    # every server answers its own protocol, through the clients the rest of Tandem uses
    for name, cluster in doc["clusters"].items():
        assert InsecureClient(cluster["webhdfs"], user="hdfs").status("/")["type"] == "DIRECTORY"
        with hms(cluster["metastore"]) as client:
            assert "default" in client.get_all_databases()
        record, alive = zk_view(cluster["zookeeper"])
        assert (record.name, record.role, record.epoch) == (name, ROLES[name], 0)
        assert alive

    # some data in every component of the primary, and a role change a failover would make
    InsecureClient(primary["webhdfs"], user="hdfs").write("/keep/me.txt", b"kept")
    with hms(primary["metastore"]) as client:
        client.create_database(
            Database(name="keepdb", description="kept", locationUri="hdfs://primary/keepdb")
        )
    zk = KazooClient(hosts=standby["zookeeper"])
    zk.start(timeout=10)
    zk.set(CLUSTER_PATH, ClusterRecord.new("standby", "active", epoch=1).to_bytes())
    zk.stop()
    zk.close()

    # `up` on a running home reports it and starts nothing
    pids = recorded_pids(home)
    again = ok(tandem("up", home=home), home)
    assert "already running" in again and primary["webhdfs"] in again
    assert recorded_pids(home) == pids

    report = json.loads(ok(tandem("servers", "--json", home=home), home))
    assert report["running"] is True
    assert set(report["clusters"]) == set(ROLES)
    for name in ROLES:
        entry = report["clusters"][name]
        assert entry["answers"] == {"webhdfs": True, "metastore": True, "zookeeper": True}
        assert entry["alive"] is True
        assert {p["state"] for p in entry["processes"].values()} == {"ours"}
    assert (report["clusters"]["primary"]["role"], report["clusters"]["standby"]["role"]) == (
        "active",
        "active",
    )
    assert report["clusters"]["primary2"]["role"] == "active"
    assert report["clusters"]["standby"]["epoch"] == 1
    table = ok(tandem("servers", home=home), home)
    for name in ROLES:
        assert re.search(rf"^{name}\s+active\s+\d+\s+yes\s", table, re.MULTILINE), table

    # down stops exactly the six recorded processes, by pid, and keeps the data
    began = time.monotonic()
    stopped = json.loads(ok(tandem("down", "--json", home=home), home))["stopped"]
    down_seconds = time.monotonic() - began
    assert len(stopped) == 2 * len(ROLES), stopped
    assert not any(pid_alive(pid) for pid in pids)
    for address in (*primary.values(), *standby.values(), *second.values()):
        assert zookeeper.port_is_free(port_of(address))
    assert (home / "primary" / "metastore.db").is_file()
    stopped_status = tandem("servers", "--json", home=home)
    assert stopped_status.returncode == 1
    assert json.loads(stopped_status.stdout)["running"] is False
    assert "nothing to stop" in ok(tandem("down", home=home), home)

    # up again: same data, same ports, except one now taken by someone else
    with socket.socket() as squatter:
        # the port may still be in TIME_WAIT from ZooKeeper's own connections
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port_of(primary["zookeeper"])))
        squatter.listen()
        doc2 = json.loads(ok(tandem("up", "--json", home=home), home))
    check_document(doc2, home)
    assert doc2["clusters"]["standby"] == standby
    assert doc2["clusters"]["primary2"] == second
    assert doc2["clusters"]["primary"]["webhdfs"] == primary["webhdfs"]
    assert doc2["clusters"]["primary"]["zookeeper"] != primary["zookeeper"]
    restarted = doc2["clusters"]["primary"]
    with InsecureClient(restarted["webhdfs"], user="hdfs").read("/keep/me.txt") as reader:
        assert reader.read() == b"kept"
    with hms(restarted["metastore"]) as client:
        assert client.get_database("keepdb").description == "kept"
    # the failover's role survived: the initial role is written on the first start only
    assert zk_view(standby["zookeeper"])[0].role == "active"
    assert zk_view(restarted["zookeeper"])[0].role == "active"
    ok(tandem("down", home=home), home)
    with capsys.disabled():
        print(f"\n[timing] tandem up (first start) {up_seconds:.1f} s, tandem down {down_seconds:.1f} s")


def test_up_brings_up_primary2_a_second_active_cluster_of_its_own(home: Path) -> None:
    """primary2 (for the write gateway) is a full cluster beside the pair: its own WebHDFS,
    metastore and ZooKeeper, its own data, active from its first start."""
    try:
        topology = manager.up(home)
        assert topology.names == ("primary", "standby", "primary2")
        second, first = topology["primary2"], topology.primary
        client = InsecureClient(second.webhdfs_url, user="hdfs")
        assert client.status("/")["type"] == "DIRECTORY"
        client.write("/gateway/only-here.txt", b"on primary2")
        with client.read("/gateway/only-here.txt") as reader:
            assert reader.read() == b"on primary2"
        assert InsecureClient(first.webhdfs_url, user="hdfs").status("/gateway", strict=False) is None
        with hms(second.metastore_uri) as hms_client:
            assert hms_client.get_database("default").locationUri.startswith("hdfs://primary2/warehouse")
        record, alive = zk_view(second.zookeeper_hosts)
        assert (record.name, record.role, record.epoch, alive) == ("primary2", "active", 0, True)
        assert manager.running_topology(home) == topology
    finally:
        stopped = manager.down(home)
    assert sum("primary2" in line for line in stopped) == 2, stopped


def test_home_of_another_run_is_refused_and_its_processes_left_alone(
    embedded: RunningClusters, tmp_path: Path
) -> None:
    copy = tmp_path / "copied-home"
    copy.mkdir()
    shutil.copy(embedded.home / "state.json", copy / "state.json")
    refused = tandem("up", home=copy)
    assert refused.returncode == 1
    assert "belongs to another run" in refused.stderr
    assert f"tandem down --home {embedded.home}" in refused.stderr

    down = tandem("down", home=copy)
    assert down.returncode == 1
    assert down.stdout.count("alone: it is not a process this home started") == 2 * len(ROLES)
    # the other run still serves
    assert all(all(kinds.values()) for kinds in manager.probe(embedded).values())
    assert manager.running_topology(embedded.home) == embedded
    # and the copied home still refuses while those processes live
    assert tandem("up", home=copy).returncode == 1


def test_down_never_signals_a_pid_that_is_not_its_process(tmp_path: Path) -> None:
    home = tmp_path / "tandem-home"
    home.mkdir()
    # a pid that was reused by an unrelated program
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        state = {
            "version": 1, "home": str(home), "owner": "0123456789abcdef", "running": True, "started": "",
            "clusters": {
                name: {
                    "role": role,
                    "zookeeper": {"port": 1, "pid": stranger.pid},
                    "process": {"pid": stranger.pid},
                    "webhdfs_port": 2, "data_port": 3, "metastore_port": 4,
                }
                for name, role in (("primary", "active"), ("standby", "standby"))
            },
        }  # fmt: skip
        (home / "state.json").write_text(json.dumps(state))
        assert manager.down(home) == []
        assert stranger.poll() is None, "down signalled a process it did not start"
        assert manager.running_topology(home) is None
    finally:
        stranger.kill()
        stranger.wait()


def test_up_without_java_says_what_to_install(tmp_path: Path) -> None:
    home = tmp_path / "tandem-home"
    no_java = tmp_path / "empty-bin"
    no_java.mkdir()
    done = tandem("up", home=home, env={"PATH": str(no_java)})
    assert done.returncode == 1
    assert "default-jre-headless" in done.stderr and "make setup" in done.stderr


def test_embedded_fixture_serves_airflow_hooks(
    airflow_conns: dict[str, str], embedded: RunningClusters
) -> None:
    from airflow.providers.apache.hdfs.hooks.webhdfs import WebHDFSHook
    from airflow.providers.apache.hive.hooks.hive import HiveMetastoreHook

    ids = manager.cluster_conn_ids(ROOT / "include" / "clusters.yaml")
    assert set(airflow_conns) == {f"AIRFLOW_CONN_{i.upper()}" for c in ids.values() for i in c.values()}
    assert set(ids) == set(ROLES)
    for name in ROLES:
        client = WebHDFSHook(webhdfs_conn_id=ids[name]["webhdfs"]).get_conn()
        assert client.url == embedded[name].webhdfs_url
        assert client.status("/")["type"] == "DIRECTORY"
        assert "default" in HiveMetastoreHook(metastore_conn_id=ids[name]["metastore"]).get_databases()
        zk = json.loads(airflow_conns[f"AIRFLOW_CONN_{ids[name]['zookeeper'].upper()}"])
        assert zk_view(f"{zk['host']}:{zk['port']}")[0].name == name


def test_cluster_process_registers_and_withdraws_alive_on_sigterm(tmp_path: Path) -> None:
    with zookeeper.ZooKeeperServer(tmp_path / "zk") as zk_server:
        cmd = [
            sys.executable, "-m", "tandem_dev.embedded.cluster", "--home", str(tmp_path), "--name", "standby",
            "--role", "standby", "--zookeeper", zk_server.hosts,
        ]  # fmt: skip
        log_path = tmp_path / "cluster.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        marker = tmp_path / "standby" / "ready.json"
        try:
            deadline = time.monotonic() + 30
            while not marker.exists():
                assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.05)
            ready = json.loads(marker.read_text())
            assert ready["pid"] == proc.pid
            assert InsecureClient(ready["webhdfs"], user="hdfs").status("/")["owner"] == "hdfs"
            with hms(ready["metastore"]) as client:
                assert client.get_database("default").locationUri.startswith("hdfs://standby/warehouse")
            record, alive = zk_view(zk_server.hosts)
            assert (record.name, record.role, alive) == ("standby", "standby", True)

            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0, log_path.read_text()
        finally:
            proc.kill()
            proc.wait()
        # withdrawn on the way out, not left to expire with the session
        assert zk_view(zk_server.hosts)[1] is False
        assert not marker.exists()
        assert "cluster standby stopped" in log_path.read_text()


def test_default_home_is_the_project_root_unless_tandem_home_says_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / "dags" / "deep").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    monkeypatch.delenv("TANDEM_HOME", raising=False)
    monkeypatch.chdir(project / "dags" / "deep")
    assert manager.default_home() == project / ".tandem"
    monkeypatch.setenv("TANDEM_HOME", str(tmp_path / "elsewhere"))
    assert manager.default_home() == tmp_path / "elsewhere"
    assert manager.resolve_home(tmp_path / "explicit") == tmp_path / "explicit"
    monkeypatch.delenv("TANDEM_HOME")
    monkeypatch.chdir(tmp_path)
    assert project_root() == tmp_path
