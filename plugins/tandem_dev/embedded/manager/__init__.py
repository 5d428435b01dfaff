"""``tandem up|status|down``: the embedded clusters (:data:`CLUSTERS`) and their ZooKeepers.

``up`` starts two detached processes per cluster: a ZooKeeper JVM and a cluster process
(:mod:`tandem_dev.embedded.cluster`: WebHDFS + metastore) for each of ``primary`` and
``standby`` (the pair ``main`` of include/clusters.yaml) and ``primary2`` (a second active
cluster in no pair, for the write gateway, which spreads data ids over several primaries).
They outlive the command; ``H/state.json`` records their pids, ports and an owner token. The
token is also on every process's command line, so ``down`` signals a pid only after checking,
in ``/proc/<pid>/cmdline``, that it is still the process this home launched.

Home: ``--home``, else ``$TANDEM_HOME``, else ``<project root>/.tandem`` where the project root
is the nearest directory upward from the working directory holding ``pyproject.toml``.
Data stays in the home across ``down``/``up``; ``up`` reuses the previous ports while free.

This package: :mod:`.endpoints` (where the clusters listen), :mod:`.state` (the home and
its state.json), :mod:`.processes` (starting, checking and stopping processes), :mod:`.probes`
(do the servers answer), :mod:`.connections` (the Airflow connections to them), :mod:`.cli`
(the commands); the lifecycle itself (up, down, status, kill and restart one cluster) is here.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tandem import environment
from tandem.errors import EmbeddedError
from tandem_dev.embedded import zookeeper
from tandem_dev.embedded.manager.connections import cluster_conn_ids, connection_env, publish_environment
from tandem_dev.embedded.manager.endpoints import (
    CLUSTERS,
    CONNECTION_KINDS,
    ClusterEndpoints,
    RunningClusters,
)
from tandem_dev.embedded.manager.probes import probe, zookeeper_view
from tandem_dev.embedded.manager.processes import (
    CHILDREN,
    classify,
    foreign_error,
    is_gone,
    launch_cluster,
    port_or_zero,
    process_state,
    stop_ours,
    stopped_state,
    wait_ready,
    zookeeper_server,
)
from tandem_dev.embedded.manager.state import (
    STATE_FILE,
    ClusterState,
    HomeState,
    default_home,
    home_lock,
    log_dir,
    log_tails,
    read_state,
    resolve_home,
    write_state,
)

__all__ = [
    "CLUSTERS",
    "START_TIMEOUT",
    "ClusterEndpoints",
    "RunningClusters",
    "UpResult",
    "bring_up",
    "cluster_conn_ids",
    "connection_env",
    "default_home",
    "down",
    "kill_cluster",
    "log_tails",
    "probe",
    "resolve_home",
    "restart_cluster",
    "running_topology",
    "status",
    "up",
]

START_TIMEOUT = 60.0


@dataclass(frozen=True)
class UpResult:
    topology: RunningClusters
    already_running: bool
    seconds: float


def _start(home: Path, previous: HomeState | None, timeout: float, kerberos: bool = False) -> RunningClusters:
    deadline = time.monotonic() + timeout
    owner = secrets.token_hex(8)
    log_dir(home).mkdir(parents=True, exist_ok=True)
    prev = {c.name: c for c in previous.clusters} if previous else {}
    started = datetime.now(UTC).isoformat(timespec="seconds")

    kdc_pid: int | None = None

    def record(clusters: list[ClusterState], running: bool) -> None:
        state = HomeState(home, owner, running, tuple(clusters), started, kerberos, kdc_pid)
        write_state(home, state)

    zks: dict[str, zookeeper.ZooKeeperServer] = {}
    states = [ClusterState(name, role, 0) for name, role in CLUSTERS]
    try:
        if kerberos:  # the realm first: every server needs its keytab, every client its tickets
            from tandem_dev.kerberos import HomeRealm

            realm = HomeRealm(home)
            kdc_pid = realm.start(owner)
            if realm.kdc.process is not None:
                CHILDREN[kdc_pid] = realm.kdc.process
            record(states, running=False)
        for name, _role in CLUSTERS:
            old = prev.get(name)
            zks[name] = zookeeper_server(
                home, name, port_or_zero(old.zookeeper_port) if old else 0, owner, kerberos
            )
        for zk in zks.values():
            zk.launch()
        for zk in zks.values():
            zk.wait_ready(max(1.0, deadline - time.monotonic()))
            if zk.process is not None:
                CHILDREN[zk.process.pid] = zk.process
        states = [ClusterState(n, r, zks[n].port, zookeeper_pid=zks[n].pid) for n, r in CLUSTERS]
        # recorded before the cluster processes start, so that `tandem down` can clean up a failed up
        record(states, running=False)
        pids = {
            n: launch_cluster(home, owner, n, r, zks[n].hosts, prev.get(n), kerberos) for n, r in CLUSTERS
        }
        states = [
            ClusterState(n, r, zks[n].port, zookeeper_pid=zks[n].pid, process_pid=pids[n])
            for n, r in CLUSTERS
        ]
        record(states, running=False)
        ready = wait_ready(home, pids, deadline)
        states = [
            ClusterState(
                n,
                r,
                zks[n].port,
                int(ready[n]["webhdfs_port"]),
                int(ready[n]["data_port"]),
                int(ready[n]["metastore_port"]),
                zks[n].pid,
                pids[n],
            )
            for n, r in CLUSTERS
        ]
        state = HomeState(home, owner, True, tuple(states), started, kerberos, kdc_pid)
        topology = state.topology(home)
        answers = probe(topology)
        silent = [f"{n} {kind}" for n, kinds in answers.items() for kind, ok in kinds.items() if not ok]
        if silent:
            raise EmbeddedError(f"started but not answering: {', '.join(silent)}\n{log_tails(home)}")
        write_state(home, state)
        return topology
    except BaseException:
        failed = HomeState(home, owner, False, tuple(states), started, kerberos, kdc_pid)
        stop_ours(home, failed)
        for zk in zks.values():
            zk.stop()
        # nothing of ours runs any more; keep the previous ports on record for the next attempt
        if previous is not None:
            write_state(home, stopped_state(previous))
        else:
            (home / STATE_FILE).unlink(missing_ok=True)
        raise


def bring_up(home: Path | None = None, timeout: float = START_TIMEOUT, *, kerberos: bool = False) -> UpResult:
    """Start the embedded clusters of ``home``, or find them already running.

    Idempotent: if every recorded process is ours and every server answers, nothing is started.
    Processes left from a partial start or crash are stopped and everything is started again on
    the same data. All-or-nothing: on failure, whatever this call started is stopped again.
    ``kerberos``: every server demands Kerberos from the home's realm (its KDC started first);
    clusters running in the other mode are restarted in this one, on the same data.
    """
    began = time.monotonic()
    home = resolve_home(home)
    with home_lock(home):
        state = read_state(home)
        if state is not None:
            found = classify(home, state)
            if found["foreign"]:
                raise foreign_error(home, state, found["foreign"])
            if state.running and len(found["ours"]) == state.process_count and state.kerberos == kerberos:
                topology = state.topology(home)
                if all(all(kinds.values()) for kinds in probe(topology).values()):
                    publish_environment(topology)
                    return UpResult(topology, True, time.monotonic() - began)
            if found["ours"]:
                stop_ours(home, state)
        zookeeper.check_requirements()
        topology = _start(home, state, timeout, kerberos)
        publish_environment(topology)
    return UpResult(topology, False, time.monotonic() - began)


def kill_cluster(home: Path, name: str, timeout: float = 15.0) -> float:
    """SIGKILL one embedded cluster's process and its ZooKeeper, as a power cut would.

    Only processes verified as this home's are signalled. Returns the wall-clock time of the
    kill. ``state.json`` keeps the ports, so :func:`restart_cluster` brings it back on them.
    """
    state = read_state(home)
    if state is None:
        raise EmbeddedError(f"no embedded clusters in {home}")
    entry = next((c for c in state.clusters if c.name == name), None)
    if entry is None:
        raise EmbeddedError(f"no cluster {name!r} in {home}")
    pids = [pid for pid in (entry.process_pid, entry.zookeeper_pid) if pid]
    ours = [pid for pid in pids if process_state(pid, state.owner, home) == "ours"]
    killed_at = time.time()
    for pid in ours:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while any(not is_gone(pid) for pid in ours):
        if time.monotonic() > deadline:
            raise EmbeddedError(f"the {name} cluster's processes survived SIGKILL: {ours}")
        time.sleep(0.02)
    return killed_at


def restart_cluster(home: Path, name: str, timeout: float = 60.0) -> None:
    """Start a killed embedded cluster again on its ports and data; records the new pids."""
    with home_lock(home):
        state = read_state(home)
        if state is None:
            raise EmbeddedError(f"no embedded clusters in {home}")
        entry = next(c for c in state.clusters if c.name == name)
        server = zookeeper_server(home, name, entry.zookeeper_port, state.owner, state.kerberos)
        server.launch()
        server.wait_ready(timeout)
        if server.process is not None:
            CHILDREN[server.process.pid] = server.process
        pid = launch_cluster(home, state.owner, name, entry.role, server.hosts, entry, state.kerberos)
        ready = wait_ready(home, {name: pid}, time.monotonic() + timeout)[name]
        fresh = ClusterState(
            name,
            entry.role,
            server.port,
            int(ready["webhdfs_port"]),
            int(ready["data_port"]),
            int(ready["metastore_port"]),
            server.pid,
            pid,
        )
        clusters = tuple(fresh if c.name == name else c for c in state.clusters)
        write_state(
            home, HomeState(home, state.owner, True, clusters, state.started, state.kerberos, state.kdc_pid)
        )
        if fresh.endpoints() != entry.endpoints():
            raise EmbeddedError(f"{name} came back on other ports ({fresh.endpoints()}): a port was taken")


def up(home: Path | None = None) -> RunningClusters:
    """Start (or find running) the embedded clusters of :data:`CLUSTERS`; see :func:`bring_up`."""
    return bring_up(home).topology


def running_topology(home: Path | None = None) -> RunningClusters | None:
    """The topology if state.json says running and every recorded process is still ours.

    Cheap (no network); does not prove the servers answer — :func:`status` does.
    """
    home = resolve_home(home)
    state = read_state(home)
    if state is None or not state.running:
        return None
    found = classify(home, state)
    return state.topology(home) if len(found["ours"]) == state.process_count else None


def status(home: Path | None = None) -> dict[str, Any]:
    """Each cluster's endpoints, process states, whether each server answers, role/epoch/alive.

    Read-only. ``running`` is true only when every process is ours and every server answers.
    """
    home = resolve_home(home)
    state = read_state(home)
    if state is None:
        return {"home": str(home), "running": False, "clusters": {}}
    topology = state.topology(home)
    procs = {what: (pid, process_state(pid, state.owner, home)) for what, pid in state.pids()}
    answers = (
        probe(topology)
        if state.running
        else {c.name: dict.fromkeys(CONNECTION_KINDS, False) for c in state.clusters}
    )

    if state.kerberos:  # this process reads the ZooKeepers as Tandem, with the home's realm
        from tandem_dev.kerberos import HomeRealm

        os.environ.update(HomeRealm(home).env())

    def view(c: ClusterEndpoints) -> dict[str, Any]:
        return zookeeper_view(c.zookeeper_hosts, state.kerberos) if answers[c.name]["zookeeper"] else {}

    with ThreadPoolExecutor(max_workers=len(state.clusters) or 1) as pool:
        views = dict(zip(topology.names, pool.map(view, topology.clusters), strict=True))
    clusters: dict[str, Any] = {}
    for c in topology.clusters:
        entry: dict[str, Any] = dict(c.to_json())
        entry["answers"] = answers[c.name]
        entry["processes"] = {
            kind: {"pid": procs[key][0], "state": procs[key][1]}
            if key in procs
            else {"pid": None, "state": "gone"}
            for kind, key in (("cluster", f"{c.name} cluster process"), ("zookeeper", f"{c.name} ZooKeeper"))
        }
        entry.update({"role": None, "epoch": None, "alive": None})
        entry.update(views.get(c.name, {}))
        clusters[c.name] = entry
    running = all(
        all(e["answers"].values()) and all(p["state"] == "ours" for p in e["processes"].values())
        for e in clusters.values()
    )
    return {"home": str(home), "running": running, "clusters": clusters}


def down(home: Path | None = None) -> list[str]:
    """Stop the processes this home started (verified by pid and command line); keep all data.

    Idempotent: a second call stops nothing. Processes whose pid now belongs to another program
    are never signalled. Returns one line per process stopped.
    """
    home = resolve_home(home)
    with home_lock(home):
        state = read_state(home)
        if state is None:
            return []
        found = classify(home, state)
        environment.remove(home)
        stopped = stop_ours(home, state)
        stopped += [
            f"left {what} (pid {pid}) alone: it is not a process this home started"
            for what, pid in found["foreign"]
        ]
        write_state(home, stopped_state(state, frozenset(pid for _w, pid in found["foreign"])))
    return stopped
