"""The plan preview (tandem.backup.preview) against the embedded clusters: it predicts what the
next run copies, registers and expires, and it changes nothing on either cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tandem import backup, catalog
from tandem.backup.preview import Preview, preview
from tandem.hdfs.client import Hdfs
from tandem.metastore import Metastore, TableRef
from tandem.policy import Policy, load_policy, load_topology
from tandem.runtime import Clusters
from tests.instants import iso, recent_hour
from tests.integration.hive_support import add_partition, ensure_partitioned_table

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

PROJECT = Path(__file__).resolve().parents[2]
BUSINESS = "previewed"
TOP = "/data/previewed/events"
TABLE = TableRef("previewed", "customers")
TABLE_DIR = "/warehouse/previewed.db/customers"
T0 = recent_hour(12)


@pytest.fixture
def clusters(airflow_conns: dict[str, str]) -> Clusters:
    return Clusters(load_topology(PROJECT / "include" / "clusters.yaml"))


def write_policy(tmp_path: Path, clusters: Clusters, **overrides: Any) -> Policy:
    path = tmp_path / f"{BUSINESS}.yaml"
    body = {
        "business": BUSINESS,
        "pair": "main",
        "schedule": {"start": iso(recent_hour(24)), "every": "1h"},
        "protection_group": [{"hdfs": TOP}, {"hive": str(TABLE)}],
        "consistency": {"max_skew": "1s", "max_clock_skew": "5s"},
        "retention": {"keep_last": 2, "max_age": "3650d"},
        "user_data": True,
        **overrides,
    }
    path.write_text(yaml.safe_dump(body))
    return load_policy(path, clusters.topology)


def add_batch(
    hdfs: Hdfs, metastore: Metastore, nameservice: str, table: Any, batch: str, data: bytes
) -> None:
    part_dir = f"{TABLE_DIR}/batch={batch}"
    hdfs.write(f"{part_dir}/part-0", data)
    add_partition(metastore, table, batch, nameservice + part_dir)


def state(clusters: Clusters) -> str:
    """Everything a preview could change, on both clusters: trees with lengths, modification
    times, owners and permissions, snapshots and snapshottable roots, the catalog, the standby's
    metastore."""
    seen: dict[str, Any] = {}
    for name in ("primary", "standby"):
        hdfs = clusters.hdfs(name)
        for top in (TOP, TABLE_DIR, f"/.tandem/restore-points/{BUSINESS}"):
            if hdfs.status(top) is None:
                seen[f"{name}:{top}"] = None
                continue
            seen[f"{name}:{top}"] = sorted(
                (e.relpath, e.status.length, e.status.modification_time, e.status.owner, e.status.permission)
                for e in hdfs.walk(top)
            )
        seen[f"{name}:snapshottable"] = sorted(s.path for s in hdfs.snapshottable_dirs())
        for top in (TOP, TABLE_DIR):
            status = hdfs.status(top)
            seen[f"{name}:snapshots:{top}"] = (
                sorted(s.name for s in hdfs.snapshots(top)) if status and status.snapshot_enabled else None
            )
    standby = clusters.metastore("standby")
    table = standby.get_table(TABLE)
    seen["standby:table"] = (
        None if table is None else sorted(tuple(p.values) for p in standby.get_partitions(TABLE))
    )
    return json.dumps(seen, sort_keys=True, default=str)


def run_at(policy: Policy, clusters: Clusters, hours: int) -> dict[str, Any]:
    return backup.run_once(backup.Run(policy, clusters.topology, T0 + timedelta(hours=hours)), clusters)


def look(policy: Policy, clusters: Clusters, hours: int) -> Preview:
    before = state(clusters)
    found = preview(backup.Run(policy, clusters.topology, T0 + timedelta(hours=hours)), clusters)
    assert state(clusters) == before, "the preview changed a cluster"
    assert found.to_json()["changes_nothing"] is True
    return found


def test_preview_predicts_each_run_and_changes_nothing(clusters: Clusters, tmp_path: Path) -> None:
    src = clusters.hdfs("primary")
    nameservice = clusters.spec("primary").nameservice
    metastore = clusters.metastore("primary")
    policy = write_policy(tmp_path, clusters)
    for i in range(5):
        src.write(f"{TOP}/day-{i % 2}/event-{i}.json", b"e" * (100 + i))
    table = ensure_partitioned_table(metastore, TABLE, TABLE_DIR, nameservice)
    add_batch(src, metastore, nameservice, table, "a", b"1,2,3")
    add_batch(src, metastore, nameservice, table, "b", b"4,5")

    first = look(policy, clusters, 0)
    assert (first.source, first.target, first.blocked, first.base_point) == ("primary", "standby", None, None)
    assert first.mode == "full"
    assert {c.reason for c in first.copies} == {"no published point to start from"}
    assert sorted(r["root"] for r in first.roots) == sorted([TABLE_DIR, TOP])
    assert all(r["make_snapshottable"] for r in first.roots)
    assert first.files_to_copy == 7 and first.bytes_to_copy == sum(100 + i for i in range(5)) + 5 + 3
    [customers] = first.tables
    assert customers["action"] == "create" and customers["partitions_added"] == ["batch=a", "batch=b"]
    assert first.expire == [] and first.user_data is not None
    lines = "\n".join(first.lines())
    assert "primary -> standby" in lines and "7 files" in lines and "nothing was changed" in lines

    made = run_at(policy, clusters, 0)
    assert (made["files_copied"], made["bytes_copied"]) == (first.files_to_copy, first.bytes_to_copy)

    src.write(f"{TOP}/day-0/event-0.json", b"changed" * 10)  # modified
    src.write(f"{TOP}/day-2/event-9.json", b"new" * 10)  # created
    src.delete(f"{TOP}/day-1/event-1.json")  # deleted
    src.rename(f"{TOP}/day-1", f"{TOP}/day-one")  # renamed: replayed, not copied
    add_batch(src, metastore, nameservice, table, "c", b"6")
    src.set_permission(f"{TOP}/day-0", "700")

    second = look(policy, clusters, 1)
    assert second.mode == "incremental" and second.base_point == made["point"]
    hdfs_copy = next(c for c in second.copies if c.component == "hdfs")
    # an overwrite makes a new inode: HDFS reports it deleted and created again
    assert (hdfs_copy.renames, hdfs_copy.deletes) == (1, 2), second.to_json()
    assert second.files_to_copy == 3 and second.bytes_to_copy == 70 + 30 + 1
    [customers] = second.tables
    assert customers["action"] is None and customers["partitions_added"] == ["batch=c"]
    assert second.user_data is not None and second.user_data["permission_changes"] == 1
    assert second.expire == []

    made = run_at(policy, clusters, 1)
    assert made["mode"] == "incremental"
    assert (made["files_copied"], made["bytes_copied"]) == (second.files_to_copy, second.bytes_to_copy)

    # keep_last 2: the third point expires the first
    third = look(policy, clusters, 2)
    assert third.files_to_copy == 0 and third.mode == "incremental"
    assert [e["point"] for e in third.expire] == [catalog.iso(T0)]
    assert "beyond the 2 newest" in third.expire[0]["reason"]


def test_preview_of_a_changed_target_says_it_quarantines_first(clusters: Clusters, tmp_path: Path) -> None:
    top = "/data/previewed/changed"
    path = tmp_path / "previewed_changed.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "business": "previewed_changed",
                "pair": "main",
                "schedule": {"start": iso(recent_hour(24)), "every": "1h"},
                "protection_group": [{"hdfs": top}],
                "consistency": {"max_skew": "1s", "max_clock_skew": "5s"},
                "user_data": False,
            }
        )
    )
    policy = load_policy(path, clusters.topology)
    src, dst = clusters.hdfs("primary"), clusters.hdfs("standby")
    src.write(f"{top}/a", b"a" * 10)
    run_at(policy, clusters, 0)
    dst.write(f"{top}/stray", b"written on the standby")
    found = preview(backup.Run(policy, clusters.topology, T0 + timedelta(hours=1)), clusters)
    [only] = found.copies
    assert only.mode == "full" and only.target_changed
    assert only.reason.startswith("target changed since")
    assert dst.read_bytes(f"{top}/stray") == b"written on the standby"  # nothing quarantined by looking
    assert found.user_data is None


def test_tandem_plan_command_prints_the_preview(embedded: Any, clusters: Clusters, tmp_path: Path) -> None:
    include = tmp_path / "include"
    (include / "policies").mkdir(parents=True)
    (include / "clusters.yaml").write_text((PROJECT / "include" / "clusters.yaml").read_text())
    top = "/data/previewed/cli"
    (include / "policies" / "previewed_cli.yaml").write_text(
        yaml.safe_dump(
            {
                "business": "previewed_cli",
                "pair": "main",
                "schedule": {"start": iso(recent_hour(24)), "every": "1h"},
                "protection_group": [{"hdfs": top}],
                "user_data": False,
            }
        )
    )
    env = {**os.environ, "TANDEM_INCLUDE": str(include)}

    def plan(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "tandem.cli", "plan", *args, "--home", str(embedded.home)]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, env=env)

    missing = plan("previewed_cli")
    assert missing.returncode == 1
    assert f"hdfs dataset {top} does not exist on the source cluster" in missing.stderr
    clusters.hdfs("primary").write(f"{top}/one", b"x" * 42)
    shown = plan("previewed_cli", "--json")
    assert shown.returncode == 0, shown.stderr
    body = json.loads(shown.stdout)
    assert body["business"] == "previewed_cli" and body["changes_nothing"] is True
    assert (body["source"], body["target"], body["blocked"]) == ("primary", "standby", None)
    assert (body["files_to_copy"], body["bytes_to_copy"], body["mode"]) == (1, 42, "full")
    text = plan("previewed_cli")
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("next backup of previewed_cli (tandem_backup__previewed_cli)")
    assert "copy: 1 files, 42 B (full)" in text.stdout
    unknown = plan("nobody")
    assert unknown.returncode == 1 and "no business 'nobody'" in unknown.stderr
