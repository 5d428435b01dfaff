"""Gateway plan -> ``tandem_gateway_replay__<plan>``: replays what a failed side missed.

``wait_for_sides`` (deferrable) waits until every side some pending work needs answers again;
then ``replay_<primary>`` runs for every primary in parallel: the standby's pending-store
marks for that primary first (written back), then the primary's pending-backup marks and the
inflight marks of writes that died (copied to the standby); ``summary`` logs the totals.
Replaying is idempotent: a rerun after a crash resumes without duplicating or losing anything.
Scheduled every ``replay.every`` of the plan, and triggerable from the UI and the REST API.

Parsing builds DAG objects only: no cluster, network or metadata-database call happens here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, task

from tandem.errors import TandemError
from tandem.gateway.plan import GatewayPlan, load_plans, plans_dir
from tandem.gateway.watch import PendingSidesSensor

START = datetime(2026, 1, 1, tzinfo=UTC)
PLAN_ERRORS_DAG_ID = "tandem_gateway_plan_errors"


def replay_dag_id(plan: str) -> str:
    return f"tandem_gateway_replay__{plan}"


def _replay_primary(include: str, plan: str, primary: str) -> dict[str, Any]:
    from tandem.gateway.context import build_context
    from tandem.gateway.plan import load_plan
    from tandem.gateway.replay import drain_backup

    ctx = build_context(load_plan(Path(include), plan), Path(include))
    report = drain_backup(ctx, ctx.primaries[primary])
    if report.problems:  # every other mark was replayed; these stay, for a person to look at
        raise TandemError(f"replay of {primary} for plan {plan}: {report.summary()}")
    return {"primary": primary, **vars(report)}


def build_replay_dag(plan: GatewayPlan, include: Path) -> DAG:
    with DAG(
        dag_id=replay_dag_id(plan.plan),
        description=f"replay what a failed side missed for gateway plan {plan.plan}",
        doc_md=f"### Gateway plan `{plan.plan}`\n\n{plan.description}\n\n{__doc__}",
        schedule=plan.replay.every,
        start_date=START,
        catchup=False,
        max_active_runs=1,
        tags=["tandem", "gateway"],
    ) as dag:
        wait = PendingSidesSensor(task_id="wait_for_sides", include=str(include), plan=plan.plan)
        replays = []
        for primary in plan.primaries:

            @task(task_id=f"replay_{primary}")
            def replay(primary: str = primary) -> dict[str, Any]:
                return _replay_primary(str(include), plan.plan, primary)

            replays.append(replay())

        @task(task_id="summary")
        def summary(reports: list[dict[str, Any]]) -> dict[str, Any]:
            import logging

            total: dict[str, Any] = {
                k: sum(int(r.get(k) or 0) for r in reports) for k in ("marks", "files", "bytes", "deleted")
            }
            ages = [r["oldest_age_s"] for r in reports if r.get("oldest_age_s") is not None]
            total["oldest_pending_age_s"] = max(ages) if ages else None
            logging.getLogger(__name__).info("plan %s replayed: %s", plan.plan, total)
            return total

        wait >> replays
        summary(replays)  # type: ignore[arg-type]
    return dag


def load_gateway_dags(include: Path, only_dag_id: str | None = None) -> dict[str, DAG]:
    """One replay DAG per valid plan of ``include/gateway``; a bad plan file never stops the
    others, and its errors (what ``tandem gateway validate`` prints) are an import error of
    ``tandem_gateway_plan_errors``, as Airflow shows them (a plan whose replay DAG is gone must
    not go unnoticed: its pending data would never be replayed)."""
    from tandem.dags.errors import errors_dag
    from tandem.policy import check_topology_file

    topology, _ = check_topology_file(include / "clusters.yaml")
    dags: dict[str, DAG] = {}
    plans = load_plans(plans_dir(include), topology)
    for name, plan in sorted(plans.plans.items()):
        if only_dag_id in (None, replay_dag_id(name)):
            dags[replay_dag_id(name)] = build_replay_dag(plan, include)
    if plans.errors and only_dag_id is None:
        lines = [str(error) for _, errors in sorted(plans.errors.items()) for error in errors]
        dags[PLAN_ERRORS_DAG_ID] = errors_dag(PLAN_ERRORS_DAG_ID, "invalid gateway plan files", lines)
    return dags
