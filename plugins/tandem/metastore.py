"""Hive metastore access through the provider's HiveMetastoreHook (hmsclient over Thrift).

Reads are parsed into frozen values (:class:`TableInfo`, :class:`PartitionInfo`); the Thrift
objects themselves are only handed around where DDL must be replayed on another metastore,
and are always deep-copied before they are changed. Metastore exceptions become
:class:`~tandem.errors.MetastoreError` naming the exception type.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tandem.errors import MetastoreError

SPARK_PROVIDER = "spark.sql.sources.provider"


@dataclass(frozen=True)
class TableRef:
    """``db.table`` as written in a policy; names are case-insensitive in Hive."""

    db: str
    name: str

    @classmethod
    def parse(cls, text: str) -> TableRef:
        db, sep, name = text.partition(".")
        if not sep or not db or not name or "." in name:
            raise ValueError(f"table name must be db.table, got {text!r}")
        return cls(db.lower(), name.lower())

    def __str__(self) -> str:
        return f"{self.db}.{self.name}"


NAMENODE_PORT = 8020  # a location's authority without a port means the NameNode's default


def split_location(uri: str) -> tuple[str, str, str]:
    """(scheme, authority, path) of a metastore location, read as Hadoop's ``Path`` reads it:
    the path is everything after the authority, ``#`` and ``?`` included (they are legal in
    HDFS names; a URL parser would cut the path there). No scheme: ("", "", the path)."""
    colon, slash = uri.find(":"), uri.find("/")
    if colon == -1 or (slash != -1 and slash < colon):
        return "", "", uri
    scheme, rest = uri[:colon].lower(), uri[colon + 1 :]
    if not rest.startswith("//"):
        return scheme, "", rest  # scheme:/path, as a Path prints a URI without an authority
    authority, _, path = rest[2:].partition("/")
    return scheme, authority, "/" + path


def location_path(uri: str) -> str:
    """The HDFS path of a metastore location (``hdfs://ns/warehouse/t`` -> ``/warehouse/t``)."""
    return split_location(uri)[2].rstrip("/") or "/"


def foreign_location(uri: str, nameservice: str) -> bool:
    """Whether a location is on another filesystem than the cluster ``nameservice`` (another
    scheme, such as ``s3a://``, or another HDFS authority): Tandem cannot snapshot it there."""
    scheme, authority, _ = split_location(uri)
    if not scheme:
        return False
    own = urlsplit(nameservice)
    if not authority and scheme == own.scheme.lower():
        return False  # hdfs:/path: the default filesystem's authority, the cluster's own
    theirs = urlsplit(f"{scheme}://{authority}")
    if scheme != own.scheme.lower() or (theirs.hostname or "") != (own.hostname or ""):
        return True
    return (theirs.port or NAMENODE_PORT) != (own.port or NAMENODE_PORT)  # an HA nameservice has none


def rebase_location(uri: str, nameservice: str) -> str:
    """The same path on another cluster: the scheme and authority become ``nameservice``."""
    target = urlsplit(nameservice)
    return f"{target.scheme}://{target.netloc}{location_path(uri)}"


@dataclass(frozen=True)
class PartitionInfo:
    values: tuple[str, ...]
    name: str  # k1=v1/k2=v2
    location: str


@dataclass(frozen=True)
class TableInfo:
    """What Tandem needs to know of a table: where its data lives and how it is laid out."""

    ref: TableRef
    table_type: str
    location: str
    partition_keys: tuple[str, ...]
    partitions: tuple[PartitionInfo, ...]
    provider: str | None  # Spark datasource provider (parquet, delta...), None for Hive tables

    @property
    def is_spark_datasource(self) -> bool:
        return self.provider is not None and self.provider.lower() != "hive"

    def data_paths(self) -> tuple[str, ...]:
        """The table location and every partition location outside it, as HDFS paths."""
        return data_paths(self.location, (p.location for p in self.partitions))

    def foreign_locations(self, nameservice: str) -> list[str]:
        """Its locations that are not on the cluster ``nameservice``."""
        found = [self.location, *(p.location for p in self.partitions if p.location)]
        return [uri for uri in dict.fromkeys(found) if foreign_location(uri, nameservice)]


def data_paths(location: str, partition_locations: Iterable[str]) -> tuple[str, ...]:
    """A table's location and every partition location outside it, as HDFS paths (a partition
    without a location of its own is under the table's). Pure."""
    base = location_path(location)
    out = [base]
    for uri in partition_locations:
        path = location_path(uri) if uri else base
        if path != base and not path.startswith(base.rstrip("/") + "/"):
            out.append(path)
    return tuple(dict.fromkeys(out))


def _part_name(keys: tuple[str, ...], values: list[str]) -> str:
    return "/".join(f"{k}={v}" for k, v in zip(keys, values, strict=True))


def table_location(table: Any) -> str:
    """Where a table's data is: Spark datasource tables keep it in the serde ``path``."""
    sd = table.sd
    serde_params = (sd.serdeInfo.parameters or {}) if sd and sd.serdeInfo else {}
    provider = (table.parameters or {}).get(SPARK_PROVIDER)
    if provider and provider.lower() != "hive" and serde_params.get("path"):
        return str(serde_params["path"])
    return str(sd.location or "") if sd else ""


class Metastore:
    """One cluster's Hive metastore. Every public method opens the transport once."""

    def __init__(self, hmsclient: Any) -> None:
        self._client = hmsclient

    @classmethod
    def from_conn_id(cls, conn_id: str) -> Metastore:
        """Build from an Airflow connection through the provider's HiveMetastoreHook (under
        Kerberos, with the metastore required to authenticate itself: :mod:`tandem.hive_hook`)."""
        from tandem.hive_hook import MutualHiveMetastoreHook

        return cls(MutualHiveMetastoreHook(metastore_conn_id=conn_id).metastore)

    @contextlib.contextmanager
    def session(self) -> Iterator[Any]:
        """An open Thrift client; metastore exceptions become MetastoreError."""
        from thrift.Thrift import TException

        try:
            with self._client as client:
                yield client
        except TException as exc:
            kind = type(exc).__name__
            message = getattr(exc, "message", None) or str(exc)
            raise MetastoreError(f"{kind}: {message}") from exc

    # -- reads ---------------------------------------------------------------------------------
    def get_table(self, ref: TableRef) -> Any | None:
        """The Thrift Table, or None when it does not exist. Read-only."""
        from hmsclient.genthrift.hive_metastore.ttypes import NoSuchObjectException

        with self.session() as client:
            try:
                return client.get_table(ref.db, ref.name)
            except NoSuchObjectException:
                return None

    def get_partitions(self, ref: TableRef) -> list[Any]:
        """All Thrift Partitions of a table. Read-only."""
        with self.session() as client:
            return list(client.get_partitions(ref.db, ref.name, -1))

    def describe(self, ref: TableRef) -> TableInfo:
        """Location, layout and partitions of a table; MetastoreError when it does not exist."""
        table = self.get_table(ref)
        if table is None:
            raise MetastoreError(f"NoSuchObjectException: table {ref} does not exist")
        keys = tuple(k.name for k in (table.partitionKeys or []))
        parts = self.get_partitions(ref) if keys else []
        return TableInfo(
            ref=ref,
            table_type=str(table.tableType or ""),
            location=table_location(table),
            partition_keys=keys,
            partitions=tuple(
                PartitionInfo(tuple(p.values), _part_name(keys, list(p.values)), str(p.sd.location or ""))
                for p in parts
            ),
            provider=(table.parameters or {}).get(SPARK_PROVIDER),
        )

    # -- replay on a target ----------------------------------------------------------------------
    def ensure_database(self, source_db: Any, nameservice: str) -> str:
        """Make the database like ``source_db`` (location rebased): created when missing, altered
        when its description, location, parameters or owner differ. Idempotent; returns
        "created", "altered" or "unchanged"."""
        from hmsclient.genthrift.hive_metastore.ttypes import NoSuchObjectException

        db = copy.deepcopy(source_db)
        if db.locationUri:
            db.locationUri = rebase_location(db.locationUri, nameservice)
        with self.session() as client:
            try:
                current = client.get_database(db.name)
            except NoSuchObjectException:
                client.create_database(db)
                return "created"
            if same_database(current, db):
                return "unchanged"
            client.alter_database(db.name, db)
            return "altered"

    def get_database(self, name: str) -> Any:
        with self.session() as client:
            return client.get_database(name)

    def upsert_table(self, source_table: Any, nameservice: str) -> str:
        """Create or alter the table to match ``source_table`` with locations rebased onto
        ``nameservice``. Idempotent; returns "created", "altered", "recreated" or "unchanged".

        A table the source dropped and made again with other partition keys, or as another
        type (a view), cannot be altered into it (the metastore refuses): it is dropped, its data
        kept (the copy owns the files), and created again; its partitions follow."""
        table = rebase_table(source_table, nameservice)
        current = self.get_table(TableRef(table.dbName, table.tableName))
        with self.session() as client:
            if current is None:
                client.create_table(table)
                return "created"
            if same_definition(current, table):
                return "unchanged"
            if (current.partitionKeys or []) != (
                table.partitionKeys or []
            ) or current.tableType != table.tableType:
                client.drop_table(table.dbName, table.tableName, False)
                client.create_table(table)
                return "recreated"
            client.alter_table(table.dbName, table.tableName, table)
            return "altered"

    def sync_partitions(self, ref: TableRef, source_parts: list[Any], nameservice: str) -> dict[str, int]:
        """Make the target's partitions equal the source's (added, altered, dropped).

        Idempotent. Data is never deleted here (deleteData=False): the data copy owns the files.
        """
        wanted = {tuple(p.values): rebase_partition(p, nameservice) for p in source_parts}
        have = {tuple(p.values): p for p in self.get_partitions(ref)}
        counts = {"added": 0, "altered": 0, "dropped": 0}
        with self.session() as client:
            new = [p for vals, p in wanted.items() if vals not in have]
            if new:
                client.add_partitions(new)
                counts["added"] = len(new)
            for vals, part in wanted.items():
                old = have.get(vals)
                if old is not None and not same_storage(old.sd, part.sd):
                    client.alter_partition(ref.db, ref.name, part)
                    counts["altered"] += 1
            for vals in have.keys() - wanted.keys():
                client.drop_partition(ref.db, ref.name, list(vals), False)
                counts["dropped"] += 1
        return counts


def rebase_table(source_table: Any, nameservice: str) -> Any:
    """A deep copy of a Thrift Table whose location (and Spark ``path``) point at ``nameservice``."""
    table = copy.deepcopy(source_table)
    sd = table.sd
    if sd is not None:
        if sd.location:
            sd.location = rebase_location(sd.location, nameservice)
        params = sd.serdeInfo.parameters if sd.serdeInfo else None
        if params and params.get("path"):
            params["path"] = rebase_location(params["path"], nameservice)
    return table


def rebase_partition(source_part: Any, nameservice: str) -> Any:
    part = copy.deepcopy(source_part)
    if part.sd is not None and part.sd.location:
        part.sd.location = rebase_location(part.sd.location, nameservice)
    return part


def same_storage(a: Any, b: Any) -> bool:
    """Whether two partitions' storage descriptors agree (location, columns, formats, serde,
    buckets): what a reader of the partition's data depends on. Parameters (statistics a
    metastore may recompute on its own) do not count."""
    if a is None or b is None:
        return a is b
    a2, b2 = copy.deepcopy(a), copy.deepcopy(b)
    a2.parameters = b2.parameters = None
    return bool(a2 == b2)


def same_database(current: Any, wanted: Any) -> bool:
    """Whether ``current`` holds what a restore point keeps of database ``wanted``: description,
    location, parameters, owner. A field ``wanted`` leaves blank is not compared: an alter does
    not send it and the metastore keeps its own (as Hive's alterDatabase does), so asking for
    it would never settle."""

    def kept(db: Any) -> tuple[Any, ...]:
        return (
            (db.description or "") if wanted.description else "",
            location_path(db.locationUri) if db.locationUri and wanted.locationUri else "",
            dict(db.parameters or {}),
            (db.ownerName or "") if wanted.ownerName else "",
            db.ownerType if wanted.ownerType is not None else None,
        )

    return kept(current) == kept(wanted)


def same_definition(a: Any, b: Any) -> bool:
    # createTime/lastAccessTime differ between metastores and do not matter for a restore
    a2, b2 = copy.deepcopy(a), copy.deepcopy(b)
    for t in (a2, b2):
        t.createTime = 0
        t.lastAccessTime = 0
        t.parameters = {k: v for k, v in (t.parameters or {}).items() if k != "transient_lastDdlTime"}
    return bool(a2 == b2)
