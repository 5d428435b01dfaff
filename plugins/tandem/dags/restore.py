# mypy: disable-error-code="arg-type"
"""``tandem_restore``: land one business on a restore point, from the UI or the REST API.

One DAG for every business (params ``business``, ``point``, ``cluster``, ``confirmation``,
``dry_run``), so thousands of businesses add one DAG to parse, not thousands. The confirmation
is the business's name typed again; a dry run needs none and changes nothing. The task runs
:func:`tandem.restore.restore` (progress in the task log) and fails unless the cluster verifies
at the point afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param, get_current_context, task

DAG_ID = "tandem_restore"


def build_restore_dag(businesses: Sequence[str], include_dir: Path) -> DAG:
    """The restore DAG (pure construction; cheap)."""
    dag = DAG(
        dag_id=DAG_ID,
        description="Land a business on a restore point (typed confirmation)",
        schedule=None,
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        catchup=False,
        max_active_runs=1,
        tags=["tandem", "restore"],
        default_args={"retries": 0},
        doc_md=(
            "### Restore a business to a restore point\n\n"
            "Every dataset of the business on the cluster is brought back to the point: HDFS trees "
            "from the cluster's own snapshot (only what differs is touched; what the live data holds "
            "beyond the point is moved to `/.tandem/quarantine/<business>/restore-<when>/`), tables and "
            "partitions from the point's metadata capture. Leave `point` empty for the newest point and "
            "`cluster` empty for the cluster that receives backups. Type the business's name again in "
            "`confirmation`, or set `dry_run` to list what would change."
        ),
        params={
            "business": Param(
                businesses[0] if businesses else "",
                type="string",
                enum=list(businesses) or [""],
                title="Business",
            ),
            "point": Param(
                "", type="string", title="Point", description="e.g. 2026-11-20T13:00:00Z; empty: newest"
            ),
            "cluster": Param(
                "", type="string", title="Cluster", description="empty: the cluster receiving backups"
            ),
            "confirmation": Param(
                "", type="string", title="Confirmation", description="the business's name again"
            ),
            "dry_run": Param(
                False, type="boolean", title="Dry run", description="list what would change only"
            ),
        },
    )
    with dag:

        @task(task_id="restore")
        def restore_task() -> dict[str, Any]:
            return restore_from_params(get_current_context()["params"], include_dir)

        restore_task()
    return dag


def restore_from_params(params: Any, include_dir: Path) -> dict[str, Any]:
    """The restore task: check the confirmation, find the point, restore, verify."""
    from tandem.errors import RestoreError
    from tandem.points import find_point, load_business
    from tandem.restore import restore_point
    from tandem.runtime import Clusters

    business = str(params["business"])
    dry_run = bool(params.get("dry_run", False))
    if not dry_run and str(params.get("confirmation") or "") != business:
        raise RestoreError(
            f"the confirmation does not repeat the business name {business!r} exactly: nothing was changed"
        )
    policy, topology = load_business(business, include_dir)
    clusters = Clusters(topology)
    cluster, point = str(params.get("cluster") or "") or None, str(params.get("point") or "") or None
    landing = find_point(policy, topology, clusters, cluster, point)
    outcome = restore_point(clusters, landing, dry_run=dry_run)
    for action in outcome.actions:
        print(action)
    if outcome.check is not None and not outcome.check.ok:
        raise RestoreError(
            f"{business} is not at {landing.manifest.point} after the restore: "
            f"{outcome.check.mismatches[:10]}"
        )
    return outcome.to_json()
