"""``tandem_gateway_replay__<plan>`` run by real Airflow: async writes made through a gateway
whose own worker is off are backed up by the DAG, and a second run finds nothing to do."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from tandem.policy import load_topology
from tandem.runtime import Clusters
from tandem_dev.local_airflow import LocalAirflow
from tests.instants import recent_hour

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("airflow"), pytest.mark.timeout(600)]

TOKEN = "e2e-gateway-token"


def _plan(include: Path, name: str) -> None:
    (include / "gateway").mkdir(exist_ok=True)
    doc = {
        "plan": name,
        "description": "e2e replay DAG",
        "roots": [f"/{name}"],
        "primaries": ["primary", "primary2"],
        "target": {"cluster": "standby", "root": f"/backup/{name}"},
        "mode": "async",
        "async": {"interval": "1h"},
    }
    (include / "gateway" / f"{name}.yaml").write_text(yaml.safe_dump(doc))


def test_replay_dag_backs_up_pending_async_writes(
    local_airflow: LocalAirflow, include_dir: Path, cluster_env: dict[str, str]
) -> None:
    plan = "gwdag"
    _plan(include_dir, plan)
    env = {
        **os.environ,
        **cluster_env,
        "TANDEM_INCLUDE": str(include_dir),
        f"AIRFLOW_VAR_TANDEM_GATEWAY_TOKENS__{plan.upper()}": json.dumps(
            {hashlib.sha256(TOKEN.encode()).hexdigest(): {"user": "etl"}}
        ),
    }
    env.pop("TANDEM_HOME", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "tandem.cli", "gateway", "serve", plan, "--json", "--no-worker"],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = json.loads(server.stdout.readline())["url"]
        written = {}
        for i in range(12):
            path = f"/{plan}/day=1/event-{i:02d}.json"
            body = json.dumps({"n": i}).encode() * (i + 1)
            r = requests.put(
                f"{url}/webhdfs/v1{path}?op=CREATE&data=true&delegation={TOKEN}", data=body, timeout=30
            )
            assert r.status_code == 201, r.text
            assert r.headers["X-Tandem-Backup"] == "pending"  # async: backed up later
            written[path] = body
    finally:
        server.kill()
        server.wait()

    standby = Clusters(load_topology(include_dir / "clusters.yaml")).hdfs("standby")

    def on_standby(path: str) -> bytes | None:
        return (
            standby.read_bytes(f"/backup/{plan}{path}") if standby.status(f"/backup/{plan}{path}") else None
        )

    assert all(on_standby(p) is None for p in written), "async mode must not have backed up yet"
    result = local_airflow.dags_test(f"tandem_gateway_replay__{plan}", recent_hour(3))
    assert result.ok, result.output[-6000:]
    assert {p: on_standby(p) for p in written} == written
    assert "marks replayed" in result.output

    status = subprocess.run(
        [sys.executable, "-m", "tandem.cli", "gateway", "status", plan, "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(status.stdout)["degraded"] is False

    again = local_airflow.dags_test(f"tandem_gateway_replay__{plan}", recent_hour(2))
    assert again.ok, again.output[-6000:]
    assert {p: on_standby(p) for p in written} == written
