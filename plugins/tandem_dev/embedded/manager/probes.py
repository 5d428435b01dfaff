"""Whether the servers of the embedded clusters answer, each in its own protocol (WebHDFS,
Thrift or SASL, ZooKeeper), and what a cluster's ZooKeeper says of its role. Read-only.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tandem.errors import TandemError
from tandem_dev.embedded import zookeeper
from tandem_dev.embedded.cluster import SUPERUSER
from tandem_dev.embedded.manager.endpoints import RunningClusters


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


def probe(topology: RunningClusters) -> dict[str, dict[str, bool]]:
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


def zookeeper_view(hosts: str, kerberos: bool = False) -> dict[str, Any]:
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
