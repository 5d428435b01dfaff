"""A business backed up end to end between two Kerberized clusters (a real MIT KDC; WebHDFS with
SPNEGO, the metastore with SASL GSSAPI, ZooKeeper with SASL), every step as the DAG's tasks run
it (``backup.run_once``): the restore point is published and verified, every service saw Tandem's
principal, and a standby whose NameNode cannot prove itself stops the run at preflight, naming
the connection and the service."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from tandem import backup, catalog
from tandem.errors import ServerIdentityError
from tandem.failover.state import AliveHolder, init_cluster_record
from tandem.metastore import TableRef
from tandem.policy import Policy, Topology, load_policy, load_topology
from tandem.runtime import Clusters
from tandem.security import zookeeper_client
from tandem_dev.embedded.metastore import MetastoreServer
from tandem_dev.embedded.spnego import Spnego
from tandem_dev.embedded.webhdfs import WebHdfsServer
from tandem_dev.embedded.zookeeper import ZooKeeperKerberos, ZooKeeperServer
from tests.instants import iso, recent_hour
from tests.integration.conftest import Realm
from tests.integration.hive_support import add_partition, ensure_partitioned_table

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.xdist_group("kerberos")]

TOP = "/data/kbilling/details"
TABLE = TableRef("kbilling", "customers")
TABLE_DIR = "/warehouse/kbilling.db/customers"
T0 = recent_hour(6)


@dataclass
class Kerberized:
    """One cluster's three servers, all demanding Kerberos."""

    name: str
    zookeeper: ZooKeeperServer
    webhdfs: WebHdfsServer
    spnego: Spnego
    metastore: MetastoreServer
    holders: list[AliveHolder] = field(default_factory=list)

    def stop(self) -> None:
        for holder in self.holders:
            holder.stop()
        self.metastore.stop()
        self.webhdfs.stop()
        self.zookeeper.stop()


def start_cluster(realm: Realm, root: Path, name: str, role: str) -> Kerberized:
    zk = ZooKeeperServer(
        root / "zk",
        kerberos=ZooKeeperKerberos(
            realm.keytab("zookeeper/127.0.0.1"), f"zookeeper/127.0.0.1@{realm.realm}", realm.kdc.krb5_conf
        ),
    )
    zk.start()
    spnego = Spnego(realm.keytab("HTTP/127.0.0.1"), realm.realm, proxy_users={"tandem"})
    webhdfs = WebHdfsServer(root / "hdfs", superuser="hdfs", kerberos=spnego)
    webhdfs.start()
    metastore = MetastoreServer(
        root / "metastore.db",
        warehouse=f"hdfs://{name}/warehouse",
        kerberos_keytab=realm.keytab("hive/127.0.0.1"),
    )
    metastore.start()
    cluster = Kerberized(name, zk, webhdfs, spnego, metastore)
    client = zookeeper_client(zk.hosts, kerberos=True, timeout=10)
    client.start(timeout=15)
    try:
        init_cluster_record(client, name, role)  # type: ignore[arg-type]
    finally:
        client.stop()
        client.close()
    holder = AliveHolder(zk.hosts, name, b"{}", session_timeout=4.0, kerberos=True)
    holder.start(timeout=15)
    cluster.holders.append(holder)
    return cluster


def connections(cluster: Kerberized) -> dict[str, str]:
    k = cluster.name
    return {
        f"AIRFLOW_CONN_WEBHDFS_K{k.upper()}": json.dumps(
            {"conn_type": "webhdfs", "host": "127.0.0.1", "port": cluster.webhdfs.port, "login": "hdfs"}
        ),
        f"AIRFLOW_CONN_METASTORE_K{k.upper()}": json.dumps(
            {
                "conn_type": "hive_metastore",
                "host": "127.0.0.1",
                "port": cluster.metastore.port,
                "extra": {"auth_mechanism": "GSSAPI", "kerberos_service_name": "hive"},
            }
        ),
        f"AIRFLOW_CONN_ZOOKEEPER_K{k.upper()}": json.dumps(
            {"conn_type": "zookeeper", "host": "127.0.0.1", "port": cluster.zookeeper.port}
        ),
    }


@pytest.fixture(scope="module")
def pair(
    realm: Realm, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Topology, dict[str, Kerberized]]]:
    root = tmp_path_factory.mktemp("kerberized")
    clusters = {
        "primary": start_cluster(realm, root / "primary", "primary", "active"),
        "standby": start_cluster(realm, root / "standby", "standby", "standby"),
    }
    topology_file = root / "clusters.yaml"
    topology_file.write_text(
        yaml.safe_dump(
            {
                "clusters": {
                    name: {
                        "nameservice": f"hdfs://{name}",
                        "webhdfs_conn_id": f"webhdfs_k{name}",
                        "metastore_conn_id": f"metastore_k{name}",
                        "zookeeper_conn_id": f"zookeeper_k{name}",
                    }
                    for name in clusters
                },
                "pairs": {"main": {"primary": "primary", "standby": "standby"}},
            }
        )
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW__CORE__SECURITY", "kerberos")
        for cluster in clusters.values():
            for key, value in connections(cluster).items():
                patch.setenv(key, value)
        yield load_topology(topology_file), clusters
    for cluster in clusters.values():
        cluster.stop()


def write_policy(tmp_path: Path, topology: Topology) -> Policy:
    path = tmp_path / "kbilling.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "business": "kbilling",
                "pair": "main",
                "schedule": {"start": iso(recent_hour(24)), "every": "1h"},
                "protection_group": [{"hdfs": TOP}, {"hive": str(TABLE)}],
                "consistency": {"max_skew": "1s", "max_clock_skew": "5s"},
                "user_data": True,
            }
        )
    )
    return load_policy(path, topology)


def test_a_backup_between_kerberized_clusters_publishes_a_verified_point(
    pair: tuple[Topology, dict[str, Kerberized]], realm: Realm, tmp_path: Path, webhdfs_impostor: int
) -> None:
    topology, servers = pair
    clusters = Clusters(topology)
    src = clusters.hdfs("primary")
    for i in range(4):
        src.write(f"{TOP}/bills-{i}.parquet", b"b" * (1000 + i))
    metastore = clusters.metastore("primary")
    table = ensure_partitioned_table(metastore, TABLE, TABLE_DIR, "hdfs://primary")
    src.write(f"{TABLE_DIR}/batch=1/part-0", b"1,2,3")
    add_partition(metastore, table, "1", f"hdfs://primary{TABLE_DIR}/batch=1")
    policy = write_policy(tmp_path, topology)

    manifest = backup.run_once(backup.Run(policy, topology, T0), clusters)
    assert manifest["verified"] is True and manifest["target"] == "standby"
    assert manifest["files_copied"] == 5
    dst = clusters.hdfs("standby")
    assert catalog.latest(dst, "kbilling") is not None
    assert dst.read_bytes(f"{TOP}/bills-3.parquet") == b"b" * 1003
    assert dst.status(f"{TOP}/bills-0.parquet").owner == "hdfs"  # doas: tandem acted as the login
    standby_table = clusters.metastore("standby").get_table(TABLE)
    assert standby_table is not None and standby_table.sd.location == f"hdfs://standby{TABLE_DIR}"
    # every service of both clusters saw Tandem's principal, and the KDC issued each ticket
    for cluster in servers.values():
        assert "tandem@TANDEM.TEST" in cluster.spnego.authenticated
        assert "tandem@TANDEM.TEST" in cluster.metastore.authenticated
        assert "authenticationID=tandem@TANDEM.TEST" in cluster.zookeeper.log_path.read_text(errors="replace")
    for service in ("HTTP/127.0.0.1", "hive/127.0.0.1", "zookeeper/127.0.0.1"):
        assert realm.kdc.issued("tandem@TANDEM.TEST", f"{service}@TANDEM.TEST")

    # a standby NameNode that cannot prove itself: the next run stops at preflight, by name
    next_run = backup.Run(policy, topology, T0 + timedelta(hours=1))
    with pytest.MonkeyPatch.context() as patch:
        impostor = {"conn_type": "webhdfs", "host": "127.0.0.1", "port": webhdfs_impostor, "login": "hdfs"}
        patch.setenv("AIRFLOW_CONN_WEBHDFS_KSTANDBY", json.dumps(impostor))
        with pytest.raises(ServerIdentityError, match=r"webhdfs_kstandby.*HTTP/127\.0\.0\.1"):
            backup.preflight(next_run, Clusters(topology))
