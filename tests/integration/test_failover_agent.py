"""`tandem agent` against the embedded clusters' real servers and a real ZooKeeper."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from tandem.failover.agent import Agent, ProbeRunner, airflow_target, metastore_probe, webhdfs_probe
from tandem.failover.state import ALIVE_PATH
from tandem.hdfs.client import Hdfs
from tandem.metastore import Metastore
from tandem_dev.embedded.access import embedded_access, hms_client
from tandem_dev.embedded.manager import RunningClusters
from tandem_dev.embedded.metastore import MetastoreServer
from tandem_dev.embedded.webhdfs import WebHdfsServer
from tandem_dev.embedded.zookeeper import ZooKeeperServer
from tests.integration.test_failover_support import TcpProxy, expire_session, wait_for

pytestmark = pytest.mark.integration

INTERVAL = 0.3


class Servers:
    """A cluster's WebHDFS and metastore servers (the embedded ones), stoppable one at a time."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.webhdfs = WebHdfsServer(root / "hdfs", superuser="hdfs")
        self.metastore = MetastoreServer(root / "metastore.db")
        self.webhdfs.start()
        self.metastore.start()
        self.webhdfs_url = self.webhdfs.url
        self.metastore_uri = self.metastore.uri

    def restart_webhdfs(self) -> None:
        self.webhdfs = WebHdfsServer(self.root / "hdfs", superuser="hdfs", port=self.webhdfs.port)
        self.webhdfs.start()

    def restart_metastore(self) -> None:
        self.metastore = MetastoreServer(self.root / "metastore.db", port=self.metastore.port)
        self.metastore.start()

    def probes(self) -> dict[str, object]:
        from hdfs import InsecureClient

        return {
            "webhdfs": webhdfs_probe(lambda: Hdfs(InsecureClient(self.webhdfs_url, user="hdfs", timeout=2))),
            "metastore": metastore_probe(lambda: Metastore(hms_client(self.metastore_uri, 2.0))),
        }

    def stop(self) -> None:
        self.webhdfs.stop()
        self.metastore.stop()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    made = Servers(tmp_path)
    yield made
    made.stop()


@pytest.fixture
def chroot(zk_server: ZooKeeperServer, request: pytest.FixtureRequest) -> Iterator[tuple[str, KazooClient]]:
    path = f"/agent-{request.node.name}-{time.monotonic_ns()}"
    admin = KazooClient(hosts=zk_server.hosts)
    admin.start(timeout=10)
    admin.ensure_path(path)
    client = KazooClient(hosts=zk_server.hosts + path)
    client.start(timeout=10)
    yield path, client
    client.stop()
    client.close()
    admin.stop()
    admin.close()


class Running:
    """An agent running in a thread, as `tandem agent` runs it."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.stop = threading.Event()
        self.thread = threading.Thread(target=agent.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(15)


@pytest.fixture
def running(
    servers: Servers, chroot: tuple[str, KazooClient], zk_server: ZooKeeperServer
) -> Iterator[tuple[Running, KazooClient]]:
    path, zk = chroot
    agent = Agent(
        "primary",
        zk_server.hosts + path,
        servers.probes(),  # type: ignore[arg-type]
        interval=INTERVAL,
        probe_timeout=1.0,
        session_timeout=4.0,
    )
    run = Running(agent)
    # the node exists a moment before the agent records its holder: wait for both
    wait_for(lambda: zk.exists(ALIVE_PATH) is not None and agent.held, 10, "the agent to take /tandem/alive")
    yield run, zk
    run.close()


def test_node_goes_when_webhdfs_stops_and_comes_back_when_it_restarts(
    running: tuple[Running, KazooClient], servers: Servers
) -> None:
    run, zk = running
    servers.webhdfs.stop()
    gone = wait_for(lambda: zk.exists(ALIVE_PATH) is None, 10, "the node to go")
    assert gone < 3 * INTERVAL + 5, f"took {gone:.2f} s"  # a few checks, not a long poll
    # the agent records its reason just after it drops the node: wait for it, briefly
    wait_for(lambda: "webhdfs" in run.agent.last_reason, 10, "the reason to name webhdfs")
    servers.restart_webhdfs()
    back = wait_for(lambda: zk.exists(ALIVE_PATH) is not None, 10, "the node to come back")
    assert back < 3 * INTERVAL + 5, f"took {back:.2f} s"
    wait_for(
        lambda: run.agent.last_reason.startswith("healthy (webhdfs answers and metastore answers)"),
        10,
        "the reason to say healthy",
    )


def test_node_goes_when_the_metastore_stops_and_comes_back(
    running: tuple[Running, KazooClient], servers: Servers
) -> None:
    run, zk = running
    servers.metastore.stop()
    wait_for(lambda: zk.exists(ALIVE_PATH) is None and not run.agent.held, 10, "the node to go")
    wait_for(lambda: "metastore" in run.agent.last_reason, 10, "the reason to name the metastore")
    servers.restart_metastore()
    wait_for(lambda: zk.exists(ALIVE_PATH) is not None, 10, "the node to come back")


def test_a_hung_metastore_counts_as_down(servers: Servers) -> None:
    # a server that accepts connections and never answers
    silent = socket.create_server(("127.0.0.1", 0))
    uri = f"thrift://127.0.0.1:{silent.getsockname()[1]}"
    probes = {
        "webhdfs": servers.probes()["webhdfs"],
        "metastore": metastore_probe(lambda: Metastore(hms_client(uri, 30.0))),
    }
    runner = ProbeRunner(probes, timeout=1.0)  # type: ignore[arg-type]
    try:
        began = time.monotonic()
        health = runner.check()
        assert time.monotonic() - began < 4.0  # gives up at its 1 s timeout instead of hanging
        assert not health.healthy
        assert health.reason == "metastore did not answer within 1 s"
        # the hung probe is not piled up: the next check says it is still waiting
        assert runner.check().reason == "metastore still has not answered an earlier check"
    finally:
        runner.close()
        silent.close()


def test_session_expiry_keeps_the_node_without_flapping(
    running: tuple[Running, KazooClient], zk_server: ZooKeeperServer
) -> None:
    run, zk = running
    holder = run.agent.holder
    assert holder is not None
    old_owner = zk.exists(ALIVE_PATH).ephemeralOwner
    gone = threading.Event()
    zk.exists(ALIVE_PATH, watch=lambda _e: gone.set())
    expire_session(holder.client, zk_server.hosts)
    assert gone.wait(10), "the server did not drop the node with the session"
    wait_for(
        lambda: (s := zk.exists(ALIVE_PATH)) is not None and s.ephemeralOwner != old_owner,
        10,
        "the node on a new session",
    )
    assert run.agent.holder is holder  # the same holder re-created it: the agent never dropped it
    assert run.agent.held


def test_dropped_connections_keep_or_restore_the_node(
    servers: Servers, chroot: tuple[str, KazooClient], zk_server: ZooKeeperServer
) -> None:
    path, zk = chroot
    proxy = TcpProxy("127.0.0.1", zk_server.port)
    run = Running(
        Agent(
            "primary",
            proxy.hosts(path),
            servers.probes(),  # type: ignore[arg-type]
            interval=INTERVAL,
            probe_timeout=1.0,
            session_timeout=4.0,
        )
    )
    try:
        wait_for(lambda: zk.exists(ALIVE_PATH) is not None, 10, "the node")
        owner = zk.exists(ALIVE_PATH).ephemeralOwner
        # a short partition: the session survives, and so does the node
        proxy.cut()
        time.sleep(1.0)
        assert zk.exists(ALIVE_PATH).ephemeralOwner == owner
        proxy.restore()
        wait_for(lambda: run.agent.holder is not None and run.agent.holder.held, 10, "reconnection")
        assert zk.exists(ALIVE_PATH).ephemeralOwner == owner
        # a long one: the server expires the session and drops the node; it returns with the link
        proxy.cut()
        wait_for(lambda: zk.exists(ALIVE_PATH) is None, 15, "the node to expire")
        proxy.restore()
        wait_for(lambda: zk.exists(ALIVE_PATH) is not None, 15, "the node to be re-created")
    finally:
        run.close()
        proxy.close()
    assert zk.exists(ALIVE_PATH) is None  # stopping the agent releases the node


def test_agent_takes_the_node_once_zookeeper_comes_up(servers: Servers, tmp_path: Path) -> None:
    zk_dir = tmp_path / "late-zk"
    from tandem_dev.embedded.zookeeper import free_port

    port = free_port()
    run = Running(
        Agent(
            "primary",
            f"127.0.0.1:{port}",
            servers.probes(),  # type: ignore[arg-type]
            interval=INTERVAL,
            probe_timeout=1.0,
        )
    )
    server = ZooKeeperServer(zk_dir, port=port)
    try:
        wait_for(
            lambda: "but ZooKeeper refused (cannot reach ZooKeeper" in run.agent.last_reason, 15, "a refusal"
        )
        assert not run.agent.held
        server.start()
        wait_for(lambda: run.agent.held, 20, "the agent to take the node")
    finally:
        run.close()
        server.stop()


def test_the_target_comes_from_the_connections_and_probes_the_real_servers(
    embedded: RunningClusters, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tandem import environment

    published = json.loads((embedded.home / environment.FILE).read_text())
    for key in published:  # use() writes them into the environment: restored after the test
        monkeypatch.setenv(key, os.environ.get(key, ""))
    environment.use(embedded.home)
    target = airflow_target("primary")
    assert target.zk_hosts == embedded.primary.zookeeper_hosts
    assert target.source == "connections webhdfs_primary, metastore_primary, zookeeper_primary"
    runner = ProbeRunner(target.probes, timeout=5.0)
    try:
        health = runner.check()
    finally:
        runner.close()
    assert health.healthy, health.reason
    assert embedded_access(embedded, "standby").zookeeper_hosts == embedded.standby.zookeeper_hosts


def test_cli_refuses_a_home_without_running_clusters(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tandem.cli", "agent", "--cluster", "primary", "--home", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert f"{tmp_path}/environment.json: file: no clusters run in this home" in result.stderr
