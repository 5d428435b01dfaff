"""A full target: the gateway evicts the plan's own oldest backups (``evict: oldest``) or only
those older than ``max_age`` (``older_than_max_age``), never a path still pending, and when
nothing evictable frees enough the write stays pending on its primary, never lost.

The target is a NAS directory with a configured capacity; writes go through the gateway with a
Content-Length (as most clients send), and the directory is listed before and after with ``os``.
Ages are made by setting a backup's time back from now, never by waiting.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest
from hdfs import InsecureClient

from tandem.gateway.context import PlanContext
from tandem.gateway.marks import PENDING_BACKUP, Mark
from tandem.gateway.plan import GatewayPlan as PlanModel
from tandem.gateway.protect import Protection
from tandem.gateway.routing import BucketMap
from tandem.gateway.sides import Side
from tandem.gateway.targets import TargetFull, connect_target
from tandem.gateway.targets.local import LocalTarget
from tandem.policy import load_topology
from tandem_dev.embedded.manager import RunningClusters
from tandem_dev.s3 import SeaweedS3
from tests.integration.gateway_support import (
    COMMAND_TIMEOUT_S,
    ROOT,
    TANDEM,
    Gateway,
    GatewayPlan,
    create,
    gateway,
    payload,
    read_or_none,
    replay,
    status,
    superusers,
    write_plan,
)
from tests.integration.test_failover_support import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("gateway_space")]

CAPACITY = 100_000
SIZE = 24_000
DAY_S = 86_400


def _setup(
    embedded: RunningClusters, tmp_path: Path, name: str, space: dict[str, str], capacity: int = CAPACITY
) -> tuple[GatewayPlan, Path]:
    nas = tmp_path / "nas"
    nas.mkdir()
    target = {"uri": f"file://{nas}", "root": "/backup", "capacity": capacity}
    return write_plan(tmp_path, embedded.home, name, extra={"target": target, "space": space}), nas


def _held(nas: Path, name: str) -> list[str]:
    folder = nas / "backup" / name / "d"
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else []


def _put(gw: Gateway, plan: GatewayPlan, name: str) -> str:
    path = f"/{plan.name}/d/{name}"
    done = create(gw.webhdfs, plan.token, path, payload(path, SIZE), overwrite=True)
    assert done.status_code == 201, done.text
    return str(done.headers["X-Tandem-Backup"])


def _put_chunked(gw: Gateway, plan: GatewayPlan, name: str, size: int) -> str:
    """A CREATE whose body has no Content-Length (chunked, as ``hdfs``'s upload sends a stream)."""
    path = f"/{plan.name}/d/{name}"
    body = payload(path, size)
    pieces = (body[i : i + 65_536] for i in range(0, len(body), 65_536))
    done = create(gw.webhdfs, plan.token, path, pieces, overwrite=True)
    assert done.status_code == 201, done.text
    return str(done.headers["X-Tandem-Backup"])


def _age(nas: Path, plan: GatewayPlan, name: str, days: float) -> None:
    then = time.time() - days * DAY_S
    os.utime(nas / "backup" / plan.name / "d" / name, (then, then))


@pytest.fixture
def direct(embedded: RunningClusters) -> dict[str, InsecureClient]:
    return superusers({n: embedded[n].webhdfs_url for n in ("primary", "primary2")})


@pytest.fixture
def oldest(embedded: RunningClusters, tmp_path: Path) -> Iterator[tuple[GatewayPlan, Gateway, Path]]:
    plan, nas = _setup(embedded, tmp_path, "gwsold", {"evict": "oldest"})
    with gateway(plan) as gw:
        yield plan, gw, nas


@pytest.fixture
def aged(embedded: RunningClusters, tmp_path: Path) -> Iterator[tuple[GatewayPlan, Gateway, Path]]:
    plan, nas = _setup(embedded, tmp_path, "gwsage", {"evict": "older_than_max_age", "max_age": "1d"})
    with gateway(plan) as gw:
        yield plan, gw, nas


def test_the_oldest_backups_make_room(oldest: tuple[GatewayPlan, Gateway, Path]) -> None:
    plan, gw, nas = oldest
    for i in range(4):
        assert _put(gw, plan, f"f{i}") == "done"
        _age(nas, plan, f"f{i}", 4 - i)  # f0 the oldest
    assert _held(nas, plan.name) == ["f0", "f1", "f2", "f3"]
    assert _put(gw, plan, "f4") == "done"  # 96,000 held, 24,000 more: one backup must go
    assert _held(nas, plan.name) == ["f1", "f2", "f3", "f4"]
    assert _put(gw, plan, "f5") == "done"
    assert _held(nas, plan.name) == ["f2", "f3", "f4", "f5"]
    doc = status(plan)
    assert doc["evictions"] == 2 and not doc["degraded"]
    assert "evicted /backup/gwsold/d/f0" in gw.log() and "evicted /backup/gwsold/d/f1" in gw.log()
    shown = subprocess.run(
        [*TANDEM, "gateway", "status", plan.name, "--home", str(plan.home)],
        env=plan.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )
    assert shown.returncode == 0 and "2 run(s) made room" in shown.stdout, shown.stdout + shown.stderr


def test_only_backups_past_max_age_go_and_a_write_that_still_does_not_fit_stays_pending(
    aged: tuple[GatewayPlan, Gateway, Path], direct: dict[str, InsecureClient]
) -> None:
    plan, gw, nas = aged
    for i in range(4):
        assert _put(gw, plan, f"a{i}") == "done"
    _age(nas, plan, "a0", 3)
    _age(nas, plan, "a1", 2)
    _age(nas, plan, "a2", 0.5)  # younger than max_age: kept however full the target is
    assert _put(gw, plan, "a4") == "done"
    assert _held(nas, plan.name) == ["a2", "a3", "a4"]  # both old ones went, nothing else
    assert _put(gw, plan, "a5") == "done"  # 72,000 + 24,000 fits
    path = f"/{plan.name}/d/a6"
    assert _put(gw, plan, "a6") == "pending"  # nothing old is left to evict
    assert _held(nas, plan.name) == ["a2", "a3", "a4", "a5"]
    assert read_or_none(direct[plan.primary_of(path)], path) == payload(path, SIZE)  # never lost
    doc = status(plan)
    assert doc["degraded"] is True
    assert sum(s.get("pending_backup", {}).get("count", 0) for s in doc["sides"].values()) == 1
    # once there is room (the application deletes a file), replay completes the backup
    client = InsecureClient(gw.url, user=None)
    client._session.params = {"delegation": plan.token}
    client.delete(f"/{plan.name}/d/a2")
    done = replay(plan)
    assert done["returncode"] == 0, done
    assert _held(nas, plan.name) == ["a3", "a4", "a5", "a6"]
    assert (nas / "backup" / plan.name / "d" / "a6").read_bytes() == payload(path, SIZE)


def test_a_path_still_pending_is_never_evicted(
    aged: tuple[GatewayPlan, Gateway, Path], direct: dict[str, InsecureClient]
) -> None:
    plan, gw, nas = aged
    for i in range(4):
        assert _put(gw, plan, f"p{i}") == "done"
    old = (nas / "backup" / plan.name / "d" / "p0").read_bytes()
    _age(nas, plan, "p0", 5)
    # p0 written again while the target is full: its own old copy is the only old backup, but the
    # write in flight names it, so it stays; the new version is pending
    path = f"/{plan.name}/d/p0"
    done = create(gw.webhdfs, plan.token, path, b"v2" * (SIZE // 2) + b"++", overwrite=True)
    assert done.status_code == 201 and done.headers["X-Tandem-Backup"] == "pending"
    assert (nas / "backup" / plan.name / "d" / "p0").read_bytes() == old
    assert _held(nas, plan.name) == ["p0", "p1", "p2", "p3"]
    assert status(plan)["evictions"] == 0


def test_an_s3_target_cut_off_while_full_loses_nothing_and_evicts_once_back(
    embedded: RunningClusters, tmp_path: Path, s3_server: SeaweedS3, direct: dict[str, InsecureClient]
) -> None:
    """The store stops answering just when a write needs room: nothing is evicted blind, the
    write stays pending on its primary; once the store answers, replay evicts the oldest backup
    and completes the copy."""
    bucket = s3_server.make_bucket(f"tandem-space-{os.urandom(4).hex()}")
    proxy = TcpProxy("127.0.0.1", s3_server.ports["s3.port"])
    conn = json.loads(s3_server.airflow_connection())
    conn["extra"]["endpoint_url"] = f"http://127.0.0.1:{proxy.port}"
    target = {
        "uri": f"s3://{bucket}/t",
        "conn_id": "tandem_space_s3",
        "root": "/backup",
        "capacity": CAPACITY,
    }
    plan = write_plan(
        tmp_path, embedded.home, "gwss3", extra={"target": target, "space": {"evict": "oldest"}}
    )
    plan.env["AIRFLOW_CONN_TANDEM_SPACE_S3"] = json.dumps(conn)
    client = s3_server.client()

    def held() -> list[str]:
        listed = client.list_objects_v2(Bucket=bucket, Prefix=f"t/backup/{plan.name}/d/").get("Contents", [])
        return sorted(o["Key"].rsplit("/", 1)[1] for o in listed)

    try:
        with gateway(plan, "--no-worker") as gw:
            for i in range(4):
                assert _put(gw, plan, f"e{i}") == "done"
            assert held() == ["e0", "e1", "e2", "e3"]
            proxy.cut()
            try:
                assert _put(gw, plan, "e4") == "pending"
            finally:
                proxy.restore()
            assert held() == ["e0", "e1", "e2", "e3"]  # nothing evicted while the store was away
            path = f"/{plan.name}/d/e4"
            assert read_or_none(direct[plan.primary_of(path)], path) == payload(path, SIZE)
        done = replay(plan)
        assert done["returncode"] == 0 and done["files"] == 1, done
        assert held() == ["e1", "e2", "e3", "e4"]
        assert status(plan)["evictions"] == 1
    finally:
        proxy.close()


BIG = 2_000_000  # over the size the gateway reads whole before writing: it streams with no length


@pytest.mark.parametrize("size", [SIZE, BIG], ids=["small", "streamed"])
def test_an_upload_without_a_length_makes_room_like_one_with_a_length(
    embedded: RunningClusters, tmp_path: Path, size: int
) -> None:
    """Three backups fill the target; a fourth sent chunked (no Content-Length) evicts the oldest."""
    plan, nas = _setup(embedded, tmp_path, f"gwsch{size}", {"evict": "oldest"}, capacity=size * 3 + size // 2)
    with gateway(plan) as gw:
        for i in range(3):
            assert _put_chunked(gw, plan, f"c{i}", size) == "done"
            _age(nas, plan, f"c{i}", 3 - i)
        assert _put_chunked(gw, plan, "c3", size) == "done"
        assert _held(nas, plan.name) == ["c1", "c2", "c3"]
        path = f"/{plan.name}/d/c3"
        assert (nas / "backup" / plan.name / "d" / "c3").read_bytes() == payload(path, size)
        assert status(plan)["evictions"] == 1


def test_a_streamed_upload_that_cannot_fit_stays_pending_and_leaves_nothing_on_the_target(
    embedded: RunningClusters, tmp_path: Path, direct: dict[str, InsecureClient]
) -> None:
    """Room runs out midway through a stream with no length and nothing may be evicted: the
    write is pending on its primary, whole, and the target holds nothing under its name."""
    plan, nas = _setup(
        embedded, tmp_path, "gwsfull", {"evict": "older_than_max_age", "max_age": "1d"}, capacity=BIG * 3 // 2
    )
    with gateway(plan) as gw:
        assert _put_chunked(gw, plan, "s0", BIG) == "done"
        assert _put_chunked(gw, plan, "s1", BIG) == "pending"  # the first is young: nothing to evict
        assert _held(nas, plan.name) == ["s0"]
        path = f"/{plan.name}/d/s1"
        assert read_or_none(direct[plan.primary_of(path)], path) == payload(path, BIG)
        assert status(plan)["evictions"] == 0


# -- in one process, on directories: eviction that found nothing to delete tries again later ----
DAY_S = 86_400


def _nas_context(tmp_path: Path, space: dict[str, str], capacity: int) -> tuple[PlanContext, Path]:
    """A plan whose one primary and whose target are local directories (the target a NAS)."""
    nas, primary_dir = tmp_path / "nas", tmp_path / "primary"
    nas.mkdir()
    primary_dir.mkdir()
    target = {"uri": f"file://{nas}", "root": "/backup", "capacity": capacity}
    plan = PlanModel.model_validate({"plan": "p", "primaries": ["a"], "target": target, "space": space})
    topology = load_topology(Path(__file__).resolve().parents[2] / "include" / "clusters.yaml")
    primary = Side("a", lambda: LocalTarget(fsspec.filesystem("file"), str(primary_dir), "a", "file"))
    standby = Side(plan.target.label, connect_target(plan.target, topology), plan.target.root)
    routing = BucketMap.even("p", ["a"], 1000, "md5")
    return PlanContext(plan, {"a": primary}, standby, routing, Protection(plan.private_data, None)), nas


def _backup_file(nas: Path, path: str, size: int, age_s: float) -> Path:
    full = nas / "backup" / path.lstrip("/")
    full.parent.mkdir(parents=True, exist_ok=True)
    full.write_bytes(b"x" * size)
    os.utime(full, (time.time() - age_s, time.time() - age_s))
    return full


def test_a_backup_that_comes_of_age_is_evicted_without_a_restart(tmp_path: Path) -> None:
    ctx, nas = _nas_context(tmp_path, {"evict": "older_than_max_age", "max_age": "1d"}, capacity=100)
    backup = _backup_file(nas, "/p/d/young", 60, age_s=60)
    with pytest.raises(TargetFull):
        ctx.space.make_room(60)  # nothing old enough yet
    os.utime(backup, (time.time() - 2 * DAY_S, time.time() - 2 * DAY_S))  # two days on
    ctx.space.make_room(60)
    assert not backup.exists()


def test_a_backup_no_longer_pending_is_evicted_without_a_restart(tmp_path: Path) -> None:
    ctx, nas = _nas_context(tmp_path, {"evict": "oldest"}, capacity=100)
    backup = _backup_file(nas, "/p/d/old", 60, age_s=3 * DAY_S)
    journal = ctx.journal(ctx.primaries["a"])
    mark = Mark.new("write", ("/p/d/old",), "a")
    journal.put(mark, PENDING_BACKUP)
    with pytest.raises(TargetFull):
        ctx.space.make_room(60)  # its only backup is still owed a newer write: kept
    journal.delete(mark.id, PENDING_BACKUP)  # replayed
    ctx.space.make_room(60)
    assert not backup.exists()
