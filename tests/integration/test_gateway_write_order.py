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

from tandem.gateway.context import PlanContext, open_plan
from tandem.gateway.marks import INFLIGHT, PENDING_BACKUP, Journal
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
