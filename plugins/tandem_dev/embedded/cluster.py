"""One embedded cluster as a process: WebHDFS + Hive metastore, registered in its ZooKeeper.

Run by :mod:`tandem_dev.embedded.manager` (``tandem up``)::

    python -m tandem_dev.embedded.cluster --home H --name primary --role active \\
        --webhdfs-port 0 --data-port 0 --metastore-port 0 --zookeeper 127.0.0.1:2181

Port 0 lets the server pick a free port; the ports actually bound are written to the ready
marker ``H/<name>/ready.json`` once every server answers and ``/tandem/alive`` is held. The
marker is written last and atomically, so whoever sees it may connect. SIGTERM or SIGINT stops
everything cleanly: ``/tandem/alive`` goes first, so nobody sees a live cluster whose servers
are already gone; then the servers; then the marker.

The cluster's name is its HDFS nameservice: the metastore's warehouse is ``hdfs://<name>/warehouse``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, cast

from kazoo.handlers.threading import KazooTimeoutError

from tandem.errors import TandemError, ZooKeeperError
from tandem.failover.state import AliveHolder, Role, init_cluster_record
from tandem.security import zookeeper_client

if TYPE_CHECKING:
    from tandem_dev.embedded.metastore import MetastoreServer
    from tandem_dev.embedded.webhdfs import WebHdfsServer

log = logging.getLogger("tandem_dev.embedded.cluster")

# The HDFS superuser of the embedded clusters, as the `hdfs` account is on a real cluster:
# snapshots, ACL and quota changes need it, so the embedded connections log in as this user.
SUPERUSER = "hdfs"
READY_FILE = "ready.json"
ZK_CONNECT_TIMEOUT = 30.0


@dataclass(frozen=True)
class ClusterPaths:
    """Where a cluster keeps its data under the embedded home."""

    home: Path
    name: str

    @property
    def root(self) -> Path:
        return self.home / self.name

    @property
    def hdfs_root(self) -> Path:
        return self.root / "hdfs"

    @property
    def metastore_db(self) -> Path:
        return self.root / "metastore.db"

    @property
    def ready_marker(self) -> Path:
        return self.root / READY_FILE


def read_ready(marker: Path) -> dict[str, object] | None:
    """The ready marker's content, or None while it does not exist (or is being replaced)."""
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return cast(dict[str, object], data) if isinstance(data, dict) else None


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tandem_dev.embedded.cluster", description=__doc__)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument(
        "--role", choices=["active", "standby"], required=True, help="role on first start only"
    )
    parser.add_argument("--webhdfs-port", type=int, default=0)
    parser.add_argument("--data-port", type=int, default=0)
    parser.add_argument("--metastore-port", type=int, default=0)
    parser.add_argument("--zookeeper", required=True, help="HOST:PORT of this cluster's ZooKeeper")
    # only marks the command line, so that `tandem down` can recognise the process it launched
    parser.add_argument("--owner", default="")
    parser.add_argument(
        "--kerberos", action="store_true", help="demand Kerberos, with the keytabs of the home's realm"
    )
    return parser


class EmbeddedCluster:
    """The servers of one cluster, started and stopped together.

    :meth:`start` is all-or-nothing: if any part fails, the parts already started are stopped
    before the error propagates. :meth:`stop` is idempotent and stops in reverse order.
    """

    def __init__(
        self,
        home: Path,
        name: str,
        role: Role,
        zookeeper: str,
        *,
        webhdfs_port: int = 0,
        data_port: int = 0,
        metastore_port: int = 0,
        kerberos: bool = False,
    ) -> None:
        self.paths = ClusterPaths(home.absolute(), name)
        self.kerberos = kerberos
        self.name = name
        self.role = role
        self.zookeeper = zookeeper
        self.webhdfs_port = webhdfs_port
        self.data_port = data_port
        self.metastore_port = metastore_port
        self._stops: list[Callable[[], None]] = []
        self.webhdfs: WebHdfsServer | None = None
        self.metastore: MetastoreServer | None = None

    def start(self) -> dict[str, object]:
        """Start WebHDFS and the metastore, register the cluster in ZooKeeper, write the marker."""
        # imported here so that `tandem status` and the manager never load the servers
        from tandem_dev.embedded.metastore import MetastoreServer
        from tandem_dev.embedded.request_log import RequestLog
        from tandem_dev.embedded.webhdfs import WebHdfsServer

        self.paths.ready_marker.unlink(missing_ok=True)
        self.paths.hdfs_root.mkdir(parents=True, exist_ok=True)
        spnego, hive_keytab = None, None
        if self.kerberos:
            from tandem_dev.embedded.spnego import Spnego
            from tandem_dev.kerberos import CLIENT, HomeRealm

            realm = HomeRealm(self.paths.home)
            # Tandem acts as the connections' login (hdfs): it is this NameNode's proxy user
            spnego = Spnego(realm.keytab("http"), realm.kdc.realm, proxy_users={CLIENT})
            hive_keytab = realm.keytab("hive")
        try:
            webhdfs = WebHdfsServer(
                self.paths.hdfs_root,
                port=self.webhdfs_port,
                data_port=self.data_port,
                superuser=SUPERUSER,
                kerberos=spnego,
                request_log=RequestLog.from_env(self.name),
            )
            webhdfs.start()
            self._stops.append(webhdfs.stop)
            self.webhdfs = webhdfs
            metastore = MetastoreServer(
                self.paths.metastore_db,
                port=self.metastore_port,
                warehouse=f"hdfs://{self.name}/warehouse",
                kerberos_keytab=hive_keytab,
            )
            metastore.start()
            self._stops.append(metastore.stop)
            self.metastore = metastore
            self._register()
            ready = self._ready_payload()
            _write_atomically(self.paths.ready_marker, json.dumps(ready, indent=2) + "\n")
        except BaseException:
            self.stop()
            raise
        return ready

    def _register(self) -> None:
        zk = zookeeper_client(self.zookeeper, kerberos=self.kerberos)
        try:
            zk.start(timeout=ZK_CONNECT_TIMEOUT)
        except KazooTimeoutError:
            zk.close()
            raise ZooKeeperError(f"cannot reach ZooKeeper at {self.zookeeper}: is it running?") from None
        try:
            record = init_cluster_record(zk, self.name, self.role)
        finally:
            zk.stop()
            zk.close()
        log.info("cluster %s: role %s, epoch %d", record.name, record.role, record.epoch)
        assert self.webhdfs is not None
        payload = json.dumps({"name": self.name, "pid": os.getpid(), "webhdfs": self.webhdfs.url})
        # a 3 s session: a killed cluster process loses /tandem/alive in about 3 s (failover detection < 5 s)
        alive = AliveHolder(
            self.zookeeper, self.name, payload.encode(), session_timeout=3.0, kerberos=self.kerberos
        )
        alive.start(timeout=ZK_CONNECT_TIMEOUT)
        self._stops.append(alive.stop)

    def _ready_payload(self) -> dict[str, object]:
        assert self.webhdfs is not None and self.metastore is not None
        return {
            "name": self.name,
            "pid": os.getpid(),
            "webhdfs": self.webhdfs.url,
            "webhdfs_port": self.webhdfs.port,
            "data_port": self.webhdfs.data_port,
            "metastore": self.metastore.uri,
            "metastore_port": self.metastore.port,
            "zookeeper": self.zookeeper,
        }

    def stop(self) -> None:
        """Withdraw ``/tandem/alive``, stop the servers, remove the ready marker. Idempotent."""
        self.paths.ready_marker.unlink(missing_ok=True)
        while self._stops:
            stop = self._stops.pop()
            try:
                stop()
            except Exception:
                log.exception("cluster %s: error while stopping", self.name)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)-5s [%(threadName)s] %(name)s: %(message)s"
    )
    stop_requested = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("cluster %s: got signal %d, stopping", args.name, signum)
        stop_requested.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    cluster = EmbeddedCluster(
        args.home,
        args.name,
        cast(Role, args.role),
        args.zookeeper,
        webhdfs_port=args.webhdfs_port,
        data_port=args.data_port,
        metastore_port=args.metastore_port,
        kerberos=args.kerberos,
    )
    try:
        ready = cluster.start()
    except TandemError as exc:
        log.error("cluster %s failed to start: %s", args.name, exc)
        return 1
    log.info("cluster %s ready: %s", args.name, json.dumps(ready))
    # the main thread must stay free to run the signal handler; wait() with a timeout keeps it so
    while not stop_requested.wait(1.0):
        pass
    cluster.stop()
    log.info("cluster %s stopped", args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
