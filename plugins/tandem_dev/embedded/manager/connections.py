"""How the product reaches the embedded clusters: the Airflow connections of
``include/clusters.yaml`` pointed at the running ports, as ``AIRFLOW_CONN_*`` variables, in
``<home>/environment.json``, or in an existing Airflow DB.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tandem import environment
from tandem.environment import project_root
from tandem.errors import ConfigError
from tandem_dev.embedded.cluster import SUPERUSER
from tandem_dev.embedded.manager.endpoints import CLUSTERS, CONNECTION_KINDS, LOOPBACK, RunningClusters


def cluster_conn_ids(clusters_file: Path | None = None) -> dict[str, dict[str, str]]:
    """Connection ids per cluster and kind (``webhdfs``, ``metastore``, ``zookeeper``).

    Read from ``include/clusters.yaml`` (of the project root unless ``clusters_file`` is given);
    a cluster or id the file does not name falls back to ``<kind>_<cluster>``.
    """
    import yaml

    path = clusters_file or project_root() / "include" / "clusters.yaml"
    declared: Mapping[str, Any] = {}
    if path.is_file():
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(str(path), "(file)", f"not valid YAML: {exc}") from None
        clusters = doc.get("clusters", {}) if isinstance(doc, dict) else {}
        declared = clusters if isinstance(clusters, dict) else {}
    result: dict[str, dict[str, str]] = {}
    for name, _role in CLUSTERS:
        entry = declared.get(name) or {}
        ids: dict[str, str] = {}
        for kind in CONNECTION_KINDS:
            value = entry.get(f"{kind}_conn_id", f"{kind}_{name}") if isinstance(entry, dict) else None
            if not isinstance(value, str) or not value:
                raise ConfigError(str(path), f"clusters.{name}.{kind}_conn_id", "must be a non-empty string")
            ids[kind] = value
        result[name] = ids
    return result


def embedded_connections(
    topology: RunningClusters, clusters_file: Path | None = None
) -> dict[str, dict[str, Any]]:
    """Airflow connections (conn_id -> fields) reaching the embedded clusters of ``topology``."""
    ids = cluster_conn_ids(clusters_file)
    conns: dict[str, dict[str, Any]] = {}
    for cluster in topology.clusters:
        cid = ids.get(cluster.name)
        if cid is None:
            continue
        conns[cid["webhdfs"]] = {
            "conn_type": "webhdfs",
            "host": LOOPBACK,
            "port": cluster.webhdfs_port,
            "login": SUPERUSER,
        }
        conns[cid["metastore"]] = {
            "conn_type": "hive_metastore",
            "host": LOOPBACK,
            "port": cluster.metastore_port,
        }
        if topology.kerberos:
            conns[cid["metastore"]]["extra"] = {"auth_mechanism": "GSSAPI", "kerberos_service_name": "hive"}
        conns[cid["zookeeper"]] = {"conn_type": "zookeeper", "host": LOOPBACK, "port": cluster.zookeeper_port}
    return conns


def connection_env(topology: RunningClusters, clusters_file: Path | None = None) -> dict[str, str]:
    """``AIRFLOW_CONN_<ID>`` environment variables (Airflow's JSON form) for the embedded clusters."""
    return {
        f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(fields)
        for conn_id, fields in embedded_connections(topology, clusters_file).items()
    }


def publish_environment(topology: RunningClusters) -> Path:
    """``<home>/environment.json``: the connections (and the local Airflow) through which the
    product's commands reach these clusters (tandem.environment); removed by :func:`down`."""
    from tandem_dev.local_airflow import LocalAirflow

    airflow = LocalAirflow(topology.home / "airflow", project_root()).overrides()
    keep = ("AIRFLOW_HOME", "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CORE__LOAD_EXAMPLES")
    variables = {**{k: airflow[k] for k in keep}, **connection_env(topology)}
    if topology.kerberos:
        from tandem_dev.kerberos import HomeRealm

        variables.update(HomeRealm(topology.home).env())
    return environment.write(topology.home, variables)


def sync_embedded_connections(topology: RunningClusters) -> str | None:
    """After ``tandem up``: point an existing Airflow DB's embedded connections at the ports
    actually bound (nothing when no DB exists yet: the environment file serves then)."""
    from tandem import settings

    return settings.point_connections(embedded_connections(topology), project_root() / settings.DEFAULT_FILE)
