"""``ActiveClusterClient``: what an application uses instead of a fixed cluster address.

It watches both clusters' ZooKeepers, applies the arbiter (:mod:`tandem.failover.arbiter`) on
every change, and hands out WebHDFS and metastore clients for the cluster that currently
serves. After a promotion it switches within a second or so (ZooKeeper pushes the change) and
calls the application's callback::

    from tandem.client import ActiveClusterClient

    with ActiveClusterClient.from_airflow("main", on_switch=print) as clusters:
        clusters.hdfs().write("/data/billing/in/bill-42.json", b"...")
        with clusters.metastore().session() as hms:
            hms.get_table("billing", "customers")

Guarantees: a dropped ZooKeeper connection or an expired session of this client never moves
it by itself (a cluster counts as unreachable only after ``unreachable_after`` seconds without
a connection, and even then clients move only to a cluster that says active and is alive);
after a reconnection both nodes are read again, so a change made meanwhile is not missed. A
corrupt ``/tandem/cluster`` is the role "unknown": it never crashes the client and never
attracts it.

:class:`ClusterWatcher`, which follows one cluster, is shared with the failover watch trigger.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import KazooException, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.retry import KazooRetry

from tandem.errors import TandemError
from tandem.failover.arbiter import ClusterView, Decision, arbitrate
from tandem.failover.state import ALIVE_PATH, CLUSTER_PATH
from tandem.security import sasl_kazoo_client

if TYPE_CHECKING:
    from tandem.hdfs.client import Hdfs
    from tandem.metastore import Metastore

log = logging.getLogger(__name__)

UNREACHABLE_AFTER = 2.0
SESSION_TIMEOUT = 4.0


# --------------------------------------------------------------------------- one cluster


class ClusterWatcher:
    """Follows one cluster's ``/tandem/cluster`` and ``/tandem/alive`` on its own session.

    ``on_view`` is called (from the watcher's thread) with a :class:`ClusterView` each time
    what the cluster looks like changes, first as soon as it is known. Watches push changes at
    once; every ``recheck_every`` seconds and after each reconnection both nodes are read again,
    so a change made while a watch was not set is still seen. A lost connection is reported as
    ``unreachable`` only once it has lasted ``unreachable_after`` seconds; until then the last
    view stands. Never blocks the caller: :meth:`start` returns at once, even if ZooKeeper is
    down (kazoo keeps reconnecting, at most one second apart).
    """

    def __init__(
        self,
        name: str,
        hosts: str,
        on_view: Callable[[ClusterView], None],
        *,
        unreachable_after: float = UNREACHABLE_AFTER,
        session_timeout: float = SESSION_TIMEOUT,
        recheck_every: float = 2.0,
        read_timeout: float = 2.0,
        kerberos: bool = False,
    ) -> None:
        self.name = name
        self.hosts = hosts
        self.unreachable_after = unreachable_after
        self.recheck_every = recheck_every
        self.read_timeout = read_timeout
        self._on_view = on_view
        retry = KazooRetry(max_tries=-1, delay=0.1, backoff=1.5, max_delay=1.0, max_jitter=0.1)
        # with kerberos, SASL GSSAPI: the server must complete the exchange (its AP-REP); in an
        # ensemble one that cannot is skipped for the next
        self._zk = (
            sasl_kazoo_client(hosts, timeout=session_timeout, connection_retry=retry)
            if kerberos
            else KazooClient(hosts=hosts, timeout=session_timeout, connection_retry=retry)
        )
        self._zk.add_listener(self._on_state)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._first = threading.Event()
        self._disconnected_since: float | None = time.monotonic()
        self._view: ClusterView | None = None
        self._thread: threading.Thread | None = None
        self.connections = 0

    @property
    def client(self) -> KazooClient:
        """The watcher's own kazoo client (tests expire its session)."""
        return self._zk

    @property
    def view(self) -> ClusterView | None:
        return self._view

    def start(self) -> None:
        """Begin connecting and watching in the background. Returns at once."""
        self._disconnected_since = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"watch-{self.name}", daemon=True)
        self._thread.start()
        self._zk.start_async()

    def wait_first_view(self, timeout: float) -> bool:
        return self._first.wait(timeout)

    def stop(self) -> None:
        """Stop watching and close the session. Idempotent."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._zk.stop()
        self._zk.close()

    # kazoo calls these on its own threads and forbids blocking there: only signal
    def _on_state(self, state: str) -> None:
        if state == KazooState.CONNECTED:
            self._disconnected_since = None
            self.connections += 1
        elif self._disconnected_since is None:
            self._disconnected_since = time.monotonic()
        self._wake.set()

    def _on_event(self, _event: object) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._next_wait())
            self._wake.clear()
            if self._stopping.is_set():
                break
            view = self._look()
            if view is None or view == self._view:
                continue
            self._view = view
            self._first.set()
            try:
                self._on_view(view)
            except Exception:
                log.exception("watcher of %s: the view callback failed", self.name)

    def _next_wait(self) -> float:
        since = self._disconnected_since
        if since is None:
            return self.recheck_every
        left = self.unreachable_after - (time.monotonic() - since)
        return max(0.05, min(self.recheck_every, left)) if left > 0 else self.recheck_every

    def _look(self) -> ClusterView | None:
        """The cluster now, or None to keep the last view (briefly disconnected, read failed)."""
        since = self._disconnected_since
        if since is not None:
            waited = time.monotonic() - since
            if waited >= self.unreachable_after:
                # a stable sentence: the view must not "change" each time it is looked at
                return ClusterView.unreachable(
                    self.name,
                    f"no connection to ZooKeeper {self.hosts} for over {self.unreachable_after:g} s",
                )
            return None
        try:
            data = self._read_record()
            alive = self._zk.exists_async(ALIVE_PATH, watch=self._on_event).get(timeout=self.read_timeout)
        except (KazooException, KazooTimeoutError) as exc:
            log.debug("watcher of %s: read failed (%s); retrying", self.name, exc)
            return None
        return ClusterView.from_znodes(self.name, data, alive is not None)

    def _read_record(self) -> bytes | None:
        try:
            data, _stat = self._zk.get_async(CLUSTER_PATH, watch=self._on_event).get(
                timeout=self.read_timeout
            )
        except NoNodeError:
            # no node: watch for its creation instead
            self._zk.exists_async(CLUSTER_PATH, watch=self._on_event).get(timeout=self.read_timeout)
            return None
        return bytes(data)


# --------------------------------------------------------------------------- the pair


@dataclass(frozen=True)
class ClusterAccess:
    """How an application reaches one cluster: its ZooKeeper and factories for its clients."""

    name: str
    zookeeper_hosts: str
    hdfs: Callable[[], Hdfs]
    metastore: Callable[[], Metastore]


@dataclass(frozen=True)
class Switch:
    """One move of the client from ``previous`` to ``target``."""

    previous: str
    target: str
    reason: str
    at: datetime
    monotonic: float


class ActiveClusterClient:
    """Clients for whichever cluster of a pair currently serves; switches by itself.

    ``first`` is where clients point before anything is known (the pair's configured primary).
    ``on_switch`` is called with a :class:`Switch` after every switch, from the client's own
    thread (one at a time, in order); a slow callback delays later callbacks, not switching.
    ``kerberos``: authenticate to the clusters' ZooKeepers with SASL GSSAPI, each server proving
    it is ``zookeeper/<host>``. Thread-safe.
    """

    def __init__(
        self,
        first: ClusterAccess,
        second: ClusterAccess,
        *,
        on_switch: Callable[[Switch], None] | None = None,
        unreachable_after: float = UNREACHABLE_AFTER,
        session_timeout: float = SESSION_TIMEOUT,
        kerberos: bool = False,
    ) -> None:
        if first.name == second.name:
            raise ValueError(f"a pair needs two different clusters, both are {first.name!r}")
        self._access = {first.name: first, second.name: second}
        self._order = (first.name, second.name)
        self._on_switch = on_switch
        self._changed = threading.Condition()
        self._views: dict[str, ClusterView] = {}
        self._target = first.name
        self._decision: Decision | None = None
        self._switches: list[Switch] = []
        self._clients: dict[tuple[str, str], Any] = {}
        self._inbox: queue.Queue[ClusterView | None] = queue.Queue()
        self._watchers = [
            ClusterWatcher(
                a.name,
                a.zookeeper_hosts,
                self._inbox.put,
                unreachable_after=unreachable_after,
                session_timeout=session_timeout,
                kerberos=kerberos,
            )
            for a in (first, second)
        ]
        self._thread: threading.Thread | None = None

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_airflow(
        cls, pair: str = "main", include_dir: Path | None = None, **kwargs: Any
    ) -> ActiveClusterClient:
        """From ``include/clusters.yaml`` and Airflow connections (``AIRFLOW_CONN_*`` work too)."""
        from tandem import environment
        from tandem.hdfs.client import Hdfs
        from tandem.metastore import Metastore
        from tandem.policy import load_topology
        from tandem.runtime import connection_hosts

        include = include_dir or environment.include_dir()
        topology = load_topology(include / "clusters.yaml")
        members = topology.pair(pair)

        def access(name: str) -> ClusterAccess:
            spec = topology.cluster(name)
            return ClusterAccess(
                name,
                connection_hosts(spec.zookeeper_conn_id),
                lambda: Hdfs.from_conn_id(spec.webhdfs_conn_id),
                lambda: Metastore.from_conn_id(spec.metastore_conn_id),
            )

        from tandem.security import kerberos_enabled

        kwargs.setdefault("kerberos", kerberos_enabled())  # as Airflow's [core] security says
        return cls(access(members.primary), access(members.standby), **kwargs)

    # -- life cycle -----------------------------------------------------------------------
    def start(self, timeout: float = 15.0) -> ActiveClusterClient:
        """Start watching; returns once a first target is decided.

        Raises :class:`TandemError` if no decision is possible within ``timeout`` (it is
        possible within ``unreachable_after`` seconds even when both ZooKeepers are down).
        """
        self._thread = threading.Thread(target=self._decide_loop, name="active-cluster", daemon=True)
        self._thread.start()
        for watcher in self._watchers:
            watcher.start()
        with self._changed:
            if not self._changed.wait_for(lambda: self._decision is not None, timeout):
                self.close()
                raise TandemError(f"no view of {' and '.join(self._order)} within {timeout:.0f} s")
        return self

    def close(self) -> None:
        """Stop watching. Idempotent."""
        for watcher in self._watchers:
            watcher.stop()
        self._inbox.put(None)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> ActiveClusterClient:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what applications use ------------------------------------------------------------
    @property
    def target(self) -> str:
        """The name of the cluster clients point to now."""
        with self._changed:
            return self._target

    @property
    def decision(self) -> Decision | None:
        """The arbiter's last decision (its ``reason`` says why the target is what it is)."""
        with self._changed:
            return self._decision

    @property
    def views(self) -> dict[str, ClusterView]:
        with self._changed:
            return dict(self._views)

    @property
    def switches(self) -> tuple[Switch, ...]:
        with self._changed:
            return tuple(self._switches)

    def hdfs(self, cluster: str | None = None) -> Hdfs:
        """A WebHDFS client of the current target, or of ``cluster`` (built once per cluster)."""
        client: Hdfs = self._client("hdfs", cluster or self.target)
        return client

    def metastore(self, cluster: str | None = None) -> Metastore:
        """A metastore client of the current target, or of ``cluster`` (built once per cluster)."""
        client: Metastore = self._client("metastore", cluster or self.target)
        return client

    def wait_for(self, target: str, timeout: float) -> bool:
        """Wait until clients point at ``target``; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._target == target, timeout)

    def watcher(self, name: str) -> ClusterWatcher:
        """The watcher of one cluster (tests inject faults into its session)."""
        return next(w for w in self._watchers if w.name == name)

    # -- internals ------------------------------------------------------------------------
    def _client(self, kind: str, name: str) -> Any:
        with self._changed:
            key = (kind, name)
            if key not in self._clients:
                access = self._access[name]
                self._clients[key] = access.hdfs() if kind == "hdfs" else access.metastore()
            return self._clients[key]

    def _decide_loop(self) -> None:
        while True:
            view = self._inbox.get()
            if view is None:
                return
            switch = self._apply(view)
            if switch is not None and self._on_switch is not None:
                try:
                    self._on_switch(switch)
                except Exception:
                    log.exception("the application's on_switch callback failed")

    def _apply(self, view: ClusterView) -> Switch | None:
        with self._changed:
            self._views[view.name] = view
            if len(self._views) < 2:
                return None
            first, second = (self._views[name] for name in self._order)
            decision = arbitrate(first, second, self._target)
            previous = self._decision
            initial = previous is None
            news = previous is None or decision.reason != previous.reason
            self._decision = decision
            switch = None
            if decision.switched:
                self._target = decision.target
                # the first decision only finds where to start: nothing was pointing anywhere yet
                if not initial:
                    switch = Switch(
                        decision.previous,
                        decision.target,
                        decision.reason,
                        datetime.now(UTC),
                        time.monotonic(),
                    )
                    self._switches.append(switch)
            self._changed.notify_all()
        if news:
            level = logging.WARNING if decision.switched or decision.split_brain else logging.INFO
            log.log(level, "clusters: %s", decision.reason)
        return switch
