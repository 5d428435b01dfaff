"""Where the embedded clusters of a home listen: :data:`CLUSTERS` (their names and first roles)
and, once they run, :class:`RunningClusters`, their endpoints by cluster name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

LOOPBACK = "127.0.0.1"


# name -> role written on the first start only; later starts keep what ZooKeeper holds.
# primary2 is in no pair: a second primary for the write gateway.
CLUSTERS: tuple[tuple[str, Literal["active", "standby"]], ...] = (
    ("primary", "active"),
    ("standby", "standby"),
    ("primary2", "active"),
)


CONNECTION_KINDS = ("webhdfs", "metastore", "zookeeper")


@dataclass(frozen=True)
class ClusterEndpoints:
    """How to reach one embedded cluster."""

    name: str
    webhdfs_url: str
    data_port: int
    metastore_uri: str
    zookeeper_hosts: str

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def webhdfs_port(self) -> int:
        return int(self.webhdfs_url.rsplit(":", 1)[1])

    @property
    def metastore_port(self) -> int:
        return int(self.metastore_uri.rsplit(":", 1)[1])

    @property
    def zookeeper_port(self) -> int:
        return int(self.zookeeper_hosts.rsplit(":", 1)[1])

    def to_json(self) -> dict[str, str]:
        return {
            "webhdfs": self.webhdfs_url,
            "metastore": self.metastore_uri,
            "zookeeper": self.zookeeper_hosts,
        }


@dataclass(frozen=True)
class RunningClusters:
    """The running embedded clusters of one home, by cluster name."""

    home: Path
    clusters: tuple[ClusterEndpoints, ...]
    kerberos: bool = False  # every server demands Kerberos (the home's realm, `tandem up --kerberos`)

    def __getitem__(self, name: str) -> ClusterEndpoints:
        for cluster in self.clusters:
            if cluster.name == name:
                return cluster
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(cluster.name for cluster in self.clusters)

    @property
    def primary(self) -> ClusterEndpoints:
        return self["primary"]

    @property
    def standby(self) -> ClusterEndpoints:
        return self["standby"]

    def to_json(self) -> dict[str, Any]:
        """The ``tandem up --json`` document."""
        found: dict[str, Any] = {
            "home": str(self.home),
            "clusters": {c.name: c.to_json() for c in self.clusters},
        }
        if self.kerberos:
            from tandem_dev.kerberos import HomeRealm

            realm = HomeRealm(self.home)
            found["kerberos"] = {"realm": realm.kdc.realm, "kdc": f"127.0.0.1:{realm.kdc.port}"}
        return found
