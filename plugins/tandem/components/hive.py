"""Hive and SparkSQL tables: data under the table and partition locations, found through the
metastore. Their definitions are captured with the snapshots and registered on the target by
:mod:`tandem.capture`.

A SparkSQL table is a Spark datasource table kept in the metastore: its provider is in the
table property ``spark.sql.sources.provider`` and its data path in the serde property ``path``.
"""

from __future__ import annotations

from tandem.components.base import ResolvedDataset
from tandem.errors import MetastoreError, SnapshotRootError
from tandem.hdfs.client import Hdfs
from tandem.metastore import Metastore, TableInfo, TableRef


def _need(metastore: Metastore | None, kind: str) -> Metastore:
    if metastore is None:
        raise MetastoreError(f"{kind} datasets need the cluster's metastore connection")
    return metastore


class HiveComponent:
    kind = "hive"

    def check(self, info: TableInfo) -> None:
        if info.table_type == "VIRTUAL_VIEW":
            raise SnapshotRootError(f"{info.ref} is a view: it holds no data to protect")

    def resolve(
        self, name: str, hdfs: Hdfs, metastore: Metastore | None, nameservice: str | None = None
    ) -> ResolvedDataset:
        info = _need(metastore, self.kind).describe(TableRef.parse(name))
        self.check(info)
        if not info.location:
            raise SnapshotRootError(f"{info.ref} has no location in the metastore")
        foreign = info.foreign_locations(nameservice) if nameservice else []
        if foreign:
            raise SnapshotRootError(
                f"{info.ref} keeps data outside {nameservice} ({', '.join(foreign[:3])}): Tandem "
                "snapshots and copies the pair's HDFS only; protect that data with its own store's tools"
            )
        return ResolvedDataset(self.kind, name, info.data_paths())


class SparkSqlComponent(HiveComponent):
    kind = "sparksql"

    def check(self, info: TableInfo) -> None:
        super().check(info)
        if not info.is_spark_datasource:
            raise SnapshotRootError(
                f"{info.ref} is not a Spark datasource table (no spark.sql.sources.provider); "
                "list it under hive instead"
            )
