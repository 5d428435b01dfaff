"""The real ZooKeeper launcher, the /tandem/cluster record and the /tandem/alive holder."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient, KazooState

from tandem.errors import EmbeddedError, ZooKeeperError
from tandem.failover.state import (
    ALIVE_PATH,
    CLUSTER_PATH,
    AliveHolder,
    ClusterRecord,
    CorruptRecordError,
    init_cluster_record,
    read_cluster_record,
)
from tandem_dev.embedded import zookeeper
from tandem_dev.embedded.zookeeper import ZooKeeperServer

pytestmark = pytest.mark.integration


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def zk(zk_server: ZooKeeperServer, request: pytest.FixtureRequest) -> Iterator[KazooClient]:
    """A client chrooted to a fresh path, so tests sharing the server never see each other."""
    admin = KazooClient(hosts=zk_server.hosts)
    admin.start(timeout=10)
    chroot = f"/t-{request.node.name.replace('[', '-').replace(']', '')}-{time.monotonic_ns()}"
    admin.ensure_path(chroot)
    admin.stop()
    admin.close()
    client = KazooClient(hosts=zk_server.hosts + chroot)
    client.start(timeout=10)
    yield client
    client.stop()
    client.close()


@pytest.fixture
def chroot_hosts(zk: KazooClient, zk_server: ZooKeeperServer) -> str:
    return f"{zk_server.hosts}{zk.chroot}"


def show_log(server: ZooKeeperServer) -> str:
    return f"\n--- {server.log_path} ---\n{zookeeper.log_tail(server.log_path)}"


# --------------------------------------------------------------------------- the launcher


def test_start_answers_four_letter_words_and_stop_frees_the_port(tmp_path: Path) -> None:
    server = ZooKeeperServer(tmp_path / "zk")
    began = time.monotonic()
    server.start()
    try:
        started = time.monotonic() - began
        assert zookeeper.is_ok("127.0.0.1", server.port), show_log(server)
        info = zookeeper.server_info("127.0.0.1", server.port)
        assert info["Mode"] == "standalone", show_log(server)
        assert info["Zookeeper version"].startswith("3."), info
        assert started < 20, f"ZooKeeper took {started:.1f} s to answer"
        # loopback only: the config says so and the server honours it
        config = server.config_path.read_text()
        assert "clientPortAddress=127.0.0.1" in config
        assert "admin.enableServer=false" in config
        assert server.pid is not None
    finally:
        server.stop()
    assert not server.is_running()
    assert not zookeeper.is_ok("127.0.0.1", server.port)
    assert zookeeper.port_is_free(server.port)
    server.stop()  # idempotent


def test_data_survives_a_restart_on_the_same_port(tmp_path: Path) -> None:
    first = ZooKeeperServer(tmp_path / "zk")
    with first:
        client = KazooClient(hosts=first.hosts)
        client.start(timeout=10)
        client.create("/kept", b"yes")
        client.stop()
        client.close()
        port = first.port
    second = ZooKeeperServer(tmp_path / "zk", port=port)
    with second:
        client = KazooClient(hosts=second.hosts)
        client.start(timeout=10)
        assert client.get("/kept")[0] == b"yes"
        client.stop()
        client.close()


def test_explicit_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        server = ZooKeeperServer(tmp_path / "zk", port=port)
        with pytest.raises(EmbeddedError, match=rf"port {port} on 127.0.0.1 is in use.*choose another port"):
            server.start()
        assert not server.is_running()


def test_missing_java_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EmbeddedError, match=r"default-jre-headless.*make setup"):
        ZooKeeperServer(tmp_path / "zk").start()


def test_missing_zookeeper_jar_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TANDEM_ZOOKEEPER_JAR", str(tmp_path / "nope.jar"))
    with pytest.raises(EmbeddedError, match=r"apt-get install zookeeper.*make setup"):
        ZooKeeperServer(tmp_path / "zk").start()


# --------------------------------------------------------------------------- /tandem/cluster


def test_init_cluster_record_creates_once_and_never_overwrites(zk: KazooClient) -> None:
    first = init_cluster_record(zk, "primary", "active")
    assert (first.name, first.role, first.epoch) == ("primary", "active", 0)
    assert read_cluster_record(zk) == first
    # a failover changed the role; a restart asking for the initial role must not undo it
    promoted = ClusterRecord.new("primary", "standby", epoch=1)
    zk.set(CLUSTER_PATH, promoted.to_bytes())
    again = init_cluster_record(zk, "primary", "active")
    assert again == promoted
    assert ClusterRecord.parse(zk.get(CLUSTER_PATH)[0]) == promoted


def test_init_cluster_record_races_to_a_single_record(zk: KazooClient) -> None:
    results: list[ClusterRecord] = []
    role_for = ["active", "standby"] * 4

    def init(i: int) -> None:
        results.append(init_cluster_record(zk, "primary", role_for[i]))  # type: ignore[arg-type]

    threads = [threading.Thread(target=init, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8
    assert len(set(results)) == 1


def test_record_of_another_cluster_is_refused(zk: KazooClient) -> None:
    init_cluster_record(zk, "primary", "active")
    with pytest.raises(ZooKeeperError, match="already holds cluster 'primary', not 'standby'"):
        init_cluster_record(zk, "standby", "standby")


def test_corrupt_record_is_reported_not_overwritten(zk: KazooClient) -> None:
    zk.create(CLUSTER_PATH, b'{"name": "primary", "role": "sideways"}', makepath=True)
    with pytest.raises(CorruptRecordError, match="missing epoch, updated"):
        init_cluster_record(zk, "primary", "active")
    assert zk.get(CLUSTER_PATH)[0] == b'{"name": "primary", "role": "sideways"}'


# --------------------------------------------------------------------------- /tandem/alive


def expire_session(client: KazooClient, hosts: str) -> None:
    """Make the server expire ``client``'s session: a second client takes it over and closes it."""
    thief = KazooClient(hosts=hosts, client_id=client.client_id)
    thief.start(timeout=10)
    thief.stop()
    thief.close()


def test_alive_is_held_recreated_after_session_expiry_and_removed_on_stop(
    zk: KazooClient, chroot_hosts: str, zk_server: ZooKeeperServer
) -> None:
    holder = AliveHolder(chroot_hosts, "primary", b'{"pid": 1}', session_timeout=6.0)
    states: list[str] = []
    holder.client.add_listener(states.append)
    holder.start(timeout=10)
    try:
        stat = zk.exists(ALIVE_PATH)
        assert stat is not None and stat.ephemeralOwner == holder.client.client_id[0]
        assert zk.get(ALIVE_PATH)[0] == b'{"pid": 1}'
        old_session = holder.client.client_id[0]

        gone = threading.Event()
        zk.exists(ALIVE_PATH, watch=lambda event: gone.set())
        expire_session(holder.client, zk_server.hosts)
        # the server really deleted the ephemeral node with the session...
        assert gone.wait(10), "the ephemeral node was not deleted with its session"
        # ...and the holder re-created it on its new session
        wait_for(
            lambda: (
                (s := zk.exists(ALIVE_PATH)) is not None
                and s.ephemeralOwner != old_session
                and holder.recreations == 1
            ),
            15,
            "/tandem/alive to be re-created on a new session",
        )
        assert KazooState.LOST in states, states
        assert holder.held
        assert zk.exists(ALIVE_PATH).ephemeralOwner == holder.client.client_id[0]
    finally:
        holder.stop()
    assert zk.exists(ALIVE_PATH) is None
    holder.stop()  # idempotent


def test_alive_is_recreated_after_someone_deletes_it(zk: KazooClient, chroot_hosts: str) -> None:
    holder = AliveHolder(chroot_hosts, "standby", b"")
    holder.start(timeout=10)
    try:
        zk.delete(ALIVE_PATH)
        # the holder counts a re-creation just after the create returns: wait for both
        wait_for(
            lambda: zk.exists(ALIVE_PATH) is not None and holder.recreations == 1,
            10,
            "/tandem/alive to come back",
        )
    finally:
        holder.stop()
    assert zk.exists(ALIVE_PATH) is None


def test_alive_of_a_killed_holder_disappears_with_its_session(zk: KazooClient, chroot_hosts: str) -> None:
    # a crashed cluster process never calls stop(): only its session's timeout removes the node
    script = (
        "import sys, time\n"
        "from tandem.failover.state import AliveHolder\n"
        "AliveHolder(sys.argv[1], 'primary', b'', session_timeout=2.0).start(timeout=10)\n"
        "print('held', flush=True)\n"
        "time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, chroot_hosts], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        assert zk.exists(ALIVE_PATH) is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        wait_for(lambda: zk.exists(ALIVE_PATH) is None, 15, "the dead holder's node to expire")
    finally:
        proc.kill()
        proc.wait()


def test_alive_start_fails_clearly_when_zookeeper_is_down() -> None:
    holder = AliveHolder(f"127.0.0.1:{zookeeper.free_port()}", "primary", b"")
    with pytest.raises(ZooKeeperError, match=r"cannot reach ZooKeeper.*tandem status"):
        holder.start(timeout=2)
