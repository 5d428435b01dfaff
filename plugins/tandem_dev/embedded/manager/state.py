"""A home (``--home``, ``$TANDEM_HOME`` or ``<project root>/.tandem``) and its ``state.json``: who
started the processes of the home, their pids and ports, written atomically under the home's
lock; the server logs under ``<home>/logs``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tandem.environment import project_root
from tandem.errors import EmbeddedError
from tandem_dev.embedded import zookeeper
from tandem_dev.embedded.manager.endpoints import LOOPBACK, ClusterEndpoints, RunningClusters


def default_home() -> Path:
    """``$TANDEM_HOME`` if set, else ``<project root>/.tandem``."""
    env = os.environ.get("TANDEM_HOME")
    return Path(env).expanduser().absolute() if env else project_root() / ".tandem"


def resolve_home(home: Path | None) -> Path:
    return Path(home).expanduser().absolute() if home is not None else default_home()


STATE_FILE = "state.json"

STATE_VERSION = 1


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

    def topology(self, home: Path) -> RunningClusters:
        return RunningClusters(home, tuple(c.endpoints() for c in self.clusters), self.kerberos)

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


def write_state(home: Path, state: HomeState) -> None:
    path = home / STATE_FILE
    tmp = path.with_name(f".{STATE_FILE}.tmp")
    tmp.write_text(json.dumps(state.to_json(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


@contextlib.contextmanager
def home_lock(home: Path, timeout: float = 120.0) -> Iterator[None]:
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


def log_dir(home: Path) -> Path:
    return home / "logs"


def log_tails(home: Path, lines: int = 30) -> str:
    """The last lines of every server log of a home, for error messages and failing tests."""
    parts = []
    for path in sorted(log_dir(resolve_home(home)).glob("*.log")):
        parts.append(f"===== {path} (last {lines} lines) =====\n{zookeeper.log_tail(path, lines)}")
    return "\n".join(parts)
