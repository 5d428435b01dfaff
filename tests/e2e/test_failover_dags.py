"""The failover DAGs run by real Airflow (`airflow dags test`, triggers inline) on real ZooKeepers.

The pair's ZooKeepers here are two servers of this module's own (the embedded clusters keep
their roles for the other tests): the Airflow connections of ``main``'s ZooKeepers point at them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from tandem.failover.state import CLUSTER_PATH, AliveHolder, ClusterRecord, Role
from tandem_dev.embedded.zookeeper import ZooKeeperServer
from tandem_dev.local_airflow import LocalAirflow, airflow_bin

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("airflow"), pytest.mark.timeout(600)]

NAMES = ("primary", "standby")
SINK_MODULE = """
import json, os

def record(alert):
    with open(os.environ["TANDEM_TEST_ALERT_SINK"], "a") as sink:
        sink.write(json.dumps(alert) + "\\n")
"""


class ZkClusters:
    """Two real ZooKeepers standing for the pair's clusters, with records and alive holders."""

    def __init__(self, base: Path) -> None:
        self.servers = {name: ZooKeeperServer(base / name) for name in NAMES}
        self.holders: dict[str, AliveHolder] = {}
        self.admin: dict[str, KazooClient] = {}

    def start(self) -> None:
        for name, server in self.servers.items():
            server.start()
            self.admin[name] = KazooClient(hosts=server.hosts)
            self.admin[name].start(timeout=10)

    def reset(self, roles: tuple[Role, Role] = ("active", "standby")) -> None:
        for name, role in zip(NAMES, roles, strict=True):
            data = ClusterRecord.new(name, role, 1).to_bytes()
            if self.admin[name].exists(CLUSTER_PATH):
                self.admin[name].set(CLUSTER_PATH, data)
            else:
                self.admin[name].create(CLUSTER_PATH, data, makepath=True)
            if name not in self.holders:
                self.holders[name] = AliveHolder(self.servers[name].hosts, name, b"", session_timeout=4.0)
                self.holders[name].start(timeout=10)

    def kill(self, name: str) -> None:
        self.holders.pop(name).stop()

    def record(self, name: str) -> ClusterRecord:
        return ClusterRecord.parse(self.admin[name].get(CLUSTER_PATH)[0])

    def conn_env(self) -> dict[str, str]:
        return {
            f"AIRFLOW_CONN_ZOOKEEPER_{name.upper()}": json.dumps(
                {"conn_type": "zookeeper", "host": "127.0.0.1", "port": server.port}
            )
            for name, server in self.servers.items()
        }

    def stop(self) -> None:
        for holder in self.holders.values():
            holder.stop()
        for client in self.admin.values():
            client.stop()
            client.close()
        for server in self.servers.values():
            server.stop()


@pytest.fixture(scope="module")
def zk_clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZkClusters]:
    clusters = ZkClusters(tmp_path_factory.mktemp("failover-zk"))
    clusters.start()
    yield clusters
    clusters.stop()


@pytest.fixture
def pair(zk_clusters: ZkClusters) -> ZkClusters:
    zk_clusters.reset()
    return zk_clusters


@pytest.fixture
def sink(tmp_path: Path) -> Path:
    (tmp_path / "alertsink.py").write_text(SINK_MODULE)
    return tmp_path / "alerts.jsonl"


@pytest.fixture
def airflow(local_airflow: LocalAirflow, pair: ZkClusters, sink: Path) -> LocalAirflow:
    env = dict(local_airflow.conn_env)
    env.update(pair.conn_env())
    python_path = os.pathsep.join(p for p in (str(sink.parent), os.environ.get("PYTHONPATH", "")) if p)
    extra = dict(local_airflow.extra_env)
    extra.update(
        {
            "TANDEM_ALERT_CALLBACK": "alertsink:record",
            "TANDEM_TEST_ALERT_SINK": str(sink),
            "PYTHONPATH": python_path,
        }
    )
    return dataclasses.replace(
        local_airflow, conn_env=tuple(sorted(env.items())), extra_env=tuple(extra.items())
    )


def alerts(sink: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in sink.read_text().splitlines()] if sink.exists() else []


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def variable(airflow: LocalAirflow, key: str) -> dict[str, object]:
    out = airflow.run(["variables", "get", key]).stdout.strip().splitlines()[-1]
    return json.loads(out)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- promotion


def test_promote_dag_refuses_a_wrong_confirmation(airflow: LocalAirflow, pair: ZkClusters) -> None:
    result = airflow.dags_test(
        "tandem_promote__main", now(), {"cluster": "standby", "confirmation": "stanby"}
    )
    assert result.state == "failed", result.output[-3000:]
    assert "the confirmation 'stanby' does not repeat the cluster name 'standby' exactly" in result.output
    assert (pair.record("primary").role, pair.record("standby").role) == ("active", "standby")


def test_promote_dag_refuses_a_dead_target(airflow: LocalAirflow, pair: ZkClusters) -> None:
    pair.kill("standby")
    result = airflow.dags_test(
        "tandem_promote__main", now(), {"cluster": "standby", "confirmation": "standby"}
    )
    assert result.state == "failed", result.output[-3000:]
    assert "standby is dead (no /tandem/alive)" in result.output
    assert pair.record("standby").role == "standby"


def test_promote_dag_rejects_a_cluster_outside_the_pair_by_its_param_schema(airflow: LocalAirflow) -> None:
    result = airflow.dags_test(
        "tandem_promote__main", now(), {"cluster": "elsewhere", "confirmation": "elsewhere"}
    )
    assert not result.ok
    assert "'elsewhere' is not one of ['primary', 'standby']" in result.output


def test_promote_dag_promotes_with_the_typed_confirmation(airflow: LocalAirflow, pair: ZkClusters) -> None:
    result = airflow.dags_test(
        "tandem_promote__main", now(), {"cluster": "standby", "confirmation": "standby"}
    )
    assert result.ok, result.failure_reason()
    assert (
        "promotion of standby: promoted: standby is now active (epoch 2); primary was set to standby first"
        in (result.output)
    )
    assert (pair.record("primary").role, pair.record("standby").role) == ("standby", "active")


# --------------------------------------------------------------------------- the watch


def test_watch_dag_alerts_with_how_to_promote_and_records_the_event(
    airflow: LocalAirflow, pair: ZkClusters, sink: Path
) -> None:
    pair.kill("primary")
    result = airflow.dags_test(
        "tandem_failover_watch__main", now(), {"baseline": "healthy:primary:1", "watched": "primary"}
    )
    assert result.ok, result.failure_reason()
    [alert] = alerts(sink)
    assert alert["subject"] == ("[tandem] pair main: primary, the active cluster, is dead (no /tandem/alive)")
    text = str(alert["text"])
    assert "standby is alive and can take over" in text
    assert (
        "open DAG tandem_promote__main, Trigger, set cluster = standby and type confirmation = standby"
        in text
    )
    assert '"conf": {"cluster": "standby", "confirmation": "standby"}' in text
    recorded = variable(airflow, "tandem_failover__main")
    assert (recorded["key"], recorded["watched"], recorded["alerted"]) == (
        "failed:primary:1",
        "primary",
        True,
    )


def _start_run(
    airflow: LocalAirflow, dag_id: str, conf: dict[str, object] | None
) -> tuple[subprocess.Popen[str], list[str]]:
    args = [str(airflow_bin()), "dags", "test", dag_id, now().isoformat()]
    if conf is not None:
        args += ["-c", json.dumps(conf)]
    proc = subprocess.Popen(
        args, env=airflow.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    return proc, lines


def _wait_line(lines: list[str], text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not any(text in line for line in lines):
        assert time.monotonic() < deadline, f"no {text!r} in:\n{''.join(lines)[-4000:]}"
        time.sleep(0.1)


def test_watch_dag_waits_deferred_then_fires_and_the_next_run_re_arms(
    airflow: LocalAirflow, pair: ZkClusters, sink: Path
) -> None:
    # run 1 waits (its trigger runs inline) until the primary dies
    proc, lines = _start_run(
        airflow, "tandem_failover_watch__main", {"baseline": "healthy:primary:1", "watched": "primary"}
    )
    try:
        _wait_line(lines, "watching pair main (baseline healthy:primary:1", 120)
        time.sleep(3.0)  # the trigger is running: nothing has changed, nothing fires
        assert proc.poll() is None and not alerts(sink)
        pair.kill("primary")
        assert proc.wait(120) == 0, "".join(lines)[-4000:]
    finally:
        proc.kill()
    assert len(alerts(sink)) == 1
    # run 2 takes its baseline from what run 1 recorded: the alerted failure does not fire again,
    # the promotion does: the new active cluster serves, but the dead one leaves it no standby
    proc, lines = _start_run(airflow, "tandem_failover_watch__main", None)
    try:
        _wait_line(lines, "watching pair main (baseline failed:primary:1, watched primary)", 120)
        time.sleep(3.0)
        assert proc.poll() is None
        from tandem.failover.promote import promote

        hosts = {name: server.hosts for name, server in pair.servers.items()}
        assert promote("standby", "standby", hosts).promoted
        assert proc.wait(120) == 0, "".join(lines)[-4000:]
    finally:
        proc.kill()
    [_failed, lost] = alerts(sink)
    assert "standby is active, but its standby primary is dead" in lost["subject"]
    assert "Do not promote" in lost["text"]
    assert variable(airflow, "tandem_failover__main")["key"] == "standby_lost:standby:2:primary"
