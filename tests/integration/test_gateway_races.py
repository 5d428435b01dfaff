"""Races and directory operations through the write gateway: two changes of related paths
interleaved so that the primary and the standby could take them in different orders, a directory
renamed under a write, replay reading a tree while a write lands in it.

The gateway runs in this process (as in test_gateway_write_order.py) against the session's
embedded clusters; where an interleaving must be forced, one call of a side's store is held or
failed on its way to the real cluster. Every interleaving forced here happens in production (two
clients of the gateway, a replay run by the DAG or the worker, a standby that blips).

What every test asserts, once replay has run to completion: every acknowledged write's final
content is on its primary and the same on the standby; nothing deleted comes back; no gateway
temporary file is left (the unforced race at the end excepted: see its comment); what the
application lists and deletes behaves as HDFS does.
"""

from __future__ import annotations

import random
import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from tandem.errors import RemoteHdfsError, TandemError
from tandem.gateway.context import PlanContext, open_plan
from tandem.gateway.marks import INFLIGHT, PENDING_BACKUP, TEMP_PREFIX, Mark, is_compact, new_id
from tandem.gateway.replay import replay_all
from tandem.gateway.service import Gateway
from tandem.gateway.writes import WriteResult
from tests.integration.gateway_support import payload, wait_for, write_plan

pytestmark = [pytest.mark.integration]

USER = "tandem"
HOLD_S = 30.0


# ----------------------------------------------------------------------------- helpers


def new_plan(
    tmp_path: Path, *, mode: str = "sync", primaries: tuple[str, ...] = ("primary",)
) -> tuple[str, PlanContext]:
    name = f"gwrace{secrets.token_hex(4)}"
    plan = write_plan(tmp_path, tmp_path / "home", name, mode=mode, primaries=primaries)
    return name, open_plan(plan.include, plan.name)


def write(gw: Gateway, path: str, data: bytes, *, overwrite: bool = True) -> WriteResult:
    session = gw.begin_write(path, USER, overwrite=overwrite, permission=None)
    session.start(data)
    return session.finish()


def marks(ctx: PlanContext, state: str) -> list[str]:
    return [i for side in ctx.primaries.values() for i in ctx.journal(side).ids(state)]


def settle(ctx: PlanContext) -> None:
    """Replay to completion: no inflight write left, every pending-backup mark replayed."""
    wait_for("in-flight marks to go", lambda: marks(ctx, INFLIGHT) == [], timeout=HOLD_S)
    for _ in range(5):
        report = replay_all(ctx)
        assert report.problems == [], report.summary()
        if not marks(ctx, PENDING_BACKUP) and not marks(ctx, INFLIGHT):
            return
    raise AssertionError(f"marks left after replay: {marks(ctx, PENDING_BACKUP)} {marks(ctx, INFLIGHT)}")


def on_primaries(ctx: PlanContext, path: str) -> bytes | None:
    for side in ctx.primaries.values():
        st = side.store.status(path)
        if st is not None and not st.is_dir:
            return side.store.read_bytes(path)
    return None


def on_standby(ctx: PlanContext, path: str) -> bytes | None:
    store, local = ctx.standby.store, ctx.standby.local(path)
    st = store.status(local)
    if st is None or st.is_dir:
        return None
    return store.read_bytes(local)


class Wrapped:
    """A side's store; calls pass through unless a hook (name -> callable) intercepts them."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.hooks: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.store, name)
        hook = self.hooks.get(name)
        if hook is None:
            return real

        def call(*args: Any, **kw: Any) -> Any:
            return hook(real, *args, **kw)

        return call


def wrap_standby(ctx: PlanContext) -> Wrapped:
    wrapped = Wrapped(ctx.standby.store)
    ctx.standby._client = wrapped  # type: ignore[attr-defined]
    return wrapped


@pytest.fixture
def closing() -> Iterator[list[Gateway]]:
    made: list[Gateway] = []
    yield made
    for gw in made:
        gw.close()


# ------------------------------------- 1. a rename carries the backup of a pending write


def test_async_directory_rename_carries_the_backup_of_a_pending_child(
    airflow_conns: dict[str, str], tmp_path: Path, closing: list[Gateway]
) -> None:
    """Async: /d exists on both sides; /d/a.bin is written (acknowledged, pending backup); the app
    renames /d to /e. The standby renames its /d, which lacks a.bin: the rename, finding a
    backup below its source still pending, keeps a mark for both, and replay copies /e/a.bin.
    (Before, the rename's mark went and a.bin's replay found /d/a.bin gone: never backed up.)"""
    name, ctx = new_plan(tmp_path, mode="async")
    gw = Gateway(ctx, worker=False)
    closing.append(gw)
    d, e = f"/{name}/d", f"/{name}/e"
    gw.mkdirs(d, USER, None)
    write(gw, f"{d}/old.bin", b"older, backed up")
    settle(ctx)
    data = payload("pending-child", 5_000)
    assert write(gw, f"{d}/a.bin", data).backup == "pending"
    assert gw.rename(d, e, USER)
    settle(ctx)
    assert on_primaries(ctx, f"{e}/a.bin") == data
    assert on_standby(ctx, f"{e}/old.bin") == b"older, backed up"
    assert on_standby(ctx, f"{e}/a.bin") == data, "acknowledged write never reaches the standby"


def test_sync_directory_rename_after_a_standby_blip_carries_the_backup_of_a_child(
    airflow_conns: dict[str, str], tmp_path: Path, closing: list[Gateway]
) -> None:
    """Sync: the standby fails one child's write (acknowledged, pending backup), answers again,
    then the directory is renamed: as in async mode, the child reaches the standby."""
    name, ctx = new_plan(tmp_path, mode="sync")
    standby = wrap_standby(ctx)
    gw = Gateway(ctx, worker=False)
    closing.append(gw)
    d, e = f"/{name}/d", f"/{name}/e"
    gw.mkdirs(d, USER, None)

    def blip(real: Any, path: str, *a: Any, **kw: Any) -> Any:
        if "a.bin" in path:
            raise requests.ConnectionError("standby blipped")
        return real(path, *a, **kw)

    standby.hooks["write_with_meta"] = blip
    data = payload("blipped-child", 5_000)
    assert write(gw, f"{d}/a.bin", data).backup == "pending"
    standby.hooks.clear()
    ctx.standby.answered()
    assert gw.rename(d, e, USER)
    settle(ctx)
    assert on_primaries(ctx, f"{e}/a.bin") == data
    assert on_standby(ctx, f"{e}/a.bin") == data, "acknowledged write never reaches the standby"


@pytest.mark.parametrize("across", [False, True], ids=["same-primary", "to-other-primary"])
def test_async_file_rename_after_an_overwrite_backs_up_the_new_content(
    airflow_conns: dict[str, str], tmp_path: Path, closing: list[Gateway], across: bool
) -> None:
    """Async: a.bin v1 is backed up; a.bin is overwritten with v2 (acknowledged, pending); the app
    renames a.bin to b.bin (on its primary, or moved to another one). The standby renames its v1:
    the rename, touching a pending write, keeps a mark for both names, and replay puts v2 at b.bin
    (before: v1 stayed there for good)."""
    primaries = ("primary", "primary2") if across else ("primary",)
    name, ctx = new_plan(tmp_path, mode="async", primaries=primaries)
    gw = Gateway(ctx, worker=False)
    closing.append(gw)
    src = f"/{name}/data/a.bin"
    want = ctx.primaries[ctx.routes.route(src)].name
    dst = next(
        p for i in range(1000) if ((ctx.routes.route(p := f"/{name}/data/b{i}.bin") != want) == across)
    )
    v1, v2 = payload("v1", 4_000), payload("v2", 6_000)
    write(gw, src, v1)
    settle(ctx)
    assert on_standby(ctx, src) == v1
    assert write(gw, src, v2).backup == "pending"
    assert gw.rename(src, dst, USER)
    settle(ctx)
    assert on_primaries(ctx, dst) == v2
    assert on_standby(ctx, src) is None
    assert on_standby(ctx, dst) == v2, "the standby keeps the version the app overwrote"


# ------------------------------- 2. replaying a directory mark keeps an acknowledged write


def test_replay_of_a_directory_mark_keeps_a_sync_write_that_landed_during_it(
    airflow_conns: dict[str, str], tmp_path: Path, closing: list[Gateway]
) -> None:
    """Sync: a directory rename /t -> /u misses the standby (a blip): its mark stays pending-backup.
    Replay reads the primaries' /u, then the standby's; a sync write of /u/new.bin lands on both
    sides in between (acknowledged ``done``, its mark dropped). Replay asks the primaries again
    before deleting what they seemed to lack, and keeps it (before: deleted for good)."""
    name, ctx = new_plan(tmp_path)
    standby = wrap_standby(ctx)
    gw = Gateway(ctx, worker=False)
    closing.append(gw)
    t, u = f"/{name}/t", f"/{name}/u"
    gw.mkdirs(t, USER, None)
    write(gw, f"{t}/x.bin", b"x")

    def blip(real: Any, a: str, b: str) -> Any:
        raise requests.ConnectionError("standby blipped")

    standby.hooks["rename"] = blip
    assert gw.rename(t, u, USER)
    standby.hooks.clear()
    ctx.standby.answered()
    assert len(marks(ctx, PENDING_BACKUP)) == 1

    fresh = payload("fresh", 3_000)
    results: list[WriteResult] = []

    def write_during_replay(real: Any, path: str, *a: Any, **kw: Any) -> Any:
        # replay's _backup_tree: primaries walked, standby's mkdirs(dst), then the standby walked
        if path == ctx.standby.local(u) and not results:
            results.append(write(gw, f"{u}/new.bin", fresh))
        return real(path, *a, **kw)

    standby.hooks["mkdirs"] = write_during_replay
    settle(ctx)
    standby.hooks.clear()
    assert results and results[0].backup == "done"
    settle(ctx)
    assert on_primaries(ctx, f"{u}/new.bin") == fresh
    assert on_standby(ctx, f"{u}/new.bin") == fresh, "replay deleted an acknowledged write from the standby"


# --------------------------- 3. a namespace change between a sync write's two RENAMEs


class HoldOneReplace:
    def __init__(self) -> None:
        self.held: str | None = None
        self.moving = threading.Event()
        self.release = threading.Event()

    def __call__(self, real: Any, src: str, dst: str) -> Any:
        if src == self.held:
            self.moving.set()
            assert self.release.wait(HOLD_S)
        return real(src, dst)


def test_delete_between_a_sync_writes_two_renames_leaves_the_sides_alike(
    airflow_conns: dict[str, str], tmp_path: Path, closing: list[Gateway]
) -> None:
    """Sync, two primaries, a file routed to primary2. Client 1 overwrites it; client 2 deletes it,
    landing after the write's primary RENAME and before its standby RENAME. The delete's mark is on
    primary (the first holder), the write's on primary2; each looks at every primary's marks
    before dropping its own, so one stays, and replay leaves the file on neither side."""
    name, ctx = new_plan(tmp_path, primaries=("primary", "primary2"))
    standby = wrap_standby(ctx)
    gw = Gateway(ctx, worker=False)
    closing.append(gw)
    path = next(p for i in range(1000) if ctx.routes.route(p := f"/{name}/data/f{i}.bin") == "primary2")
    write(gw, path, b"first version")
    hold = HoldOneReplace()
    standby.hooks["replace"] = hold
    with ThreadPoolExecutor(1) as pool:
        session = gw.begin_write(path, USER, overwrite=True, permission=None)
        hold.held = ctx.standby.local(session.temp)
        session.start(payload("second", 5_000))
        acked = pool.submit(session.finish)
        assert hold.moving.wait(HOLD_S)  # in place on primary2, not yet on the standby
        assert gw.delete(path, USER, recursive=False)
        wait_for("only the write's own inflight mark", lambda: len(marks(ctx, INFLIGHT)) == 1)
        hold.release.set()
        result = acked.result(timeout=HOLD_S)
    standby.hooks.clear()
    settle(ctx)
    state = {"primary": on_primaries(ctx, path) is not None, "standby": on_standby(ctx, path) is not None}
    assert state["primary"] == state["standby"], (
        f"sides differ after settling (write {result.backup}): {state}"
    )


def test_rename_between_a_sync_writes_two_renames_leaves_the_sides_alike(
    airflow_conns: dict[str, str], tmp_path: Path, closing: list[Gateway]
) -> None:
    """Sync, one primary. f.bin v1 on both sides. Client 1 overwrites f.bin with v2; client 2
    renames f.bin to g.bin, landing between the write's primary RENAME and its standby RENAME
    (before: primary g.bin = v2; standby g.bin = v1 and f.bin = v2). Replay settles both names."""
    name, ctx = new_plan(tmp_path)
    standby = wrap_standby(ctx)
    gw = Gateway(ctx, worker=False)
    closing.append(gw)
    f, g = f"/{name}/data/f.bin", f"/{name}/data/g.bin"
    v1, v2 = payload("v1", 3_000), payload("v2", 5_000)
    write(gw, f, v1)
    hold = HoldOneReplace()
    standby.hooks["replace"] = hold
    with ThreadPoolExecutor(1) as pool:
        session = gw.begin_write(f, USER, overwrite=True, permission=None)
        hold.held = ctx.standby.local(session.temp)
        session.start(v2)
        acked = pool.submit(session.finish)
        assert hold.moving.wait(HOLD_S)
        assert gw.rename(f, g, USER)
        # the rename's inflight mark (on the write's primary) goes in the background
        wait_for("only the write's own inflight mark", lambda: len(marks(ctx, INFLIGHT)) == 1)
        hold.release.set()
        result = acked.result(timeout=HOLD_S)
    standby.hooks.clear()
    settle(ctx)
    got = {
        "primary": (on_primaries(ctx, f), on_primaries(ctx, g)),
        "standby": (on_standby(ctx, f), on_standby(ctx, g)),
    }
    assert got["primary"] == (None, v2)
    names = {v1: "v1", v2: "v2", None: "absent"}
    assert got["standby"] == got["primary"], (
        f"write {result.backup}; standby f.bin, g.bin: {[names.get(b, b) for b in got['standby']]}"
    )


# ------------------- 4. a directory renamed onto a name the standby does not hold as a directory


def test_async_directory_rename_onto_an_existing_directory_moves_it_inside_on_both_sides(
    airflow_conns: dict[str, str], tmp_path: Path, closing: list[Gateway]
) -> None:
    """Async: /s/a exists on the primary only (made by a write still pending backup). The app
    renames directory /s/b onto /s/a: HDFS moves it into the existing directory (/s/a/b). Where it
    goes is decided once, in the merged namespace, and sent as such to the standby (which lacks
    /s/a: before, /s/b became /s/a there); replay then brings the standby to the primary's tree."""
    name, ctx = new_plan(tmp_path, mode="async")
    gw = Gateway(ctx, worker=False)
    closing.append(gw)
    a, b = f"/{name}/s/a", f"/{name}/s/b"
    gw.mkdirs(b, USER, None)
    y = payload("y", 2_000)
    write(gw, f"{b}/y.bin", y)
    settle(ctx)
    x = payload("x", 2_000)
    assert write(gw, f"{a}/x.bin", x).backup == "pending"
    assert gw.rename(b, a, USER)
    settle(ctx)
    assert on_primaries(ctx, f"{a}/b/y.bin") == y  # HDFS semantics on the primary
    got = {p: on_standby(ctx, p) is not None for p in (f"{a}/b/y.bin", f"{a}/y.bin", f"{a}/x.bin")}
    assert got == {f"{a}/b/y.bin": True, f"{a}/y.bin": False, f"{a}/x.bin": True}, got


# ---------------------------------------------- 5. nothing held: a real race, then settled


def tree(store: Any, top: str) -> dict[str, bytes | None]:
    if store.status(top) is None:
        return {}
    out: dict[str, bytes | None] = {}
    for e in store.walk(top):
        out[e.relpath] = None if e.status.is_dir else store.read_bytes(f"{top}/{e.relpath}")
    return out


OPS_PER_THREAD = 120


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_racing_writes_renames_and_deletes_leave_both_sides_alike(
    airflow_conns: dict[str, str], tmp_path: Path, mode: str
) -> None:
    name = f"gwstress{mode}{secrets.token_hex(4)}"
    plan = write_plan(tmp_path, tmp_path / "home", name, mode=mode, interval="1s", primaries=("primary",))
    ctx = open_plan(plan.include, plan.name)
    gw = Gateway(ctx, worker=True, inflight_grace_s=600)
    top = f"/{name}/s"
    dirs = [f"{top}/d{i}" for i in range(3)]
    counts = {"ok": 0, "refused": 0}
    errors: list[BaseException] = []

    def app(seed: int) -> None:
        rnd = random.Random(seed)
        for _ in range(OPS_PER_THREAD):
            d = rnd.choice(dirs)
            f = f"{d}/f{rnd.randrange(3)}.bin"
            op = rnd.random()
            try:
                if op < 0.55:
                    write(gw, f, rnd.randbytes(rnd.randrange(1, 3000)))
                elif op < 0.65:
                    gw.mkdirs(d, USER, None)
                elif op < 0.75:
                    gw.rename(f, f"{d}/f{rnd.randrange(3)}.bin", USER)
                elif op < 0.85:
                    gw.rename(d, rnd.choice(dirs), USER)
                elif op < 0.95:
                    gw.delete(f, USER, recursive=False)
                else:
                    gw.delete(d, USER, recursive=True)
                counts["ok"] += 1
            except TandemError:
                counts["refused"] += 1
            except Exception as exc:
                errors.append(exc)

    threads = [threading.Thread(target=app, args=(i,)) for i in range(3)]
    try:
        gw.mkdirs(top, USER, None)
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
    finally:
        gw.close()
    settle(ctx)
    primary = tree(ctx.primaries["primary"].store, top)
    standby = tree(ctx.standby.store, ctx.standby.local(top))
    # temporary files are not compared: a write refused because a directory rename took its
    # temporary file along before its mark could be seen leaves that file where the rename put
    # it (hidden from listings: a known leak); the ordered cases are asserted in
    # test_gateway_write_order and above
    differ = sorted(
        p
        for p in {*primary, *standby}
        if TEMP_PREFIX not in p and primary.get(p, "absent") != standby.get(p, "absent")
    )
    detail = {
        p: (
            ("absent" if p not in primary else "dir" if primary[p] is None else len(primary[p])),
            ("absent" if p not in standby else "dir" if standby[p] is None else len(standby[p])),
        )
        for p in differ
    }
    assert counts["ok"] > OPS_PER_THREAD and errors == [], f"{counts}, errors {errors[:3]}"
    assert differ == [], f"{counts}, errors {errors[:3]}; differ (primary, standby): {detail}"


# --------------------------------------------- 6. a second read of the fixes above (adversarial)


class Hooked:
    """Hooks on a side's real store (an instance attribute per method), so that it stays what it
    is (a ClusterTarget: replay reads a target's metadata only from a target type)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._orig: dict[str, Any] = {}

    def __setitem__(self, name: str, hook: Any) -> None:
        real = self._orig.setdefault(name, getattr(self.store, name))

        def call(*args: Any, **kw: Any) -> Any:
            return hook(real, *args, **kw)

        setattr(self.store, name, call)

    def clear(self) -> None:
        for name in self._orig:
            self.store.__dict__.pop(name, None)


def counted(store: Any, name: str) -> list[tuple[Any, ...]]:
    calls: list[tuple[Any, ...]] = []
    Hooked(store)[name] = lambda real, *a, **kw: calls.append(a) or real(*a, **kw)
    return calls


def held_on_the_standby(gw: Gateway, standby: Hooked, path: str, data: bytes) -> tuple[Any, threading.Event]:
    """A sync write of ``path`` begun, its standby copy held until the event is set."""
    go = threading.Event()
    session = gw.begin_write(path, USER, overwrite=True, permission=None)
    temp_on_standby = gw.ctx.standby.local(session.temp)

    def slow_sink(real: Any, where: str, *a: Any, **kw: Any) -> Any:
        if where == temp_on_standby:
            assert go.wait(HOLD_S)
        return real(where, *a, **kw)

    standby["write_with_meta"] = slow_sink
    session.start(data)
    return session, go


def test_replay_of_a_directory_mark_keeps_a_write_begun_before_the_mark_and_done_during_it(
    airflow_conns: dict[str, str], tmp_path: Path, closing: list[Gateway]
) -> None:
    """Sync. A write of /d/f.bin begins; a MKDIRS of /d then misses the standby (its mark is
    younger than the write); replay of that mark reads the primaries' /d before the write lands,
    the write lands on both sides (``done``), then replay reads the standby's /d: f.bin is on
    the standby and not in what it read of the primaries. It asks the primaries again before
    deleting, and keeps it (the write's own time says nothing of when it landed)."""
    name, ctx = new_plan(tmp_path)
    standby = Hooked(ctx.standby.store)
    gw = Gateway(ctx, worker=False)
    closing.append(gw)
    d, f = f"/{name}/d", f"/{name}/d/f.bin"
    gw.mkdirs(d, USER, None)
    write(gw, f"{d}/old.bin", b"old")
    settle(ctx)
    data = payload("slow-write", 4_000)
    session, go = held_on_the_standby(gw, standby, f, data)
    with ThreadPoolExecutor(1) as pool:
        acked = pool.submit(session.finish)

        def blip(real: Any, path: str, *a: Any, **kw: Any) -> Any:
            raise requests.ConnectionError("standby blipped")

        standby["mkdirs"] = blip
        assert gw.mkdirs(d, USER, None)
        ctx.standby.answered()
        assert len(marks(ctx, PENDING_BACKUP)) == 1

        def write_lands_during_replay(real: Any, path: str, *a: Any, **kw: Any) -> Any:
            # _backup_tree: the primaries read, the standby's mkdirs(dst), then the standby read
            if path == ctx.standby.local(d) and not go.is_set():
                go.set()
                acked.result(timeout=HOLD_S)
            return real(path, *a, **kw)

        standby["mkdirs"] = write_lands_during_replay
        report = replay_all(ctx)
        result = acked.result(timeout=HOLD_S)
    standby.clear()
    assert go.is_set() and result.backup == "done" and report.problems == [], report.summary()
    settle(ctx)
    assert on_primaries(ctx, f) == data
    assert on_standby(ctx, f) == data, "replay deleted an acknowledged write from the standby"


def test_a_non_recursive_delete_waits_for_a_write_under_way_in_the_directory(
    airflow_conns: dict[str, str], tmp_path: Path, closing: list[Gateway]
) -> None:
    """Listings hide the gateway's temporary files, but one of a write still under way keeps a
    non-recursive DELETE out, as the file being written does in HDFS; the write then lands."""
    name, ctx = new_plan(tmp_path)
    standby = Hooked(ctx.standby.store)
    gw = Gateway(ctx, worker=False)
    closing.append(gw)
    d, f = f"/{name}/live", f"/{name}/live/f.bin"
    gw.mkdirs(d, USER, None)
    data = payload("live", 3_000)
    session, go = held_on_the_standby(gw, standby, f, data)
    primary = ctx.primaries["primary"].store
    wait_for("the primary's temporary file", lambda: primary.status(session.temp) is not None, timeout=HOLD_S)
    wait_for("the write's mark", lambda: len(marks(ctx, INFLIGHT)) == 1, timeout=HOLD_S)
    with ThreadPoolExecutor(1) as pool:
        acked = pool.submit(session.finish)
        with pytest.raises(RemoteHdfsError) as refused:
            gw.delete(d, USER, recursive=False)
        assert refused.value.exception == "PathIsNotEmptyDirectoryException"
        go.set()
        assert acked.result(timeout=HOLD_S).backup == "done"
    standby.clear()
    assert on_primaries(ctx, f) == data and on_standby(ctx, f) == data


LONG = 40


def test_a_delete_reads_each_long_mark_once_per_process(
    airflow_conns: dict[str, str], tmp_path: Path, closing: list[Gateway]
) -> None:
    """Marks too long for a file name are files; a DELETE or RENAME looks at the pending ones
    before it answers. A mark never changes once made, so a process reads each at most once
    (and not at all the ones it made)."""
    name, ctx = new_plan(tmp_path, mode="async")
    gw = Gateway(ctx, worker=False)
    closing.append(gw)
    deep = f"/{name}/warehouse/db.db/table_with_a_long_name/year=2026/month=12/day=02/hour=17"
    for i in range(LONG):
        write(gw, f"{deep}/part-{i:05d}-0123456789abcdef0123456789abcdef-c000.snappy.parquet", b"x")
    ids = marks(ctx, PENDING_BACKUP)
    assert len(ids) == LONG and not any(is_compact(i) for i in ids)
    reads = counted(ctx.primaries["primary"].store, "read_bytes")
    for i in range(3):
        gw.mkdirs(f"/{name}/elsewhere/{i}", USER, None)
        assert gw.delete(f"/{name}/elsewhere/{i}", USER, recursive=True)
    assert reads == []


def test_a_directory_rename_with_pending_children_costs_a_listing_not_a_delete_per_child(
    airflow_conns: dict[str, str], tmp_path: Path, closing: list[Gateway]
) -> None:
    """The output committer's pattern in async mode: files written under /stage (published,
    pending backup), then /stage renamed to /final. Temporary files the rename may have taken
    along are looked for with one listing per directory and side, not a DELETE per child."""
    name, ctx = new_plan(tmp_path, mode="async")
    gw = Gateway(ctx, worker=False)
    closing.append(gw)
    stage, final = f"/{name}/stage", f"/{name}/final"
    gw.mkdirs(stage, USER, None)
    for i in range(LONG):
        write(gw, f"{stage}/part-{i:05d}", b"x")
    deletes = counted(ctx.primaries["primary"].store, "delete") + counted(ctx.standby.store, "delete")
    assert gw.rename(stage, final, USER)
    assert deletes == []
    settle(ctx)
    assert [on_standby(ctx, f"{final}/part-{i:05d}") for i in range(LONG)] == [b"x"] * LONG


def test_a_mark_file_its_gateway_died_making_is_removed_by_replay_once_old(
    airflow_conns: dict[str, str], tmp_path: Path, closing: list[Gateway]
) -> None:
    """A mark too long for a name is a file: a gateway SIGKILLed between its CREATE and its bytes
    leaves it empty. The change it guarded never went past it, so replay removes it once older
    than the grace (before: it could never be read, and stayed a problem for good); a younger
    one is left to the gateway writing it, and changes meanwhile take it as touching theirs."""
    name, ctx = new_plan(tmp_path)
    gw = Gateway(ctx, worker=False)
    closing.append(gw)
    primary = ctx.primaries["primary"].store
    journal = ctx.journal(ctx.primaries["primary"])
    old, young = new_id(1_000_000_000_000), new_id()
    for mark_id in (old, young):
        primary.write(f"{journal.dir(INFLIGHT)}/{mark_id}", b"", overwrite=False)
    report = replay_all(ctx, inflight_grace_s=60)
    assert report.problems == [], report.summary()
    assert journal.ids(INFLIGHT) == [young]  # the young one is not replay's yet
    # a write finishing now cannot tell what the young one guards: it keeps its own mark
    assert write(gw, f"/{name}/f.bin", b"data").backup == "done"
    assert [Mark.from_id(i).paths for i in journal.ids(PENDING_BACKUP)] == [(f"/{name}/f.bin",)]
