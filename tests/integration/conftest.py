"""Fixtures shared by integration tests: a real ZooKeeper per test module and a pair of clusters
recorded in it (each under its own chroot); a real Kerberos realm per test module."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tandem_dev.embedded.zookeeper import ZooKeeperServer
from tandem_dev.kerberos import Kdc
from tests.integration.test_failover_support import ZkPair, zk_pair


@pytest.fixture(scope="module")
def zk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperServer]:
    server = ZooKeeperServer(tmp_path_factory.mktemp("zk"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def pair(zk_server: ZooKeeperServer, request: pytest.FixtureRequest) -> Iterator[ZkPair]:
    with zk_pair(zk_server, request) as made:
        yield made


class Realm:
    """A KDC whose clients act as ``tandem@REALM`` (its keytab in ``KRB5_CLIENT_KTNAME``);
    :meth:`keytab` exports a principal's keys once, on first use."""

    def __init__(self, kdc: Kdc) -> None:
        self.kdc = kdc
        self._keytabs: dict[str, Path] = {}

    @property
    def realm(self) -> str:
        return self.kdc.realm

    def keytab(self, principal: str) -> Path:
        if principal not in self._keytabs:
            path = self.kdc.root / (principal.replace("/", "_") + ".keytab")
            self._keytabs[principal] = self.kdc.keytab(path, principal)
        return self._keytabs[principal]


def record_role_through_kerberos(hosts: str, name: str = "primary") -> None:
    """``/tandem/cluster`` of the ZooKeeper at ``hosts`` says ``name`` is active (idempotent),
    written by Tandem's client through Kerberos."""
    from tandem.failover.state import init_cluster_record
    from tandem.security import zookeeper_client

    zk = zookeeper_client(hosts, kerberos=True, timeout=10)
    zk.start(timeout=15)
    try:
        init_cluster_record(zk, name, "active")
    finally:
        zk.stop()
        zk.close()


@pytest.fixture(scope="module")
def realm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Realm]:
    from tandem_dev import kerberos

    if not kerberos.available():
        pytest.skip("krb5-kdc is not installed (make setup installs it)")
    made = Realm(Kdc(tmp_path_factory.mktemp("realm"), die_with_parent=True).start())
    with pytest.MonkeyPatch.context() as patch:
        for key, value in made.kdc.env(made.keytab("tandem")).items():
            patch.setenv(key, value)
        yield made
    made.kdc.stop()


class _Impostor(BaseHTTPRequestHandler):
    """A "NameNode" with no keytab: it answers 200 to anything, without an AP-REP."""

    def do_GET(self) -> None:
        body = json.dumps(
            {
                "FileStatus": {
                    "type": "DIRECTORY",
                    "length": 0,
                    "owner": "hdfs",
                    "group": "supergroup",
                    "permission": "755",
                    "accessTime": 0,
                    "modificationTime": 0,
                    "blockSize": 0,
                    "replication": 0,
                    "pathSuffix": "",
                    "fileId": 16385,
                    "childrenNum": 0,
                    "storagePolicy": 0,
                }
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _FailingImpostor(BaseHTTPRequestHandler):
    """A "NameNode" with no keytab that answers every call 404, as if nothing existed."""

    def do_GET(self) -> None:
        body = json.dumps(
            {"RemoteException": {"exception": "FileNotFoundException", "message": "File does not exist"}}
        ).encode()
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_PUT = do_DELETE = do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve(handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1", port: int = 0) -> Iterator[int]:
    httpd = ThreadingHTTPServer((host, port), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield int(httpd.server_address[1])
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def webhdfs_impostor() -> Iterator[int]:
    """The port of a WebHDFS "NameNode" that answers 200 without an AP-REP."""
    yield from _serve(_Impostor)


@pytest.fixture
def webhdfs_failing_impostor() -> Iterator[int]:
    """The port of a WebHDFS "NameNode" that answers every call with an error, without an AP-REP."""
    yield from _serve(_FailingImpostor)
