"""The backup steps run in-process (backup.run_once) against the embedded clusters: retention,
and a copy killed with SIGKILL halfway, then resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from tandem import backup, catalog, verify
from tandem.backup import payloads
from tandem.errors import VerificationError
from tandem.hdfs.client import Hdfs
from tandem.policy import Policy, load_policy, load_topology
from tandem.runtime import Clusters
from tests.instants import recent_hour

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

PROJECT = Path(__file__).resolve().parents[2]
TOPOLOGY_FILE = PROJECT / "include" / "clusters.yaml"
T0 = recent_hour(12)


def make_policy(tmp_path: Path, business: str, top: str, **overrides: object) -> Path:
    body: dict[str, object] = {
        "business": business,
        "description": "integration test",
        "pair": "main",
        "schedule": {"start": "2026-11-20T13:00:00Z", "every": "1h"},
        "protection_group": [{"hdfs": top}],
        "consistency": {"max_skew": "1s", "max_clock_skew": "5s"},
        "user_data": False,
        **overrides,
    }
    path = tmp_path / f"{business}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def files(hdfs: Hdfs, top: str) -> dict[str, int]:
    return {e.relpath: e.status.length for e in hdfs.walk(top) if not e.status.is_dir}


@pytest.fixture
def clusters(airflow_conns) -> Clusters:
    return Clusters(load_topology(TOPOLOGY_FILE))


def test_retention_removes_manifests_then_snapshots_on_both_sides(clusters, tmp_path):
    top = "/data/retention/details"
    policy: Policy = load_policy(
        make_policy(tmp_path, "retention", top, retention={"keep_last": 2, "max_age": "3650d"}),
        clusters.topology,
    )
    src, dst = clusters.hdfs("primary"), clusters.hdfs("standby")
    names = []
    for k in range(3):
        src.write(f"{top}/file-{k}", b"x" * (k + 1))
        names.append(
            backup.run_once(backup.Run(policy, clusters.topology, T0 + timedelta(hours=k)), clusters)[
                "snapshot_name"
            ]
        )
    for hdfs in (src, dst):
        assert [p.snapshot_name for p in catalog.list_points(hdfs, "retention")] == names[1:]
        assert {s.name for s in hdfs.snapshots(top)} == set(names[1:])


CHILD = textwrap.dedent(
    """
    import sys
    from datetime import datetime
    from tandem import backup
    from tandem.policy import load_policy, load_topology
    from tandem.runtime import Clusters

    from pathlib import Path
    topology = load_topology(Path(sys.argv[1]))
    policy = load_policy(Path(sys.argv[2]), topology)
    clusters = Clusters(topology)
    backup.run_once(backup.Run(policy, topology, datetime.fromisoformat(sys.argv[3])), clusters)
    """
)


def test_a_copy_killed_halfway_is_resumed_by_the_next_run(clusters, tmp_path):
    top = "/data/killed/details"
    policy_file = make_policy(tmp_path, "killed", top, copy={"parallelism": 2})
    policy = load_policy(policy_file, clusters.topology)
    src, dst = clusters.hdfs("primary"), clusters.hdfs("standby")
    src.write(f"{top}/seed", b"seed")
    first = backup.run_once(backup.Run(policy, clusters.topology, T0), clusters)
    for i in range(400):
        src.write(f"{top}/batch/file-{i:03d}", os.urandom(20_000))

    killed_at = T0 + timedelta(hours=1)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(TOPOLOGY_FILE), str(policy_file), killed_at.isoformat()],
        env=os.environ.copy(),
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        if dst.status(f"{top}/batch") is not None and len(dst.list(f"{top}/batch")) >= 20:
            break
        time.sleep(0.05)
    assert child.poll() is None, "the copy finished before it could be killed: make it bigger"
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    copied = len(dst.list(f"{top}/batch"))
    assert 20 <= copied < 400
    assert catalog.latest(dst, "killed").snapshot_name == first["snapshot_name"]  # untouched

    resumed = backup.run_once(backup.Run(policy, clusters.topology, T0 + timedelta(hours=2)), clusters)
    assert files(dst, top) == files(src, top)
    assert dst.read_bytes(f"{top}/batch/file-399") == src.read_bytes(f"{top}/batch/file-399")
    for hdfs in (src, dst):
        assert {s.name for s in hdfs.snapshots(top)} == {first["snapshot_name"], resumed["snapshot_name"]}
    assert resumed["mode"] == "full"  # the half-done copy changed the target since the last point
    assert resumed["files_copied"] <= 400 - copied + 2  # files already copied whole are not copied again


def test_rerunning_a_published_point_keeps_it_as_it_was(clusters, tmp_path):
    top = "/data/rerun/details"
    policy = load_policy(make_policy(tmp_path, "rerun", top), clusters.topology)
    src, dst = clusters.hdfs("primary"), clusters.hdfs("standby")
    src.write(f"{top}/a", b"first")
    first = backup.run_once(backup.Run(policy, clusters.topology, T0), clusters)
    manifest_before = dst.read_bytes(catalog.manifest_path("rerun", T0))
    src.write(f"{top}/b", b"second")
    again = backup.run_once(backup.Run(policy, clusters.topology, T0), clusters)  # the same point, cleared
    assert again == first
    assert dst.read_bytes(catalog.manifest_path("rerun", T0)) == manifest_before  # not rewritten
    assert dst.status(f"{top}/.snapshot/{first['snapshot_name']}/b") is None  # not redone
    assert [p.point for p in catalog.list_points(dst, "rerun")] == [first["point"]]


def test_clocks_are_measured_against_zookeeper_and_the_namenode(clusters):
    seen = clusters.observe("primary", clock=True)
    assert seen.reachable and seen.role == "active"
    # same host, same clock: both measurements are near zero (ZooKeeper to the ms, HTTP Date to the s)
    assert seen.clock_offset_s is not None and abs(seen.clock_offset_s) < 0.5
    assert abs(clusters.hdfs("primary").clock_offset_s()) <= 1.0


def test_an_incremental_point_keeps_the_records_of_unchanged_files_beside_changed_ones(clusters, tmp_path):
    """A rewritten file's directory shows in the snapshot diff as modified: its other files are
    unchanged and keep their records (and count in the manifest) all the same."""
    top = "/data/siblings/details"
    policy = load_policy(make_policy(tmp_path, "siblings", top), clusters.topology)
    src, dst = clusters.hdfs("primary"), clusters.hdfs("standby")
    names = ["a/one", "a/two", "a/three", "b/four", "five"]
    for name in names:
        src.write(f"{top}/{name}", name.encode())
    full = backup.run_once(backup.Run(policy, clusters.topology, T0), clusters)
    assert (full["mode"], full["datasets"][0]["files"]) == ("full", 5)
    src.write(f"{top}/a/two", b"rewritten", overwrite=True)
    src.write(f"{top}/b/six", b"new")
    incremental = backup.run_once(backup.Run(policy, clusters.topology, T0 + timedelta(hours=1)), clusters)
    assert incremental["mode"] == "incremental"
    assert (incremental["files_copied"], incremental["datasets"][0]["files"]) == (2, 6)
    records = verify.records_from_body(catalog.read_json(dst, incremental["files_record"]))
    assert sorted(records[top]) == sorted([*names, "b/six"])
    assert records[top]["a/two"][0] == len(b"rewritten")
    src.rename(f"{top}/a", f"{top}/c")
    src.delete(f"{top}/b", recursive=True)
    third = backup.run_once(backup.Run(policy, clusters.topology, T0 + timedelta(hours=2)), clusters)
    assert (third["mode"], third["datasets"][0]["files"]) == ("incremental", 4)
    records = verify.records_from_body(catalog.read_json(dst, third["files_record"]))
    assert sorted(records[top]) == ["c/one", "c/three", "c/two", "five"]


def run_tampering(policy: Policy, clusters: Clusters, instant, tamper) -> None:
    """Every step as run_once runs them, with ``tamper()`` between the copy and the standby's
    snapshot: what the target then holds is not what the copy wrote."""
    graph = backup.backup_graph(policy, clusters.topology)
    run = backup.Run(policy, clusters.topology, instant)
    returned: dict[str, object] = {}
    for step in graph.steps:
        if step.kind == "snapshot_standby":
            tamper()
        value = backup.execute(step, run, clusters, backup.inputs_of(step, graph, returned))
        returned[step.task_id] = json.loads(json.dumps(payloads.encode(step.kind, value)))


TAMPERING = {
    "a copied file removed": (lambda dst, top: dst.delete(f"{top}/a/two"), "a/two: only on the source"),
    "an unchanged file beside a copied one removed": (
        lambda dst, top: dst.delete(f"{top}/a/one"),
        "a/one: only on the source",
    ),
    "a file added beside a copied one": (
        lambda dst, top: dst.write(f"{top}/a/extra", b"?"),
        "a/extra: only on the target",
    ),
    "an unchanged directory replaced by a file": (
        lambda dst, top: (dst.delete(f"{top}/b", recursive=True), dst.write(f"{top}/b", b"?")),
        "b: a file on one side, a directory on the other",
    ),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_an_incremental_point_whose_target_differs_from_the_source_is_not_published(clusters, tmp_path, case):
    tamper, mismatch = TAMPERING[case]
    business = "tamper_" + "_".join(word[:3] for word in case.split())
    top = f"/data/{business}/details"
    policy = load_policy(make_policy(tmp_path, business, top), clusters.topology)
    src, dst = clusters.hdfs("primary"), clusters.hdfs("standby")
    for name in ("a/one", "a/two", "b/three"):
        src.write(f"{top}/{name}", name.encode())
    backup.run_once(backup.Run(policy, clusters.topology, T0), clusters)
    src.write(f"{top}/a/two", b"rewritten", overwrite=True)
    with pytest.raises(VerificationError) as failed:
        run_tampering(policy, clusters, T0 + timedelta(hours=1), lambda: tamper(dst, top))
    assert f"{top}/{mismatch}" in str(failed.value)
    assert [p.point for p in catalog.list_points(dst, business)] == [catalog.iso(T0)]


def test_a_dataset_whose_parent_was_replaced_is_compared_whole_at_publish(clusters, tmp_path):
    """A dataset below its snapshot root: when a directory above it is renamed away and made
    again, nothing below it is in the source's diff, so publish lists the dataset on both sides:
    a file the copy wrote and the target then lost stops the point."""
    root = "/data/replaced_parent/root"
    top = f"{root}/outer/details"
    src, dst = clusters.hdfs("primary"), clusters.hdfs("standby")
    for hdfs in (src, dst):
        hdfs.mkdirs(root)
        hdfs.allow_snapshot(root)
    policy = load_policy(make_policy(tmp_path, "replaced_parent", top), clusters.topology)
    src.write(f"{top}/old", b"old")
    backup.run_once(backup.Run(policy, clusters.topology, T0), clusters)
    src.rename(f"{root}/outer", f"{root}/outer-before")
    src.write(f"{top}/new", b"new")
    with pytest.raises(VerificationError) as failed:
        run_tampering(policy, clusters, T0 + timedelta(hours=1), lambda: dst.delete(f"{top}/new"))
    assert f"{top}/new: only on the source" in str(failed.value)
    second = backup.run_once(backup.Run(policy, clusters.topology, T0 + timedelta(hours=2)), clusters)
    records = verify.records_from_body(catalog.read_json(dst, second["files_record"]))
    assert (second["datasets"][0]["files"], sorted(records[root])) == (1, ["outer/details/new"])
