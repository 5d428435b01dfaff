"""Clients for the clusters of a topology, built from Airflow connections, and their roles.

Nothing here runs at DAG-parse time: tasks build a :class:`Clusters` when they start.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tandem.errors import ZooKeeperError
from tandem.failover.arbiter import ClusterView
from tandem.failover.state import ALIVE_PATH, ROOT_PATH, ClusterRecord, read_cluster_record
from tandem.hdfs.client import Hdfs
from tandem.metastore import Metastore

if TYPE_CHECKING:
    from tandem.policy import ClusterConfig, Topology


CLOCK_PATH = f"{ROOT_PATH}/clock"


@dataclass(frozen=True)
class Observation:
    """One look at a cluster's ZooKeeper: its record (None if absent or unreadable) and liveness."""

    name: str
    record: ClusterRecord | None
    alive: bool
    reachable: bool
    problem: str | None = None
    # this host's clock minus ZooKeeper's (ms resolution), None when it could not be measured
    clock_offset_s: float | None = None

    @property
    def role(self) -> str:
        return self.record.role if self.record else "unknown"

    def view(self) -> ClusterView:
        """This observation as the arbiter's :class:`ClusterView`."""
        if not self.reachable:
            return ClusterView.unreachable(self.name, self.problem or "no answer")
        return ClusterView.from_record(self.name, self.record, self.alive, self.problem)


def connection_hosts(conn_id: str) -> str:
    """``host:port[,host:port]`` of an Airflow connection (ZooKeeper ensembles)."""
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    hosts = [h.strip() for h in (conn.host or "").split(",") if h.strip()]
    if not hosts:
        raise ZooKeeperError(f"connection {conn_id} has no host")
    return ",".join(h if ":" in h or conn.port is None else f"{h}:{conn.port}" for h in hosts)


def observe(name: str, zk_hosts: str, timeout: float = 5.0, *, clock: bool = False) -> Observation:
    """Read ``/tandem/cluster`` and ``/tandem/alive`` from a cluster's ZooKeeper. Read-only,
    except with ``clock``: then a throwaway ephemeral node measures this host's clock against
    ZooKeeper's (what preflight needs; every other caller only reads).

    Unreachable or corrupt state is an observation, never an exception.
    """
    from tandem.security import zookeeper_client, zookeeper_refusal

    zk = zookeeper_client(zk_hosts, timeout=timeout)
    try:
        zk.start(timeout=timeout)
    except Exception as exc:  # kazoo raises its own timeout type; any failure means unreachable
        zk.close()
        why = zookeeper_refusal(exc, zk_hosts) or f"ZooKeeper {zk_hosts} unreachable: {exc}"
        return Observation(name, None, False, False, why)
    try:
        problem: str | None = None
        try:
            record = read_cluster_record(zk)
            alive = zk.exists(ALIVE_PATH) is not None
        except ZooKeeperError as exc:  # a corrupt record
            record, problem, alive = None, str(exc), zk.exists(ALIVE_PATH) is not None
        except Exception as exc:
            refused = zookeeper_refusal(exc, zk_hosts, zk)
            if refused is None:
                raise
            # not the cluster's state: a server that did not prove itself, so nothing it says counts
            return Observation(name, None, False, False, refused)
        if record is None and problem is None:
            problem = "/tandem/cluster is missing"
        return Observation(name, record, alive, True, problem, _zk_clock_offset(zk) if clock else None)
    finally:
        zk.stop()
        zk.close()


def _zk_clock_offset(zk: Any) -> float | None:
    """This host's clock minus the ZooKeeper leader's, from the ctime of a throwaway ephemeral
    node (ms resolution), compared with the midpoint of the create call. Best effort."""
    from kazoo.exceptions import KazooException

    try:
        before = time.time()
        path = zk.create(f"{CLOCK_PATH}/probe-", ephemeral=True, sequence=True, makepath=True)
        after = time.time()
        stat = zk.exists(path)
        zk.delete(path)
    except KazooException:
        return None
    return None if stat is None else (before + after) / 2 - stat.ctime / 1000


class Clusters:
    """Lazily built, cached clients per cluster name. Thread-safe."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], Any] = {}

    def spec(self, name: str) -> ClusterConfig:
        return self.topology.clusters[name]

    def _cached(self, kind: str, name: str, build: Any) -> Any:
        with self._lock:
            key = (kind, name)
            if key not in self._cache:
                self._cache[key] = build()
            return self._cache[key]

    def hdfs(self, name: str) -> Hdfs:
        client: Hdfs = self._cached("hdfs", name, lambda: Hdfs.from_conn_id(self.spec(name).webhdfs_conn_id))
        return client

    def metastore(self, name: str) -> Metastore:
        conn_id = self.spec(name).metastore_conn_id
        client: Metastore = self._cached("hms", name, lambda: Metastore.from_conn_id(conn_id))
        return client

    def zk_hosts(self, name: str) -> str:
        return connection_hosts(self.spec(name).zookeeper_conn_id)

    def observe(self, name: str, timeout: float = 5.0, *, clock: bool = False) -> Observation:
        try:
            hosts = self.zk_hosts(name)
        except Exception as exc:
            return Observation(name, None, False, False, f"no ZooKeeper connection: {exc}")
        return observe(name, hosts, timeout, clock=clock)


def cluster_clients_for_cli(home: Any = None) -> Clusters:
    """Clients for a CLI command: the Airflow connections of ``clusters.yaml``, after taking
    those of an environment file when one applies (tandem.environment)."""
    from tandem import environment
    from tandem.policy import load_topology

    environment.use(home)
    return Clusters(load_topology(environment.include_dir() / "clusters.yaml"))
