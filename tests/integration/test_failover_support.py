"""Fault injection for the failover tests, and the tests that prove it injects what it claims.

- :class:`TcpProxy` sits between kazoo and the real ZooKeeper: ``cut()`` drops every connection
  and refuses new ones (a network partition of that client), ``restore()`` lets them through.
- :func:`expire_session` makes the real server expire a client's session (ZooKeeper's own
  behaviour when a second connection takes the session over and closes it).
- :class:`ZkPair` is a pair of clusters, each with its own chroot on one real ZooKeeper, its
  ``/tandem/cluster`` record and, when alive, a real :class:`AliveHolder`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from kazoo.client import KazooClient, KazooState

from tandem.failover.state import CLUSTER_PATH, AliveHolder, ClusterRecord, Role
from tandem_dev.embedded.zookeeper import ZooKeeperServer

pytestmark = pytest.mark.integration


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll until ``predicate`` holds; returns the seconds it took."""
    began = time.monotonic()
    while not predicate():
        if time.monotonic() - began > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - began


def expire_session(client: KazooClient, server_hosts: str) -> None:
    """Make the server expire ``client``'s session: another connection takes it over and closes it."""
    thief = KazooClient(hosts=server_hosts, client_id=client.client_id)
    thief.start(timeout=10)
    thief.stop()
    thief.close()


class TcpProxy:
    """A loopback TCP forwarder whose connections a test can drop at will."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._open = threading.Event()
        self._open.set()
        self._closed = False
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self.accepted = 0
        threading.Thread(target=self._accept_loop, name=f"proxy-{self.port}", daemon=True).start()

    def hosts(self, chroot: str = "") -> str:
        return f"127.0.0.1:{self.port}{chroot}"

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                conn, _addr = self._listener.accept()
            except OSError:
                return
            if not self._open.is_set():
                conn.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                conn.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((conn, upstream))
                self.accepted += 1
            for src, dst in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                self._drop(sock)

    def _drop(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()
        with self._lock:
            self._sockets.discard(sock)

    def cut(self) -> None:
        """Drop every open connection and refuse new ones until :meth:`restore`."""
        self._open.clear()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            self._drop(sock)

    def restore(self) -> None:
        self._open.set()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._listener.close()


@dataclass
class ZkPair:
    """Two clusters on one real ZooKeeper (a chroot each), reached through their own proxies."""

    server: ZooKeeperServer
    prefix: str
    names: tuple[str, str] = ("primary", "standby")
    proxies: dict[str, TcpProxy] = field(default_factory=dict)
    admin: dict[str, KazooClient] = field(default_factory=dict)
    holders: dict[str, AliveHolder] = field(default_factory=dict)

    def chroot(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def direct_hosts(self, name: str) -> str:
        return f"{self.server.hosts}{self.chroot(name)}"

    def hosts(self, name: str) -> str:
        """Through the cluster's proxy: what watchers, clients and promotions use."""
        return self.proxies[name].hosts(self.chroot(name))

    @property
    def zk_hosts(self) -> dict[str, str]:
        return {name: self.hosts(name) for name in self.names}

    def setup(
        self, roles: tuple[Role, Role] = ("active", "standby"), alive: tuple[bool, bool] = (True, True)
    ) -> None:
        root = KazooClient(hosts=self.server.hosts)
        root.start(timeout=10)
        for name in self.names:
            root.ensure_path(self.chroot(name))
        root.stop()
        root.close()
        for name, role, live in zip(self.names, roles, alive, strict=True):
            self.proxies[name] = TcpProxy("127.0.0.1", self.server.port)
            client = KazooClient(hosts=self.direct_hosts(name))
            client.start(timeout=10)
            self.admin[name] = client
            self.write(name, role, 1)
            if live:
                self.revive(name)

    def write(self, name: str, role: Role, epoch: int) -> None:
        data = ClusterRecord.new(name, role, epoch).to_bytes()
        if self.admin[name].exists(CLUSTER_PATH):
            self.admin[name].set(CLUSTER_PATH, data)
        else:
            self.admin[name].create(CLUSTER_PATH, data, makepath=True)

    def write_raw(self, name: str, data: bytes) -> None:
        self.admin[name].set(CLUSTER_PATH, data)

    def record(self, name: str) -> ClusterRecord:
        return ClusterRecord.parse(self.admin[name].get(CLUSTER_PATH)[0])

    def kill(self, name: str) -> None:
        """The cluster dies: its /tandem/alive goes."""
        self.holders.pop(name).stop()

    def revive(self, name: str) -> None:
        holder = AliveHolder(self.direct_hosts(name), name, b"", session_timeout=4.0)
        holder.start(timeout=10)
        self.holders[name] = holder

    def close(self) -> None:
        for holder in self.holders.values():
            holder.stop()
        for client in self.admin.values():
            client.stop()
            client.close()
        for proxy in self.proxies.values():
            proxy.close()


@contextlib.contextmanager
def zk_pair(
    server: ZooKeeperServer,
    request: pytest.FixtureRequest,
    roles: tuple[Role, Role] = ("active", "standby"),
    alive: tuple[bool, bool] = (True, True),
) -> Iterator[ZkPair]:
    name = request.node.name.replace("[", "-").replace("]", "").replace("/", "-")
    pair = ZkPair(server, f"/p-{name}-{time.monotonic_ns()}")
    try:
        pair.setup(roles, alive)
        yield pair
    finally:
        pair.close()


# --------------------------------------------------------------------------- the injectors work


def test_cut_drops_a_kazoo_connection_and_restore_lets_it_back(zk_server: ZooKeeperServer) -> None:
    proxy = TcpProxy("127.0.0.1", zk_server.port)
    states: list[str] = []
    client = KazooClient(hosts=proxy.hosts(), timeout=10)
    client.add_listener(states.append)
    try:
        client.start(timeout=10)
        session = client.client_id
        proxy.cut()
        wait_for(lambda: KazooState.SUSPENDED in states, 5, "kazoo to notice the dropped connection")
        time.sleep(0.5)
        assert not client.connected
        proxy.restore()
        wait_for(lambda: client.connected, 10, "kazoo to reconnect")
        # a short partition keeps the session: ephemeral nodes of this client survive it
        assert client.client_id == session
        assert KazooState.LOST not in states
    finally:
        client.stop()
        client.close()
        proxy.close()


def test_expire_session_really_expires_it(zk_server: ZooKeeperServer) -> None:
    states: list[str] = []
    client = KazooClient(hosts=zk_server.hosts, timeout=10)
    client.add_listener(states.append)
    client.start(timeout=10)
    try:
        client.create("/eph-expire", ephemeral=True)
        old = client.client_id
        expire_session(client, zk_server.hosts)
        wait_for(lambda: KazooState.LOST in states and client.connected, 10, "a new session")
        assert client.client_id != old
        assert client.exists("/eph-expire") is None
    finally:
        client.stop()
        client.close()
