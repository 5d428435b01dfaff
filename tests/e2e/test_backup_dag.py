"""The generated backup DAG, run by real Airflow (`airflow dags test`) on the embedded clusters."""

from __future__ import annotations

import posixpath
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tandem import catalog
from tandem.hdfs.client import Hdfs
from tandem.policy import load_topology
from tandem.runtime import Clusters
from tandem_dev.local_airflow import LocalAirflow
from tests.e2e.conftest import write_policy
from tests.instants import iso, recent_hour, stamp

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("airflow"), pytest.mark.timeout(900)]

T0 = recent_hour(12)


def clients(include_dir: Path) -> tuple[Hdfs, Hdfs]:
    clusters = Clusters(load_topology(include_dir / "clusters.yaml"))
    return clusters.hdfs("primary"), clusters.hdfs("standby")


def seed(hdfs: Hdfs, top: str, count: int, size: int = 2048) -> None:
    for i in range(count):
        sub = f"part-{i % 3}"
        hdfs.write(f"{top}/{sub}/file-{i:03d}.bin", bytes([i % 251]) * (size + i))


def tree(hdfs: Hdfs, top: str) -> dict[str, tuple[int, str]]:
    """relpath -> (length, checksum) of every file under top."""
    return {
        e.relpath: (e.status.length, hdfs.checksum(posixpath.join(top, e.relpath)).bytes)
        for e in hdfs.walk(top)
        if not e.status.is_dir
    }


def run_ok(airflow: LocalAirflow, dag_id: str, at: datetime, conf: dict[str, object] | None = None) -> None:
    result = airflow.dags_test(dag_id, at, conf)
    assert result.ok, f"{dag_id} at {at}: {result.state}\n{result.output[-6000:]}"


def test_full_then_incremental_copies_only_what_changed(local_airflow, include_dir, cluster_env):
    business, top = "e2e_incr", "/data/e2e_incr/details"
    write_policy(include_dir, business, [{"hdfs": top}])
    src, dst = clients(include_dir)
    seed(src, top, 12)
    src.set_acl(top, ["user:auditor:r-x"])
    run_ok(local_airflow, f"tandem_backup__{business}", T0, {"full": True})

    first = catalog.latest(dst, business)
    assert first is not None and first.mode == "full" and first.files_copied == 12
    assert first.verified and first.snapshot_name == f"tandem-e2e_incr-{stamp(T0)}"
    assert tree(dst, top) == tree(src, top)
    assert "user:auditor:r-x" in dst.acl_status(top).entries
    assert dst.acl_status(top) == src.acl_status(top)
    assert catalog.latest(src, business) == first  # the copy of the manifest on the source

    src.write(f"{top}/part-0/file-000.bin", b"changed" * 100)  # modified
    src.write(f"{top}/part-new/fresh.bin", b"new" * 100)  # created
    src.delete(f"{top}/part-1/file-001.bin")  # deleted
    src.rename(f"{top}/part-2", f"{top}/part-two")  # renamed directory (4 files, not copied)
    run_ok(local_airflow, f"tandem_backup__{business}", T0 + timedelta(hours=1))

    second = catalog.latest(dst, business)
    assert second is not None and second.mode == "incremental"
    assert second.base_point == first.point
    assert second.files_copied == 2
    assert second.bytes_copied == len(b"changed" * 100) + len(b"new" * 100)
    assert tree(dst, top) == tree(src, top)
    snap = f"{top}/.snapshot/{second.snapshot_name}"
    assert tree(dst, snap) == tree(src, snap)  # the standby's snapshot is the restore point


def test_a_dry_run_shows_the_preview_and_changes_nothing(local_airflow, include_dir, cluster_env):
    business, top = "e2e_dry", "/data/e2e_dry/details"
    write_policy(include_dir, business, [{"hdfs": top}])
    src, dst = clients(include_dir)
    seed(src, top, 6)
    size = sum(2048 + i for i in range(6))
    # a misspelt dry_run (Airflow takes any conf key) fails before anything is done
    typo = local_airflow.dags_test(f"tandem_backup__{business}", T0 - timedelta(hours=1), {"dry-run": True})
    assert typo.state == "failed" and "unknown conf key(s) 'dry-run'" in typo.output
    dry = local_airflow.dags_test(f"tandem_backup__{business}", T0, {"dry_run": True})
    assert dry.ok, f"{dry.state}\n{dry.output[-6000:]}"
    assert f"dry run: the run would start; 6 files, {size} bytes to copy; nothing was changed" in dry.output
    assert "direction: primary -> standby" in dry.output
    assert catalog.latest(dst, business) is None and catalog.latest(src, business) is None
    assert not src.status(top).snapshot_enabled and dst.status(top) is None
    run_ok(local_airflow, f"tandem_backup__{business}", T0 + timedelta(hours=1))
    made = catalog.latest(dst, business)
    assert made is not None and (made.files_copied, made.bytes_copied) == (6, size)


def test_target_changed_falls_back_to_full_and_quarantines(local_airflow, include_dir, cluster_env):
    business, top = "e2e_drift", "/data/e2e_drift/details"
    write_policy(include_dir, business, [{"hdfs": top}])
    src, dst = clients(include_dir)
    seed(src, top, 6)
    run_ok(local_airflow, f"tandem_backup__{business}", T0)
    dst.write(f"{top}/part-0/written-on-standby.bin", b"stray")  # someone wrote to the standby
    run_ok(local_airflow, f"tandem_backup__{business}", T0 + timedelta(hours=1))

    second = catalog.latest(dst, business)
    assert second is not None and second.mode == "full"
    assert tree(dst, top) == tree(src, top)
    quarantine = f"/.tandem/quarantine/{business}/{stamp(T0 + timedelta(hours=1))}"
    parked = f"{quarantine}/data/e2e_drift/details/part-0/written-on-standby.bin"
    assert dst.read_bytes(parked) == b"stray"


def test_failed_copy_leaves_last_point_and_rerun_cleans_up(local_airflow, include_dir, cluster_env):
    business, top = "e2e_crash", "/data/e2e_crash/details"
    write_policy(include_dir, business, [{"hdfs": top}])
    src, dst = clients(include_dir)
    seed(src, top, 6)
    run_ok(local_airflow, f"tandem_backup__{business}", T0)
    first = catalog.latest(dst, business)
    assert first is not None

    # the copy dies midway: the target directory runs out of space after a few files
    for i in range(6):
        src.write(f"{top}/big/blob-{i}.bin", b"x" * 200_000)
    used = dst.quota_usage(top).space_consumed
    dst.set_quota(top, -1, used + 450_000)
    failed = local_airflow.dags_test(f"tandem_backup__{business}", T0 + timedelta(hours=1))
    assert failed.state == "failed"
    assert catalog.latest(dst, business) == first  # the last published point is untouched
    assert {s.name for s in src.snapshots(top)} >= {first.snapshot_name}

    dst.set_quota(top, -1, -1)
    run_ok(local_airflow, f"tandem_backup__{business}", T0 + timedelta(hours=2))
    third = catalog.latest(dst, business)
    assert third is not None and third.point == iso(T0 + timedelta(hours=2))
    assert tree(dst, top) == tree(src, top)  # no half-copied file survives
    names = {s.name for s in src.snapshots(top)}
    failed_point = f"tandem-e2e_crash-{stamp(T0 + timedelta(hours=1))}"
    assert failed_point not in names  # the failed point's snapshot is gone
    assert names == {first.snapshot_name, third.snapshot_name}


def test_unreachable_primary_fails_preflight_with_the_reason(local_airflow, include_dir, cluster_env):
    business = "e2e_ghost"
    write_policy(include_dir, business, [{"hdfs": "/data/e2e_ghost"}], pair="ghostpair")
    result = local_airflow.dags_test(f"tandem_backup__{business}", T0)
    assert result.state == "failed"
    assert "no active cluster in the pair (ghost unreachable, standby standby)" in result.output


def test_target_out_of_quota_fails_preflight(local_airflow, include_dir, cluster_env):
    business, top = "e2e_quota", "/data/e2e_quota/details"
    write_policy(include_dir, business, [{"hdfs": top}])
    src, dst = clients(include_dir)
    seed(src, top, 5, size=50_000)
    dst.mkdirs("/data/e2e_quota")
    dst.set_quota("/data/e2e_quota", -1, 10_000)
    result = local_airflow.dags_test(f"tandem_backup__{business}", T0)
    assert result.state == "failed"
    assert "target out of quota" in result.output
    assert catalog.latest(dst, business) is None


def test_the_restore_dag_lands_a_business_and_clearing_a_published_run_keeps_it(
    local_airflow, include_dir, cluster_env
):
    business, top = "e2e_restore", "/data/e2e_restore/details"
    write_policy(include_dir, business, [{"hdfs": top}])
    src, dst = clients(include_dir)
    seed(src, top, 6)
    run_ok(local_airflow, f"tandem_backup__{business}", T0)
    point = catalog.latest(dst, business)
    assert point is not None and point.verified and point.verification["mismatches"] == 0
    published = tree(dst, top)

    # the same point again (a cleared run): skipped from snapshot.take on, the point stays as it was
    again = local_airflow.dags_test(f"tandem_backup__{business}", T0)
    assert again.ok, again.output[-3000:]
    assert catalog.latest(dst, business) == point

    dst.write(f"{top}/part-0/file-000.bin", b"damaged on the standby")
    dst.write(f"{top}/stray.bin", b"not in any point")
    wrong = local_airflow.dags_test("tandem_restore", T0, {"business": business, "confirmation": "nope"})
    assert wrong.state == "failed" and "does not repeat the business name" in wrong.output
    assert dst.read_bytes(f"{top}/stray.bin") == b"not in any point"

    run_ok(local_airflow, "tandem_restore", T0, {"business": business, "confirmation": business})
    assert tree(dst, top) == published
    assert dst.status(f"{top}/stray.bin") is None


def test_runs_whose_points_would_not_be_at_their_instants_publish_nothing(
    local_airflow, include_dir, cluster_env
):
    """A run triggered with a logical date in the future (REST API, trigger form), or an old run
    cleared after a newer point was published, would publish this moment's data under another
    instant's name: the first fails at ``take`` (not retried: another try is as wrong), the
    second is skipped there with the reason; the newest point stays the newest data."""
    business, top = "e2e_instants", "/data/e2e_instants/details"
    dag = f"tandem_backup__{business}"
    write_policy(include_dir, business, [{"hdfs": top}])
    src, dst = clients(include_dir)
    seed(src, top, 3)
    run_ok(local_airflow, dag, T0)
    ahead = local_airflow.dags_test(dag, recent_hour(-48))
    assert ahead.state == "failed" and "ahead of now" in ahead.output
    # superseded (an old run cleared, the first scheduled run after an unpause): skipped
    late = local_airflow.dags_test(dag, T0 - timedelta(hours=48))
    assert "is published already, newer than this run's instant" in late.output, late.output[-3000:]
    assert [p.point for p in catalog.list_points(dst, business)] == [iso(T0)]
