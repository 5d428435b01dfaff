"""The failover watch: a deferrable sensor, its trigger, and the notifier that alerts people.

:class:`PairWatchTrigger` runs in the triggerer. It follows both clusters of a pair with
:class:`~tandem.client.ClusterWatcher` (kazoo threads; every view crosses into the event loop
with ``call_soon_threadsafe``, and starting or stopping them runs in ``asyncio.to_thread``, so
the loop never blocks). On every change it assesses the pair (:func:`assess_pair`) and fires
as soon as the situation differs from ``baseline``: the active cluster died, became
unreachable, stopped saying active, a split brain began, or roles changed after a promotion.
Detection takes as long as ZooKeeper takes to push the change (milliseconds) plus ``settle``
(0.5 s, which keeps a promotion seen half-way from looking like a split brain), or
``unreachable_after`` seconds more for a ZooKeeper that stopped answering.

The baseline is the last situation the watch DAG recorded (an Airflow Variable), so a change
that happens between two runs still fires, and a failure already alerted does not fire again.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier, BaseSensorOperator
from airflow.triggers.base import BaseTrigger, TriggerEvent

from tandem.failover.arbiter import ClusterView, PairHealth, assess_pair

if TYPE_CHECKING:
    from airflow.sdk import Context

    from tandem.client import ClusterWatcher

log = logging.getLogger(__name__)

TRIGGER_PATH = "tandem.failover.watch.PairWatchTrigger"
REARM_AFTER = 12 * 3600.0
SETTLE = 0.5


def baseline_variable(pair: str) -> str:
    """The Airflow Variable holding the last situation the watch of ``pair`` recorded."""
    return f"tandem_failover__{pair}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class PairWatchTrigger(BaseTrigger):
    """Fires when a pair's situation differs from ``baseline`` (see the module docstring).

    The event payload: ``changed``, ``pair``, ``health`` (:class:`PairHealth` JSON), ``views``
    (both :class:`ClusterView` JSONs) and ``detected_at`` (UTC). After ``rearm_after`` seconds
    without a change it fires ``changed: false`` so the DAG run ends and a fresh one re-arms.
    """

    def __init__(
        self,
        pair: str,
        clusters: Sequence[Sequence[str]],
        baseline: str | None = None,
        watched: str | None = None,
        unreachable_after: float = 2.0,
        rearm_after: float = REARM_AFTER,
        settle: float = SETTLE,
    ) -> None:
        # airflow 3.3.2's BaseTrigger.__init__ and TriggerEvent are not annotated
        super().__init__()  # type: ignore[no-untyped-call]
        if len(clusters) != 2:
            raise ValueError(f"a pair has two clusters, got {clusters!r}")
        self.pair = pair
        self.clusters = [(str(name), str(hosts)) for name, hosts in clusters]
        self.baseline = baseline
        self.watched = watched
        self.unreachable_after = unreachable_after
        self.rearm_after = rearm_after
        self.settle = settle
        # the running watchers, while run() runs (tests inject faults into their sessions)
        self.watchers: list[ClusterWatcher] = []

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            TRIGGER_PATH,
            {
                "pair": self.pair,
                "clusters": [list(c) for c in self.clusters],
                "baseline": self.baseline,
                "watched": self.watched,
                "unreachable_after": self.unreachable_after,
                "rearm_after": self.rearm_after,
                "settle": self.settle,
            },
        )

    def _payload(self, health: PairHealth | None, views: Mapping[str, ClusterView]) -> dict[str, Any]:
        return {
            "changed": health is not None,
            "pair": self.pair,
            "baseline": self.baseline,
            "health": health.to_json() if health else None,
            "views": [views[name].to_json() for name, _h in self.clusters if name in views],
            "detected_at": _now(),
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from tandem.client import ClusterWatcher

        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[ClusterView] = asyncio.Queue()

        def push(view: ClusterView) -> None:  # on a kazoo/watcher thread
            loop.call_soon_threadsafe(inbox.put_nowait, view)

        from tandem.security import kerberos_enabled

        kerberos = kerberos_enabled()  # as Airflow is configured where the trigger runs
        watchers = [
            ClusterWatcher(name, hosts, push, unreachable_after=self.unreachable_after, kerberos=kerberos)
            for name, hosts in self.clusters
        ]
        self.watchers = watchers
        await asyncio.to_thread(_start_all, watchers)
        try:
            payload = await self._follow(inbox, loop)
        finally:
            self.watchers = []
            await asyncio.to_thread(_stop_all, watchers)
        yield _event(payload)

    async def _follow(
        self, inbox: asyncio.Queue[ClusterView], loop: asyncio.AbstractEventLoop
    ) -> dict[str, Any]:
        """Wait for views until the situation differs from the baseline; the event's payload.

        A difference must still hold ``settle`` seconds later: the two clusters' ZooKeepers
        notify independently, so a promotion (fence, then activate) can be seen in the wrong
        order for a few milliseconds and look like a split brain.
        """
        names = [name for name, _hosts in self.clusters]
        views: dict[str, ClusterView] = {}
        deadline = loop.time() + self.rearm_after
        settle_at: float | None = None
        while True:
            now = loop.time()
            if settle_at is not None and now >= settle_at:
                health = assess_pair(views[names[0]], views[names[1]], self.watched)
                if health.key != self.baseline:
                    self.log.info("pair %s: %s", self.pair, health.reason)
                    return self._payload(health, views)
                settle_at = None
            if now >= deadline:
                return self._payload(None, views)
            wake = min(deadline, settle_at) if settle_at is not None else deadline
            try:
                view = await asyncio.wait_for(inbox.get(), timeout=max(0.0, wake - now))
            except TimeoutError:
                continue
            views[view.name] = view
            if len(views) == 2 and settle_at is None:
                health = assess_pair(views[names[0]], views[names[1]], self.watched)
                if health.key != self.baseline:
                    settle_at = loop.time() + self.settle


def _event(payload: dict[str, Any]) -> TriggerEvent:
    return TriggerEvent(payload)  # type: ignore[no-untyped-call]


def _start_all(watchers: Sequence[ClusterWatcher]) -> None:
    for watcher in watchers:
        watcher.start()


def _stop_all(watchers: Sequence[ClusterWatcher]) -> None:
    for watcher in watchers:
        watcher.stop()


class PairWatchSensor(BaseSensorOperator):
    """Defers to :class:`PairWatchTrigger` until the pair's situation changes; returns the event.

    ``zookeeper_conn_ids`` maps each cluster of the pair (primary first) to the Airflow
    connection of its ZooKeeper; hosts are looked up when the task runs, never at parse time.
    The baseline comes from the run's conf (``baseline``), else the pair's Variable.
    """

    def __init__(
        self,
        *,
        pair: str,
        zookeeper_conn_ids: Mapping[str, str],
        unreachable_after: float = 2.0,
        rearm_after: float = REARM_AFTER,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("timeout", rearm_after * 2)
        super().__init__(**kwargs)
        self.pair = pair
        self.zookeeper_conn_ids = dict(zookeeper_conn_ids)
        self.unreachable_after = unreachable_after
        self.rearm_after = rearm_after

    def trigger_for(self, context: Context) -> PairWatchTrigger:
        from tandem.runtime import connection_hosts

        recorded = _recorded(self.pair, context)
        return PairWatchTrigger(
            self.pair,
            [(name, connection_hosts(conn_id)) for name, conn_id in self.zookeeper_conn_ids.items()],
            baseline=recorded.get("key"),
            watched=recorded.get("watched"),
            unreachable_after=self.unreachable_after,
            rearm_after=self.rearm_after,
        )

    def execute(self, context: Context) -> Any:
        trigger = self.trigger_for(context)
        self.log.info(
            "watching pair %s (baseline %s, watched %s)", self.pair, trigger.baseline, trigger.watched
        )
        self.defer(trigger=trigger, method_name="execute_complete")

    def poke(self, context: Context) -> bool:
        # this sensor only defers; a poke would have nothing cheaper to look at
        raise NotImplementedError("PairWatchSensor is deferrable only")

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        health = event.get("health") or {}
        self.log.info("pair %s: %s", self.pair, health.get("reason", "no change; re-arming"))
        return event


def _recorded(pair: str, context: Context) -> dict[str, Any]:
    """What the last run recorded: the run's conf ``baseline``/``watched`` win over the Variable."""
    import json

    from airflow.sdk import Variable

    conf = (context["dag_run"].conf or {}) if "dag_run" in context else {}
    if "baseline" in conf:
        return {"key": conf.get("baseline"), "watched": conf.get("watched")}
    raw = Variable.get(baseline_variable(pair), default=None)
    if not raw:
        return {}
    try:
        recorded = json.loads(raw)
    except ValueError:
        log.warning("Variable %s is not JSON; starting from no baseline", baseline_variable(pair))
        return {}
    return recorded if isinstance(recorded, dict) else {}


# --------------------------------------------------------------------------- alerting


def resolve_callback(
    spec: str | Callable[[dict[str, Any]], None] | None,
) -> Callable[[dict[str, Any]], None] | None:
    """A callable from ``module:function`` (or a callable itself); None stays None."""
    if spec is None or callable(spec):
        return spec
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"alert callback {spec!r} must be written module:function")
    func = getattr(importlib.import_module(module), name)
    if not callable(func):
        raise ValueError(f"alert callback {spec!r} is not callable")
    return func  # type: ignore[no-any-return]


class FailoverNotifier(BaseNotifier):
    """Sends one failover alert: to the task log always, to ``callback`` and by e-mail if configured.

    ``alert`` is the alert document (``subject``, ``text`` and the event). The callback
    (a callable or ``module:function``) receives that document. E-mail goes through the SMTP
    provider's notifier (connection ``smtp_conn_id``) when ``email`` names recipients. Each
    channel is best effort on its own: a failing channel is logged and the others still run;
    the notifier raises at the end if any channel failed, so the task shows it.
    """

    def __init__(
        self,
        alert: dict[str, Any],
        *,
        callback: str | Callable[[dict[str, Any]], None] | None = None,
        email: str | Sequence[str] | None = None,
        smtp_conn_id: str = "smtp_default",
    ) -> None:
        super().__init__()
        self.alert = alert
        self.callback = callback
        self.email = email
        self.smtp_conn_id = smtp_conn_id
        self.sent: list[str] = []

    def notify(self, context: Context) -> None:
        self.log.warning("%s\n%s", self.alert["subject"], self.alert["text"])
        self.sent.append("log")
        failures: list[str] = []
        if self.callback is not None:
            try:
                func = resolve_callback(self.callback)
                assert func is not None
                func(self.alert)
                self.sent.append("callback")
            except Exception as exc:
                self.log.exception("the failover alert callback failed")
                failures.append(f"callback: {exc}")
        if self.email:
            try:
                self._send_email(context)
                self.sent.append("email")
            except Exception as exc:
                self.log.exception("the failover alert e-mail failed")
                failures.append(f"email: {exc}")
        if failures:
            raise RuntimeError(f"alert sent to {', '.join(self.sent)} but failed for {'; '.join(failures)}")

    def _send_email(self, context: Context) -> None:
        import html

        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        assert self.email
        SmtpNotifier(
            to=self.email,
            subject=self.alert["subject"],
            html_content=f"<pre>{html.escape(self.alert['text'])}</pre>",
            smtp_conn_id=self.smtp_conn_id,
        ).notify(context)
