"""``tandem demo``: the main job, end to end, on the embedded clusters.

1. bring the embedded clusters up (or reuse them) and seed the billing business on the primary:
   bills as Parquet files in HDFS referencing customers, customers in a partitioned Hive table,
   settlements in a SparkSQL (Spark datasource) table, owners, an ACL, a role with grants;
2. apply airflow_settings.yaml and run ``tandem_backup__billing`` through Airflow: a full backup;
3. change the data (new, modified, deleted and renamed files, a new partition, a new grant) and
   run it again: an incremental backup;
4. verify the newest restore point on the standby: file checksums, row counts, and that every
   bill's customer exists in the customer list at that point; print a short summary.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tandem.catalog import Manifest
from tandem.errors import TandemError
from tandem.hdfs.client import Hdfs
from tandem.metastore import Metastore
from tandem_dev.demo_data import BILLS_DIR, BUSINESS, CUSTOMERS, DAG_ID, SETTLEMENTS, Seeder, read_parquet

log = logging.getLogger(__name__)


def verify_point(source: Hdfs, target: Hdfs, target_ms: Metastore, manifest: Manifest) -> dict[str, Any]:
    """Check a restore point on the target against the same snapshot on the source (tandem
    verify's check), and the billing business's own rule: every bill's customer is there."""
    from tandem.verify import check_snapshot

    name = manifest.snapshot_name
    report = check_snapshot(target, manifest, source, None)
    files, mismatched = report.files, len(report.mismatches)
    bills = _rows_under(target, f"{BILLS_DIR}/.snapshot/{name}")
    info = target_ms.describe(CUSTOMERS)
    customers = _rows_under(target, f"{_path(info.location)}/.snapshot/{name}")
    settlements = _rows_under(target, f"{_path(target_ms.describe(SETTLEMENTS).location)}/.snapshot/{name}")
    known = set(customers.get("customer_id", []))
    violations = sum(1 for c in bills.get("customer_id", []) if c not in known)
    return {
        "files_checked": files,
        "files_mismatched": mismatched,
        "bills": len(bills.get("bill_id", [])),
        "customers": len(known),
        "settlements": len(settlements.get("bill_id", [])),
        "partitions": len(info.partitions),
        "consistency_violations": violations,
    }


def _path(uri: str) -> str:
    from tandem.metastore import location_path

    return location_path(uri)


def _rows_under(hdfs: Hdfs, top: str) -> dict[str, list[Any]]:
    rows: dict[str, list[Any]] = {}
    for entry in hdfs.walk(top):
        if entry.status.is_dir or not entry.relpath.endswith(".parquet"):
            continue
        for column, values in read_parquet(hdfs, f"{top}/{entry.relpath}").items():
            rows.setdefault(column, []).extend(values)
    return rows


# -- the job -------------------------------------------------------------------------------------
def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, flush=True)


def run_demo(args: argparse.Namespace) -> int:
    from tandem import catalog
    from tandem.environment import project_root
    from tandem_dev.embedded import manager
    from tandem_dev.local_airflow import LocalAirflow

    quiet = bool(args.json)
    _quiet_libraries()
    project = project_root(Path.cwd())
    started = time.monotonic()
    kerberos = bool(getattr(args, "kerberos", False))
    _say(
        quiet,
        "Starting the embedded clusters (primary, standby, primary2)"
        + (", every server demanding Kerberos from the home's own KDC..." if kerberos else "..."),
    )
    topology = manager.bring_up(args.home, kerberos=kerberos).topology
    env = manager.connection_env(topology)
    extra = {"TANDEM_TASK_RETRIES": "0", "TANDEM_HOME": str(topology.home)}
    if kerberos:
        from tandem_dev.kerberos import HomeRealm

        realm_env = HomeRealm(topology.home).env()
        extra.update(realm_env)
        os.environ.update(realm_env)  # this process reads and seeds the clusters as Tandem too
    airflow = LocalAirflow(
        topology.home / "airflow", project, tuple(sorted(env.items())), tuple(extra.items())
    )
    _say(quiet, "Preparing Airflow (first time: about 30 s)...")
    airflow.ensure_db()
    _apply_settings(airflow, project)

    os.environ.update(env)
    from tandem.runtime import Clusters

    clusters = Clusters(_project_topology(project))
    primary, standby = clusters.hdfs("primary"), clusters.hdfs("standby")
    seeder = Seeder(primary, clusters.metastore("primary"), clusters.spec("primary").nameservice)
    _say(quiet, "Seeding the billing business on the primary...")
    seeder.seed()

    points = []
    first = _backup(airflow, _now(), {"full": True}, quiet, "full backup")
    points.append(first)
    generation = len(catalog.list_points(standby, BUSINESS))
    changes = seeder.change(generation)
    _say(quiet, f"Changed the data: {', '.join(f'{k} {v}' for k, v in changes.items())}")
    points.append(_backup(airflow, _now(), None, quiet, "incremental backup"))
    newest = catalog.latest(standby, BUSINESS)
    if newest is None:
        raise TandemError("no restore point was published")
    check = verify_point(primary, standby, clusters.metastore("standby"), newest)
    verified = check["files_mismatched"] == 0 and check["consistency_violations"] == 0
    from tandem_dev.gateway_demo import run_gateway_demo

    gateway = run_gateway_demo(topology.home, airflow, standby, lambda text: _say(quiet, text))
    verified = verified and gateway["standby_mismatched"] == 0 and not gateway["degraded_after_replay"]
    from tandem_dev.gateway_targets_demo import run_targets_demo

    targets = run_targets_demo(topology.home, project, airflow.env(), lambda text: _say(quiet, text))
    gateway["targets"] = targets
    verified = (
        verified
        and targets["nas"]["decrypted_ok"]
        and targets["nas"]["evictions"] > 0
        and bool(targets["nas"]["sealed"])
        and targets["s3"]["objects"] == targets["s3"]["written"] == targets["s3"]["stamped"]
        and targets["s3"]["sealed"] > 0
    )
    result = {
        "business": BUSINESS,
        "restore_points": [
            {k: p[k] for k in ("point", "mode", "files_copied", "bytes_copied", "duration_s", "skew_ms")}
            for p in points
        ],
        "total_bytes": sum(ds.bytes for ds in newest.datasets),
        "consistency_violations": check["consistency_violations"],
        "check": check,  # what the text summary's "Newest point verified" line says
        "verified": verified,
        "clusters": topology.to_json()["clusters"],
        "kerberos": topology.to_json().get("kerberos"),
        "gateway": gateway,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _summary(result, check, time.monotonic() - started)
    return 0 if verified else 1


def _now() -> datetime:
    """A run's instant: now, to the second (points are named to the second)."""
    time.sleep(1.0 - datetime.now(UTC).microsecond / 1e6)  # never two points in one second
    return datetime.now(UTC).replace(microsecond=0)


def _quiet_libraries() -> None:
    """The demo prints its own progress; client libraries log every request at INFO."""
    for name in ("hdfs", "airflow", "kazoo", "tandem", "thrift"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _backup(
    airflow: Any, at: datetime, conf: dict[str, Any] | None, quiet: bool, label: str
) -> dict[str, Any]:
    _say(quiet, f"Running {DAG_ID} through Airflow at {at.isoformat()} ({label})...")
    outcome = airflow.dags_test(DAG_ID, at, conf)
    if not outcome.ok:
        raise TandemError(f"{DAG_ID} run at {at.isoformat()} {outcome.state}:\n{outcome.failure_reason()}")
    from tandem import catalog
    from tandem.runtime import Clusters

    standby = Clusters(_project_topology(airflow.project)).hdfs("standby")
    for manifest in reversed(catalog.list_points(standby, BUSINESS)):
        if manifest.instant == at:
            _say(
                quiet,
                f"  published {manifest.point}: {manifest.mode}, {manifest.files_copied} files, "
                f"{manifest.bytes_copied / 1e6:.2f} MB copied, skew {manifest.skew_ms} ms "
                f"({outcome.seconds:.0f} s in Airflow)",
            )
            return manifest.model_dump(mode="json")
    raise TandemError(f"{DAG_ID} succeeded at {at.isoformat()} but no manifest was published")


def _project_topology(project: Path) -> Any:
    from tandem.policy import load_topology

    return load_topology(project / "include" / "clusters.yaml")


def _apply_settings(airflow: Any, project: Path) -> None:
    """airflow_settings.yaml into the demo's Airflow DB (ports of the running clusters)."""
    import subprocess

    result = subprocess.run(
        [sys.executable, "-m", "tandem.cli", "settings", "apply", str(project / "airflow_settings.yaml")],
        env=airflow.env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise TandemError(f"tandem settings apply failed:\n{result.stdout}{result.stderr}")


def _summary(result: dict[str, Any], check: dict[str, Any], seconds: float) -> None:
    print()
    print(f"Tandem demo: business {result['business']}, primary -> standby ({seconds:.0f} s)")
    for p in result["restore_points"]:
        print(
            f"  {p['point']}  {p['mode']:<11} {p['files_copied']:>4} files {p['bytes_copied'] / 1e6:>7.2f} MB"
            f"  skew {p['skew_ms']} ms  {p['duration_s']:.1f} s"
        )
    state = "verified" if result["verified"] else "NOT VERIFIED"
    print(
        f"Newest point {state} on the standby: {check['files_checked']} files match by checksum "
        f"({check['files_mismatched']} mismatched); {check['bills']} bills, {check['customers']} customers "
        f"in {check['partitions']} partitions, {check['settlements']} settlements; "
        f"{check['consistency_violations']} bills whose customer is missing."
    )
    print(
        "The clusters are still up: `tandem status`, `tandem restore-points billing`; "
        "`tandem ui` opens Airflow with the Disaster recovery page (billing's restore points and RPO); "
        "stop them with `tandem down`."
    )
