# TaskFlow calls pass XComArgs where the decorated functions declare the values they resolve to.
# mypy: disable-error-code="arg-type"
"""Policy -> backup DAG ``tandem_backup__<business>``.

Parsing builds DAG objects only: no cluster, network or metadata-database call happens here
(tasks build their clients when they run). Task ids are a contract (DESIGN.md):
``preflight`` -> ``snapshot.resolve_<component>``... -> ``snapshot.take`` -> ``copy_<component>``
(in parallel) -> ``register_metadata`` -> ``snapshot_standby`` -> ``sync_user_data`` ->
``publish_restore_point`` -> ``apply_retention``. A run of a point that is published already
skips from ``snapshot.take`` on: the point is kept, never redone.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, Asset, Param, TaskGroup, get_current_context, task

from tandem.dags.restore import DAG_ID as RESTORE_DAG_ID
from tandem.dags.restore import build_restore_dag
from tandem.timetable import PolicyTimetable

if TYPE_CHECKING:
    from tandem.backup import Run
    from tandem.policy import Policy, PolicySet, Topology
    from tandem.runtime import Clusters

COMPONENT_ORDER = ("hdfs", "hive", "sparksql")


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


def _dry_run() -> bool:
    context = get_current_context()
    conf = context["dag_run"].conf or {}
    return bool(conf.get("dry_run", context["params"].get("dry_run", False)))


def _preflight(policy: Policy, topology: Topology) -> dict[str, Any]:
    """``preflight``, or for a dry run the preview (and every task skipped)."""
    from tandem import backup

    run, clusters = current_run(policy, topology)
    if _dry_run():
        _preview_and_skip(run, clusters)
    return backup.preflight(run, clusters)


def _preview_and_skip(run: Run, clusters: Clusters) -> None:
    """A dry run: log what the run would do, keep it as the ``preview`` XCom, and skip every
    task (nothing is snapshotted, copied or published)."""
    import logging

    from airflow.exceptions import AirflowSkipException

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


def _take_or_skip(
    run: Run, clusters: Clusters, direction: dict[str, Any], resolved: list[dict[str, Any]]
) -> dict[str, Any]:
    """``snapshot.take``; a point published already skips the rest of the run (it is kept)."""
    from airflow.exceptions import AirflowSkipException

    from tandem import backup

    try:
        return backup.take(run, clusters, direction, resolved)
    except backup.PointAlreadyPublished as exc:
        raise AirflowSkipException(str(exc)) from exc


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
    """One business's backup DAG (pure construction; cheap)."""
    from tandem import backup

    components = [c for c in COMPONENT_ORDER if policy.datasets(c)]
    retries = int(os.environ.get("TANDEM_TASK_RETRIES", "1"))
    dag = DAG(
        dag_id=policy.dag_id,
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

        @task(task_id="preflight")
        def preflight() -> dict[str, Any]:
            return _preflight(policy, topology)

        direction = preflight()
        resolved: dict[str, Any] = {}
        with TaskGroup("snapshot"):
            for component in components:

                @task(task_id=f"resolve_{component}")
                def resolve(direction: dict[str, Any], component: str = component) -> list[dict[str, Any]]:
                    run, clusters = current_run(policy, topology)
                    return backup.resolve(run, clusters, direction["source"], component)

                resolved[component] = resolve(direction)

            @task(task_id="take")
            def take(direction: dict[str, Any], resolved_lists: list[list[dict[str, Any]]]) -> dict[str, Any]:
                run, clusters = current_run(policy, topology)
                flat = [item for group in resolved_lists for item in group]
                return _take_or_skip(run, clusters, direction, flat)

            taken = take(direction, [resolved[c] for c in components])

        copies = []
        # the pair's pool (clusters.yaml) bounds how many copies of its businesses run at once
        pool = topology.pairs[policy.pair].pool
        copy_pool: dict[str, Any] = {"pool": pool} if pool else {}
        for component in components:

            @task(task_id=f"copy_{component}", **copy_pool)
            def copy(
                direction: dict[str, Any],
                items: list[dict[str, Any]],
                taken: dict[str, Any],
                component: str = component,
            ) -> dict[str, Any]:
                run, clusters = current_run(policy, topology)
                return backup.copy_component(run, clusters, direction, component, items, taken)

            copies.append(copy(direction, resolved[component], taken))

        @task(task_id="register_metadata")
        def register_metadata(
            direction: dict[str, Any], taken: dict[str, Any], copies: list[Any]
        ) -> dict[str, int]:
            run, clusters = current_run(policy, topology)
            return backup.register_metadata(run, clusters, direction, taken)

        @task(task_id="snapshot_standby")
        def snapshot_standby(
            direction: dict[str, Any], taken: dict[str, Any], registered: Any
        ) -> dict[str, Any]:
            run, clusters = current_run(policy, topology)
            return backup.snapshot_standby(run, clusters, direction, taken)

        @task(task_id="sync_user_data")
        def sync_user_data(
            direction: dict[str, Any],
            resolved_lists: list[list[dict[str, Any]]],
            taken: dict[str, Any],
            standby: Any,
        ) -> dict[str, int]:
            run, clusters = current_run(policy, topology)
            flat = [item for group in resolved_lists for item in group]
            return backup.sync_user_data(run, clusters, direction, flat, taken)

        @task(task_id="publish_restore_point", outlets=[asset_for(policy.business)])
        def publish_restore_point(
            direction: dict[str, Any],
            taken: dict[str, Any],
            copies: list[dict[str, Any]],
            user_data: dict[str, int],
        ) -> dict[str, Any]:
            run, clusters = current_run(policy, topology)
            started = datetime.fromisoformat(direction["started"].replace("Z", "+00:00"))
            return backup.publish(run, clusters, direction, taken, copies, user_data, started)

        @task(task_id="apply_retention")
        def apply_retention(direction: dict[str, Any], published: dict[str, Any]) -> dict[str, Any]:
            run, clusters = current_run(policy, topology)
            return backup.apply_retention(run, clusters, direction)

        registered = register_metadata(direction, taken, copies)
        standby = snapshot_standby(direction, taken, registered)
        user_data = sync_user_data(direction, [resolved[c] for c in components], taken, standby)
        published = publish_restore_point(direction, taken, copies, user_data)
        apply_retention(direction, published)
    return dag


class PolicyErrorsDag(DAG):
    """Stands for the policy files that do not validate.

    Airflow records a DAG that fails validation as an import error of the file that defined it
    while keeping that file's other DAGs, so bad policies show up as a readable import error
    (file, field, reason for each) and never stop the good businesses' DAGs from loading.
    """

    def validate(self) -> None:
        raise PolicyFilesInvalid(self.description or "invalid policy files")


class PolicyFilesInvalid(ValueError):
    """Raised at DAG validation for invalid policy files (see PolicyErrorsDag)."""


def _errors_dag(policies: PolicySet) -> DAG:
    lines = [str(error) for error in policies.all_errors()]
    return PolicyErrorsDag(
        dag_id="tandem_policy_errors",
        description="invalid policy files:\n" + "\n".join(lines),
        schedule=None,
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
    )


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
        dags["tandem_policy_errors"] = _errors_dag(policies)
    if only_dag_id in (None, RESTORE_DAG_ID):
        businesses = sorted(p.business for p in policies.files.values())
        dags[RESTORE_DAG_ID] = build_restore_dag(businesses, include_dir)
    return dags
