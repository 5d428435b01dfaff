"""Real Airflow for end-to-end tests: one AIRFLOW_HOME (SQLite) per test process, pointed at
the project's DAG folder and at a private include/ directory whose policies each test writes.

Mark e2e tests with ``pytest.mark.xdist_group("airflow")`` so they share one worker (and one
metadata DB) under ``--dist loadgroup``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tandem_dev.embedded import manager
from tandem_dev.embedded.manager import RunningClusters
from tandem_dev.local_airflow import LocalAirflow

PROJECT = Path(__file__).resolve().parents[2]

# A cluster whose connections lead nowhere: pairs using it see an unreachable primary.
GHOST_ENV = {
    "AIRFLOW_CONN_WEBHDFS_GHOST": '{"conn_type": "webhdfs", "host": "127.0.0.1", "port": 1, "login": "root"}',
    "AIRFLOW_CONN_METASTORE_GHOST": '{"conn_type": "hive_metastore", "host": "127.0.0.1", "port": 1}',
    "AIRFLOW_CONN_ZOOKEEPER_GHOST": '{"conn_type": "zookeeper", "host": "127.0.0.1", "port": 1}',
}


@pytest.fixture(scope="session")
def include_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """clusters.yaml (the project's, plus a ghost cluster and pair) and an empty policies/."""
    root = tmp_path_factory.mktemp("include")
    topology = yaml.safe_load((PROJECT / "include" / "clusters.yaml").read_text())
    topology["clusters"]["ghost"] = {
        "nameservice": "hdfs://ghost",
        "webhdfs_conn_id": "webhdfs_ghost",
        "metastore_conn_id": "metastore_ghost",
        "zookeeper_conn_id": "zookeeper_ghost",
    }
    topology["pairs"]["ghostpair"] = {"primary": "ghost", "standby": "standby"}
    (root / "clusters.yaml").write_text(yaml.safe_dump(topology))
    (root / "policies").mkdir()
    return root


@pytest.fixture(scope="session")
def local_airflow(
    embedded: RunningClusters, include_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> LocalAirflow:
    env = {**manager.connection_env(embedded), **GHOST_ENV}
    airflow = LocalAirflow(
        home=tmp_path_factory.mktemp("airflow-home"),
        project=PROJECT,
        conn_env=tuple(sorted(env.items())),
        extra_env=(
            ("TANDEM_INCLUDE", str(include_dir)),
            ("TANDEM_TASK_RETRIES", "0"),
            ("TANDEM_HOME", str(embedded.home)),
        ),
    )
    airflow.ensure_db()
    return airflow


@pytest.fixture
def cluster_env(embedded: RunningClusters, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The same connections in this process, for checks made directly against the clusters."""
    env = {**manager.connection_env(embedded), **GHOST_ENV}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield env


def write_policy(include: Path, business: str, datasets: list[dict[str, str]], **overrides: Any) -> Path:
    """A policy file for one test's own business (so tests never share data)."""
    policy: dict[str, Any] = {
        "business": business,
        "description": f"e2e test business {business}",
        "pair": "main",
        "schedule": {"start": "2026-11-20T13:00:00Z", "every": "1h"},
        "protection_group": datasets,
        "copy": {"mode": "pull", "engine": "webhdfs", "parallelism": 4},
        "consistency": {"max_skew": "1s", "max_clock_skew": "5s"},
        "retention": {"keep_last": 3, "max_age": "30d"},
        "user_data": True,
    }
    policy.update(overrides)
    path = include / "policies" / f"{business}.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return path
