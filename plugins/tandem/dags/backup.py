"""Policy -> step graph -> backup DAG ``tandem_backup__<business>``.

The steps, their task ids (a contract, DESIGN.md) and what each takes from which come from
:mod:`tandem.backup.graph`; this module only renders that graph for Airflow: one task per step,
one dependency per edge, and :func:`run_step` as every task's body. Parsing builds DAG objects
only: no cluster, network or metadata-database call happens here (tasks build their clients when
they run). A run of a point that is published already skips from ``snapshot.take`` on: the point
is kept, never redone.
"""

from __future__ import annotations

import os
from datetime import UTC, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, Asset, Param, TaskGroup, get_current_context, task

from tandem.backup.graph import BackupGraph, Step, backup_graph
from tandem.dags.errors import errors_dag
from tandem.dags.restore import DAG_ID as RESTORE_DAG_ID
from tandem.dags.restore import build_restore_dag
from tandem.timetable import PolicyTimetable

POLICY_ERRORS_DAG_ID = "tandem_policy_errors"

if TYPE_CHECKING:
    from tandem.backup import Run
    from tandem.policy import Policy, Topology
    from tandem.runtime import Clusters


def asset_for(business: str) -> Asset:
    """The Asset a published restore point updates: downstream DAGs may schedule on it."""
    return Asset(name=f"tandem_{business}", uri=f"tandem://{business}")


def current_run(policy: Policy, topology: Topology) -> tuple[Run, Clusters]:
    """The Run of the task being executed: instant T is the logical date (or, for runs
    triggered without one, the time the run was created), to the second."""
    from tandem.backup import Run
    from tandem.runtime import Clusters

    context = get_current_context()
    dag_run = context["dag_run"]
    instant = context.get("logical_date") or dag_run.run_after
    instant = instant.astimezone(UTC).replace(microsecond=0)
    conf = dag_run.conf or {}
    force_full = bool(conf.get("full", context["params"].get("full", False)))
    return Run(policy, topology, instant, force_full), Clusters(topology)


CONF_KEYS = ("full", "dry_run")


def _refuse_unknown_conf() -> None:
    """Airflow accepts any key in a run's conf: a misspelt ``dry_run`` would run a real backup
    (snapshots, copies, a published point) where a preview was asked for. The run fails first."""
    from airflow.sdk.exceptions import AirflowFailException

    conf = get_current_context()["dag_run"].conf or {}
    unknown = sorted(set(conf) - set(CONF_KEYS))
    if unknown:
        raise AirflowFailException(
            f"unknown conf key(s) {', '.join(map(repr, unknown))}: a backup run takes "
            f"{', '.join(CONF_KEYS)}; nothing was done"
        )


def _dry_run() -> bool:
    context = get_current_context()
    conf = context["dag_run"].conf or {}
    return bool(conf.get("dry_run", context["params"].get("dry_run", False)))


def _preview_and_skip(run: Run, clusters: Clusters) -> None:
    """A dry run: log what the run would do, keep it as the ``preview`` XCom, and skip every
    task (nothing is snapshotted, copied or published)."""
    import logging

    from airflow.sdk.exceptions import AirflowSkipException

    from tandem.backup.preview import preview

    found = preview(run, clusters)
    log = logging.getLogger("tandem.backup.preview")
    for line in found.lines():
        log.info("%s", line)
    get_current_context()["ti"].xcom_push(key="preview", value=found.to_json())
    verdict = f"preflight would stop the run: {found.blocked}" if found.blocked else "the run would start"
    raise AirflowSkipException(
        f"dry run: {verdict}; {found.files_to_copy} files, {found.bytes_to_copy} bytes to copy; "
        "nothing was changed (the preview is in this log and in the 'preview' XCom)"
    )


def run_step(step: Step, graph: BackupGraph, policy: Policy, topology: Topology) -> Any:
    """What every backup task does: its step, with the XComs of the steps it takes values from;
    returns the step's value as JSON. A dry run (preflight) previews and skips everything; a
    point published already skips the rest of the run (the point is kept)."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from tandem import backup
    from tandem.backup import payloads

    run, clusters = current_run(policy, topology)
    if step.kind == "preflight":
        _refuse_unknown_conf()
        if _dry_run():
            _preview_and_skip(run, clusters)
    ti = get_current_context()["ti"]
    returned = {up: ti.xcom_pull(task_ids=up) for source in step.inputs for up in source.steps}
    try:
        value = backup.execute(step, run, clusters, backup.inputs_of(step, graph, returned))
    except (backup.PointAlreadyPublished, backup.RunSuperseded) as exc:
        raise AirflowSkipException(str(exc)) from exc
    except backup.RunOutOfTime as exc:
        raise AirflowFailException(str(exc)) from exc  # another try is as wrong
    return payloads.encode(step.kind, value)


def _doc(policy: Policy, source: Path) -> str:
    return (
        f"### Backup of business `{policy.business}`\n\n{policy.description}\n\n"
        f"Every dataset below is snapshotted at one instant, copied to the standby and published "
        f"there as one restore point (`/.tandem/restore-points/{policy.business}/`). Trigger with "
        f'conf `{{"full": true}}` to force a full copy, `{{"dry_run": true}}` to see what a run would do '
        f"without changing anything (as `tandem plan {policy.business}` does).\n\n"
        f"Effective policy (from `{source}`):\n\n```yaml\n{policy.effective_yaml()}```\n"
    )


def build_backup_dag(policy: Policy, topology: Topology, source: Path) -> DAG:
    """One business's backup DAG: the policy's step graph (tandem.backup.graph) rendered as
    tasks and dependencies (pure construction; cheap)."""
    graph = backup_graph(policy, topology)
    retries = int(os.environ.get("TANDEM_TASK_RETRIES", "1"))
    dag = DAG(
        dag_id=graph.dag_id,
        description=policy.description or f"Tandem backup of {policy.business}",
        schedule=PolicyTimetable(policy.schedule.start, policy.schedule.every),
        start_date=policy.schedule.start,
        catchup=False,
        max_active_runs=1,
        doc_md=_doc(policy, source),
        params={
            "full": Param(False, type="boolean", description="force a full copy of every dataset"),
            "dry_run": Param(
                False,
                type="boolean",
                description="only show what the run would do (preflight's log and its 'preview' XCom)",
            ),
        },
        tags=["tandem", "backup", policy.business],
        default_args={"retries": retries, "retry_delay": timedelta(seconds=30)},
    )
    with dag:
        groups: dict[str, TaskGroup] = {}
        tasks: dict[str, Any] = {}
        for step in graph.steps:
            group = None
            if step.group:
                group = groups.get(step.group) or groups.setdefault(step.group, TaskGroup(step.group))

            @task(
                task_id=step.local_id,
                task_group=group,
                pool=step.pool,  # the pair's pool (clusters.yaml) bounds its businesses' copies at once
                outlets=[asset_for(policy.business)] if step.publishes else None,
            )
            def one(step: Step = step) -> Any:
                return run_step(step, graph, policy, topology)

            tasks[step.task_id] = one()
            for up in step.upstream:
                tasks[up] >> tasks[step.task_id]
    return dag


def load_backup_dags(include_dir: Path, only_dag_id: str | None = None) -> dict[str, DAG]:
    """Every good policy's DAG, keyed by dag id, plus one error stand-in if any file is bad,
    and the restore DAG (one for every business).

    A bad ``clusters.yaml`` makes every policy unusable: that raises (an import error of the
    whole DAG file, with the file, field and reason). ``only_dag_id`` (from Airflow's parsing
    context when a worker runs one task) skips building the others.
    """
    from tandem.policy import load_policies, load_topology

    topology = load_topology(include_dir / "clusters.yaml")
    policies = load_policies(include_dir / "policies", topology)
    dags: dict[str, DAG] = {}
    for path, policy in sorted(policies.files.items()):
        if only_dag_id is None or only_dag_id == policy.dag_id:
            dags[policy.dag_id] = build_backup_dag(policy, topology, path)
    if policies.errors and only_dag_id is None:
        lines = [str(error) for error in policies.all_errors()]
        dags[POLICY_ERRORS_DAG_ID] = errors_dag(POLICY_ERRORS_DAG_ID, "invalid policy files", lines)
    if only_dag_id in (None, RESTORE_DAG_ID):
        businesses = sorted(p.business for p in policies.files.values())
        dags[RESTORE_DAG_ID] = build_restore_dag(businesses, include_dir)
    return dags
