"""Starting and stopping the processes of a home: the cluster processes
(:mod:`tandem_dev.embedded.cluster`), their ZooKeepers and the KDC. A pid is signalled only once
``/proc/<pid>/cmdline`` shows the home's owner token and the home, so a reused pid is never hit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from tandem.errors import EmbeddedError
from tandem_dev.embedded import zookeeper
from tandem_dev.embedded.cluster import READY_FILE, read_ready
from tandem_dev.embedded.manager.endpoints import CLUSTERS
from tandem_dev.embedded.manager.state import STATE_FILE, ClusterState, HomeState, log_dir, log_tails

STOP_TIMEOUT = 15.0

# Popen objects of the processes this Python process launched, by pid: polling them reaps the
# child, without which a stopped child would linger as a zombie and look alive to /proc checks.
CHILDREN: dict[int, subprocess.Popen[bytes]] = {}

ProcessState = Literal["ours", "gone", "foreign"]


def _cmdline(pid: int) -> list[str] | None:
    """The process's arguments, or None if it is gone (zombies count as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    # the state letter follows the parenthesised command name, which may itself contain ')'
    if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
        return None
    return [arg.decode("utf-8", "replace") for arg in raw.split(b"\0") if arg]


def is_gone(pid: int) -> bool:
    child = CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return False
        del CHILDREN[pid]
        return True
    return _cmdline(pid) is None


def process_state(pid: int, owner: str, home: Path) -> ProcessState:
    """Whether ``pid`` is a process this home launched, is gone, or is something else's.

    ``ours``: alive with the owner token and this home on its command line. ``gone``: dead, or
    the pid was reused by an unrelated program. ``foreign``: alive and carrying the token or the
    home, but not both: the state file was copied or overwritten by another run.
    """
    if is_gone(pid):
        return "gone"
    args = _cmdline(pid)
    if args is None:
        return "gone"
    has_owner = any(owner in arg for arg in args)
    has_home = any(str(home) in arg for arg in args)
    if has_owner and has_home:
        return "ours"
    if has_owner or has_home:
        return "foreign"
    return "gone"


def foreign_error(home: Path, state: HomeState, foreign: list[tuple[str, int]]) -> EmbeddedError:
    listed = ", ".join(f"{what} (pid {pid})" for what, pid in foreign)
    where = f" running from {state.home}" if state.home != home else ""
    hint = (
        f"run `tandem down --home {state.home}`"
        if state.home != home
        else "stop them yourself (check with `ps`), or use another --home"
    )
    return EmbeddedError(
        f"{home} belongs to another run: its {STATE_FILE} lists live processes that this home did not "
        f"start{where}: {listed}. To reuse this home, {hint}, then run `tandem up` again"
    )


def classify(home: Path, state: HomeState) -> dict[str, list[tuple[str, int]]]:
    found: dict[str, list[tuple[str, int]]] = {"ours": [], "gone": [], "foreign": []}
    for what, pid in state.pids():
        found[process_state(pid, state.owner, home)].append((what, pid))
    return found


def _signal_and_wait(targets: list[tuple[str, int]], timeout: float) -> list[str]:
    """SIGTERM each pid, wait for all, SIGKILL those still alive after ``timeout``."""
    for _what, pid in targets:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(not is_gone(pid) for _w, pid in targets) and time.monotonic() < deadline:
        time.sleep(0.05)
    stopped = []
    for what, pid in targets:
        how = ""
        if not is_gone(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while not is_gone(pid) and time.monotonic() < deadline + 5:
                time.sleep(0.05)
            how = ", killed after SIGTERM timed out"
        stopped.append(f"stopped {what} (pid {pid}{how})")
    return stopped


def stopped_state(state: HomeState, keep: frozenset[int] = frozenset()) -> HomeState:
    """The same home with no process recorded but those in ``keep``.

    Ports stay on record so the next `up` can reuse them; ``keep`` holds foreign pids, so that
    `up` keeps refusing the home while they live.
    """

    def kept(pid: int | None) -> int | None:
        return pid if pid in keep else None

    clusters = tuple(
        ClusterState(
            c.name, c.role, c.zookeeper_port, c.webhdfs_port, c.data_port, c.metastore_port,
            kept(c.zookeeper_pid), kept(c.process_pid),
        )
        for c in state.clusters
    )  # fmt: skip
    return HomeState(
        state.home, state.owner, False, clusters, state.started, state.kerberos, kept(state.kdc_pid)
    )


def stop_ours(home: Path, state: HomeState) -> list[str]:
    """Stop the processes of ``state`` still verified as ours: cluster processes, then ZooKeepers.

    The cluster processes go first so they can withdraw /tandem/alive while ZooKeeper still runs.
    """
    ours = {pid for _w, pid in classify(home, state)["ours"]}
    stopped: list[str] = []
    for kind in ("cluster process", "ZooKeeper", "KDC"):
        targets = [(w, pid) for w, pid in state.pids() if kind in w and pid in ours]
        stopped += _signal_and_wait(targets, STOP_TIMEOUT)
    for name, _role in CLUSTERS:
        (home / name / READY_FILE).unlink(missing_ok=True)
    return stopped


def port_or_zero(port: int) -> int:
    return port if port and zookeeper.port_is_free(port) else 0


def launch_cluster(
    home: Path, owner: str, name: str, role: str, zk_hosts: str, prev: ClusterState | None, kerberos: bool
) -> int:
    import tandem

    ports = (prev.webhdfs_port, prev.data_port, prev.metastore_port) if prev else (0, 0, 0)
    web, data, meta = (port_or_zero(p) for p in ports)
    cmd = [
        sys.executable,
        "-m",
        "tandem_dev.embedded.cluster",
        "--home",
        str(home),
        "--name",
        name,
        "--role",
        role,
        "--webhdfs-port",
        str(web),
        "--data-port",
        str(data),
        "--metastore-port",
        str(meta),
        "--zookeeper",
        zk_hosts,
        "--owner",
        owner,
        *(["--kerberos"] if kerberos else []),
    ]
    env = dict(os.environ)
    if kerberos:
        from tandem_dev.kerberos import HomeRealm

        env.update(HomeRealm(home).env())
    # the child must import this very package even when it is not installed (tests from a checkout)
    package_parent = str(Path(tandem.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH", "")) if p)
    log_path = log_dir(home) / f"{name}-cluster.log"
    with log_path.open("ab") as log:
        log.write(f"--- tandem: starting cluster {name} at {time.ctime()} ---\n".encode())
        log.flush()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=home,
            env=env,
            start_new_session=True,
        )
    CHILDREN[proc.pid] = proc
    return proc.pid


def wait_ready(home: Path, pids: Mapping[str, int], deadline: float) -> dict[str, dict[str, Any]]:
    ready: dict[str, dict[str, Any]] = {}
    while len(ready) < len(pids):
        for name, pid in pids.items():
            if name in ready:
                continue
            marker = read_ready(home / name / READY_FILE)
            if marker is not None and marker.get("pid") == pid:
                ready[name] = marker
            elif is_gone(pid):
                tail = zookeeper.log_tail(log_dir(home) / f"{name}-cluster.log")
                raise EmbeddedError(f"the {name} cluster process exited during start-up:\n{tail}")
        if len(ready) < len(pids):
            if time.monotonic() > deadline:
                missing = sorted(set(pids) - set(ready))
                raise EmbeddedError(f"cluster(s) {', '.join(missing)} not ready in time:\n{log_tails(home)}")
            time.sleep(0.05)
    return ready


def zookeeper_server(
    home: Path, name: str, port: int, owner: str, kerberos: bool
) -> zookeeper.ZooKeeperServer:
    security = None
    if kerberos:
        from tandem_dev.kerberos import HomeRealm

        realm = HomeRealm(home)
        security = zookeeper.ZooKeeperKerberos(
            realm.keytab("zookeeper"), realm.principal("zookeeper"), realm.kdc.krb5_conf
        )
    return zookeeper.ZooKeeperServer(
        home / name / "zookeeper",
        port=port,
        log_path=log_dir(home) / f"{name}-zookeeper.log",
        tags={"owner": owner, "home": str(home)},
        kerberos=security,
    )
