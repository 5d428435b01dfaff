"""`tandem status` per pair: roles, epochs, liveness, and each business's newest restore point."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from tandem import catalog
from tandem.policy import load_topology
from tandem.runtime import Clusters
from tandem.status import format_pairs, pairs_report
from tandem_dev.embedded.access import embedded_access
from tandem_dev.embedded.manager import RunningClusters

pytestmark = pytest.mark.integration

PROJECT = Path(__file__).resolve().parents[2]


def include_with(tmp_path: Path, business: str) -> Path:
    include = tmp_path / "include"
    (include / "policies").mkdir(parents=True)
    shutil.copy(PROJECT / "include" / "clusters.yaml", include / "clusters.yaml")
    policy = {
        "business": business,
        "description": "status test",
        "pair": "main",
        "schedule": {"start": "2026-11-20T13:00:00Z", "every": "1h"},
        "protection_group": [{"hdfs": f"/data/{business}"}],
        "copy": {"mode": "pull", "engine": "webhdfs", "parallelism": 2},
        "consistency": {"max_skew": "1s", "max_clock_skew": "5s"},
        "retention": {"keep_last": 3, "max_age": "7d"},
        "user_data": False,
    }
    (include / "policies" / f"{business}.yaml").write_text(yaml.safe_dump(policy))
    return include


def manifest(business: str, point: datetime, source: str, target: str) -> catalog.Manifest:
    stamp = point.strftime("%Y-%m-%dT%H:%M:%SZ")
    return catalog.Manifest(
        business=business,
        point=stamp,
        pair="main",
        source=source,
        target=target,
        snapshot_name=f"tandem-{business}-{point:%Y%m%dT%H%M%SZ}",
        mode="full",
        datasets=[],
        snapshot_times={f"/data/{business}": stamp},
        skew_ms=0,
        files_copied=0,
        bytes_copied=0,
        duration_s=0.1,
    )


def test_pairs_report_shows_roles_liveness_and_the_newest_point_on_either_cluster(
    embedded: RunningClusters, airflow_conns: dict[str, str], tmp_path: Path
) -> None:
    business = f"status_{datetime.now(UTC):%H%M%S%f}"
    include = include_with(tmp_path, business)
    now = datetime.now(UTC).replace(microsecond=0)
    older, newer = now - timedelta(hours=2), now - timedelta(minutes=5)
    standby = embedded_access(embedded, "standby").hdfs()
    primary = embedded_access(embedded, "primary").hdfs()
    clusters_from_connections = Clusters(load_topology(include / "clusters.yaml"))
    before = pairs_report(clusters_from_connections, include, now)["main"]
    assert before["businesses"][business] == {"point": None, "problems": []}
    catalog.publish(standby, manifest(business, older, "primary", "standby"))
    # after a failover, points are published on the old primary: the newest one wins
    catalog.publish(primary, manifest(business, newer, "standby", "primary"))
    try:
        report = pairs_report(clusters_from_connections, include, now)["main"]
    finally:
        catalog.remove(standby, business, older)
        catalog.remove(primary, business, newer)
    clusters = report["clusters"]
    assert {n: (c["role"], c["liveness"]) for n, c in clusters.items()} == {
        "primary": ("active", "alive"),
        "standby": ("standby", "alive"),
    }
    assert all(isinstance(c["epoch"], int) for c in clusters.values())
    assert report["health"]["kind"] == "healthy"
    assert report["clients"] == {"target": "primary", "reason": "primary is active and alive: staying"}
    point = report["businesses"][business]
    assert (point["point"], point["on"], point["source"], point["target"]) == (
        newer.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "primary",
        "standby",
        "primary",
    )
    assert point["age_s"] == 300.0
    text = "\n".join(format_pairs({"main": report}))
    assert "pair main: primary (active, alive, epoch" in text
    assert f"{business}: newest restore point {point['point']} (5 min old), standby -> primary, full" in text


def test_status_json_has_the_pairs(embedded: RunningClusters, tmp_path: Path) -> None:
    include = include_with(tmp_path, "status_cli")
    done = subprocess.run(
        [sys.executable, "-m", "tandem.cli", "status", "--json", "--home", str(embedded.home)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "TANDEM_INCLUDE": str(include)},
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    pair = report["pairs"]["main"]
    assert set(pair["clusters"]) == {"primary", "standby"}
    assert pair["businesses"] == {"status_cli": {"point": None, "problems": []}}
    assert report["reachable"] is True


def test_status_of_clusters_that_do_not_answer_is_one_line_each(tmp_path: Path) -> None:
    include = include_with(tmp_path, "status_down")
    dead = {
        f"AIRFLOW_CONN_{kind.upper()}_{name.upper()}": json.dumps(
            {"conn_type": conn_type, "host": "127.0.0.1", "port": 1, "login": "hdfs"}
        )
        for name in ("primary", "standby")
        for kind, conn_type in (
            ("webhdfs", "webhdfs"),
            ("metastore", "hive_metastore"),
            ("zookeeper", "zookeeper"),
        )
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "TANDEM_HOME"))}
    done = subprocess.run(
        [sys.executable, "-m", "tandem.cli", "status"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
        env={**env, **dead, "TANDEM_INCLUDE": str(include)},
    )
    assert done.returncode == 1
    assert done.stdout.splitlines()[0].startswith("pair main: primary (unreachable: ZooKeeper 127.0.0.1:1")
    # the clusters that would hold its points did not answer: unknown, not "none"
    assert "status_down: restore points unknown, not read (primary: " in done.stdout
    assert len(done.stderr.splitlines()) <= 2, done.stderr  # no retry chatter from the clients
