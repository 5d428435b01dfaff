"""Direct access to the embedded clusters by their endpoints (no Airflow connection needed),
for the drill and the tests: the same :class:`~tandem.client.ClusterAccess` the product builds
from connections."""

from __future__ import annotations

from typing import Any

from tandem.client import ActiveClusterClient, ClusterAccess
from tandem.hdfs.client import Hdfs
from tandem.metastore import Metastore
from tandem_dev.embedded.manager import RunningClusters


def active_client(
    topology: RunningClusters,
    names: tuple[str, str] = ("primary", "standby"),
    user: str = "hdfs",
    **kwargs: Any,
) -> ActiveClusterClient:
    """An ActiveClusterClient for the embedded clusters of ``tandem up``."""
    first, second = (embedded_access(topology, name, user) for name in names)
    kwargs.setdefault("kerberos", topology.kerberos)
    return ActiveClusterClient(first, second, **kwargs)


def embedded_access(
    topology: RunningClusters, name: str, user: str = "hdfs", timeout: float = 10.0
) -> ClusterAccess:
    """Access to one embedded cluster through its WebHDFS URL and metastore URI (for Kerberized
    clusters, as Tandem's principal, each server required to prove itself, ``user`` as doas)."""
    endpoints = topology[name]

    def hdfs() -> Hdfs:
        if topology.kerberos:
            from hdfs.ext.kerberos import KerberosClient

            return Hdfs(
                KerberosClient(endpoints.webhdfs_url, mutual_auth="REQUIRED", proxy=user, timeout=timeout)
            )
        from hdfs import InsecureClient

        return Hdfs(InsecureClient(endpoints.webhdfs_url, user=user, timeout=timeout))

    def metastore() -> Metastore:
        return Metastore(hms_client(endpoints.metastore_uri, timeout, kerberos=topology.kerberos))

    return ClusterAccess(name, endpoints.zookeeper_hosts, hdfs, metastore)


def hms_client(uri: str, timeout: float, *, kerberos: bool = False) -> Any:
    """An hmsclient for ``thrift://host:port`` whose socket gives up after ``timeout`` seconds
    (with ``kerberos``, over SASL GSSAPI to ``hive/<host>``, the exchange required to complete)."""
    from hmsclient.hmsclient import HMSClient
    from thrift.protocol import TBinaryProtocol
    from thrift.transport import TSocket, TTransport

    host, port = uri.removeprefix("thrift://").rsplit(":", 1)
    sock = TSocket.TSocket(host, int(port))
    sock.setTimeout(timeout * 1000)
    if kerberos:
        from pyhive.hive import get_installed_sasl

        from tandem.hive_hook import verified_transport

        transport = verified_transport(
            lambda: get_installed_sasl(host=host, sasl_auth="GSSAPI", service="hive"),
            f"hive/{host}",
            sock,
            f"metastore at {uri}",
        )
        return HMSClient(iprot=TBinaryProtocol.TBinaryProtocol(transport))
    return HMSClient(iprot=TBinaryProtocol.TBinaryProtocol(TTransport.TBufferedTransport(sock)))
