"""Two realms with cross-realm trust, as two sites have: PRIMARY.TEST and STANDBY.TEST, each its
own MIT KDC on 127.0.0.1, holding ``krbtgt/STANDBY.TEST@PRIMARY.TEST`` and the reverse with the
same keys; one ``krb5.conf`` naming both, ``[domain_realm]`` mapping each cluster's service host
names to its realm and ``[capaths]`` trusting directly.

Tandem is one principal of the primary realm (``tandem@PRIMARY.TEST``, its keytab only). The
servers listen on 127.0.0.1, and the connections name their principals' hosts
(``kerberos_hostname_override``; ZooKeeper's ``sasl_host``), which the names map to a realm
(never resolved: ``dns_canonicalize_hostname = false``, ``rdns = false``):

- Tandem writes to both clusters' WebHDFS with mutual authentication, acting as the connection's
  login; the standby's NameNode maps the foreign principal to ``tandem`` with an
  ``auth_to_local`` rule, as Hadoop's does, and without that rule refuses it;
- Tandem reads the standby's metastore (SASL GSSAPI) and records its role in the standby's
  ZooKeeper (the real server, SASL), as ``tandem@PRIMARY.TEST``;
- the primary KDC issued the cross-realm ticket, the standby KDC the standby's service tickets.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tandem.hdfs.client import Hdfs
from tandem_dev.embedded.spnego import Spnego
from tandem_dev.embedded.webhdfs import WebHdfsServer
from tandem_dev.kerberos import Kdc, krb5_conf_text, trust

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("kerberos")]

PRIMARY, STANDBY = "PRIMARY.TEST", "STANDBY.TEST"
NN_PRIMARY, NN_STANDBY = "nn.primary.tandem.test", "nn.standby.tandem.test"
MS_STANDBY, ZK_STANDBY = "ms.standby.tandem.test", "zk.standby.tandem.test"
TANDEM = f"tandem@{PRIMARY}"
# the standby's hadoop.security.auth_to_local: the primary realm's users are users here too
RULES = r"""
RULE:[1:$1@$0](.*@PRIMARY\.TEST)s/@.*//
DEFAULT
"""


@dataclass
class Sites:
    primary: Kdc
    standby: Kdc
    krb5_conf: Path

    def keytab(self, kdc: Kdc, name: str) -> Path:
        return kdc.keytab(kdc.root / (name.replace("/", "_") + ".keytab"), name)


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sites]:
    from tandem_dev import kerberos

    if not kerberos.available():
        pytest.skip("krb5-kdc is not installed (make setup installs it)")
    root = tmp_path_factory.mktemp("two-realms")
    primary = Kdc(root / "primary", PRIMARY, die_with_parent=True).start()
    standby = Kdc(root / "standby", STANDBY, die_with_parent=True).start()
    try:
        trust(primary, standby)
        conf = root / "krb5.conf"
        domains = {".primary.tandem.test": PRIMARY, ".standby.tandem.test": STANDBY}
        conf.write_text(krb5_conf_text({PRIMARY: primary.port, STANDBY: standby.port}, PRIMARY, domains))
        made = Sites(primary, standby, conf)
        with pytest.MonkeyPatch.context() as patch:
            for key, value in primary.env(made.keytab(primary, "tandem")).items():
                patch.setenv(key, value)
            patch.setenv("KRB5_CONFIG", str(conf))
            patch.setenv("AIRFLOW__CORE__SECURITY", "kerberos")
            yield made
    finally:
        standby.stop()
        primary.stop()


def webhdfs(sites: Sites, kdc: Kdc, host: str, base: Path, rules: str = "DEFAULT") -> WebHdfsServer:
    auth = Spnego(sites.keytab(kdc, f"HTTP/{host}"), kdc.realm, proxy_users={"tandem"}, auth_to_local=rules)
    return WebHdfsServer(base, kerberos=auth)


def connect(monkeypatch: pytest.MonkeyPatch, conn_id: str, body: dict[str, object]) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(body))


def test_one_principal_writes_to_both_clusters_webhdfs(
    sites: Sites, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (
        webhdfs(sites, sites.primary, NN_PRIMARY, tmp_path / "p") as primary,
        webhdfs(sites, sites.standby, NN_STANDBY, tmp_path / "s", RULES) as standby,
    ):
        for conn_id, server, host in (("webhdfs_p", primary, NN_PRIMARY), ("webhdfs_s", standby, NN_STANDBY)):
            body = {"conn_type": "webhdfs", "host": "127.0.0.1", "port": server.port, "login": "etl"}
            connect(monkeypatch, conn_id, {**body, "extra": {"kerberos_hostname_override": host}})
            Hdfs.from_conn_id(conn_id).write("/data/etl/f", conn_id.encode())
            assert server.namespace.status(("data", "etl", "f")).owner == "etl"  # doas the login
        # as itself, Tandem is the standby's "tandem": the auth_to_local rule maps the foreign principal
        connect(
            monkeypatch,
            "webhdfs_s_self",
            {
                "conn_type": "webhdfs",
                "host": "127.0.0.1",
                "port": standby.port,
                "extra": {"kerberos_hostname_override": NN_STANDBY},
            },
        )
        Hdfs.from_conn_id("webhdfs_s_self").write("/data/own", b"x")
        assert standby.namespace.status(("data", "own")).owner == "tandem"
        assert TANDEM in standby.kerberos.authenticated  # type: ignore[union-attr]
    assert sites.primary.issued(TANDEM, f"krbtgt/{STANDBY}@{PRIMARY}")
    assert sites.primary.issued(TANDEM, f"HTTP/{NN_PRIMARY}@{PRIMARY}")
    assert sites.standby.issued(TANDEM, f"HTTP/{NN_STANDBY}@{STANDBY}")


def test_without_an_auth_to_local_rule_the_standby_refuses_the_foreign_principal(
    sites: Sites, tmp_path: Path
) -> None:
    import requests
    from requests_kerberos import REQUIRED, HTTPKerberosAuth

    with webhdfs(sites, sites.standby, NN_STANDBY, tmp_path / "s") as standby:  # DEFAULT only
        session = requests.Session()
        session.auth = HTTPKerberosAuth(
            mutual_authentication=REQUIRED, hostname_override=NN_STANDBY, sanitize_mutual_error_response=False
        )
        answer = session.get(f"{standby.url}/webhdfs/v1/", params={"op": "GETFILESTATUS"}, timeout=10)
    assert answer.status_code == 403
    assert f"No rules applied to {TANDEM}" in answer.text


def test_one_principal_reads_the_standby_metastore_and_records_its_role_in_zookeeper(
    sites: Sites, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tandem.failover.state import init_cluster_record, read_cluster_record
    from tandem.metastore import Metastore
    from tandem.security import zookeeper_client
    from tandem_dev.embedded.metastore import MetastoreServer
    from tandem_dev.embedded.zookeeper import ZooKeeperKerberos, ZooKeeperServer

    zk_principal = f"zookeeper/{ZK_STANDBY}@{STANDBY}"
    zk_server = ZooKeeperServer(
        tmp_path / "zk",
        kerberos=ZooKeeperKerberos(sites.keytab(sites.standby, zk_principal), zk_principal, sites.krb5_conf),
    )
    zk_server.start()
    try:
        keytab = sites.keytab(sites.standby, f"hive/{MS_STANDBY}")
        with MetastoreServer(tmp_path / "ms.db", kerberos_keytab=keytab) as metastore:
            connect(
                monkeypatch,
                "metastore_s",
                {
                    "conn_type": "hive_metastore",
                    "host": "127.0.0.1",
                    "port": metastore.port,
                    "extra": {
                        "auth_mechanism": "GSSAPI",
                        "kerberos_service_name": "hive",
                        "kerberos_hostname_override": MS_STANDBY,
                    },
                },
            )
            with Metastore.from_conn_id("metastore_s").session() as client:
                assert "default" in client.get_all_databases()
            assert metastore.authenticated == [TANDEM]
        zk = zookeeper_client(zk_server.hosts, kerberos=True, timeout=10, sasl_host=ZK_STANDBY)
        zk.start(timeout=20)
        try:
            init_cluster_record(zk, "standby", "standby")
            record = read_cluster_record(zk)
            acls, _ = zk.get_acls("/tandem/cluster")
        finally:
            zk.stop()
            zk.close()
    finally:
        zk_server.stop()
    assert record is not None and record.role == "standby"
    assert ("sasl", TANDEM) in {(a.id.scheme, a.id.id) for a in acls}
    assert f"authenticationID={TANDEM}" in zk_server.log_path.read_text(errors="replace")
    assert sites.standby.issued(TANDEM, f"hive/{MS_STANDBY}@{STANDBY}")
    assert sites.standby.issued(TANDEM, f"{zk_principal}")
