"""The failover watch trigger, run directly in asyncio against the real ZooKeeper."""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tandem.failover.arbiter import ClusterView, assess_pair
from tandem.failover.promote import promote
from tandem.failover.watch import PairWatchTrigger
from tandem_dev.embedded.zookeeper import ZooKeeperServer
from tests.integration.test_failover_support import ZkPair, expire_session

pytestmark = pytest.mark.integration

GRACE = 1.5


HEALTHY = "healthy:primary:1"


def trigger(pair: ZkPair, baseline: str | None = HEALTHY, **kwargs: Any) -> PairWatchTrigger:
    kwargs.setdefault("unreachable_after", GRACE)
    return PairWatchTrigger(
        "main", [[n, pair.hosts(n)] for n in pair.names], baseline=baseline, watched="primary", **kwargs
    )


async def first_event(
    made: PairWatchTrigger,
    action: Callable[[], Awaitable[None]] | None = None,
    timeout: float = 15.0,
) -> tuple[dict[str, Any], float]:
    """Run the trigger until its first event; ``action`` runs once it is watching.

    Returns the payload and the seconds from the end of ``action`` to the event.
    """
    events = made.run()
    task = asyncio.ensure_future(events.__anext__())
    await wait_watching(made, task)
    if action is not None:
        await action()
    acted = time.monotonic()
    event = await asyncio.wait_for(task, timeout)
    took = time.monotonic() - acted
    await events.aclose()
    return event.payload, took


async def wait_watching(made: PairWatchTrigger, task: asyncio.Future[Any]) -> None:
    for _ in range(500):
        if task.done() or (len(made.watchers) == 2 and all(w.view is not None for w in made.watchers)):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the trigger did not start watching")


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_no_baseline_fires_at_once_with_the_current_situation(pair: ZkPair) -> None:
    payload, _took = run(first_event(trigger(pair, baseline=None)))
    assert payload["changed"] is True and payload["pair"] == "main"
    assert payload["health"] == {
        "kind": "healthy",
        "watched": "primary",
        "reason": "primary is active and alive (epoch 1)",
        "key": HEALTHY,
    }
    assert [ClusterView.from_json(v).describe() for v in payload["views"]] == [
        "primary (active, alive, epoch 1)",
        "standby (standby, alive, epoch 1)",
    ]
    assert payload["detected_at"].endswith("Z")


def test_a_dead_primary_is_detected_within_a_second(pair: ZkPair) -> None:
    async def kill() -> None:
        await asyncio.to_thread(pair.kill, "primary")

    payload, took = run(first_event(trigger(pair), kill))
    assert payload["health"]["kind"] == "primary_failed"
    assert payload["health"]["reason"] == "primary, the active cluster, is dead (no /tandem/alive)"
    assert took < 10, f"detected {took:.2f} s after the death"  # event-driven; the drill reports the figure


def test_an_unreachable_primary_is_detected_after_the_grace_period(pair: ZkPair) -> None:
    async def partition() -> None:
        pair.proxies["primary"].cut()

    payload, took = run(first_event(trigger(pair), partition))
    assert payload["health"]["kind"] == "primary_failed"
    assert payload["health"]["reason"].startswith("primary, the active cluster, is unreachable")
    assert GRACE - 0.1 <= took < GRACE + 5, took  # after the grace, not a long poll after it


@pytest.mark.parametrize(
    ("change", "kind", "reason"),
    [
        (lambda p: p.write("primary", "standby", 2), "no_active", "no cluster says active"),
        (lambda p: p.write("standby", "active", 2), "split_brain", "split brain: both primary"),
        (lambda p: p.write_raw("primary", b"{}"), "primary_failed", "no longer says active"),
    ],
    ids=["demoted", "split-brain", "corrupt"],
)
def test_the_primary_no_longer_active_fires(
    pair: ZkPair, change: Callable[[ZkPair], None], kind: str, reason: str
) -> None:
    async def act() -> None:
        await asyncio.to_thread(change, pair)

    payload, took = run(first_event(trigger(pair), act))
    assert payload["health"]["kind"] == kind
    assert reason in payload["health"]["reason"]
    assert took < 10


def test_a_promotion_after_an_alert_fires_again_with_the_standby_lost(pair: ZkPair) -> None:
    pair.kill("primary")
    failed = assess_pair(
        ClusterView("primary", "active", "dead", 1), ClusterView("standby", "standby", "alive", 1), "primary"
    )

    async def promote_standby() -> None:
        result = await asyncio.to_thread(promote, "standby", "standby", pair.zk_hosts)
        assert result.promoted, result.reason

    payload, _took = run(first_event(trigger(pair, baseline=failed.key), promote_standby))
    # the new active cluster serves; the old one, still dead, leaves the pair without a standby
    assert payload["health"]["kind"] == "standby_lost"
    assert payload["health"]["watched"] == "standby"
    assert payload["health"]["key"] == "standby_lost:standby:2:primary"
    assert "primary is dead" in payload["health"]["reason"]


def test_an_alerted_failure_does_not_fire_again(pair: ZkPair) -> None:
    pair.kill("primary")
    failed = "failed:primary:1"

    async def nothing_for_a_while() -> dict[str, Any] | None:
        made = trigger(pair, baseline=failed)
        events = made.run()
        try:
            event = await asyncio.wait_for(events.__anext__(), 2.5)
            return event.payload  # type: ignore[no-any-return]
        except TimeoutError:
            return None
        finally:
            await events.aclose()

    assert run(nothing_for_a_while()) is None


def test_session_expiry_and_dropped_connections_fire_nothing_and_miss_nothing(
    pair: ZkPair, zk_server: ZooKeeperServer
) -> None:
    async def scenario() -> tuple[bool, dict[str, Any], float]:
        made = trigger(pair)
        events = made.run()
        task = asyncio.ensure_future(events.__anext__())
        await wait_watching(made, task)
        for watcher in made.watchers:
            await asyncio.to_thread(expire_session, watcher.client, zk_server.hosts)
        for proxy in pair.proxies.values():
            proxy.cut()
        await asyncio.sleep(GRACE * 0.5)
        for proxy in pair.proxies.values():
            proxy.restore()
        await asyncio.sleep(GRACE + 0.5)
        quiet = not task.done()
        # the primary dies while the watchers' sessions are being replaced: still seen
        for watcher in made.watchers:
            await asyncio.to_thread(expire_session, watcher.client, zk_server.hosts)
        await asyncio.to_thread(pair.kill, "primary")
        killed = time.monotonic()
        event = await asyncio.wait_for(task, 10)
        took = time.monotonic() - killed
        await events.aclose()
        return quiet, event.payload, took

    quiet, payload, took = run(scenario())
    assert quiet, "a session expiry or a short partition fired the trigger"
    assert payload["health"]["kind"] == "primary_failed"
    assert took < 12


def test_the_trigger_never_blocks_the_event_loop(pair: ZkPair) -> None:
    async def scenario() -> float:
        gaps: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:
            last = time.monotonic()
            while not stop.is_set():
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        tick = asyncio.ensure_future(ticker())

        async def kill() -> None:
            await asyncio.to_thread(pair.kill, "primary")

        await first_event(trigger(pair), kill)
        stop.set()
        await tick
        return max(gaps)

    worst = run(scenario())
    assert worst < 0.2, f"the event loop was blocked for {worst:.2f} s"


def test_it_re_arms_after_a_quiet_period(pair: ZkPair) -> None:
    payload, _took = run(first_event(trigger(pair, rearm_after=1.0)))
    assert payload["changed"] is False and payload["health"] is None


def test_serialisation_round_trip_and_importable_classpath(pair: ZkPair) -> None:
    made = trigger(pair, rearm_after=60.0)
    classpath, kwargs = made.serialize()
    module, _, name = classpath.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    again = cls(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    assert kwargs["clusters"] == [["primary", pair.hosts("primary")], ["standby", pair.hosts("standby")]]
