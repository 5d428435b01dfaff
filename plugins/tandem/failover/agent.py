"""``tandem agent --cluster NAME``: hold ``/tandem/alive`` while the cluster is healthy.

Healthy means its WebHDFS answers ``GETFILESTATUS /`` and its Hive metastore answers
``get_all_databases``, each within ``probe_timeout`` seconds. The agent checks every
``interval`` seconds; it drops the node after ``fail_after`` failed checks in a row and takes
it again after ``recover_after`` good ones (one flaky answer neither kills nor revives a
cluster). While it holds the node, :class:`~tandem.failover.state.AliveHolder` keeps it across
dropped connections and session expiry. If the agent itself dies, ZooKeeper removes the node
when its session times out (``session_timeout``), so a dead agent never vouches for a cluster.

Endpoints: always the Airflow connections that ``include/clusters.yaml`` names for the cluster
(with ``--home``, those of that home's environment file), so an agent vouches for exactly the
cluster the backups and the applications use.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import FrameType
from typing import Any, Literal

from tandem.errors import TandemError, ZooKeeperError
from tandem.failover.state import AliveHolder

log = logging.getLogger(__name__)

Action = Literal["take", "drop", "keep", "stay_down"]


# --------------------------------------------------------------------------- pure core


@dataclass(frozen=True)
class Health:
    """One health check of a cluster, with the reason."""

    healthy: bool
    reason: str


@dataclass(frozen=True)
class AgentState:
    """Whether the node is held, and the current run of good or bad checks."""

    held: bool = False
    failures: int = 0
    successes: int = 0
    started: bool = False


def next_step(
    state: AgentState, health: Health, fail_after: int = 2, recover_after: int = 2
) -> tuple[AgentState, Action, str]:
    """What the agent does after a check: take, drop, keep or stay down, and why. Pure.

    The very first good check takes the node at once (the agent is starting, not recovering).
    """
    if health.healthy:
        successes = state.successes + 1
        new = replace(state, failures=0, successes=successes, started=True)
        if state.held:
            return new, "keep", f"healthy ({health.reason}): holding /tandem/alive"
        if successes >= recover_after or not state.started:
            return replace(new, held=True), "take", f"healthy ({health.reason}): taking /tandem/alive"
        return (
            new,
            "stay_down",
            f"healthy ({health.reason}), {successes}/{recover_after} checks before taking",
        )
    failures = state.failures + 1
    new = replace(state, failures=failures, successes=0, started=True)
    if not state.held:
        return new, "stay_down", f"unhealthy ({health.reason}): /tandem/alive stays absent"
    if failures >= fail_after:
        return replace(new, held=False), "drop", f"unhealthy ({health.reason}): dropping /tandem/alive"
    return new, "keep", f"unhealthy ({health.reason}), {failures}/{fail_after} checks before dropping"


# --------------------------------------------------------------------------- probes

Probe = Callable[[], None]  # returns when the component answers, raises otherwise


class ProbeRunner:
    """Runs probes in parallel with a deadline; a probe that hangs is not started again meanwhile."""

    def __init__(self, probes: Mapping[str, Probe], timeout: float) -> None:
        self.probes = dict(probes)
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=max(2, 2 * len(self.probes)), thread_name_prefix="probe")
        self._pending: dict[str, Future[None]] = {}

    def check(self) -> Health:
        """Every probe once; healthy only if all answered in time. Read-only, safe to repeat."""
        started: dict[str, Future[None]] = {}
        problems: list[str] = []
        for name, probe in self.probes.items():
            previous = self._pending.get(name)
            if previous is not None and not previous.done():
                problems.append(f"{name} still has not answered an earlier check")
                continue
            started[name] = self._pool.submit(probe)
        deadline = time.monotonic() + self.timeout
        for name, future in started.items():
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
                self._pending.pop(name, None)
            except TimeoutError:
                self._pending[name] = future
                problems.append(f"{name} did not answer within {self.timeout:g} s")
            except Exception as exc:
                problems.append(f"{name}: {type(exc).__name__}: {str(exc)[:200]}")
        if problems:
            return Health(False, "; ".join(problems))
        return Health(True, " and ".join(f"{name} answers" for name in self.probes))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def webhdfs_probe(build: Callable[[], Any]) -> Probe:
    """GETFILESTATUS / through a :class:`~tandem.hdfs.client.Hdfs` built by ``build``."""

    def probe() -> None:
        if build().status("/") is None:
            raise TandemError("GETFILESTATUS / found no root directory")

    return probe


def metastore_probe(build: Callable[[], Any]) -> Probe:
    """``get_all_databases`` through a :class:`~tandem.metastore.Metastore` built by ``build``."""

    def probe() -> None:
        with build().session() as hms:
            hms.get_all_databases()

    return probe


# --------------------------------------------------------------------------- the agent


class Agent:
    """Holds ``/tandem/alive`` in ``zk_hosts`` while the probes say the cluster is healthy.

    Guarantees: the node is present only after a good check and absent after ``fail_after``
    bad ones in a row (within one ``interval`` plus ``probe_timeout``); taking it is retried
    each check while ZooKeeper is unreachable; :meth:`close` removes it (best effort; the
    session's end removes it in any case).
    """

    def __init__(
        self,
        name: str,
        zk_hosts: str,
        probes: Mapping[str, Probe],
        *,
        interval: float = 1.0,
        probe_timeout: float = 3.0,
        fail_after: int = 2,
        recover_after: int = 2,
        session_timeout: float = 4.0,
        on_change: Callable[[Action, str], None] | None = None,
        kerberos: bool = False,
    ) -> None:
        self.name = name
        self.kerberos = kerberos
        self.zk_hosts = zk_hosts
        self.interval = interval
        self.fail_after = fail_after
        self.recover_after = recover_after
        self.session_timeout = session_timeout
        self._runner = ProbeRunner(probes, probe_timeout)
        self._on_change = on_change
        self._state = AgentState()
        self._holder: AliveHolder | None = None
        self.last_reason = ""

    @property
    def held(self) -> bool:
        return self._holder is not None

    @property
    def holder(self) -> AliveHolder | None:
        """The current holder (tests expire its session)."""
        return self._holder

    def step(self) -> Action:
        """One check and what follows from it. Returns the action taken."""
        health = self._runner.check()
        state, action, reason = next_step(self._state, health, self.fail_after, self.recover_after)
        if action == "take":
            refused = self._take()
            if refused is not None:
                action, reason = "stay_down", f"{reason}, but ZooKeeper refused ({refused}): retrying"
                state = replace(state, held=False)
        elif action == "drop":
            self._drop()
        self._state = state
        if reason != self.last_reason and (action in ("take", "drop") or not self.last_reason):
            log.warning("agent of %s: %s", self.name, reason)
            if self._on_change is not None:
                self._on_change(action, reason)
        self.last_reason = reason
        return action

    def _take(self) -> str | None:
        """Hold the node; None, or why ZooKeeper did not let us (another holder: the embedded
        cluster process holds its own node, so an agent there only takes over once it is gone)."""
        payload = json.dumps({"agent": self.name, "since": datetime.now(UTC).isoformat()}).encode()
        holder = AliveHolder(
            self.zk_hosts, self.name, payload, session_timeout=self.session_timeout, kerberos=self.kerberos
        )
        try:
            holder.start(timeout=max(self.interval * 3, 3.0))
        except ZooKeeperError as exc:
            return str(exc)
        self._holder = holder
        return None

    def _drop(self) -> None:
        if self._holder is not None:
            self._holder.stop()
            self._holder = None

    def run(self, stop: threading.Event) -> None:
        """Check every ``interval`` seconds until ``stop`` is set, then release the node."""
        try:
            while not stop.is_set():
                began = time.monotonic()
                self.step()
                stop.wait(max(0.0, self.interval - (time.monotonic() - began)))
        finally:
            self.close()

    def close(self) -> None:
        """Release the node and stop probing. Idempotent."""
        self._drop()
        self._runner.close()


# --------------------------------------------------------------------------- CLI


@dataclass(frozen=True)
class AgentTarget:
    """Where one cluster's agent looks: its ZooKeeper and its probes, and where they came from."""

    name: str
    zk_hosts: str
    probes: Mapping[str, Probe]
    source: str


def airflow_target(name: str) -> AgentTarget:
    """The target from ``include/clusters.yaml`` and the Airflow connections it names."""
    from tandem.environment import include_dir
    from tandem.hdfs.client import Hdfs
    from tandem.metastore import Metastore
    from tandem.policy import load_topology
    from tandem.runtime import connection_hosts

    path = include_dir() / "clusters.yaml"
    topology = load_topology(path)
    if name not in topology.clusters:
        raise TandemError(
            f"{path} defines no cluster {name!r}; defined: {', '.join(sorted(topology.clusters))}"
        )
    spec = topology.cluster(name)
    probes = {
        "webhdfs": webhdfs_probe(lambda: Hdfs.from_conn_id(spec.webhdfs_conn_id)),
        "metastore": metastore_probe(lambda: Metastore.from_conn_id(spec.metastore_conn_id)),
    }
    source = f"connections {spec.webhdfs_conn_id}, {spec.metastore_conn_id}, {spec.zookeeper_conn_id}"
    return AgentTarget(name, connection_hosts(spec.zookeeper_conn_id), probes, source)


def run_agent(args: argparse.Namespace) -> int:
    """Run until SIGTERM/SIGINT; exit 0. ``--json`` prints one JSON line per change."""
    from tandem import environment

    environment.use(args.home)
    target = airflow_target(args.cluster)

    def report(action: Action, reason: str) -> None:
        if args.json:
            print(json.dumps({"cluster": target.name, "action": action, "reason": reason}), flush=True)
        else:
            print(f"{datetime.now(UTC):%H:%M:%S} {target.name}: {reason}", flush=True)

    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if not args.json:
        print(f"tandem agent for {target.name}: ZooKeeper {target.zk_hosts}, {target.source}", flush=True)
    from tandem.security import kerberos_enabled

    Agent(target.name, target.zk_hosts, target.probes, on_change=report, kerberos=kerberos_enabled()).run(
        stop
    )
    return 0
