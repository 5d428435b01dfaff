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
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from tandem import environment
from tandem.environment import project_root
from tandem.errors import ConfigError, EmbeddedError, TandemError
from tandem_dev.embedded import zookeeper
from tandem_dev.embedded.cluster import READY_FILE, SUPERUSER, read_ready

LOOPBACK = "127.0.0.1"
STATE_FILE = "state.json"
STATE_VERSION = 1
# name -> role written on the first start only; later starts keep what ZooKeeper holds.
# primary2 is in no pair: a second primary for the write gateway.
CLUSTERS: tuple[tuple[str, Literal["active", "standby"]], ...] = (
    ("primary", "active"),
    ("standby", "standby"),
    ("primary2", "active"),
)
CONNECTION_KINDS = ("webhdfs", "metastore", "zookeeper")

START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0

# Popen objects of the processes this Python process launched, by pid: polling them reaps the
# child, without which a stopped child would linger as a zombie and look alive to /proc checks.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


# --------------------------------------------------------------------------- topology


@dataclass(frozen=True)
class ClusterEndpoints:
    """How to reach one embedded cluster."""

    name: str
    webhdfs_url: str
    data_port: int
    metastore_uri: str
    zookeeper_hosts: str

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def webhdfs_port(self) -> int:
        return int(self.webhdfs_url.rsplit(":", 1)[1])

    @property
    def metastore_port(self) -> int:
        return int(self.metastore_uri.rsplit(":", 1)[1])

    @property
    def zookeeper_port(self) -> int:
        return int(self.zookeeper_hosts.rsplit(":", 1)[1])

    def to_json(self) -> dict[str, str]:
        return {
            "webhdfs": self.webhdfs_url,
            "metastore": self.metastore_uri,
            "zookeeper": self.zookeeper_hosts,
        }


@dataclass(frozen=True)
class Topology:
    """The running embedded clusters of one home, by cluster name."""

    home: Path
    clusters: tuple[ClusterEndpoints, ...]
    kerberos: bool = False  # every server demands Kerberos (the home's realm, `tandem up --kerberos`)

    def __getitem__(self, name: str) -> ClusterEndpoints:
        for cluster in self.clusters:
            if cluster.name == name:
                return cluster
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(cluster.name for cluster in self.clusters)

    @property
    def primary(self) -> ClusterEndpoints:
        return self["primary"]

    @property
    def standby(self) -> ClusterEndpoints:
        return self["standby"]

    def to_json(self) -> dict[str, Any]:
        """The ``tandem up --json`` document."""
        found: dict[str, Any] = {
            "home": str(self.home),
            "clusters": {c.name: c.to_json() for c in self.clusters},
        }
        if self.kerberos:
            from tandem_dev.kerberos import HomeRealm

            realm = HomeRealm(self.home)
            found["kerberos"] = {"realm": realm.kdc.realm, "kdc": f"127.0.0.1:{realm.kdc.port}"}
        return found


# --------------------------------------------------------------------------- homes and conn ids


def default_home() -> Path:
    """``$TANDEM_HOME`` if set, else ``<project root>/.tandem``."""
    env = os.environ.get("TANDEM_HOME")
    return Path(env).expanduser().absolute() if env else project_root() / ".tandem"


def resolve_home(home: Path | None) -> Path:
    return Path(home).expanduser().absolute() if home is not None else default_home()


def cluster_conn_ids(clusters_file: Path | None = None) -> dict[str, dict[str, str]]:
    """Connection ids per cluster and kind (``webhdfs``, ``metastore``, ``zookeeper``).

    Read from ``include/clusters.yaml`` (of the project root unless ``clusters_file`` is given);
    a cluster or id the file does not name falls back to ``<kind>_<cluster>``.
    """
    import yaml

    path = clusters_file or project_root() / "include" / "clusters.yaml"
    declared: Mapping[str, Any] = {}
    if path.is_file():
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(str(path), "(file)", f"not valid YAML: {exc}") from None
        clusters = doc.get("clusters", {}) if isinstance(doc, dict) else {}
        declared = clusters if isinstance(clusters, dict) else {}
    result: dict[str, dict[str, str]] = {}
    for name, _role in CLUSTERS:
        entry = declared.get(name) or {}
        ids: dict[str, str] = {}
        for kind in CONNECTION_KINDS:
            value = entry.get(f"{kind}_conn_id", f"{kind}_{name}") if isinstance(entry, dict) else None
            if not isinstance(value, str) or not value:
                raise ConfigError(str(path), f"clusters.{name}.{kind}_conn_id", "must be a non-empty string")
            ids[kind] = value
        result[name] = ids
    return result


def embedded_connections(topology: Topology, clusters_file: Path | None = None) -> dict[str, dict[str, Any]]:
    """Airflow connections (conn_id -> fields) reaching the embedded clusters of ``topology``."""
    ids = cluster_conn_ids(clusters_file)
    conns: dict[str, dict[str, Any]] = {}
    for cluster in topology.clusters:
        cid = ids.get(cluster.name)
        if cid is None:
            continue
        conns[cid["webhdfs"]] = {
            "conn_type": "webhdfs",
            "host": LOOPBACK,
            "port": cluster.webhdfs_port,
            "login": SUPERUSER,
        }
        conns[cid["metastore"]] = {
            "conn_type": "hive_metastore",
            "host": LOOPBACK,
            "port": cluster.metastore_port,
        }
        if topology.kerberos:
            conns[cid["metastore"]]["extra"] = {"auth_mechanism": "GSSAPI", "kerberos_service_name": "hive"}
        conns[cid["zookeeper"]] = {"conn_type": "zookeeper", "host": LOOPBACK, "port": cluster.zookeeper_port}
    return conns


def connection_env(topology: Topology, clusters_file: Path | None = None) -> dict[str, str]:
    """``AIRFLOW_CONN_<ID>`` environment variables (Airflow's JSON form) for the embedded clusters."""
    return {
        f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(fields)
        for conn_id, fields in embedded_connections(topology, clusters_file).items()
    }


# --------------------------------------------------------------------------- state.json


@dataclass(frozen=True)
class ClusterState:
    """One cluster's entry in state.json. Pids are None when not running."""

    name: str
    role: str
    zookeeper_port: int
    webhdfs_port: int = 0
    data_port: int = 0
    metastore_port: int = 0
    zookeeper_pid: int | None = None
    process_pid: int | None = None

    def endpoints(self) -> ClusterEndpoints:
        return ClusterEndpoints(
            name=self.name,
            webhdfs_url=f"http://{LOOPBACK}:{self.webhdfs_port}",
            data_port=self.data_port,
            metastore_uri=f"thrift://{LOOPBACK}:{self.metastore_port}",
            zookeeper_hosts=f"{LOOPBACK}:{self.zookeeper_port}",
        )


@dataclass(frozen=True)
class HomeState:
    """state.json: who started the processes of a home, and where they listen."""

    home: Path
    owner: str
    running: bool
    clusters: tuple[ClusterState, ...]
    started: str = ""
    kerberos: bool = False
    kdc_pid: int | None = None

    def topology(self, home: Path) -> Topology:
        return Topology(home, tuple(c.endpoints() for c in self.clusters), self.kerberos)

    def pids(self) -> list[tuple[str, int]]:
        """(description, pid) of recorded processes, cluster processes first, the KDC last."""
        found = [(f"{c.name} cluster process", c.process_pid) for c in self.clusters]
        found += [(f"{c.name} ZooKeeper", c.zookeeper_pid) for c in self.clusters]
        found.append(("Kerberos KDC", self.kdc_pid))
        return [(what, pid) for what, pid in found if pid]

    @property
    def process_count(self) -> int:
        """How many processes a running home has."""
        return 2 * len(self.clusters) + (1 if self.kerberos else 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "home": str(self.home),
            "owner": self.owner,
            "running": self.running,
            "started": self.started,
            "kerberos": {"pid": self.kdc_pid} if self.kerberos else None,
            "clusters": {
                c.name: {
                    "role": c.role,
                    "zookeeper": {"port": c.zookeeper_port, "pid": c.zookeeper_pid},
                    "process": {"pid": c.process_pid},
                    "webhdfs_port": c.webhdfs_port,
                    "data_port": c.data_port,
                    "metastore_port": c.metastore_port,
                }
                for c in self.clusters
            },
        }


def _state_error(path: Path, reason: str) -> EmbeddedError:
    return EmbeddedError(
        f"{path} is unreadable ({reason}); if no embedded cluster runs from this home, delete the file "
        "and run `tandem up` again"
    )


def read_state(home: Path) -> HomeState | None:
    """Parse ``H/state.json``; None if absent. Raises :class:`EmbeddedError` if corrupt."""
    path = home / STATE_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise _state_error(path, str(exc)) from None
    try:
        clusters = tuple(
            ClusterState(
                name=name,
                role=str(entry["role"]),
                zookeeper_port=int(entry["zookeeper"]["port"]),
                zookeeper_pid=entry["zookeeper"].get("pid"),
                process_pid=entry["process"].get("pid"),
                webhdfs_port=int(entry.get("webhdfs_port") or 0),
                data_port=int(entry.get("data_port") or 0),
                metastore_port=int(entry.get("metastore_port") or 0),
            )
            for name, entry in doc["clusters"].items()
        )
        kerberos = doc.get("kerberos")
        return HomeState(
            Path(doc["home"]),
            str(doc["owner"]),
            bool(doc["running"]),
            clusters,
            doc.get("started", ""),
            kerberos is not None,
            kerberos.get("pid") if kerberos else None,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _state_error(path, f"missing or invalid {exc}") from None


def _write_state(home: Path, state: HomeState) -> None:
    path = home / STATE_FILE
    tmp = path.with_name(f".{STATE_FILE}.tmp")
    tmp.write_text(json.dumps(state.to_json(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


@contextlib.contextmanager
def _home_lock(home: Path, timeout: float = 120.0) -> Iterator[None]:
    """Serialise up/down on one home (two concurrent `tandem up` would start every process twice)."""
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".lock").open("a") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise EmbeddedError(
                        f"another `tandem up/down` holds {home}/.lock for over {timeout:.0f} s; wait for it "
                        "to finish, or stop it"
                    ) from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- processes

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


def _is_gone(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return False
        del _CHILDREN[pid]
        return True
    return _cmdline(pid) is None


def process_state(pid: int, owner: str, home: Path) -> ProcessState:
    """Whether ``pid`` is a process this home launched, is gone, or is something else's.

    ``ours``: alive with the owner token and this home on its command line. ``gone``: dead, or
    the pid was reused by an unrelated program. ``foreign``: alive and carrying the token or the
    home, but not both: the state file was copied or overwritten by another run.
    """
    if _is_gone(pid):
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


def _foreign_error(home: Path, state: HomeState, foreign: list[tuple[str, int]]) -> EmbeddedError:
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


def _classify(home: Path, state: HomeState) -> dict[str, list[tuple[str, int]]]:
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
    while any(not _is_gone(pid) for _w, pid in targets) and time.monotonic() < deadline:
        time.sleep(0.05)
    stopped = []
    for what, pid in targets:
        how = ""
        if not _is_gone(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while not _is_gone(pid) and time.monotonic() < deadline + 5:
                time.sleep(0.05)
            how = ", killed after SIGTERM timed out"
        stopped.append(f"stopped {what} (pid {pid}{how})")
    return stopped


def _stopped(state: HomeState, keep: frozenset[int] = frozenset()) -> HomeState:
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


def _stop_ours(home: Path, state: HomeState) -> list[str]:
    """Stop the processes of ``state`` still verified as ours: cluster processes, then ZooKeepers.

    The cluster processes go first so they can withdraw /tandem/alive while ZooKeeper still runs.
    """
    ours = {pid for _w, pid in _classify(home, state)["ours"]}
    stopped: list[str] = []
    for kind in ("cluster process", "ZooKeeper", "KDC"):
        targets = [(w, pid) for w, pid in state.pids() if kind in w and pid in ours]
        stopped += _signal_and_wait(targets, STOP_TIMEOUT)
    for name, _role in CLUSTERS:
        (home / name / READY_FILE).unlink(missing_ok=True)
    return stopped


# --------------------------------------------------------------------------- probes


def _probe_webhdfs(url: str, timeout: float = 3.0) -> bool:
    try:
        with urllib.request.urlopen(
            f"{url}/webhdfs/v1/?op=GETFILESTATUS&user.name={SUPERUSER}", timeout=timeout
        ) as resp:
            return resp.status == 200 and "FileStatus" in json.loads(resp.read())
    except urllib.error.HTTPError as exc:  # a Kerberized NameNode answers by asking for SPNEGO
        return exc.code == 401 and exc.headers.get("WWW-Authenticate", "").startswith("Negotiate")
    except (OSError, ValueError):
        return False


def _probe_sasl_metastore(uri: str, timeout: float = 3.0) -> bool:
    """A Kerberized metastore answers a client that does not speak SASL with a BAD frame."""
    import socket

    host, port = uri.removeprefix("thrift://").rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            sock.sendall(b"\x80\x01\x00\x01\x00\x00\x00\x00")  # a plain Thrift call's first bytes
            return sock.recv(1) == b"\x03"  # BAD
    except OSError:
        return False


def _probe_metastore(uri: str, timeout: float = 3.0) -> bool:
    from hmsclient.hmsclient import HMSClient
    from thrift.protocol import TBinaryProtocol
    from thrift.Thrift import TException
    from thrift.transport import TSocket, TTransport

    host, port = uri.removeprefix("thrift://").rsplit(":", 1)
    sock = TSocket.TSocket(host, int(port))
    # HMSClient(host=, port=) has no timeout; a hung server must not hang `tandem status`
    sock.setTimeout(timeout * 1000)
    client = HMSClient(iprot=TBinaryProtocol.TBinaryProtocol(TTransport.TBufferedTransport(sock)))
    try:
        with client as hms:
            return isinstance(hms.get_all_databases(), list)
    except (TException, OSError):
        return False


def _probe_zookeeper(hosts: str) -> bool:
    host, port = hosts.rsplit(":", 1)
    return zookeeper.is_ok(host, int(port)) and zookeeper.is_serving(host, int(port))


def probe(topology: Topology) -> dict[str, dict[str, bool]]:
    """Whether each server answers its own protocol, per cluster. Read-only, safe to repeat.
    Kerberized servers count as answering when they ask for Kerberos."""
    checks = []
    metastore = _probe_sasl_metastore if topology.kerberos else _probe_metastore
    for c in topology.clusters:
        checks += [
            (c.name, "webhdfs", _probe_webhdfs, c.webhdfs_url),
            (c.name, "metastore", metastore, c.metastore_uri),
            (c.name, "zookeeper", _probe_zookeeper, c.zookeeper_hosts),
        ]
    answers: dict[str, dict[str, bool]] = {c.name: {} for c in topology.clusters}
    with ThreadPoolExecutor(max_workers=len(checks)) as pool:
        results = pool.map(lambda check: check[2](check[3]), checks)
        for (name, kind, _f, _a), ok in zip(checks, results, strict=True):
            answers[name][kind] = ok
    return answers


def _zookeeper_view(hosts: str, kerberos: bool = False) -> dict[str, Any]:
    """Role, epoch and /tandem/alive as the cluster's own ZooKeeper sees them."""
    from kazoo.exceptions import KazooException
    from kazoo.handlers.threading import KazooTimeoutError

    from tandem.failover.state import ALIVE_PATH, read_cluster_record
    from tandem.security import zookeeper_client

    view: dict[str, Any] = {"role": None, "epoch": None, "alive": None}
    zk = zookeeper_client(hosts, kerberos=kerberos, timeout=5.0)
    try:
        zk.start(timeout=3.0)
        record = read_cluster_record(zk)
        if record is not None:
            view.update(role=record.role, epoch=record.epoch)
        view["alive"] = zk.exists(ALIVE_PATH) is not None
    except (KazooException, KazooTimeoutError, TandemError) as exc:
        view["error"] = str(exc) or type(exc).__name__
    finally:
        zk.stop()
        zk.close()
    return view


# --------------------------------------------------------------------------- up


@dataclass(frozen=True)
class UpResult:
    topology: Topology
    already_running: bool
    seconds: float


def log_dir(home: Path) -> Path:
    return home / "logs"


def log_tails(home: Path, lines: int = 30) -> str:
    """The last lines of every server log of a home, for error messages and failing tests."""
    parts = []
    for path in sorted(log_dir(resolve_home(home)).glob("*.log")):
        parts.append(f"===== {path} (last {lines} lines) =====\n{zookeeper.log_tail(path, lines)}")
    return "\n".join(parts)


def _port_or_zero(port: int) -> int:
    return port if port and zookeeper.port_is_free(port) else 0


def _launch_cluster(
    home: Path, owner: str, name: str, role: str, zk_hosts: str, prev: ClusterState | None, kerberos: bool
) -> int:
    import tandem

    ports = (prev.webhdfs_port, prev.data_port, prev.metastore_port) if prev else (0, 0, 0)
    web, data, meta = (_port_or_zero(p) for p in ports)
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
    _CHILDREN[proc.pid] = proc
    return proc.pid


def _wait_ready(home: Path, pids: Mapping[str, int], deadline: float) -> dict[str, dict[str, Any]]:
    ready: dict[str, dict[str, Any]] = {}
    while len(ready) < len(pids):
        for name, pid in pids.items():
            if name in ready:
                continue
            marker = read_ready(home / name / READY_FILE)
            if marker is not None and marker.get("pid") == pid:
                ready[name] = marker
            elif _is_gone(pid):
                tail = zookeeper.log_tail(log_dir(home) / f"{name}-cluster.log")
                raise EmbeddedError(f"the {name} cluster process exited during start-up:\n{tail}")
        if len(ready) < len(pids):
            if time.monotonic() > deadline:
                missing = sorted(set(pids) - set(ready))
                raise EmbeddedError(f"cluster(s) {', '.join(missing)} not ready in time:\n{log_tails(home)}")
            time.sleep(0.05)
    return ready


def _zookeeper(home: Path, name: str, port: int, owner: str, kerberos: bool) -> zookeeper.ZooKeeperServer:
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


def _start(home: Path, previous: HomeState | None, timeout: float, kerberos: bool = False) -> Topology:
    deadline = time.monotonic() + timeout
    owner = secrets.token_hex(8)
    log_dir(home).mkdir(parents=True, exist_ok=True)
    prev = {c.name: c for c in previous.clusters} if previous else {}
    started = datetime.now(UTC).isoformat(timespec="seconds")

    kdc_pid: int | None = None

    def record(clusters: list[ClusterState], running: bool) -> None:
        state = HomeState(home, owner, running, tuple(clusters), started, kerberos, kdc_pid)
        _write_state(home, state)

    zks: dict[str, zookeeper.ZooKeeperServer] = {}
    states = [ClusterState(name, role, 0) for name, role in CLUSTERS]
    try:
        if kerberos:  # the realm first: every server needs its keytab, every client its tickets
            from tandem_dev.kerberos import HomeRealm

            realm = HomeRealm(home)
            kdc_pid = realm.start(owner)
            if realm.kdc.process is not None:
                _CHILDREN[kdc_pid] = realm.kdc.process
            record(states, running=False)
        for name, _role in CLUSTERS:
            old = prev.get(name)
            zks[name] = _zookeeper(
                home, name, _port_or_zero(old.zookeeper_port) if old else 0, owner, kerberos
            )
        for zk in zks.values():
            zk.launch()
        for zk in zks.values():
            zk.wait_ready(max(1.0, deadline - time.monotonic()))
            if zk.process is not None:
                _CHILDREN[zk.process.pid] = zk.process
        states = [ClusterState(n, r, zks[n].port, zookeeper_pid=zks[n].pid) for n, r in CLUSTERS]
        # recorded before the cluster processes start, so that `tandem down` can clean up a failed up
        record(states, running=False)
        pids = {
            n: _launch_cluster(home, owner, n, r, zks[n].hosts, prev.get(n), kerberos) for n, r in CLUSTERS
        }
        states = [
            ClusterState(n, r, zks[n].port, zookeeper_pid=zks[n].pid, process_pid=pids[n])
            for n, r in CLUSTERS
        ]
        record(states, running=False)
        ready = _wait_ready(home, pids, deadline)
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
        _write_state(home, state)
        return topology
    except BaseException:
        failed = HomeState(home, owner, False, tuple(states), started, kerberos, kdc_pid)
        _stop_ours(home, failed)
        for zk in zks.values():
            zk.stop()
        # nothing of ours runs any more; keep the previous ports on record for the next attempt
        if previous is not None:
            _write_state(home, _stopped(previous))
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
    with _home_lock(home):
        state = read_state(home)
        if state is not None:
            found = _classify(home, state)
            if found["foreign"]:
                raise _foreign_error(home, state, found["foreign"])
            if state.running and len(found["ours"]) == state.process_count and state.kerberos == kerberos:
                topology = state.topology(home)
                if all(all(kinds.values()) for kinds in probe(topology).values()):
                    publish_environment(topology)
                    return UpResult(topology, True, time.monotonic() - began)
            if found["ours"]:
                _stop_ours(home, state)
        zookeeper.check_requirements()
        topology = _start(home, state, timeout, kerberos)
        publish_environment(topology)
    return UpResult(topology, False, time.monotonic() - began)


def publish_environment(topology: Topology) -> Path:
    """``<home>/environment.json``: the connections (and the local Airflow) through which the
    product's commands reach these clusters (tandem.environment); removed by :func:`down`."""
    from tandem import environment
    from tandem_dev.local_airflow import LocalAirflow

    airflow = LocalAirflow(topology.home / "airflow", project_root()).overrides()
    keep = ("AIRFLOW_HOME", "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CORE__LOAD_EXAMPLES")
    variables = {**{k: airflow[k] for k in keep}, **connection_env(topology)}
    if topology.kerberos:
        from tandem_dev.kerberos import HomeRealm

        variables.update(HomeRealm(topology.home).env())
    return environment.write(topology.home, variables)


# --------------------------------------------------------------------------- one cluster (drills)


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
    while any(not _is_gone(pid) for pid in ours):
        if time.monotonic() > deadline:
            raise EmbeddedError(f"the {name} cluster's processes survived SIGKILL: {ours}")
        time.sleep(0.02)
    return killed_at


def restart_cluster(home: Path, name: str, timeout: float = 60.0) -> None:
    """Start a killed embedded cluster again on its ports and data; records the new pids."""
    with _home_lock(home):
        state = read_state(home)
        if state is None:
            raise EmbeddedError(f"no embedded clusters in {home}")
        entry = next(c for c in state.clusters if c.name == name)
        server = _zookeeper(home, name, entry.zookeeper_port, state.owner, state.kerberos)
        server.launch()
        server.wait_ready(timeout)
        if server.process is not None:
            _CHILDREN[server.process.pid] = server.process
        pid = _launch_cluster(home, state.owner, name, entry.role, server.hosts, entry, state.kerberos)
        ready = _wait_ready(home, {name: pid}, time.monotonic() + timeout)[name]
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
        _write_state(
            home, HomeState(home, state.owner, True, clusters, state.started, state.kerberos, state.kdc_pid)
        )
        if fresh.endpoints() != entry.endpoints():
            raise EmbeddedError(f"{name} came back on other ports ({fresh.endpoints()}): a port was taken")


def up(home: Path | None = None) -> Topology:
    """Start (or find running) the embedded clusters of :data:`CLUSTERS`; see :func:`bring_up`."""
    return bring_up(home).topology


def running_topology(home: Path | None = None) -> Topology | None:
    """The topology if state.json says running and every recorded process is still ours.

    Cheap (no network); does not prove the servers answer — :func:`status` does.
    """
    home = resolve_home(home)
    state = read_state(home)
    if state is None or not state.running:
        return None
    found = _classify(home, state)
    return state.topology(home) if len(found["ours"]) == state.process_count else None


# --------------------------------------------------------------------------- status and down


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
        return _zookeeper_view(c.zookeeper_hosts, state.kerberos) if answers[c.name]["zookeeper"] else {}

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
    with _home_lock(home):
        state = read_state(home)
        if state is None:
            return []
        found = _classify(home, state)
        environment.remove(home)
        stopped = _stop_ours(home, state)
        stopped += [
            f"left {what} (pid {pid}) alone: it is not a process this home started"
            for what, pid in found["foreign"]
        ]
        _write_state(home, _stopped(state, frozenset(pid for _w, pid in found["foreign"])))
    return stopped


# --------------------------------------------------------------------------- CLI


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def run_up(args: argparse.Namespace) -> int:
    result = bring_up(args.home, kerberos=bool(getattr(args, "kerberos", False)))
    topology = result.topology
    note = _sync_airflow(topology)
    if args.json:
        print(json.dumps(topology.to_json()))
    else:
        what = "already running" if result.already_running else f"started in {result.seconds:.1f} s"
        print(f"embedded clusters {what} (home {topology.home})")
        rows = [["cluster", "webhdfs", "metastore", "zookeeper"]]
        rows += [[c.name, c.webhdfs_url, c.metastore_uri, c.zookeeper_hosts] for c in topology.clusters]
        print(_table(rows))
    if note:
        print(note, file=sys.stderr if args.json else sys.stdout)
    return 0


def _sync_airflow(topology: Topology) -> str | None:
    """Point the Airflow DB's embedded connections at the actual ports, if such a DB exists."""
    try:
        return sync_embedded_connections(topology)
    except TandemError as exc:
        return f"warning: Airflow connections not updated: {exc}"


def sync_embedded_connections(topology: Topology) -> str | None:
    """After ``tandem up``: point an existing Airflow DB's embedded connections at the ports
    actually bound (nothing when no DB exists yet: the environment file serves then)."""
    from tandem import settings

    return settings.point_connections(embedded_connections(topology), project_root() / settings.DEFAULT_FILE)


def run_servers(args: argparse.Namespace) -> int:
    """``tandem servers``: each embedded server and whether it answers. Exit 0 when every one
    does, 1 otherwise (so scripts can test it). ``tandem status`` reports the pairs."""
    report = status(args.home)
    if args.json:
        print(json.dumps(report))
        return 0 if report["running"] else 1
    if not report["clusters"]:
        print(f"no embedded clusters in {report['home']}: run `tandem up`")
        return 1
    print(f"embedded clusters {'running' if report['running'] else 'NOT running'} (home {report['home']})")
    rows = [["cluster", "role", "epoch", "alive", "webhdfs", "metastore", "zookeeper"]]
    for name, c in report["clusters"].items():

        def cell(kind: str, c: dict[str, Any] = c) -> str:
            return f"{c[kind]} {'ok' if c['answers'][kind] else 'DOWN'}"

        alive = "-" if c["alive"] is None else ("yes" if c["alive"] else "no")
        rows.append(
            [
                name,
                str(c["role"] or "-"),
                str("-" if c["epoch"] is None else c["epoch"]),
                alive,
                cell("webhdfs"),
                cell("metastore"),
                cell("zookeeper"),
            ]
        )
    print(_table(rows))
    if not report["running"]:
        home = report["home"]
        print(f"run `tandem up --home {home}` to start them; server logs are in {log_dir(Path(home))}")
    return 0 if report["running"] else 1


def run_down(args: argparse.Namespace) -> int:
    home = resolve_home(args.home)
    stopped = down(home)
    if args.json:
        print(json.dumps({"home": str(home), "stopped": stopped}))
    elif stopped:
        print("\n".join(stopped))
        print(f"data kept in {home}")
    else:
        print(f"nothing to stop in {home}")
    # processes left alone make this a partial success: say so to scripts
    return 1 if any(line.startswith("left ") for line in stopped) else 0
