"""Reading what the operators' page shows: the clusters' own state (ZooKeeper, restore-point
manifests, gateway journals) and Airflow's runs, for every business at once.

Cluster reads run in a pool and their result is kept for ``ttl`` seconds; after that the page
is still served at once from the last reading while a new one is taken in the background
(stale-while-revalidate), and the page says how old its reading is. Nothing here runs at DAG
parse time or on import: the first request reads. A cluster that does not answer is shown as
such, row by row, never as a failed page.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from tandem.ui.model import (
    UNKNOWN,
    BusinessRow,
    ClusterRow,
    GatewayRow,
    PairRow,
    Point,
    Run,
    Snapshot,
    compliance,
)

log = logging.getLogger(__name__)

TTL_S = 30.0
WORKERS = 16
DEADLINE_S = 20.0  # a reading shows what answered by then; the rest is unknown

T = TypeVar("T")

RunsReader = Callable[[Sequence[str]], Mapping[str, tuple[Run | None, datetime | None]]]


def airflow_runs(dag_ids: Sequence[str]) -> dict[str, tuple[Run | None, datetime | None]]:
    """Each DAG's newest run and next scheduled run, from Airflow's metadata database (two queries)."""
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    found: dict[str, tuple[Run | None, datetime | None]] = {}
    with create_session() as session:
        newest = (
            select(func.max(DagRun.id)).where(DagRun.dag_id.in_(list(dag_ids))).group_by(DagRun.dag_id)
        ).scalar_subquery()
        runs = {
            r.dag_id: Run(
                r.run_id, str(getattr(r.state, "value", r.state) or "none"), r.start_date, r.end_date
            )
            for r in session.scalars(select(DagRun).where(DagRun.id.in_(newest)))
        }
        nexts = {
            dag_id: None if paused else after  # a paused DAG has no next run
            for dag_id, after, paused in session.execute(
                select(DagModel.dag_id, DagModel.next_dagrun_create_after, DagModel.is_paused).where(
                    DagModel.dag_id.in_(list(dag_ids))
                )
            ).all()
        }
    for dag_id in dag_ids:
        found[dag_id] = (runs.get(dag_id), nexts.get(dag_id))
    return found


@dataclass
class Sources:
    """Where the page reads from; tests and the benchmark build their own."""

    include: Path
    clusters: Any  # tandem.runtime.Clusters
    runs: RunsReader = airflow_runs


def _point(manifest: Any, on: str) -> Point:
    return Point(
        manifest.point,
        manifest.mode,
        manifest.files_copied,
        manifest.bytes_copied,
        manifest.skew_ms,
        bool(manifest.verified),
        on,
        manifest.source,
        manifest.target,
    )


def points_of(clusters: Any, names: Sequence[str], business: str) -> tuple[list[Point], list[str]]:
    """Every restore point of ``business`` on the pair's clusters, newest first, and problems."""
    from tandem import catalog

    points: list[Point] = []
    problems = []
    for name in names:
        try:
            points += [_point(m, name) for m in catalog.list_points(clusters.hdfs(name), business)]
        except Exception as exc:  # one cluster down must not hide the other's points
            problems.append(f"{name}: {why(exc)}")
    return sorted(points, key=lambda p: p.point, reverse=True), problems


def why(exc: BaseException) -> str:
    """What the page says of a failure: its kind, not its text (which may name hosts, ports or
    users); the api-server's log has the whole of it."""
    log.warning("Disaster recovery page: %s", exc, exc_info=exc)
    return type(exc).__name__


def _result(job: Future[T], unknown: Callable[[str], T]) -> T:
    if not job.done():
        return unknown(f"no answer within {DEADLINE_S:.0f} s")
    error = job.exception()
    return unknown(f"could not be read ({why(error)})") if error is not None else job.result()


def _unknown_pair(name: str, reason: str) -> PairRow:
    return PairRow(name, (), reason, reason, "unknown")


def _unknown_gateway(plan: Any, reason: str) -> GatewayRow:
    return GatewayRow(plan.plan, plan.mode, plan.target.label, None, 0, None, (), reason)


def _unknown_row(policy: Any, reason: str) -> BusinessRow:
    period = policy.schedule.every.total_seconds()
    return BusinessRow(
        policy.business, policy.pair, policy.dag_id, period, None, None, UNKNOWN, None, None, (reason,)
    )


class Collector:
    """The page's readings, cached."""

    def __init__(
        self, sources: Sources, ttl: float = TTL_S, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.sources = sources
        self.ttl = ttl
        self.clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._reading = threading.Lock()  # one reading at a time; the others wait for it
        self._snapshot: Snapshot | None = None
        self._taken_at = 0.0
        self._refreshing = False

    def snapshot(self) -> Snapshot:
        """The newest reading: taken now the first time (concurrent first requests share it),
        refreshed in the background when stale."""
        with self._lock:
            current = self._snapshot
            if current is not None and time.monotonic() - self._taken_at > self.ttl and not self._refreshing:
                self._refreshing = True
                threading.Thread(target=self._background, name="tandem-ui-refresh", daemon=True).start()
        if current is not None:
            return current
        with self._reading:
            if self._snapshot is None:  # not taken by the request this one waited for
                self._store(self.read())
            return self._snapshot  # type: ignore[return-value]

    def _store(self, taken: Snapshot) -> None:
        with self._lock:
            self._snapshot, self._taken_at = taken, time.monotonic()

    def _background(self) -> None:
        try:
            with self._reading:
                self._store(self.read())
        except Exception:
            log.exception("the Disaster recovery page's reading failed; the last one stays shown")
        finally:
            with self._lock:
                self._refreshing = False

    # -- one reading ---------------------------------------------------------------------------
    def read(self) -> Snapshot:
        """Everything, in parallel; a part that fails or does not answer within ``DEADLINE_S``
        is shown as unknown, never as a failed page."""
        started = time.monotonic()
        now = self.clock()
        from tandem.policy import load_policies

        topology = self.sources.clusters.topology
        directory = self.sources.include / "policies"
        errors: list[str] = []
        if directory.is_dir():
            found = load_policies(directory, topology)
            policies = found.policies
            errors += [
                f"{path.name}: {e.field}: {e.reason}" for path, errs in found.errors.items() for e in errs
            ]
        else:
            policies = ()
            errors.append(f"no policies directory at {directory}: no business is shown")
        try:
            runs = self.sources.runs([p.dag_id for p in policies])
        except Exception as exc:
            log.warning("Airflow's runs could not be read", exc_info=True)
            errors.append(f"Airflow's runs could not be read ({type(exc).__name__})")
            runs = {}
        pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="tandem-ui")
        try:
            pair_jobs: dict[Future[PairRow], str] = {
                pool.submit(self._pair, item): item[0] for item in sorted(topology.pairs.items())
            }
            row_jobs: dict[Future[BusinessRow], Any] = {
                pool.submit(self._business, p, now, runs.get(p.dag_id, (None, None))): p for p in policies
            }
            plans, plan_errors = self._plans()
            errors += plan_errors
            gateway_jobs: dict[Future[GatewayRow], Any] = {pool.submit(self._gateway, p): p for p in plans}
            pending: list[Future[Any]] = [*pair_jobs, *row_jobs, *gateway_jobs]
            wait(pending, timeout=max(0.0, DEADLINE_S - (time.monotonic() - started)))
        finally:
            pool.shutdown(wait=False, cancel_futures=True)  # a cluster that hangs keeps only its thread
        pairs = [_result(job, functools.partial(_unknown_pair, name)) for job, name in pair_jobs.items()]
        rows = [_result(job, functools.partial(_unknown_row, policy)) for job, policy in row_jobs.items()]
        gateways = [_result(job, functools.partial(_unknown_gateway, p)) for job, p in gateway_jobs.items()]
        return Snapshot(
            now,
            tuple(rows),
            tuple(pairs),
            tuple(gateways),
            round(time.monotonic() - started, 3),
            tuple(errors),
        )

    def _pair(self, item: tuple[str, Any]) -> PairRow:
        from tandem.failover.arbiter import arbitrate, assess_pair, backup_direction
        from tandem.status import read_views

        name, spec = item
        views = read_views(self.sources.clusters, (spec.primary, spec.standby))
        health = assess_pair(views[0], views[1], None)
        direction = backup_direction(views[0], views[1])
        decision = arbitrate(views[0], views[1], spec.primary)
        return PairRow(
            name,
            tuple(ClusterRow(v.name, v.role, v.epoch, v.liveness, v.problem) for v in views),
            f"{direction.source} -> {direction.target}" if direction.runs else direction.reason,
            health.reason,
            decision.target,
        )

    def _business(self, policy: Any, now: datetime, run: tuple[Run | None, datetime | None]) -> BusinessRow:
        from tandem import catalog

        pair = self.sources.clusters.topology.pair(policy.pair)
        newest: Point | None = None
        problems = []
        answered = 0
        for name in (pair.primary, pair.standby):
            try:
                manifest = catalog.latest(self.sources.clusters.hdfs(name), policy.business)
            except Exception as exc:
                problems.append(f"{name}: {why(exc)}")
                continue
            answered += 1
            if manifest is not None and (newest is None or manifest.point > newest.point):
                newest = _point(manifest, name)
        rpo = (
            round((now - datetime.fromisoformat(newest.point.replace("Z", "+00:00"))).total_seconds(), 1)
            if newest
            else None
        )
        period = policy.schedule.every.total_seconds()
        return BusinessRow(
            policy.business,
            policy.pair,
            policy.dag_id,
            period,
            newest,
            rpo,
            compliance(rpo, period, reachable=answered > 0),
            run[0],
            run[1],
            tuple(problems),
        )

    def _plans(self) -> tuple[list[Any], list[str]]:
        from tandem.gateway.plan import load_plans, plans_dir

        found = load_plans(plans_dir(self.sources.include), self.sources.clusters.topology)
        errors = [f"{path.name}: {e.field}: {e.reason}" for path, errs in found.errors.items() for e in errs]
        return sorted(found.plans.values(), key=lambda p: p.plan), errors

    def _gateway(self, plan: Any) -> GatewayRow:
        from tandem.gateway.context import build_context
        from tandem.gateway.status import plan_status

        status = plan_status(build_context(plan, self.sources.include))
        queues = [q for side in status.sides for q in side.queues.values() if q.count]
        ages = [a for a in (q.oldest_age_s() for q in queues) if a is not None]
        return GatewayRow(
            plan.plan,
            plan.mode,
            plan.target.label,
            status.degraded,
            sum(q.count for q in queues),
            round(max(ages), 1) if ages else None,
            tuple(status.down()),
        )
