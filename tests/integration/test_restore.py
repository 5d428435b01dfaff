"""A backup run SIGKILLed in each step that writes leaves the standby between two points:
``verify --live`` reports it, ``restore`` lands the standby back on the newest published point
(HDFS bytes and Hive metadata both), and the next run resumes. Also: tables are point-in-time
(a partition added or dropped after ``take`` is not in the point), a rerun of a published point
keeps it, and a point verifies against its file records when the source is gone.

Each test uses its own business on the shared clusters; roles never change here (promotion
lands on a point in test_promote_lands.py, on a private pair).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tandem import backup, catalog, restore, verify
from tandem.capture import Capture
from tandem.errors import SnapshotRootError
from tandem.hdfs.client import Hdfs
from tandem.metastore import Metastore, TableRef
from tandem.points import PointOnCluster, load_capture
from tandem.policy import Policy, load_policy, load_topology
from tandem.runtime import Clusters
from tests.instants import recent_hour

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

PROJECT = Path(__file__).resolve().parents[2]
TOPOLOGY_FILE = PROJECT / "include" / "clusters.yaml"
T0 = recent_hour(12)


@pytest.fixture
def clusters(airflow_conns: dict[str, str]) -> Clusters:
    return Clusters(load_topology(TOPOLOGY_FILE))


class Business:
    """A business with an HDFS directory and a partitioned Hive table, seeded on the primary."""

    def __init__(
        self,
        clusters: Clusters,
        tmp_path: Path,
        name: str,
        location: str | None = None,
        fs: str | None = None,
    ) -> None:
        """``location``: the table's directory; ``fs``: the scheme and authority of its location
        (the primary's nameservice by default)."""
        self.clusters = clusters
        self.name = name
        self.top = f"/data/{name}/details"
        self.table = TableRef(name, "orders")
        self.location = location or f"/warehouse/{name}.db/orders"
        self.fs = fs or clusters.spec("primary").nameservice
        self.src, self.dst = clusters.hdfs("primary"), clusters.hdfs("standby")
        self.src_ms, self.dst_ms = clusters.metastore("primary"), clusters.metastore("standby")
        self.policy_file = tmp_path / f"{name}.yaml"
        self.policy_file.write_text(
            yaml.safe_dump(
                {
                    "business": name,
                    "description": "restore test",
                    "pair": "main",
                    "schedule": {"start": "2026-11-20T13:00:00Z", "every": "1h"},
                    "protection_group": [{"hdfs": self.top}, {"hive": str(self.table)}],
                    "consistency": {"max_skew": "1s", "max_clock_skew": "5s"},
                    "copy": {"parallelism": 2},
                    "user_data": True,
                    "tenant_dirs": [f"/data/{name}"],
                }
            )
        )
        self.policy: Policy = load_policy(self.policy_file, clusters.topology)
        self._create_table()

    def _create_table(self) -> None:
        from hmsclient.genthrift.hive_metastore.ttypes import (
            Database,
            FieldSchema,
            SerDeInfo,
            StorageDescriptor,
            Table,
        )

        ns = self.clusters.spec("primary").nameservice
        with self.src_ms.session() as c:
            c.create_database(
                Database(name=self.name, locationUri=f"{ns}/warehouse/{self.name}.db", parameters={})
            )
            sd = StorageDescriptor(
                cols=[FieldSchema("id", "int", "")],
                location=f"{self.fs}{self.location}",
                serdeInfo=SerDeInfo(parameters={}),
                parameters={},
            )
            c.create_table(
                Table(
                    tableName="orders",
                    dbName=self.name,
                    owner="o",
                    sd=sd,
                    partitionKeys=[FieldSchema("day", "string", "")],
                    parameters={},
                    tableType="MANAGED_TABLE",
                )
            )

    def add_partition(self, day: str, payload: bytes = b"1,2,3\n") -> None:
        """Data first, then the partition (Hive's order)."""
        from hmsclient.genthrift.hive_metastore.ttypes import Partition

        self.src.write(f"{self.location}/day={day}/part-0", payload)
        with self.src_ms.session() as c:
            table = c.get_table(self.name, "orders")
            sd = table.sd
            sd.location = f"{self.fs}{self.location}/day={day}"
            c.add_partitions(
                [Partition(values=[day], dbName=self.name, tableName="orders", sd=sd, parameters={})]
            )

    def drop_partition(self, day: str) -> None:
        with self.src_ms.session() as c:
            c.drop_partition(self.name, "orders", [day], False)

    def backup(self, hours: int) -> dict[str, Any]:
        return backup.run_once(
            backup.Run(self.policy, self.clusters.topology, T0 + timedelta(hours=hours)), self.clusters
        )

    def partitions(self, ms: Metastore) -> set[str]:
        return {p.values[0] for p in ms.get_partitions(self.table)}

    def newest(self) -> PointOnCluster:
        manifest = catalog.latest(self.dst, self.name)
        assert manifest is not None
        return PointOnCluster(self.policy, self.clusters.topology, "standby", manifest)

    def live_check(self, landing: PointOnCluster) -> verify.Report:
        captured = load_capture(self.dst, landing.manifest)
        assert captured is not None
        return verify.merge(
            "live",
            [
                verify.check_live(self.dst, landing.manifest),
                verify.check_metadata(captured, self.dst_ms, landing.nameservice),
            ],
        )

    def restore(self, landing: PointOnCluster) -> restore.Outcome:
        return restore.restore(landing, self.dst, self.dst_ms, load_capture(self.dst, landing.manifest))


def tree(hdfs: Hdfs, top: str) -> dict[str, str]:
    """relpath -> checksum of every file under ``top``."""
    out = {}
    for entry in hdfs.walk(top):
        if not entry.status.is_dir:
            cs = hdfs.checksum(f"{top}/{entry.relpath}")
            out[entry.relpath] = f"{cs.length}:{cs.bytes}"
    return out


def point_dirs(hdfs: Hdfs, business: str) -> set[str]:
    """The point directories (capture, file records) beside a business's manifests."""
    return {s.path_suffix for s in hdfs.list(catalog.manifest_dir(business)) if s.is_dir}


def assert_at_point(biz: Business, landing: PointOnCluster) -> None:
    """Independently of verify: live bytes equal the standby's snapshot of the point, and the
    standby's partitions equal the point's capture."""
    name = landing.manifest.snapshot_name
    for top in (biz.top, biz.location):
        assert tree(biz.dst, top) == tree(biz.dst, f"{top}/.snapshot/{name}")
    captured = Capture.from_json(catalog.read_json(biz.dst, landing.manifest.metadata or ""))
    [table] = captured.tables
    assert biz.partitions(biz.dst_ms) == {p.values[0] for p in table.partitions}


# The child process runs one backup with a fault: it SIGKILLs itself inside ``step`` right after
# that step's first write of the given kind went through.
CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import datetime
    from pathlib import Path
    from tandem import backup, catalog
    from tandem.hdfs.client import Hdfs
    from tandem.metastore import Metastore
    from tandem.policy import load_policy, load_topology
    from tandem.runtime import Clusters

    topology_file, policy_file, instant, step = sys.argv[1:5]
    current = {"step": None, "writes": 0}
    WRITES = {
        "copy_hdfs": (Hdfs, "write", 3),
        "copy_hive": (Hdfs, "write", 1),
        "register_metadata": (Metastore, "upsert_table", 1),
        "snapshot_standby": (Hdfs, "create_snapshot", 1),
        "sync_user_data": (Hdfs, "set_quota", 1),
        "publish_restore_point": (catalog, "write_atomically", 1),
        # the manifest on the target, before its copy on the source
        "publish_restore_point/manifest": (catalog, "publish", 1),
    }
    owner, method, after = WRITES[step]
    step = step.split("/")[0]
    real = getattr(owner, method)

    def write_then_die(*args, **kwargs):
        result = real(*args, **kwargs)
        if current["step"] == step:
            current["writes"] += 1
            if current["writes"] >= after:
                os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, method, write_then_die)

    def entering(name, func):
        def wrapper(*args, **kwargs):
            current["step"] = name
            return func(*args, **kwargs)
        return wrapper

    copy_component = backup.copy_component
    def copy(run, clusters, started, component, *rest):
        current["step"] = f"copy_{component}"
        return copy_component(run, clusters, started, component, *rest)
    backup.copy_component = copy
    backup.register_metadata = entering("register_metadata", backup.register_metadata)
    backup.snapshot_standby = entering("snapshot_standby", backup.snapshot_standby)
    backup.sync_user_data = entering("sync_user_data", backup.sync_user_data)
    backup.publish = entering("publish_restore_point", backup.publish)

    topology = load_topology(Path(topology_file))
    policy = load_policy(Path(policy_file), topology)
    backup.run_once(backup.Run(policy, topology, datetime.fromisoformat(instant)), Clusters(topology))
    sys.exit(3)  # the fault never fired
    """
)

STEPS = [
    "copy_hdfs",
    "copy_hive",
    "register_metadata",
    "snapshot_standby",
    "sync_user_data",
    "publish_restore_point",
]


def killed_run(biz: Business, hours: int, step: str) -> None:
    instant = (T0 + timedelta(hours=hours)).isoformat()
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(TOPOLOGY_FILE), str(biz.policy_file), instant, step],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, f"the fault in {step} did not fire:\n{child.stderr[-3000:]}"


@pytest.mark.parametrize("step", STEPS)
def test_a_run_killed_in_a_writing_step_is_detected_and_restored(clusters, tmp_path, step):
    biz = Business(clusters, tmp_path, f"rk_{step.split('_')[0]}_{step.split('_')[-1]}")
    for i in range(6):
        biz.src.write(f"{biz.top}/bill-{i}", os.urandom(5000))
    biz.add_partition("d1")
    biz.add_partition("d2")
    biz.backup(0)
    published = biz.newest()
    assert biz.live_check(published).ok

    # the next point differs in every component: files, a permission, partitions added and dropped
    for i in range(6, 14):
        biz.src.write(f"{biz.top}/bill-{i}", os.urandom(5000))
    biz.src.write(f"{biz.top}/bill-0", b"rewritten")
    biz.src.set_permission(f"{biz.top}/bill-1", "600")
    biz.src.set_quota(f"/data/{biz.name}", 10_000, -1)
    biz.add_partition("d3")
    biz.drop_partition("d1")
    killed_run(biz, 1, step)

    assert biz.newest().manifest == published.manifest  # the last published point is untouched
    found = biz.live_check(published)
    assert not found.ok, f"killed in {step}, verify --live saw no difference"

    outcome = biz.restore(published)
    assert outcome.check is not None and outcome.check.ok, outcome.check.mismatches if outcome.check else None
    assert biz.live_check(published).ok
    assert_at_point(biz, published)
    assert biz.partitions(biz.dst_ms) == {"d1", "d2"}
    assert biz.dst.read_bytes(f"{biz.top}/bill-0") == biz.src.read_bytes(
        f"{biz.top}/.snapshot/{published.manifest.snapshot_name}/bill-0"
    )
    if any(a.kind == "quarantine" for a in outcome.actions):
        assert biz.dst.status(outcome.quarantine) is not None  # moved, never deleted

    resumed = biz.backup(2)
    assert resumed["verified"] and resumed["verification"]["mismatches"] == 0
    for hdfs in (biz.src, biz.dst):  # what the killed run left beside the manifests is gone
        assert point_dirs(hdfs, biz.name) == {p.point_id for p in catalog.list_points(hdfs, biz.name)}
    assert tree(biz.dst, biz.top) == tree(biz.src, biz.top)
    assert biz.partitions(biz.dst_ms) == {"d2", "d3"}
    assert biz.live_check(biz.newest()).ok


def test_restore_dry_run_changes_nothing(clusters, tmp_path):
    biz = Business(clusters, tmp_path, "rk_dry")
    biz.src.write(f"{biz.top}/a", b"a")
    biz.add_partition("d1")
    biz.backup(0)
    point = biz.newest()
    biz.dst.write(f"{biz.top}/stray", b"written on the standby")
    biz.dst.write(f"{biz.top}/a", b"changed on the standby")
    before = tree(biz.dst, biz.top)

    outcome = restore.restore(point, biz.dst, biz.dst_ms, load_capture(biz.dst, point.manifest), dry_run=True)
    assert {(a.kind, a.path) for a in outcome.actions} == {
        ("quarantine", f"{biz.top}/stray"),
        ("quarantine", f"{biz.top}/a"),
        ("restore", f"{biz.top}/a"),
    }
    assert tree(biz.dst, biz.top) == before
    outcome = biz.restore(point)
    assert outcome.check is not None and outcome.check.ok
    assert biz.dst.read_bytes(f"{outcome.quarantine}{biz.top}/stray") == b"written on the standby"
    assert biz.dst.read_bytes(f"{outcome.quarantine}{biz.top}/a") == b"changed on the standby"
    assert biz.dst.read_bytes(f"{biz.top}/a") == b"a"


def test_partitions_are_those_registered_at_take(clusters, tmp_path):
    biz = Business(clusters, tmp_path, "rk_pit")
    biz.src.write(f"{biz.top}/a", b"a")
    biz.add_partition("old")
    biz.add_partition("kept")
    run = backup.Run(biz.policy, clusters.topology, T0)
    started = backup.preflight(run, clusters)
    resolved = {c: backup.resolve(run, clusters, started.source, c) for c in ("hdfs", "hive")}
    taken = backup.take(run, clusters, started, resolved["hdfs"] + resolved["hive"])

    biz.add_partition("new")  # after the instant: its data is not in the point
    biz.drop_partition("old")  # after the instant: its data is in the point
    copies = [backup.copy_component(run, clusters, started, c, resolved[c], taken) for c in ("hdfs", "hive")]
    backup.register_metadata(run, clusters, started, taken)
    backup.snapshot_standby(run, clusters, started, taken)
    user = backup.sync_user_data(run, clusters, started, taken)
    manifest = backup.publish(run, clusters, started, taken, copies, user)

    assert biz.partitions(biz.dst_ms) == {"old", "kept"}
    snap = f"{biz.location}/.snapshot/{manifest.snapshot_name}"
    assert biz.dst.read_bytes(f"{snap}/day=old/part-0") == b"1,2,3\n"
    assert biz.dst.status(f"{snap}/day=new") is None
    for part in biz.dst_ms.get_partitions(biz.table):  # every registered partition has its data
        assert biz.dst.status(f"{part.sd.location.split('standby', 1)[1]}/part-0") is not None


def test_a_rerun_of_a_published_point_leaves_it_published_and_verifiable(clusters, tmp_path):
    biz = Business(clusters, tmp_path, "rk_rerun")
    biz.src.write(f"{biz.top}/a", b"a")
    biz.add_partition("d1")
    first = biz.backup(0)
    biz.src.write(f"{biz.top}/b", b"b")
    biz.add_partition("d2")
    again = biz.backup(0)  # the same instant: a cleared run
    assert again == first
    point = biz.newest()
    assert point.manifest.point == first["point"]
    report = verify.check_snapshot(biz.dst, point.manifest, biz.src, None)
    assert report.ok and report.files == 2
    assert biz.live_check(point).ok


def test_a_point_verifies_against_its_file_records(clusters, tmp_path):
    biz = Business(clusters, tmp_path, "rk_records")
    for i in range(5):
        biz.src.write(f"{biz.top}/f-{i}", os.urandom(3000))
    biz.add_partition("d1")
    biz.backup(0)
    biz.src.write(f"{biz.top}/f-0", b"changed")
    biz.backup(1)
    point = biz.newest()
    records = verify.records_from_body(catalog.read_json(biz.dst, point.manifest.files_record or ""))
    assert verify.check_snapshot(biz.dst, point.manifest, None, records).ok

    # the standby's copy of the point is damaged behind Tandem's back: the records see it
    tampered = dict(records)
    rows = dict(tampered[biz.top])
    rows["f-1"] = [rows["f-1"][0], rows["f-1"][1], "MD5-of-0MD5-of-512CRC32:00"]
    tampered[biz.top] = rows
    report = verify.check_snapshot(biz.dst, point.manifest, None, tampered)
    assert report.mismatches == [f"{biz.top}/f-1: checksum differs from the point"]


# The child lands the standby on the point and SIGKILLs itself after a few files were copied back.
RESTORE_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from tandem import catalog, restore
    from tandem.copy.webhdfs import WebHdfsCopier
    from tandem.points import PointOnCluster, load_capture
    from tandem.policy import load_policy, load_topology
    from tandem.runtime import Clusters

    topology = load_topology(Path(sys.argv[1]))
    policy = load_policy(Path(sys.argv[2]), topology)
    clusters = Clusters(topology)
    real, copied = WebHdfsCopier.copy_one, []

    def copy_then_die(self, item, stats):
        real(self, item, stats)
        copied.append(item)
        if len(copied) == 3:
            os.kill(os.getpid(), signal.SIGKILL)

    WebHdfsCopier.copy_one = copy_then_die
    hdfs = clusters.hdfs("standby")
    landing = PointOnCluster(policy, topology, "standby", catalog.latest(hdfs, policy.business))
    restore.restore(landing, hdfs, clusters.metastore("standby"), load_capture(hdfs, landing.manifest))
    sys.exit(3)
    """
)


def test_a_restore_killed_halfway_is_finished_by_running_it_again(clusters, tmp_path):
    biz = Business(clusters, tmp_path, "rk_rerestore")
    for i in range(12):
        biz.src.write(f"{biz.top}/f-{i:02d}", os.urandom(4000))
    biz.add_partition("d1")
    biz.backup(0)
    point = biz.newest()
    for i in range(12):  # the standby drifts: every file rewritten, and a stray
        biz.dst.write(f"{biz.top}/f-{i:02d}", b"drift")
    biz.dst.write(f"{biz.top}/stray", b"stray")

    child = subprocess.run(
        [sys.executable, "-c", RESTORE_CHILD, str(TOPOLOGY_FILE), str(biz.policy_file)],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-3000:]
    assert not biz.live_check(point).ok  # killed halfway: not at the point yet

    outcome = biz.restore(point)
    assert outcome.check is not None and outcome.check.ok, outcome.check.mismatches if outcome.check else None
    assert_at_point(biz, point)
    # what both runs moved aside is kept: twelve drifted files and the stray, none lost
    parked = [e.relpath for e in biz.dst.walk(f"/.tandem/quarantine/{biz.name}") if not e.status.is_dir]
    assert sorted(p.rsplit("/", 1)[1] for p in parked) == sorted(
        [f"f-{i:02d}" for i in range(12)] + ["stray"]
    )


def first_point(biz: Business, files: dict[str, bytes]) -> PointOnCluster:
    """``files`` (relative to the business's directory) and partition d1, backed up at T0."""
    for rel, data in files.items():
        biz.src.write(f"{biz.top}/{rel}", data)
    biz.add_partition("d1")
    biz.backup(0)
    return biz.newest()


def test_a_directory_replaced_by_another_of_its_name_is_seen_and_put_back(clusters, tmp_path):
    """A directory deleted and made again (a new inode) appears in a snapshot diff as the
    directory alone, never its children. The source does it between two points and the run is
    SIGKILLed after copying: the standby holds the new directory with the old point's
    metastore. ``verify --live`` must see inside it, ``restore`` must put the point's files
    back, and the next run must publish again (found by an adversarial read)."""
    biz = Business(clusters, tmp_path, "rk_recreated")
    point = first_point(biz, {"day/bills-v1": b"v1 bills", "day/sub/kept": b"kept"})
    biz.src.delete(f"{biz.top}/day", recursive=True)
    biz.src.write(f"{biz.top}/day/bills-v2", b"v2 bills, referencing d2")
    biz.src.write(f"{biz.top}/day/sub/kept", b"kept")
    biz.add_partition("d2")
    killed_run(biz, 1, "register_metadata")
    assert biz.newest().manifest == point.manifest

    found = biz.live_check(point)
    assert any("bills-v2" in m for m in found.mismatches), found.mismatches
    assert any("bills-v1" in m for m in found.mismatches), found.mismatches
    outcome = biz.restore(point)
    assert outcome.check is not None and outcome.check.ok
    assert tree(biz.dst, biz.top) == tree(biz.dst, f"{biz.top}/.snapshot/{point.manifest.snapshot_name}")
    assert biz.partitions(biz.dst_ms) == {"d1"}
    resumed = biz.backup(2)
    assert resumed["verified"]
    assert tree(biz.dst, biz.top) == tree(biz.src, biz.top)


def test_a_directory_replaced_on_the_standby_behind_tandems_back_is_put_back(clusters, tmp_path):
    biz = Business(clusters, tmp_path, "rk_standby_recreated")
    point = first_point(biz, {"dir/x": b"x at the point"})
    biz.dst.delete(f"{biz.top}/dir", recursive=True)
    biz.dst.write(f"{biz.top}/dir/y", b"not in any point")
    assert not biz.live_check(point).ok
    outcome = biz.restore(point)
    done = {(a.kind, a.path.rsplit("/", 1)[1]) for a in outcome.actions}
    assert done >= {("quarantine", "y"), ("restore", "x")}, done
    assert outcome.check is not None and outcome.check.ok
    assert tree(biz.dst, biz.top) == tree(biz.dst, f"{biz.top}/.snapshot/{point.manifest.snapshot_name}")


def test_a_run_killed_between_the_targets_manifest_and_the_sources_copy_is_completed(clusters, tmp_path):
    """The point is published (the target holds its manifest); the source's copy is written by
    the next run, so both clusters list the same points (found by an adversarial read)."""
    biz = Business(clusters, tmp_path, "rk_source_copy")
    first_point(biz, {"a": b"a"})
    biz.src.write(f"{biz.top}/a", b"a2")
    killed_run(biz, 1, "publish_restore_point/manifest")
    on_dst = [m.point for m in catalog.list_points(biz.dst, biz.name)]
    assert len(on_dst) == 2 and len(catalog.list_points(biz.src, biz.name)) == 1
    biz.src.write(f"{biz.top}/a", b"a3")
    biz.backup(2)
    assert [m.point for m in catalog.list_points(biz.src, biz.name)] == [
        m.point for m in catalog.list_points(biz.dst, biz.name)
    ]
    killed = catalog.list_points(biz.src, biz.name)[1]
    assert killed.point == on_dst[1] and killed.files_record
    assert biz.src.read_bytes(killed.files_record) == biz.dst.read_bytes(killed.files_record)


def test_a_run_overtaken_by_a_newer_one_stops_with_a_clear_message(clusters, tmp_path):
    """Two backups of one business at once (two deployments, or a command beside the DAG): the
    newer one's ``take`` claims the source and removes the older one's snapshots, and the older
    stops at its next step saying so, instead of failing on a missing snapshot; the newer one
    publishes (found by an adversarial read)."""
    biz = Business(clusters, tmp_path, "rk_overtaken")
    first_point(biz, {"a": b"a"})
    biz.src.write(f"{biz.top}/a", b"a2")
    newer: dict[str, Any] = {}

    def after(step: Any, _seconds: float) -> None:
        if step.kind == "take" and not newer:
            newer.update(biz.backup(2))  # starts and finishes while the older run is after take

    older = backup.Run(biz.policy, biz.clusters.topology, T0 + timedelta(hours=1))
    with pytest.raises(backup.RunOvertaken, match="another backup of rk_overtaken"):
        backup.run_once(older, biz.clusters, on_step=after)
    assert newer["verified"]
    assert [m.point for m in catalog.list_points(biz.dst, biz.name)][-1] == newer["point"]
    assert biz.live_check(biz.newest()).ok


@pytest.mark.parametrize("char", ["#", "?"])
def test_a_table_location_is_read_as_a_hadoop_path(clusters: Clusters, tmp_path: Path, char: str) -> None:
    """``#`` and ``?`` are legal in HDFS names: read as a URL, ``/x/sales#2024`` would be
    ``/x/sales``, and another directory would be snapshotted and copied in the table's place."""
    name = f"tloc{'hash' if char == '#' else 'query'}"
    location = f"/data/{name}/sales{char}2024"
    biz = Business(clusters, tmp_path, name, location=location)
    biz.src.write(f"{biz.top}/f", b"f")
    biz.src.write(f"/data/{name}/sales/other", b"not this business's")
    biz.add_partition("d1")
    manifest = biz.backup(0)
    tables = [d["roots"] for d in manifest["datasets"] if d["component"] == "hive"]
    assert tables == [[location]]
    assert biz.dst.read_bytes(f"{location}/day=d1/part-0") == b"1,2,3\n"
    assert biz.dst.status(f"/data/{name}/sales/other") is None
    assert biz.dst_ms.get_table(biz.table).sd.location.endswith(location)
    assert biz.live_check(biz.newest()).ok


@pytest.mark.parametrize("fs", ["s3a://bucket", "hdfs://another-cluster"])
def test_a_table_whose_data_is_on_another_filesystem_is_refused(
    clusters: Clusters, tmp_path: Path, fs: str
) -> None:
    name = f"tforeign{'s3' if fs.startswith('s3') else 'hdfs'}"
    biz = Business(clusters, tmp_path, name, fs=fs)
    biz.src.write(f"{biz.top}/f", b"f")
    biz.src.write(f"{biz.location}/day=d1/part-0", b"the same path on this cluster: not the table's")
    with pytest.raises(SnapshotRootError, match=f"keeps data outside hdfs://primary \\({fs}"):
        biz.backup(0)
    assert catalog.latest(biz.dst, biz.name) is None
    assert biz.dst.status(biz.location) is None


def _damage_behind_its_time(hdfs: Hdfs, path: str, data: bytes) -> None:
    """Other bytes of the same length, the file's time set back to what it was: only the
    content tells (a disk fault repaired by hand, a careless copy with preserved times)."""
    before = hdfs.status(path)
    assert before is not None and before.length == len(data)
    hdfs.write(path, data, overwrite=True)
    hdfs.set_times(path, before.modification_time, before.access_time or None)


def test_a_standby_file_damaged_behind_its_own_time_is_copied_again(
    clusters: Clusters, tmp_path: Path
) -> None:
    biz = Business(clusters, tmp_path, "rk_sametime")
    biz.src.write(f"{biz.top}/f", b"GOOD-BYTES")
    biz.src.write(f"{biz.top}/g", b"other")
    biz.add_partition("d1")
    biz.backup(0)
    _damage_behind_its_time(biz.dst, f"{biz.top}/f", b"EVIL-BYTES")
    assert not biz.live_check(biz.newest()).ok
    biz.src.write(f"{biz.top}/g", b"other, changed")
    manifest = biz.backup(1)
    assert manifest["mode"] == "full"  # the target changed since its point: a full copy
    assert biz.dst.read_bytes(f"{biz.top}/.snapshot/{manifest['snapshot_name']}/f") == b"GOOD-BYTES"
    assert biz.live_check(biz.newest()).ok


def test_a_forced_full_copy_trusts_no_file_by_its_time(clusters: Clusters, tmp_path: Path) -> None:
    """``--full``, an operator's repair, compares files that look alike by checksum and does not
    take the earlier point's checksums for granted."""
    biz = Business(clusters, tmp_path, "rk_forcefull")
    biz.src.write(f"{biz.top}/f", b"VERSION-1")
    biz.src.write(f"{biz.top}/same", b"unchanged")
    biz.add_partition("d1")
    biz.backup(0)
    _damage_behind_its_time(biz.dst, f"{biz.top}/f", b"DAMAGED-1")
    run = backup.Run(biz.policy, clusters.topology, T0 + timedelta(hours=1), force_full=True)
    manifest = backup.run_once(run, clusters)
    snapshot = f"{biz.top}/.snapshot/{manifest['snapshot_name']}"
    assert biz.dst.read_bytes(f"{snapshot}/f") == b"VERSION-1"
    assert biz.dst.read_bytes(f"{snapshot}/same") == b"unchanged"
    hdfs_part = next(d for d in manifest["datasets"] if d["component"] == "hdfs")
    assert hdfs_part["files_copied"] == 1  # the file that only looked alike, not the one that is


def test_a_directory_of_the_business_named_like_the_copys_parking_place_is_kept(
    clusters: Clusters, tmp_path: Path
) -> None:
    """An incremental copy with renames parks files in a directory of its own, deleted after:
    a directory of the business's with the old fixed name is the business's data."""
    biz = Business(clusters, tmp_path, "rk_parking")
    biz.src.write(f"{biz.top}/.tandem-diff-tmp/mine", b"the business's own file")
    biz.src.write(f"{biz.top}/a", b"a")
    biz.add_partition("d1")
    biz.backup(0)
    biz.src.rename(f"{biz.top}/a", f"{biz.top}/b")
    biz.src.write(f"{biz.top}/.tandem-diff-tmp/mine2", b"another")
    manifest = biz.backup(1)
    assert manifest["mode"] == "incremental"
    assert biz.dst.read_bytes(f"{biz.top}/.tandem-diff-tmp/mine") == b"the business's own file"
    assert biz.dst.read_bytes(f"{biz.top}/.tandem-diff-tmp/mine2") == b"another"
    assert biz.dst.read_bytes(f"{biz.top}/b") == b"a" and biz.dst.status(f"{biz.top}/a") is None
    assert biz.live_check(biz.newest()).ok


def test_a_partition_stored_otherwise_reaches_the_standby(clusters: Clusters, tmp_path: Path) -> None:
    """A partition whose columns or format change (its location staying) is altered on the
    standby too, and a standby that kept the old layout is found by the check."""
    from hmsclient.genthrift.hive_metastore.ttypes import FieldSchema

    biz = Business(clusters, tmp_path, "rk_partlayout")
    biz.src.write(f"{biz.top}/f", b"f")
    biz.add_partition("d1")
    biz.backup(0)
    orc = "org.apache.hadoop.hive.ql.io.orc.OrcInputFormat"
    with biz.src_ms.session() as c:
        part = c.get_partition(biz.name, "orders", ["d1"])
        part.sd.cols = [FieldSchema("id", "int", ""), FieldSchema("extra", "string", "")]
        part.sd.inputFormat = orc
        c.alter_partition(biz.name, "orders", part)
    biz.backup(1)
    [copied] = biz.dst_ms.get_partitions(biz.table)
    assert copied.sd.inputFormat == orc and [c.name for c in copied.sd.cols] == ["id", "extra"]
    assert biz.live_check(biz.newest()).ok
    with biz.dst_ms.session() as c:  # the standby's layout drifts behind Tandem's back
        part = c.get_partition(biz.name, "orders", ["d1"])
        part.sd.inputFormat = "org.apache.hadoop.mapred.TextInputFormat"
        c.alter_partition(biz.name, "orders", part)
    check = biz.live_check(biz.newest())
    assert any("partition day=d1 has another location or layout" in m for m in check.mismatches), check


def test_a_table_made_again_with_other_partition_keys_is_made_again_on_the_standby(
    clusters: Clusters, tmp_path: Path
) -> None:
    """The metastore refuses to alter partition keys: backups stopped for good at
    register_metadata. The standby's table is dropped (its data kept) and created again."""
    from hmsclient.genthrift.hive_metastore.ttypes import FieldSchema, Partition

    biz = Business(clusters, tmp_path, "rk_rekeyed")
    biz.src.write(f"{biz.top}/f", b"f")
    biz.add_partition("d1")
    biz.backup(0)
    ns = clusters.spec("primary").nameservice
    with biz.src_ms.session() as c:
        table = c.get_table(biz.name, "orders")
        c.drop_table(biz.name, "orders", False)
        table.partitionKeys = [FieldSchema("hour", "string", "")]
        c.create_table(table)
    biz.src.write(f"{biz.location}/hour=h1/part-0", b"4,5\n")
    with biz.src_ms.session() as c:
        sd = c.get_table(biz.name, "orders").sd
        sd.location = f"{ns}{biz.location}/hour=h1"
        c.add_partitions(
            [Partition(values=["h1"], dbName=biz.name, tableName="orders", sd=sd, parameters={})]
        )
    manifest = biz.backup(1)
    assert manifest["business"] == biz.name
    standby = biz.dst_ms.get_table(biz.table)
    assert [k.name for k in standby.partitionKeys] == ["hour"]
    assert [p.values for p in biz.dst_ms.get_partitions(biz.table)] == [["h1"]]
    assert biz.live_check(biz.newest()).ok


def test_user_attributes_of_files_and_directories_reach_the_standby(
    clusters: Clusters, tmp_path: Path
) -> None:
    biz = Business(clusters, tmp_path, "rk_xattrs")
    biz.src.write(f"{biz.top}/f", b"data")
    biz.src.mkdirs(f"{biz.top}/sub")
    biz.src.set_xattrs(f"{biz.top}/f", {"user.checksum": b"abc"})
    biz.src.set_xattrs(f"{biz.top}/sub", {"user.team": b"billing", "user.gone": b"soon"})
    biz.add_partition("d1")
    biz.backup(0)
    assert biz.dst.xattrs(f"{biz.top}/f") == {"user.checksum": b"abc"}
    assert biz.dst.xattrs(f"{biz.top}/sub") == {"user.team": b"billing", "user.gone": b"soon"}
    biz.src.set_xattrs(f"{biz.top}/f", {"user.checksum": b"def"})
    biz.src.remove_xattr(f"{biz.top}/sub", "user.gone")
    biz.src.write(f"{biz.top}/sub/g", b"g")
    biz.src.set_xattrs(f"{biz.top}/sub/g", {"user.k": b"v"})
    assert biz.backup(1)["mode"] == "incremental"
    for path in (f"{biz.top}/f", f"{biz.top}/sub", f"{biz.top}/sub/g"):
        assert biz.dst.xattrs(path) == biz.src.xattrs(path), path
    # changed on the standby behind Tandem's back: verify --live sees it, a restore puts it back
    biz.dst.set_xattrs(f"{biz.top}/f", {"user.checksum": b"tampered"})
    biz.dst.remove_xattr(f"{biz.top}/sub", "user.team")
    landing = biz.newest()
    assert sorted(biz.live_check(landing).mismatches) == [
        f"{biz.top}/f: extended attributes differ",
        f"{biz.top}/sub: extended attributes differ",
    ]
    outcome = biz.restore(landing)
    assert outcome.check is not None and outcome.check.ok, outcome.check
    for path in (f"{biz.top}/f", f"{biz.top}/sub"):
        assert biz.dst.xattrs(path) == biz.src.xattrs(path), path


def _change_database(ms: Metastore, name: str, **fields: Any) -> None:
    with ms.session() as c:
        db = c.get_database(name)
        for key, value in fields.items():
            setattr(db, key, value)
        c.alter_database(name, db)


def test_a_databases_definition_reaches_the_standby_and_a_restore_puts_it_back(
    clusters: Clusters, tmp_path: Path
) -> None:
    """A point holds the protected tables' databases as they were (description, parameters,
    owner): the next backup alters the standby's database to match, ``verify`` sees a database
    that differs, and a restore to an older point gives that point's database back."""
    biz = Business(clusters, tmp_path, "dbdef")
    _change_database(biz.src_ms, biz.name, parameters={"team": "a"}, description="first")
    first = first_point(biz, {"a.csv": b"1\n"})
    _change_database(biz.src_ms, biz.name, parameters={"team": "b"}, description="second", ownerName="ops")
    biz.backup(1)
    second = biz.newest()
    held = biz.dst_ms.get_database(biz.name)
    assert (held.parameters, held.description, held.ownerName) == ({"team": "b"}, "second", "ops")
    assert biz.live_check(second).ok
    report = biz.live_check(first)
    assert f"database {biz.name}: definition differs from the point" in report.mismatches
    outcome = biz.restore(first)
    assert outcome.check is not None and outcome.check.ok, outcome.check
    held = biz.dst_ms.get_database(biz.name)
    assert (held.parameters, held.description) == ({"team": "a"}, "first")


def test_a_partition_whose_directory_does_not_exist_stops_the_backup_naming_it(
    clusters: Clusters, tmp_path: Path
) -> None:
    """A partition registered at a directory outside its table that does not exist (nothing
    written there yet): a point cannot snapshot it, so the backup stops before touching the
    standby, naming the partition and what to do; once the directory exists, it goes on."""
    from hmsclient.genthrift.hive_metastore.ttypes import Partition

    biz = Business(clusters, tmp_path, "nolocation")
    biz.src.write(f"{biz.top}/a.csv", b"1\n")
    biz.add_partition("d1")
    landing = f"/data/{biz.name}/landing/d2"
    with biz.src_ms.session() as c:
        table = c.get_table(biz.name, "orders")
        table.sd.location = f"{biz.fs}{landing}"
        c.add_partitions([Partition(values=["d2"], dbName=biz.name, tableName="orders", sd=table.sd)])
    with pytest.raises(SnapshotRootError) as refused:
        biz.backup(0)
    assert f"partition day=d2 of {biz.table}" in str(refused.value)
    assert f"hdfs dfs -mkdir -p {landing}" in str(refused.value)
    assert catalog.latest(biz.dst, biz.name) is None
    biz.src.mkdirs(landing)
    biz.backup(0)
    assert biz.partitions(biz.dst_ms) == {"d1", "d2"}


def test_live_verify_names_each_path_that_differs_once(clusters: Clusters, tmp_path: Path) -> None:
    """A file changed, one deleted and one added on the standby after its point: three paths
    differ, and ``verify --live`` says three (a changed file takes two steps to land: still one)."""
    biz = Business(clusters, tmp_path, "livecount")
    landing = first_point(biz, {"a.csv": b"1\n", "b.csv": b"2\n"})
    biz.dst.write(f"{biz.top}/a.csv", b"changed\n", overwrite=True)
    biz.dst.delete(f"{biz.top}/b.csv")
    biz.dst.write(f"{biz.top}/c.csv", b"new\n")
    mismatches = verify.check_live(biz.dst, landing.manifest).mismatches
    assert sorted(m.split(":")[0] for m in mismatches) == [
        f"{biz.top}/{n}" for n in ("a.csv", "b.csv", "c.csv")
    ]


def test_a_run_whose_point_would_not_be_at_its_instant_is_refused(clusters: Clusters, tmp_path: Path) -> None:
    """A point is named for the moment its snapshots are taken: a run with an instant ahead of
    now (a logical date in the future), or older than a point already published (an old run
    cleared days later), would publish this moment's data under another instant's name, and the
    newest point a failover lands on would not hold the newest data. Both stop before writing."""
    from datetime import UTC, datetime

    biz = Business(clusters, tmp_path, "instants")
    landing = first_point(biz, {"a.csv": b"1\n"})
    ahead = backup.Run(
        biz.policy, clusters.topology, datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    )
    with pytest.raises(backup.RunOutOfTime, match="ahead of now"):
        backup.run_once(ahead, clusters)
    with pytest.raises(
        backup.RunOutOfTime, match=f"point {landing.manifest.point} of instants is published already"
    ):
        biz.backup(-1)
    assert [p.point for p in catalog.list_points(biz.dst, biz.name)] == [landing.manifest.point]
    assert biz.backup(1)["mode"] == "incremental"  # the next instant goes on as usual


def test_a_run_overtaken_while_its_point_is_verified_does_not_publish(
    clusters: Clusters, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Publishing checks every copied file before the point appears, which may take long: a
    newer run that claims the business meanwhile (and takes the older run's snapshots away as a
    dead run's) stops the older one right before its manifest is written (found by an
    adversarial read of the DAGs)."""
    import importlib

    publishing = importlib.import_module("tandem.backup.publish")  # the package names a function so
    from tandem.backup.run import claim

    biz = Business(clusters, tmp_path, "rk_latepublish")
    first_point(biz, {"a": b"a"})
    biz.src.write(f"{biz.top}/a", b"a2")
    check_copy = publishing.verify.check_copy
    claimed: list[str] = []

    def newer_run_claims_meanwhile(*args: Any, **kwargs: Any) -> Any:
        checked = check_copy(*args, **kwargs)
        if not claimed:
            newer = backup.Run(biz.policy, clusters.topology, T0 + timedelta(hours=2))
            claim(biz.src, newer)
            claimed.append(catalog.iso(newer.instant))
        return checked

    monkeypatch.setattr(publishing.verify, "check_copy", newer_run_claims_meanwhile)
    with pytest.raises(backup.RunOvertaken, match="publish_restore_point: another backup"):
        biz.backup(1)
    assert claimed and catalog.find(biz.dst, biz.name, T0 + timedelta(hours=1)) is None


def test_a_database_without_a_description_does_not_stop_its_backups(
    clusters: Clusters, tmp_path: Path
) -> None:
    """The source's database has no description (the usual case), the standby's has one: an alter
    does not send a blank one and the metastore keeps its own, so it is not compared (before,
    every backup failed its verification for good; found by a second read)."""
    biz = Business(clusters, tmp_path, "dbblank")
    first_point(biz, {"a.csv": b"1\n"})
    _change_database(biz.dst_ms, biz.name, description="set on the standby")
    biz.src.write(f"{biz.top}/b.csv", b"2\n")
    assert biz.backup(1)["verified"]
