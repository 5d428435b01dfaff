"""ZooKeeper with SASL Kerberos: the real server (Debian's zookeeper) enforces SASL with a JAAS
configuration and a keytab from a real MIT KDC, and Tandem's ZooKeeper clients authenticate and
insist the server proves itself.

- Tandem's observation of a cluster reads the Kerberized ZooKeeper; the server logged Tandem's
  principal; the KDC issued the service ticket;
- a client without SASL is refused by the server;
- a ZooKeeper holding the wrong key (not ``zookeeper/127.0.0.1``) is refused by Tandem: the
  observation says so, naming the service, and nothing it said is taken as the cluster's state;
- the application client (``ActiveClusterClient`` with ``kerberos``) reads roles through it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from tandem.failover.state import ClusterRecord, init_cluster_record
from tandem.runtime import observe
from tandem_dev.embedded.zookeeper import ZooKeeperKerberos, ZooKeeperServer
from tests.integration.conftest import Realm

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("kerberos")]

SERVICE = "zookeeper/127.0.0.1"


def kerberized(realm: Realm, base: Path, principal: str) -> ZooKeeperServer:
    keytab = realm.keytab(principal)
    full = f"{principal}@{realm.realm}"
    return ZooKeeperServer(base, kerberos=ZooKeeperKerberos(keytab, full, realm.kdc.krb5_conf))


@pytest.fixture(scope="module")
def server(realm: Realm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperServer]:
    running = kerberized(realm, tmp_path_factory.mktemp("zk-kerberos"), SERVICE)
    running.start()
    yield running
    running.stop()


@pytest.fixture
def kerberos_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__SECURITY", "kerberos")


def record_role(server: ZooKeeperServer) -> None:
    """``/tandem/cluster`` says primary is active (idempotent), written through Kerberos."""
    from tandem.security import zookeeper_client

    zk = zookeeper_client(server.hosts, kerberos=True, timeout=10)
    zk.start(timeout=15)
    try:
        init_cluster_record(zk, "primary", "active")
    finally:
        zk.stop()
        zk.close()


def test_tandem_observes_a_kerberized_zookeeper_as_its_principal(
    server: ZooKeeperServer, realm: Realm, kerberos_on: None
) -> None:
    record_role(server)
    seen = observe("primary", server.hosts, timeout=10)
    assert seen.reachable and seen.problem is None
    assert isinstance(seen.record, ClusterRecord) and seen.record.role == "active"
    log = server.log_path.read_text(errors="replace")
    assert "authenticationID=tandem@TANDEM.TEST" in log
    assert realm.kdc.issued("tandem@TANDEM.TEST", f"{SERVICE}@TANDEM.TEST")


def test_a_client_without_sasl_is_refused(server: ZooKeeperServer) -> None:
    from kazoo.exceptions import KazooException

    plain = KazooClient(hosts=server.hosts, timeout=5)
    try:
        plain.start(timeout=15)
        with pytest.raises(KazooException):
            plain.get("/tandem/cluster")
    finally:
        plain.stop()
        plain.close()


# kazoo reports the refused exchange by an exception in its connection thread
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_zookeeper_with_the_wrong_key_is_refused_by_name(
    realm: Realm, tmp_path: Path, kerberos_on: None
) -> None:
    wrong = kerberized(realm, tmp_path / "zk-wrong", "zookeeper/elsewhere")
    wrong.start()
    try:
        seen = observe("standby", wrong.hosts, timeout=5)
    finally:
        wrong.stop()
    assert not seen.reachable and seen.record is None
    assert seen.problem is not None
    assert f"did not complete Kerberos authentication as service {SERVICE}" in seen.problem


def test_the_application_client_reads_roles_through_kerberos(server: ZooKeeperServer) -> None:
    from tandem.client import ClusterWatcher

    record_role(server)
    views = []
    watcher = ClusterWatcher("primary", server.hosts, views.append, kerberos=True)
    watcher.start()
    try:
        import time

        deadline = time.monotonic() + 20
        while not any(v.role == "active" for v in views):
            assert time.monotonic() < deadline, f"no view through Kerberos: {views}"
            time.sleep(0.05)
    finally:
        watcher.stop()
