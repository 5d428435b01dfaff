"""``tandem backup BUSINESS``: one run now, through Airflow's own task runner."""

from __future__ import annotations

import logging
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tandem import catalog
from tandem.hdfs.client import Hdfs

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


def run_backup(args: Any) -> int:
    """``tandem backup BUSINESS [--full]``: one run now, through Airflow's own task runner
    (``airflow dags test``) of the configured Airflow (or the one of ``--home``'s environment
    file), against the clusters of its connections."""
    import json

    from tandem import environment
    from tandem.airflow_cli import AirflowCommand
    from tandem.points import backup_target, load_business
    from tandem.runtime import cluster_clients_for_cli

    environment.use(args.home, with_airflow=True)
    clusters = cluster_clients_for_cli(args.home)
    policy, topology = load_business(args.business)
    airflow = AirflowCommand()
    target = backup_target(policy, topology, clusters)
    instant = _next_instant(clusters.hdfs(target), policy.business)
    conf: dict[str, object] | None = {"full": True} if args.full else None
    log.info("backup: %s at %s through Airflow (%s)", policy.dag_id, catalog.iso(instant), airflow.describe())
    outcome = airflow.dags_test(policy.dag_id, instant, conf, progress=lambda said: log.info("%s", said))
    manifest = catalog.find(clusters.hdfs(target), policy.business, instant) if outcome.ok else None
    result = {
        "business": policy.business,
        "dag_id": policy.dag_id,
        "point": catalog.iso(instant),
        "state": outcome.state,
        "seconds": outcome.seconds,
        "manifest": manifest.model_dump(mode="json") if manifest else None,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    elif manifest is not None:
        print(
            f"tandem backup {policy.business}: published {manifest.point} on {manifest.target} "
            f"({manifest.mode}, {manifest.files_copied} files / {manifest.bytes_copied} bytes copied, "
            f"skew {manifest.skew_ms} ms, verified {manifest.verification.get('files', 0)} files) "
            f"in {outcome.seconds:.1f} s"
        )
    else:
        print(f"tandem backup {policy.business}: run {outcome.state}; no point published", file=sys.stderr)
        print(outcome.failure_reason(), file=sys.stderr)
    return 0 if manifest is not None else 1


def _next_instant(target: Hdfs, business: str) -> datetime:
    """Now to the second, later than every published point (points are named to the second)."""
    newest = catalog.latest(target, business)
    while True:
        instant = datetime.now(UTC).replace(microsecond=0)
        if newest is None or instant > newest.instant:
            return instant
        time.sleep(0.2)
