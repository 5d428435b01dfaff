"""The demo's billing business: its data, seeded on the primary and changed between backups.

Bills are Parquet files in HDFS that reference customers; customers are a partitioned Hive table,
settlements a SparkSQL (Spark datasource) table; owners, an ACL, a role with grants. ``Seeder``
writes the first state and then the change an incremental backup must carry (new, modified,
deleted and renamed files, a new partition, a new grant).
"""

from __future__ import annotations

import io
import json
import logging
import posixpath
import time
from typing import Any

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
