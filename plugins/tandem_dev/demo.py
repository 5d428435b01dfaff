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
import io
import json
import logging
import os
import posixpath
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tandem.catalog import Manifest
from tandem.errors import TandemError
from tandem.hdfs.client import Hdfs
from tandem.metastore import Metastore, TableRef

log = logging.getLogger(__name__)

BUSINESS = "billing"
DAG_ID = f"tandem_backup__{BUSINESS}"
BILLS_DIR = "/data/billing/details"
CUSTOMERS = TableRef("billing", "customers")
SETTLEMENTS = TableRef("billing_mart", "settlements")
PARQUET_IN = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
CUSTOMERS_PER_FILE = 250
BILLS_PER_FILE = 400


# -- data ----------------------------------------------------------------------------------------
def parquet_bytes(columns: dict[str, list[Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(pa.table(columns), sink)
    return sink.getvalue()


def read_parquet(hdfs: Hdfs, path: str) -> dict[str, list[Any]]:
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(hdfs.read_bytes(path)))
    return {name: table.column(name).to_pylist() for name in table.column_names}


def _customers(first: int, count: int) -> dict[str, list[Any]]:
    ids = list(range(first, first + count))
    return {"customer_id": ids, "name": [f"customer {i}" for i in ids]}


def _bills(first_bill: int, customer_ids: list[int]) -> dict[str, list[Any]]:
    n = BILLS_PER_FILE
    return {
        "bill_id": list(range(first_bill, first_bill + n)),
        "customer_id": [customer_ids[i % len(customer_ids)] for i in range(n)],
        "amount_cents": [1000 + (first_bill + i) % 9000 for i in range(n)],
        "settled": [(first_bill + i) % 3 == 0 for i in range(n)],
    }


def _schema(spec: list[tuple[str, str]]) -> list[Any]:
    from hmsclient.genthrift.hive_metastore.ttypes import FieldSchema

    return [FieldSchema(name=n, type=t, comment="") for n, t in spec]


def _storage(location: str, cols: list[Any], serde_params: dict[str, str] | None = None) -> Any:
    from hmsclient.genthrift.hive_metastore.ttypes import SerDeInfo, StorageDescriptor

    return StorageDescriptor(
        cols=cols,
        location=location,
        inputFormat=PARQUET_IN,
        outputFormat=PARQUET_OUT,
        compressed=False,
        numBuckets=-1,
        serdeInfo=SerDeInfo(name="", serializationLib=PARQUET_SERDE, parameters=serde_params or {}),
        bucketCols=[],
        sortCols=[],
        parameters={},
    )


class Seeder:
    """Writes the billing business onto a cluster; every step is idempotent."""

    def __init__(self, hdfs: Hdfs, metastore: Metastore, nameservice: str) -> None:
        self.hdfs = hdfs
        self.ms = metastore
        self.ns = nameservice

    def uri(self, path: str) -> str:
        return f"{self.ns}{path}"

    def ensure_database(self, name: str) -> str:
        from hmsclient.genthrift.hive_metastore.ttypes import Database

        location = f"/warehouse/{name}.db"
        with self.ms.session() as client:
            if name not in client.get_all_databases():
                client.create_database(
                    Database(
                        name=name,
                        description=f"{name} (demo)",
                        locationUri=self.uri(location),
                        parameters={},
                        ownerName="billing",
                        ownerType=1,
                    )
                )
        self.hdfs.mkdirs(location)
        return location

    def customers_table(self) -> str:
        from hmsclient.genthrift.hive_metastore.ttypes import Table

        db_location = self.ensure_database(CUSTOMERS.db)
        location = f"{db_location}/{CUSTOMERS.name}"
        if self.ms.get_table(CUSTOMERS) is None:
            with self.ms.session() as client:
                client.create_table(
                    Table(
                        tableName=CUSTOMERS.name,
                        dbName=CUSTOMERS.db,
                        owner="billing",
                        createTime=int(time.time()),
                        lastAccessTime=0,
                        retention=0,
                        sd=_storage(
                            self.uri(location), _schema([("customer_id", "bigint"), ("name", "string")])
                        ),
                        partitionKeys=_schema([("region", "string")]),
                        parameters={"EXTERNAL": "FALSE"},
                        tableType="MANAGED_TABLE",
                    )
                )
        self.hdfs.mkdirs(location)
        return location

    def add_customers(self, region: str, first: int, count: int) -> None:
        """One partition file per call; the partition is added to the metastore if missing."""
        from hmsclient.genthrift.hive_metastore.ttypes import Partition

        table_location = self.customers_table()
        part_dir = f"{table_location}/region={region}"
        self.hdfs.write(f"{part_dir}/customers-{first:06d}.parquet", parquet_bytes(_customers(first, count)))
        table = self.ms.get_table(CUSTOMERS)
        assert table is not None  # created just above
        names = {tuple(p.values) for p in self.ms.get_partitions(CUSTOMERS)}
        if (region,) not in names:
            sd = _storage(self.uri(part_dir), table.sd.cols)
            with self.ms.session() as client:
                # hmsclient's HMSClient shadows the Thrift add_partition with a helper of its own
                client.add_partitions(
                    [
                        Partition(
                            values=[region],
                            dbName=CUSTOMERS.db,
                            tableName=CUSTOMERS.name,
                            createTime=int(time.time()),
                            lastAccessTime=0,
                            sd=sd,
                            parameters={},
                        )
                    ]
                )

    def settlements_table(self) -> str:
        from hmsclient.genthrift.hive_metastore.ttypes import Table

        db_location = self.ensure_database(SETTLEMENTS.db)
        location = f"{db_location}/{SETTLEMENTS.name}"
        if self.ms.get_table(SETTLEMENTS) is None:
            schema = json.dumps(
                {
                    "type": "struct",
                    "fields": [
                        {"name": "bill_id", "type": "long", "nullable": True, "metadata": {}},
                        {"name": "settled_at", "type": "string", "nullable": True, "metadata": {}},
                    ],
                }
            )
            with self.ms.session() as client:
                client.create_table(
                    Table(
                        tableName=SETTLEMENTS.name,
                        dbName=SETTLEMENTS.db,
                        owner="billing",
                        createTime=int(time.time()),
                        lastAccessTime=0,
                        retention=0,
                        sd=_storage(
                            self.uri(location),
                            _schema([("bill_id", "bigint"), ("settled_at", "string")]),
                            {"path": self.uri(location), "serialization.format": "1"},
                        ),
                        partitionKeys=[],
                        parameters={
                            "spark.sql.sources.provider": "parquet",
                            "spark.sql.sources.schema.numParts": "1",
                            "spark.sql.sources.schema.part.0": schema,
                            "spark.sql.create.version": "3.5.1",
                        },
                        tableType="MANAGED_TABLE",
                    )
                )
        self.hdfs.mkdirs(location)
        return location

    def write_bills(self, index: int, customer_ids: list[int]) -> str:
        path = f"{BILLS_DIR}/bills-{index:04d}.parquet"
        self.hdfs.write(path, parquet_bytes(_bills(index * BILLS_PER_FILE, customer_ids)))
        return path

    def write_settlements(self, index: int) -> None:
        location = self.settlements_table()
        first = index * BILLS_PER_FILE
        bills = [b for b in range(first, first + BILLS_PER_FILE) if b % 3 == 0]
        columns: dict[str, list[Any]] = {
            "bill_id": bills,
            "settled_at": ["2026-11-20T12:00:00Z"] * len(bills),
        }
        self.hdfs.write(f"{location}/part-{index:05d}.snappy.parquet", parquet_bytes(columns))

    def owners_and_grants(self, role: str = "billing_analyst", privilege: str = "SELECT") -> None:
        from hmsclient.genthrift.hive_metastore.ttypes import (
            HiveObjectPrivilege,
            HiveObjectRef,
            HiveObjectType,
            PrincipalType,
            PrivilegeBag,
            PrivilegeGrantInfo,
            Role,
        )

        self.hdfs.set_owner("/data/billing", "billing", "finance")
        self.hdfs.set_permission("/data/billing", "750")
        self.hdfs.set_acl(BILLS_DIR, ["user:auditor:r-x"])
        with self.ms.session() as client:
            if role not in client.get_role_names():
                client.create_role(Role(roleName=role, createTime=int(time.time()), ownerName="admin"))
                client.grant_role(role, "alice", PrincipalType.USER, "admin", PrincipalType.USER, False)
            obj = HiveObjectRef(
                objectType=HiveObjectType.TABLE, dbName=CUSTOMERS.db, objectName=CUSTOMERS.name
            )
            have = {p.grantInfo.privilege for p in client.list_privileges(role, PrincipalType.ROLE, obj)}
            if privilege not in have:
                grant = PrivilegeGrantInfo(
                    privilege=privilege,
                    createTime=int(time.time()),
                    grantor="admin",
                    grantorType=PrincipalType.USER,
                    grantOption=False,
                )
                client.grant_privileges(
                    PrivilegeBag(
                        privileges=[
                            HiveObjectPrivilege(
                                hiveObject=obj,
                                principalName=role,
                                principalType=PrincipalType.ROLE,
                                grantInfo=grant,
                            )
                        ]
                    )
                )

    def seed(self) -> None:
        """The starting state: 2 regions x 4 customer files, 12 bill files, settlements."""
        self.hdfs.mkdirs(BILLS_DIR)
        customer_ids: list[int] = []
        for region_index, region in enumerate(("eu", "us")):
            for f in range(4):
                first = (region_index * 4 + f) * CUSTOMERS_PER_FILE
                self.add_customers(region, first, CUSTOMERS_PER_FILE)
                customer_ids += list(range(first, first + CUSTOMERS_PER_FILE))
        for index in range(12):
            self.write_bills(index, customer_ids)
            self.write_settlements(index)
        self.owners_and_grants()

    def change(self, generation: int) -> dict[str, str]:
        """New customers in a new partition, bills for them; a modified, a deleted and a renamed
        bill file; a new grant. Returns what was done, for the summary."""
        first = 100_000 * generation
        region = f"apac{generation}"
        self.add_customers(region, first, CUSTOMERS_PER_FILE)
        new_ids = list(range(first, first + CUSTOMERS_PER_FILE))
        created = self.write_bills(1000 + generation, new_ids)
        modified = f"{BILLS_DIR}/bills-0001.parquet"
        self.hdfs.write(modified, parquet_bytes(_bills(1 * BILLS_PER_FILE + generation, new_ids)))
        deleted = f"{BILLS_DIR}/bills-0002.parquet"
        self.hdfs.delete(deleted)
        renamed_from = f"{BILLS_DIR}/bills-0003.parquet"
        renamed_to = f"{BILLS_DIR}/archive-{generation}/bills-0003.parquet"
        if self.hdfs.status(renamed_from) is not None:
            self.hdfs.mkdirs(posixpath.dirname(renamed_to))
            self.hdfs.rename(renamed_from, renamed_to)
        self.write_settlements(1000 + generation)
        self.owners_and_grants(privilege="INSERT")
        return {
            "partition_added": f"region={region}",
            "created": created,
            "modified": modified,
            "deleted": deleted,
            "renamed": f"{renamed_from} -> {renamed_to}",
            "grant_added": "INSERT",
        }


# -- verification ------------------------------------------------------------------------------
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
