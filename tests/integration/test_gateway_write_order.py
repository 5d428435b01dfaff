"""The order of an async write's last steps: its mark moves to pending-backup while its data is
renamed into place, and the write is acknowledged only once the move has landed. A gateway
acknowledging before would lose the backup of that write if it died next: the inflight mark
would still be there, but an acknowledged write must never depend on reconciliation.

The gateway runs in this process against the session's embedded clusters; only the journal's
RENAME into pending-backup is held (or failed) on its way to the real primary."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from tandem.errors import RemoteHdfsError
from tandem.gateway.context import PlanContext, open_plan
from tandem.gateway.marks import INFLIGHT, PENDING_BACKUP, PENDING_STORE, Journal, Mark
from tandem.gateway.service import Gateway
from tandem.gateway.writes import Unavailable, WriteResult
from tandem.hdfs.client import Hdfs
from tests.integration.gateway_support import payload, wait_for, write_plan

pytestmark = [pytest.mark.integration]

HOLD_S = 30.0


class HeldMove:
    """A primary's store whose RENAMEs into pending-backup wait for ``release`` (then land, or
    fail as a primary that stopped answering)."""

    def __init__(self, store: Hdfs) -> None:
        self.store = store
        self.moving = threading.Event()
        self.release = threading.Event()
        self.fail = False

    def rename(self, src: str, dst: str) -> Any:
        if f"/{PENDING_BACKUP}/" in dst:
            self.moving.set()
            assert self.release.wait(HOLD_S), "the test never released the mark's move"
            if self.fail:
                raise requests.ConnectionError("the primary stopped answering during the mark's move")
        return self.store.rename(src, dst)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


@pytest.fixture
def held(airflow_conns: dict[str, str], tmp_path: Path) -> Iterator[tuple[Gateway, PlanContext, HeldMove]]:
    # a plan of its own per test: the clusters are shared, and each test counts its own marks
    name = f"gworder{secrets.token_hex(4)}"
    plan = write_plan(tmp_path, tmp_path / "home", name, mode="async", primaries=("primary",))
    ctx = open_plan(plan.include, plan.name)
    primary = ctx.primaries["primary"]
    hold = HeldMove(primary.store)
    ctx.journal = lambda side: Journal(hold if side is primary else side.store, ctx.plan.journal)  # type: ignore[method-assign]
    gateway = Gateway(ctx, worker=False)
    yield gateway, ctx, hold
    hold.release.set()
    gateway.close()


def _write(gateway: Gateway, path: str, data: bytes, pool: ThreadPoolExecutor) -> Future[WriteResult]:
    session = gateway.begin_write(path, "tandem", overwrite=True, permission=None)
    session.start(data)
    return pool.submit(session.finish)


def _queue(ctx: PlanContext, state: str) -> list[str]:
    return ctx.journal(ctx.primaries["primary"]).ids(state)


def test_an_async_write_is_acknowledged_only_after_its_mark_moved(
    held: tuple[Gateway, PlanContext, HeldMove],
) -> None:
    gateway, ctx, hold = held
    primary = ctx.primaries["primary"].store
    path, data = f"/{ctx.plan.plan}/data/acked.bin", payload("acked", 7_000)
    with ThreadPoolExecutor(1) as pool:
        acked = _write(gateway, path, data, pool)
        assert hold.moving.wait(HOLD_S)
        # the data's RENAME runs beside the held move and lands; the ACK still waits
        wait_for("the data in place", lambda: (st := primary.status(path)) is not None and st.length == 7_000)
        assert not acked.done(), "acknowledged before the pending-backup mark was durable"
        assert _queue(ctx, PENDING_BACKUP) == []
        hold.release.set()
        result = acked.result(timeout=HOLD_S)
    assert (result.backup, result.primary) == ("pending", "primary")
    assert primary.read_bytes(path) == data
    assert len(_queue(ctx, PENDING_BACKUP)) == 1
    assert _queue(ctx, INFLIGHT) == []


def test_an_async_write_whose_mark_move_fails_is_refused_and_left_for_replay(
    held: tuple[Gateway, PlanContext, HeldMove],
) -> None:
    gateway, ctx, hold = held
    path, data = f"/{ctx.plan.plan}/data/refused.bin", payload("refused", 5_000)
    hold.fail = True
    with ThreadPoolExecutor(1) as pool:
        refused = _write(gateway, path, data, pool)
        assert hold.moving.wait(HOLD_S)
        hold.release.set()
        with pytest.raises(Unavailable, match="did not take the mark"):
            refused.result(timeout=HOLD_S)
    # never acknowledged; the inflight mark stays, so replay reconciles the path either way
    assert len(_queue(ctx, INFLIGHT)) == 1
    assert _queue(ctx, PENDING_BACKUP) == []


class HeldReplace:
    """The standby's store, where the RENAME of one temporary file (``held``) waits for ``release``."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.held: str | None = None
        self.moving = threading.Event()
        self.release = threading.Event()

    def replace(self, src: str, dst: str) -> Any:
        if src == self.held:
            self.moving.set()
            assert self.release.wait(HOLD_S), "the test never released the standby's RENAME"
        return self.store.replace(src, dst)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def test_two_overwrites_whose_renames_cross_leave_a_mark_and_replay_settles_them(
    airflow_conns: dict[str, str], tmp_path: Path
) -> None:
    """Two sync overwrites of one path (two clients, or two gateways): A renames on the primary,
    then B on the primary and on the standby, then A on the standby. The primary holds B, the
    standby A, and both were done. B saw A's inflight mark when it finished, so B's mark stays
    (pending-backup) and replay makes the standby what the primary holds. Before, both marks
    went and the sides stayed different (found by an adversarial read)."""
    from tandem.gateway.replay import drain_backup

    name = f"gwcross{secrets.token_hex(4)}"
    plan = write_plan(tmp_path, tmp_path / "home", name, primaries=("primary",))
    ctx = open_plan(plan.include, plan.name)
    hold = HeldReplace(ctx.standby.store)
    ctx.standby._client = hold
    gateway = Gateway(ctx, worker=False)
    path = f"/{name}/data/both.bin"
    first, second = payload("first", 6_000), payload("second", 7_000)
    primary = ctx.primaries["primary"].store
    try:
        with ThreadPoolExecutor(1) as pool:
            a = gateway.begin_write(path, "tandem", overwrite=True, permission=None)
            hold.held = ctx.standby.local(a.temp)
            a.start(first)
            a_done = pool.submit(a.finish)
            assert hold.moving.wait(HOLD_S)  # A is in place on the primary, not yet on the standby
            b = gateway.begin_write(path, "tandem", overwrite=True, permission=None)
            b.start(second)
            assert b.finish().backup == "done"
            wait_for("B's mark to stay", lambda: len(_queue(ctx, PENDING_BACKUP)) == 1)
            early = drain_backup(ctx, ctx.primaries["primary"])  # A is still under way: B waits
            assert (early.deferred, early.marks) == (1, 0), early
            hold.release.set()
            assert a_done.result(timeout=HOLD_S).backup == "done"
        wait_for("A's mark to go", lambda: _queue(ctx, INFLIGHT) == [])
        assert primary.read_bytes(path) == second
        assert hold.read_bytes(ctx.standby.local(path)) == first  # the crossing happened
        report = drain_backup(ctx, ctx.primaries["primary"])
        assert report.marks == 1 and report.problems == []
        assert hold.read_bytes(ctx.standby.local(path)) == second
        assert _queue(ctx, PENDING_BACKUP) == []
    finally:
        hold.release.set()
        gateway.close()


def test_a_write_into_a_directory_renamed_under_it_leaves_both_sides_alike(
    airflow_conns: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory is renamed while a write into it waits to publish on the primary: the rename
    takes the write's temporary files along on both sides, the write's RENAME then fails and it
    is refused. The standby's copy is published only after the primary's, so it never lands
    under the new name while the primary lacks it (before, it was published beside the
    primary's and did), and the temporary files are removed where the rename took them (found
    by adversarial reads)."""
    from tandem.gateway import writes

    name = f"gwdirmv{secrets.token_hex(4)}"
    plan = write_plan(tmp_path, tmp_path / "home", name, primaries=("primary",))
    ctx = open_plan(plan.include, plan.name)
    gateway = Gateway(ctx, worker=False)
    src, dst = f"/{name}/t/src", f"/{name}/t/dst"
    path = f"{src}/new.bin"
    held, release = threading.Event(), threading.Event()
    publish = writes.WriteSession._publish

    def held_publish(self: writes.WriteSession, side: Any, temp: str, final: str) -> None:
        if side is self.primary and final == path:
            held.set()
            assert release.wait(HOLD_S)
        publish(self, side, temp, final)

    monkeypatch.setattr(writes.WriteSession, "_publish", held_publish)
    primary, standby = ctx.primaries["primary"].store, ctx.standby.store
    try:
        gateway.mkdirs(src, "tandem", None)
        with ThreadPoolExecutor(1) as pool:
            session = gateway.begin_write(path, "tandem", overwrite=True, permission=None)
            session.start(payload("new", 4_000))
            finishing = pool.submit(session.finish)
            assert held.wait(HOLD_S)
            assert gateway.rename(src, dst, "tandem")
            release.set()
            with pytest.raises(RemoteHdfsError):
                finishing.result(timeout=HOLD_S)
        for where in (f"{dst}/new.bin", path):
            assert primary.status(where) is None
            assert standby.status(ctx.standby.local(where)) is None, f"{where} on the standby alone"
        # the temporary files the rename took along are gone from both sides (they were left
        # there, counted by GETCONTENTSUMMARY and keeping a non-recursive DELETE out, while
        # listings showed the directory empty); the directory is empty for the application
        left = [e.relpath for e in primary.walk(dst)] + [
            e.relpath for e in standby.walk(ctx.standby.local(dst))
        ]
        assert left == []
        assert gateway.list(dst, "tandem") == []
        assert gateway.content_summary(dst, "tandem")["fileCount"] == 0
        assert gateway.delete(dst, "tandem", recursive=False)
    finally:
        release.set()
        gateway.close()


def test_of_two_creates_without_overwrite_past_their_checks_only_the_winner_reaches_the_standby(
    airflow_conns: dict[str, str], tmp_path: Path
) -> None:
    """Both CREATEs found the name free and sent their bytes; the primary's RENAME (which never
    replaces, nor moves into a directory) decides, and the loser's copy is never published on
    the standby, nor its mark kept."""
    from tandem.gateway.replay import drain_backup

    name = f"gwnew{secrets.token_hex(4)}"
    plan = write_plan(tmp_path, tmp_path / "home", name, primaries=("primary",))
    ctx = open_plan(plan.include, plan.name)
    gateway = Gateway(ctx, worker=False)
    path = f"/{name}/data/one.bin"
    try:
        first = gateway.begin_write(path, "tandem", overwrite=False, permission=None)
        second = gateway.begin_write(path, "tandem", overwrite=False, permission=None)
        first.start(payload("first", 3_000))
        second.start(payload("second", 4_000))
        assert first.finish().backup == "done"
        with pytest.raises(RemoteHdfsError, match="already exists") as lost:
            second.finish()
        assert lost.value.exception == "FileAlreadyExistsException"
        assert ctx.primaries["primary"].store.read_bytes(path) == payload("first", 3_000)
        assert ctx.standby.store.read_bytes(ctx.standby.local(path)) == payload("first", 3_000)
        # the winner saw the loser under way and kept its mark; replay finds nothing to change
        wait_for("the loser's mark to go", lambda: _queue(ctx, INFLIGHT) == [])
        settled = drain_backup(ctx, ctx.primaries["primary"])
        assert settled.files == 0 and settled.problems == []
        assert _queue(ctx, PENDING_BACKUP) == []
    finally:
        gateway.close()


def test_a_pending_store_mark_that_cannot_go_back_holds_the_primarys_backups(
    airflow_conns: dict[str, str], embedded: Any, tmp_path: Path
) -> None:
    """The standby took a newer write of a path while its primary was down; the primary also
    holds an older write of it still pending backup. If writing the newer one back fails (a
    refusal, here the primary's space quota), backing up the older one would replace the only
    copy of the newer: that primary's backups wait, and the replay reports why."""
    from tandem.gateway.replay import drain_backup

    name = f"gwhold{secrets.token_hex(4)}"
    plan = write_plan(tmp_path, tmp_path / "home", name, primaries=("primary",))
    ctx = open_plan(plan.include, plan.name)
    primary, standby = ctx.primaries["primary"].store, ctx.standby.store
    path = f"/{name}/data/contested.bin"
    primary.write(path, b"older, pending backup", overwrite=True)
    standby.write(ctx.standby.local(path), b"newer, acknowledged while the primary was down", overwrite=True)
    ctx.journal(ctx.primaries["primary"]).put(Mark.new_compact("write", (path,), "primary"), PENDING_BACKUP)
    ctx.journal(ctx.standby).put(Mark.new_compact("write", (path,), "primary"), PENDING_STORE, "primary")
    quota = requests.put(
        f"{embedded['primary'].webhdfs_url.rstrip('/')}/webhdfs/v1/{name}/data",
        params={"op": "SETQUOTA", "storagespacequota": "1", "user.name": "hdfs"},
        timeout=30,
    )
    assert quota.status_code == 200, quota.text
    report = drain_backup(ctx, ctx.primaries["primary"])
    assert report.problems and path in report.problems[0], report
    assert standby.read_bytes(ctx.standby.local(path)) == b"newer, acknowledged while the primary was down"
    assert len(_queue(ctx, PENDING_BACKUP)) == 1


def test_paging_a_directory_spread_over_two_primaries_lists_each_entry_once(
    airflow_conns: dict[str, str], tmp_path: Path
) -> None:
    """LISTSTATUS_BATCH pages: each primary's own next page, merged; pages of three here."""
    name = f"gwpage{secrets.token_hex(4)}"
    plan = write_plan(tmp_path, tmp_path / "home", name)
    ctx = open_plan(plan.include, plan.name)
    gateway = Gateway(ctx, worker=False)
    folder = f"/{name}/d"
    try:
        for i in range(8):
            side = ctx.primaries[("primary", "primary2")[i % 2]]
            side.store.write(f"{folder}/f{i}", b"x", overwrite=True)
        side.store.mkdirs(f"{folder}/f0")  # a name both primaries hold (one as a directory) is listed once
        seen: list[str] = []
        after: str | None = None
        while True:
            page, remaining = gateway.list_page(folder, "tandem", after, 3)
            assert len(page) <= 3
            seen += [s.path_suffix for s in page]
            if not remaining:
                break
            after = page[-1].path_suffix
        assert seen == [f"f{i}" for i in range(8)]
    finally:
        gateway.close()
