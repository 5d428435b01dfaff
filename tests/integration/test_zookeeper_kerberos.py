"""ZooKeeper with SASL Kerberos: the real server (Debian's zookeeper) enforces SASL with a JAAS
configuration and a keytab from a real MIT KDC, and Tandem's ZooKeeper clients authenticate and
insist the server proves itself.

- Tandem's observation of a cluster reads the Kerberized ZooKeeper; the server logged Tandem's
  principal; the KDC issued the service ticket;
- a client without SASL is refused by the server;
- a ZooKeeper holding the wrong key (not ``zookeeper/127.0.0.1``) is refused by Tandem: the
  observation says so, naming the service, and nothing it said is taken as the cluster's state;
- the application client (``ActiveClusterClient`` with ``kerberos``) reads roles through it;
- an ensemble listing a server that cannot prove itself first: Tandem skips it (a warning names
  it) and uses the genuine one; when no server proves itself the observation names every one;
- the znodes Tandem creates carry ACLs: only Tandem's principal (``sasl:tandem@TANDEM.TEST``, as
  the server names it) may change them; another principal, and an unauthenticated client where
  the server lets one connect, can read them and get NoAuthError for any change; nodes left open
  from before Kerberos are closed when Tandem records the cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from tandem.failover.state import ClusterRecord, init_cluster_record
from tandem.runtime import observe
from tandem_dev.embedded.zookeeper import ZooKeeperKerberos, ZooKeeperServer
from tests.integration.conftest import Realm, record_role_through_kerberos

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("kerberos")]

SERVICE = "zookeeper/127.0.0.1"


def kerberized(realm: Realm, base: Path, principal: str, *, required: bool = True) -> ZooKeeperServer:
    keytab = realm.keytab(principal)
    full = f"{principal}@{realm.realm}"
    return ZooKeeperServer(
        base, kerberos=ZooKeeperKerberos(keytab, full, realm.kdc.krb5_conf, required=required)
    )


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
    record_role_through_kerberos(server.hosts)


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


# another client, in its own process so that its Kerberos identity (keytab, ticket cache) is its own
_INTRUDER = """
import json, sys
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError, NoNodeError
from kazoo.security import OPEN_ACL_UNSAFE

hosts, sasl = sys.argv[1], sys.argv[2] == "sasl"
zk = KazooClient(
    hosts=hosts, timeout=10, sasl_options={"mechanism": "GSSAPI", "service": "zookeeper"} if sasl else None
)
zk.start(timeout=15)
out = {"read": zk.get("/tandem/cluster")[0].decode()}
for name, change in {
    "set": lambda: zk.set("/tandem/cluster", b"{}"),
    "delete": lambda: zk.delete("/tandem/cluster"),
    "create": lambda: zk.create("/tandem/intruder", b""),
    "delete_alive": lambda: zk.delete("/tandem/alive"),  # the parent's ACL is checked first
    "reopen": lambda: zk.set_acls("/tandem/cluster", OPEN_ACL_UNSAFE),
}.items():
    try:
        change()
        out[name] = "done"
    except NoAuthError:
        out[name] = "NoAuthError"
    except NoNodeError:
        out[name] = "NoNodeError"
zk.stop()
print(json.dumps(out))
"""

REFUSED = {k: "NoAuthError" for k in ("set", "delete", "create", "delete_alive", "reopen")}


def intrude(hosts: str, env: dict[str, str], *, sasl: bool) -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", _INTRUDER, hosts, "sasl" if sasl else "plain"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def acl_of(hosts: str, path: str) -> set[tuple[str, str, int]]:
    from tandem.security import zookeeper_client

    zk = zookeeper_client(hosts, kerberos=True, timeout=10)
    zk.start(timeout=15)
    try:
        acls, _ = zk.get_acls(path)
    finally:
        zk.stop()
        zk.close()
    return {(a.id.scheme, a.id.id, a.perms) for a in acls}


def test_only_tandem_may_change_its_znodes_another_principal_only_reads(
    server: ZooKeeperServer, realm: Realm, tmp_path: Path
) -> None:
    from kazoo.security import Permissions

    from tandem.failover.state import AliveHolder
    from tandem.security import zookeeper_client

    record_role(server)
    holder = AliveHolder(server.hosts, "primary", kerberos=True)
    holder.start()
    try:
        tandem_only = {
            ("sasl", f"tandem@{realm.realm}", Permissions.ALL),
            ("world", "anyone", Permissions.READ),
        }
        for path in ("/tandem", "/tandem/cluster", "/tandem/alive"):
            assert acl_of(server.hosts, path) == tandem_only, path
        other = realm.keytab("other")
        env = {**os.environ, "KRB5_CLIENT_KTNAME": str(other), "KRB5CCNAME": f"FILE:{tmp_path / 'other.cc'}"}
        seen = intrude(server.hosts, env, sasl=True)
        assert json.loads(seen.pop("read"))["role"] == "active"
        assert seen == REFUSED
        assert f"authenticationID=other@{realm.realm}" in server.log_path.read_text(errors="replace")
        assert holder.recreations == 0  # the alive node was never deleted
        # Tandem itself still changes what it made
        zk = zookeeper_client(server.hosts, kerberos=True, timeout=10)
        zk.start(timeout=15)
        try:
            data, stat = zk.get("/tandem/cluster")
            zk.set("/tandem/cluster", data, version=stat.version)
        finally:
            zk.stop()
            zk.close()
    finally:
        holder.stop()


def test_an_unauthenticated_client_reads_but_cannot_change_and_open_nodes_are_closed(
    realm: Realm, tmp_path: Path
) -> None:
    from kazoo.security import OPEN_ACL_UNSAFE

    lenient = kerberized(realm, tmp_path / "zk-lenient", SERVICE, required=False)
    lenient.start()
    try:
        # a record made before Kerberos was on: open to all
        plain = KazooClient(hosts=lenient.hosts, timeout=10)
        plain.start(timeout=15)
        try:
            init_cluster_record(plain, "primary", "active")
            assert plain.get_acls("/tandem/cluster")[0] == OPEN_ACL_UNSAFE
        finally:
            plain.stop()
            plain.close()
        record_role(lenient)  # Tandem, through Kerberos, closes it
        assert ("world", "anyone", 31) not in acl_of(lenient.hosts, "/tandem/cluster")
        seen = intrude(lenient.hosts, dict(os.environ), sasl=False)
    finally:
        lenient.stop()
    assert json.loads(seen.pop("read"))["role"] == "active"
    assert seen == REFUSED


def test_an_ensemble_skips_a_server_that_cannot_prove_itself(
    server: ZooKeeperServer,
    realm: Realm,
    tmp_path: Path,
    kerberos_on: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tandem.security import zookeeper_client

    record_role(server)
    wrong = kerberized(realm, tmp_path / "zk-wrong", "zookeeper/elsewhere")
    other = kerberized(realm, tmp_path / "zk-wrong-too", "zookeeper/elsewhere")
    wrong.start()
    try:
        hosts = f"{wrong.hosts},{server.hosts}"
        # the impostor first, always (kazoo shuffles the list by default)
        zk = zookeeper_client(hosts, kerberos=True, timeout=10, randomize_hosts=False)
        with caplog.at_level("WARNING", logger="tandem.zookeeper_sasl"):
            zk.start(timeout=15)
            try:
                data, stat = zk.get("/tandem/cluster")  # the genuine server's record
                zk.set("/tandem/cluster", data, version=stat.version)
            finally:
                zk.stop()
                zk.close()
        assert json.loads(data)["role"] == "active"
        warned = [r.getMessage() for r in caplog.records if r.name == "tandem.zookeeper_sasl"]
        assert len(warned) == 1
        assert f"{wrong.hosts} failed mutual authentication" in warned[0] and SERVICE in warned[0]
        seen = observe("primary", hosts, timeout=10)  # shuffled: either order ends on the genuine one
        assert seen.reachable and seen.record is not None and seen.record.role == "active"
        # none proves itself: the observation names every one
        other.start()
        both = f"{wrong.hosts},{other.hosts}"
        seen = observe("standby", both, timeout=10)
    finally:
        other.stop()
        wrong.stop()
    assert not seen.reachable and seen.record is None and seen.problem is not None
    assert "none of its servers completed Kerberos authentication" in seen.problem
    for hosts in (wrong.hosts, other.hosts):
        assert f"{SERVICE} at {hosts}" in seen.problem
