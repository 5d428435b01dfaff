"""Airflow's own ticket renewer: ``airflow kerberos --one-time`` fills the ticket cache from the
``[kerberos]`` principal and keytab, and Tandem's clients authenticate from that cache alone (no
``KRB5_CLIENT_KTNAME``), to a Kerberized WebHDFS, metastore and ZooKeeper of a real MIT KDC.

Before the renewer runs, the empty cache gets Tandem nowhere (and the server is not blamed for
it); after, every service is reached as ``tandem@REALM`` and the KDC issued each service ticket.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tandem_dev.kerberos import Kdc, airflow_renew, available, realm_env
from tandem_dev.local_airflow import LocalAirflow

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.xdist_group("kerberos"),
    pytest.mark.timeout(600),
]

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture
def kdc(tmp_path: Path) -> Iterator[Kdc]:
    if not available():
        pytest.skip("krb5-kdc is not installed (make setup installs it)")
    running = Kdc(tmp_path / "realm", die_with_parent=True).start()
    yield running
    running.stop()


def test_tandem_authenticates_from_the_cache_airflow_kerberos_fills(
    kdc: Kdc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tandem.errors import ServerIdentityError
    from tandem.hdfs.client import Hdfs
    from tandem.metastore import Metastore
    from tandem.runtime import observe
    from tandem_dev.embedded.metastore import MetastoreServer
    from tandem_dev.embedded.spnego import Spnego
    from tandem_dev.embedded.webhdfs import WebHdfsServer
    from tandem_dev.embedded.zookeeper import ZooKeeperKerberos, ZooKeeperServer
    from tests.integration.conftest import record_role_through_kerberos

    keytabs = {
        name: kdc.keytab(tmp_path / f"{name.split('/')[0]}.keytab", name)
        for name in ("tandem", "HTTP/127.0.0.1", "hive/127.0.0.1", "zookeeper/127.0.0.1")
    }
    principal = f"tandem@{kdc.realm}"
    ccache = tmp_path / "ccache"
    env = realm_env(kdc, principal, keytabs["tandem"], ccache, renewer=True)
    assert "KRB5_CLIENT_KTNAME" not in env
    monkeypatch.delenv("KRB5_CLIENT_KTNAME", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    airflow = LocalAirflow(tmp_path / "airflow", PROJECT, (), tuple(env.items()))
    airflow.ensure_db()

    zk = ZooKeeperServer(
        tmp_path / "zk",
        kerberos=ZooKeeperKerberos(
            keytabs["zookeeper/127.0.0.1"], f"zookeeper/127.0.0.1@{kdc.realm}", kdc.krb5_conf
        ),
    )
    zk.start()
    try:
        with (
            WebHdfsServer(
                tmp_path / "hdfs",
                kerberos=Spnego(keytabs["HTTP/127.0.0.1"], kdc.realm, proxy_users={"tandem"}),
            ) as webhdfs,
            MetastoreServer(
                tmp_path / "metastore.db", kerberos_keytab=keytabs["hive/127.0.0.1"]
            ) as metastore,
        ):
            conns = {
                "webhdfs_renewed": {
                    "conn_type": "webhdfs",
                    "host": "127.0.0.1",
                    "port": webhdfs.port,
                    "login": "etl",
                },
                "metastore_renewed": {
                    "conn_type": "hive_metastore",
                    "host": "127.0.0.1",
                    "port": metastore.port,
                    "extra": {"auth_mechanism": "GSSAPI", "kerberos_service_name": "hive"},
                },
            }
            for conn_id, body in conns.items():
                monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(body))

            # nothing in the cache, no keytab: no way in, and the NameNode is not called an impostor
            with pytest.raises(Exception) as nothing:
                Hdfs.from_conn_id("webhdfs_renewed")
            assert not isinstance(nothing.value, ServerIdentityError)
            assert not kdc.issued(principal, f"HTTP/127.0.0.1@{kdc.realm}")

            took = airflow_renew(airflow)
            listed = subprocess.run(["klist", "-c", str(ccache)], env={**env}, capture_output=True, text=True)
            assert listed.returncode == 0 and f"Default principal: {principal}" in listed.stdout
            print(f"airflow kerberos --one-time: {took:.1f} s")

            hdfs = Hdfs.from_conn_id("webhdfs_renewed")
            hdfs.write("/tmp/etl/renewed", b"from the renewer's cache")
            status = hdfs.status("/tmp/etl/renewed")
            assert status is not None and status.owner == "etl"
            with Metastore.from_conn_id("metastore_renewed").session() as client:
                assert "default" in client.get_all_databases()
            assert metastore.authenticated and set(metastore.authenticated) == {principal}

            record_role_through_kerberos(zk.hosts)
            monkeypatch.setenv("AIRFLOW__CORE__SECURITY", "kerberos")
            seen = observe("primary", zk.hosts, timeout=10)
            assert seen.reachable and seen.record is not None and seen.record.role == "active"
    finally:
        zk.stop()
    assert f"authenticationID={principal}" in zk.log_path.read_text(errors="replace")
    for service in ("HTTP/127.0.0.1", "hive/127.0.0.1", "zookeeper/127.0.0.1"):
        assert kdc.issued(principal, f"{service}@{kdc.realm}"), service
