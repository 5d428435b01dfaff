"""The DAG folder as Airflow parses it: no import errors, contract task ids, no network."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

PROJECT = Path(__file__).resolve().parents[2]
BACKUP_TASKS = [
    "preflight",
    "snapshot.resolve_hdfs",
    "snapshot.resolve_hive",
    "snapshot.resolve_sparksql",
    "snapshot.take",
    "copy_hdfs",
    "copy_hive",
    "copy_sparksql",
    "register_metadata",
    "snapshot_standby",
    "sync_user_data",
    "publish_restore_point",
    "apply_retention",
]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any socket connection during parsing fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network call during DAG parsing: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def parse(include: Path, monkeypatch: pytest.MonkeyPatch) -> DagBag:
    monkeypatch.setenv("TANDEM_INCLUDE", str(include))
    return DagBag(dag_folder=str(PROJECT / "dags"))


def test_the_project_dag_folder_loads_without_errors(no_network, monkeypatch):
    bag = parse(PROJECT / "include", monkeypatch)
    assert bag.import_errors == {}
    dag = bag.dags["tandem_backup__billing"]
    assert [t.task_id for t in dag.tasks] == BACKUP_TASKS
    assert "billing.customers" in (dag.doc_md or "")  # the effective policy is shown
    assert dag.timetable.summary.startswith("every 1:00:00 from 2026-11-20T13:00:00")
    assert dag.max_active_runs == 1
    publish = dag.get_task("publish_restore_point")
    assert [o.uri.rstrip("/") for o in publish.outlets] == ["tandem://billing"]  # Airflow appends "/"
    # the target's metastore changes only once every copy succeeded, before the standby snapshot
    assert {"copy_hdfs", "copy_hive", "copy_sparksql"} <= dag.get_task("register_metadata").upstream_task_ids
    assert "register_metadata" in dag.get_task("snapshot_standby").upstream_task_ids


def test_a_bad_policy_is_its_own_import_error_and_the_others_load(no_network, monkeypatch, tmp_path):
    include = tmp_path / "include"
    shutil.copytree(PROJECT / "include", include)
    (include / "policies" / "ledger.yaml").write_text(
        "business: ledger\npair: nowhere\nschedule: {start: '2026-11-20T13:00:00Z', every: 1 hour}\n"
        "protection_group: [{hive: ledger}]\n"
    )
    bag = parse(include, monkeypatch)
    assert "tandem_backup__billing" in bag.dags
    assert "tandem_backup__ledger" not in bag.dags
    [message] = bag.import_errors.values()
    policy_file = include / "policies" / "ledger.yaml"
    assert f"{policy_file}: pair: pair 'nowhere' is not defined" in message
    assert f"{policy_file}: schedule.every:" in message
    assert f"{policy_file}: protection_group[0].hive:" in message


def test_a_small_hostile_policy_is_its_own_bounded_import_error(no_network, monkeypatch, tmp_path):
    """A 3 KB file whose values are YAML aliases of aliases (a million leaves each): its errors
    show each value cut short, so the folder parses at once and the others load (before, each
    error spelled the whole value out and the DAG file ran past Airflow's import timeout,
    taking every business's DAG with it)."""
    include = tmp_path / "include"
    shutil.copytree(PROJECT / "include", include)
    anchors = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    anchors += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 7)]
    hostile = include / "policies" / "zz.yaml"
    hostile.write_text(
        "business: zz\npair: main\nschedule: {start: '2026-11-20T13:00:00Z', every: 1h}\n"
        "protection_group: [{hdfs: /data/zz}]\nx-anchors:\n"
        + "\n".join(f"  {line}" for line in anchors)
        + "\ntenant_dirs: ["
        + ", ".join(["*a5"] * 300)
        + "]\n"
    )
    assert hostile.stat().st_size < 4096
    bag = parse(include, monkeypatch)
    assert "tandem_backup__billing" in bag.dags and "tandem_restore" in bag.dags
    [message] = bag.import_errors.values()
    assert f"{hostile}: tenant_dirs[0]:" in message and len(message) < 100_000


def test_a_bad_gateway_plan_is_an_import_error_and_the_others_load(no_network, monkeypatch, tmp_path):
    """A plan whose replay DAG is gone must not go unnoticed (its pending data would never be
    replayed): its errors are an import error, as a bad policy's are."""
    include = tmp_path / "include"
    shutil.copytree(PROJECT / "include", include)
    plan = include / "gateway" / "events.yaml"
    plan.write_text(plan.read_text().replace("replay: {every: 5m}", "replay: {every: 5 minutes}"))
    bag = parse(include, monkeypatch)
    assert "tandem_gateway_replay__events" not in bag.dags
    assert "tandem_backup__billing" in bag.dags
    [message] = [m for f, m in bag.import_errors.items() if f.endswith("tandem_gateway.py")]
    assert f"{plan}: replay.every:" in message


def test_the_plugin_registers_the_timetable():
    from airflow import plugins_manager

    from tandem.timetable import PolicyTimetable

    plugins_manager.ensure_plugins_loaded()
    assert PolicyTimetable in plugins_manager.get_timetables_plugins().values()


def test_copies_run_in_the_pairs_pool_when_it_has_one(no_network, monkeypatch, tmp_path):
    include = tmp_path / "include"
    shutil.copytree(PROJECT / "include", include)
    clusters = include / "clusters.yaml"
    clusters.write_text(
        clusters.read_text().replace(
            "main: {primary: primary, standby: standby}",
            "main: {primary: primary, standby: standby, pool: tandem_main}",
        )
    )
    policy = include / "policies" / "billing.yaml"
    policy.write_text(
        policy.read_text().replace("parallelism: 8}", "parallelism: 8, max_bandwidth: 100MB/s}")
    )
    bag = parse(include, monkeypatch)
    assert bag.import_errors == {}
    dag = bag.dags["tandem_backup__billing"]
    assert {dag.get_task(f"copy_{c}").pool for c in ("hdfs", "hive", "sparksql")} == {"tandem_main"}
    assert dag.get_task("preflight").pool == "default_pool"
    assert "max_bandwidth: 100MB/s" in (dag.doc_md or "")


def test_promotion_is_asked_of_a_person_and_never_defaults(no_network, monkeypatch):
    from airflow.providers.standard.operators.hitl import HITLOperator

    from tandem.dags.failover import incident_run_id

    bag = parse(PROJECT / "include", monkeypatch)
    promote = bag.dags["tandem_promote__main"]
    approval = promote.get_task("approval")
    assert isinstance(approval, HITLOperator)
    assert approval.options == ["Promote primary", "Promote standby", "Do not promote"]
    assert approval.defaults is None and approval.retries == 0  # a timeout never promotes
    assert "confirmation" in approval.params
    # a run with a typed confirmation skips the question; promote runs after either path
    assert promote.get_task("promote").upstream_task_ids == {"route", "approval"}
    assert promote.get_task("promote").trigger_rule == "none_failed_min_one_success"
    watch = bag.dags["tandem_failover_watch__main"]
    ask = watch.get_task("ask_promotion")
    assert ask.trigger_dag_id == "tandem_promote__main" and ask.skip_when_already_exists
    assert ask.upstream_task_ids == {"incident"}
    # one run id per incident, safe in a URL path
    assert incident_run_id("failed:primary:3") == "incident__failed:primary:3"
    assert incident_run_id("failed/primary x") == "incident__failed_primary_x"
