"""The backup as a step graph built from a policy, and the payloads its steps hand each other.

Pure: no cluster, no Airflow. The DAG factory and ``run_once`` both follow this graph, and every
value a step returns must come back equal from its JSON (XCom) form.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tandem import catalog
from tandem.backup import inputs_of, payloads
from tandem.backup.graph import backup_graph
from tandem.backup.payloads import (
    Copied,
    DatasetCopied,
    Direction,
    PathCopied,
    Retained,
    StandbySnapshot,
    Started,
    Taken,
)
from tandem.components import ResolvedDataset
from tandem.policy import Policy, Topology, load_policy, load_topology
from tests.unit.test_dags import BACKUP_TASKS

REPO = Path(__file__).resolve().parents[2]
INSTANT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # a value only: nothing here reads the clock


@pytest.fixture
def billing() -> tuple[Policy, Topology]:
    topology = load_topology(REPO / "include" / "clusters.yaml")
    return load_policy(REPO / "include" / "policies" / "billing.yaml", topology), topology


def test_the_graph_has_the_contract_task_ids_in_order(billing: tuple[Policy, Topology]) -> None:
    graph = backup_graph(*billing)
    assert [s.task_id for s in graph.steps] == BACKUP_TASKS  # the contract (DESIGN.md)
    assert graph.step("snapshot.take").group == "snapshot" and graph.step("snapshot.take").local_id == "take"
    assert graph.publish.task_id == "publish_restore_point"


def test_edges_keep_the_metastore_after_every_copy_and_publish_last(billing: tuple[Policy, Topology]) -> None:
    graph = backup_graph(*billing)
    up = {s.task_id: set(s.upstream) for s in graph.steps}
    assert up["preflight"] == set()
    assert up["snapshot.take"] == {"preflight", *(f"snapshot.resolve_{c}" for c in graph.components)}
    assert up["copy_hive"] == {"preflight", "snapshot.resolve_hive", "snapshot.take"}
    assert {"copy_hdfs", "copy_hive", "copy_sparksql"} <= up["register_metadata"]
    assert "register_metadata" in up["snapshot_standby"]
    assert "snapshot_standby" in up["sync_user_data"]
    assert {"copy_hdfs", "copy_hive", "copy_sparksql", "sync_user_data"} <= up["publish_restore_point"]
    assert up["apply_retention"] == {"preflight", "publish_restore_point"}
    # every edge points backwards: the declared order is a valid run order
    seen: set[str] = set()
    for step in graph.steps:
        assert set(step.upstream) <= seen, step.task_id
        seen.add(step.task_id)


def test_only_the_policys_components_become_steps(tmp_path: Path) -> None:
    topology = load_topology(REPO / "include" / "clusters.yaml")
    text = (REPO / "include" / "policies" / "billing.yaml").read_text()
    path = tmp_path / "logs.yaml"
    kept = [line for line in text.splitlines() if "hive:" not in line and "sparksql:" not in line]
    path.write_text("\n".join(kept).replace("business: billing", "business: logs") + "\n")
    graph = backup_graph(load_policy(path, topology), topology)
    assert graph.components == ("hdfs",)
    assert [s.task_id for s in graph.steps if s.kind in ("resolve", "copy")] == [
        "snapshot.resolve_hdfs",
        "copy_hdfs",
    ]
    assert graph.step("snapshot.take").inputs[1].steps == ("snapshot.resolve_hdfs",)


def _values() -> dict[str, Any]:
    started = Started(
        Direction("primary", "standby", "primary is active"),
        {"primary": 3, "standby": None},
        {"primary": {"namenode_s": 0.1, "zookeeper_s": None}},
        INSTANT,
    )
    taken = Taken(
        "tandem-billing-20260301T120000Z",
        {"/data/billing": (("/data/billing/details", "details"), ("billing.customers", "customers"))},
        {"/data/billing": "2026-03-01T12:00:00.004Z"},
        4,
        "/.tandem/restore-points/billing/x/metadata.json",
    )
    copied = Copied(
        "hdfs",
        "2026-03-01T11:00:00Z",
        (
            DatasetCopied(
                "hdfs",
                "/data/billing/details",
                (
                    PathCopied("/data/billing", "details", "incremental", "diff", 2, 200),
                    PathCopied("/data/other", "", "full", "no base", 1, 5, ("/x",)),
                ),
            ),
        ),
        {"/data/billing": {"details/a": [200, 1_700_000_000_000, "MD5-of-0MD5-of-512CRC32C:ab"]}},
    )
    manifest = catalog.Manifest(
        business="billing",
        point="2026-03-01T12:00:00Z",
        pair="main",
        source="primary",
        target="standby",
        snapshot_name=taken.snapshot,
        mode="full",
        datasets=[],
        snapshot_times={},
        skew_ms=4,
        files_copied=0,
        bytes_copied=0,
        duration_s=1.0,
        user_data={},
        verified=True,
    )
    return {
        "preflight": started,
        "resolve": [ResolvedDataset("hive", "billing.customers", ("/warehouse/billing.db/customers",))],
        "take": taken,
        "copy": copied,
        "register_metadata": {"tables_created": 1},
        "snapshot_standby": StandbySnapshot(taken.snapshot, ("/data/billing",), {"/data/billing": "t"}),
        "sync_user_data": {"owners": 2},
        "publish_restore_point": manifest,
        "apply_retention": Retained(3, ("2026-02-01T00:00:00Z",)),
    }


@pytest.mark.parametrize("kind", list(_values()))
def test_every_payload_comes_back_equal_from_its_xcom_json(kind: str) -> None:
    value = _values()[kind]
    assert payloads.decode(kind, json.loads(json.dumps(payloads.encode(kind, value)))) == value


def test_a_dataset_copy_sums_its_paths_and_is_incremental_only_when_every_path_is() -> None:
    copied: Copied = _values()["copy"]
    [dataset] = copied.datasets
    assert (dataset.files_copied, dataset.bytes_copied, dataset.mode) == (3, 205, "full")
    assert dataset.roots == ["/data/billing", "/data/other"] and dataset.quarantined == ["/x"]
    encoded = payloads.encode("copy", copied)["datasets"][0]
    assert {k: encoded[k] for k in ("files_copied", "bytes_copied", "mode")} == {
        "files_copied": 3,
        "bytes_copied": 205,
        "mode": "full",
    }


def test_a_steps_inputs_are_decoded_from_what_the_steps_before_it_returned(
    billing: tuple[Policy, Topology],
) -> None:
    graph = backup_graph(*billing)
    values = _values()
    returned = {
        "preflight": payloads.encode("preflight", values["preflight"]),
        "snapshot.take": payloads.encode("take", values["take"]),
        **{f"copy_{c}": payloads.encode("copy", values["copy"]) for c in graph.components},
        "sync_user_data": values["sync_user_data"],
    }
    inputs = inputs_of(graph.publish, graph, returned)
    assert inputs["started"] == values["preflight"] and inputs["taken"] == values["take"]
    assert inputs["copies"] == [values["copy"]] * len(graph.components)
    assert inputs["user_data"] == {"owners": 2}
