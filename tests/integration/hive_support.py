"""Hive tables for integration tests, made through the metastore's own Thrift API as Hive does."""

from __future__ import annotations

import copy
import posixpath
import time
from typing import Any

from hmsclient.genthrift.hive_metastore.ttypes import (
    Database,
    FieldSchema,
    Partition,
    SerDeInfo,
    StorageDescriptor,
    Table,
)

from tandem.metastore import Metastore, TableRef


def ensure_partitioned_table(metastore: Metastore, ref: TableRef, table_dir: str, nameservice: str) -> Any:
    """``ref`` (one bigint column, partitioned by the string ``batch``) at ``table_dir``, its
    database at the parent directory; made when missing. Returns the Thrift Table."""
    with metastore.session() as client:
        if ref.db not in client.get_all_databases():
            location = nameservice + posixpath.dirname(table_dir)
            client.create_database(Database(name=ref.db, description="", locationUri=location, parameters={}))
        if ref.name not in client.get_all_tables(ref.db):
            sd = StorageDescriptor(
                cols=[FieldSchema("customer_id", "bigint", "")],
                location=nameservice + table_dir,
                serdeInfo=SerDeInfo(name="", parameters={}),
                bucketCols=[],
                sortCols=[],
                parameters={},
            )
            client.create_table(
                Table(
                    tableName=ref.name,
                    dbName=ref.db,
                    owner="billing",
                    createTime=int(time.time()),
                    lastAccessTime=0,
                    retention=0,
                    sd=sd,
                    partitionKeys=[FieldSchema("batch", "string", "")],
                    parameters={},
                    tableType="MANAGED_TABLE",
                )
            )
    return metastore.get_table(ref)


def add_partition(metastore: Metastore, table: Any, batch: str, location: str) -> None:
    """Register partition ``batch=<batch>`` of ``table`` at ``location`` (a full URI)."""
    sd = copy.deepcopy(table.sd)
    sd.location = location
    part = Partition(
        values=[batch],
        dbName=table.dbName,
        tableName=table.tableName,
        createTime=int(time.time()),
        lastAccessTime=0,
        sd=sd,
        parameters={},
    )
    with metastore.session() as client:
        # hmsclient's HMSClient shadows the Thrift add_partition with a helper of its own
        client.add_partitions([part])
