"""The ThriftHiveMetastore.Iface calls the embedded metastore serves, over SQLite.

Semantics and error types follow Hive's ``HiveMetaStore``/``ObjectStore`` (2.x/3.x):

* names of databases, tables and columns are stored lower-cased; lookups ignore case;
* a database without a location gets ``<warehouse>/<name>.db`` (``default`` is the warehouse);
  a table without one gets ``<database location>/<table>``; a partition without one gets
  ``<table location>/<k1=v1/k2=v2>``, escaped as ``Warehouse.makePartName``; every location
  is qualified with the warehouse's scheme and authority;
* the server sets ``createTime`` and, unless given, ``transient_lastDdlTime``;
* an ``EXTERNAL=TRUE`` parameter makes a managed table external and its absence the reverse.

Every call is one store transaction, so a call that fails changes nothing (``add_partitions``
and ``alter_partitions`` included). Data is never touched: the embedded metastore has no file
system, so ``deleteData`` and renames only change metadata.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from hmsclient.genthrift.fb303 import ttypes as fb303_types
from hmsclient.genthrift.hive_metastore import ttypes
from thrift.Thrift import TApplicationException

from tandem_dev.embedded.metastore_filter import FilterError, compile_filter, parse_filter
from tandem_dev.embedded.metastore_names import (
    PartitionSpecError,
    is_valid_name,
    join_location,
    location_path,
    make_part_name,
    matches_pattern,
    normalize_identifier,
    qualify_location,
    spec_from_name,
    values_from_name,
)
from tandem_dev.embedded.metastore_security import SecurityHandler, meta_error, now_seconds
from tandem_dev.embedded.metastore_store import MetastoreStore, PartitionRow, Transaction

DDL_TIME = "transient_lastDdlTime"
DEFAULT_DB = "default"
MANAGED, EXTERNAL, VIEW = "MANAGED_TABLE", "EXTERNAL_TABLE", "VIRTUAL_VIEW"
VERSION = "2.3.0"


def _is_external(table: Any) -> bool:
    return str((table.parameters or {}).get("EXTERNAL", "")).upper() == "TRUE"


def _limit(items: list[Any], max_parts: int | None) -> list[Any]:
    """The metastore's ``max_parts``: negative means all."""
    return items if max_parts is None or max_parts < 0 else items[:max_parts]


def _lower_columns(columns: list[Any] | None) -> None:
    for column in columns or []:
        if column.name is not None:
            column.name = column.name.lower()


def _fill_sd(sd: Any) -> None:
    """Defaults the Java metastore always returns, so clients see the same shapes."""
    _lower_columns(sd.cols)
    for order in sd.sortCols or []:
        if order.col is not None:
            order.col = normalize_identifier(order.col)
    sd.cols = sd.cols if sd.cols is not None else []
    sd.compressed = bool(sd.compressed)
    sd.numBuckets = sd.numBuckets if sd.numBuckets is not None else 0
    sd.bucketCols = sd.bucketCols if sd.bucketCols is not None else []
    sd.sortCols = sd.sortCols if sd.sortCols is not None else []
    sd.parameters = sd.parameters if sd.parameters is not None else {}
    sd.storedAsSubDirectories = bool(sd.storedAsSubDirectories)
    if sd.skewedInfo is None:
        sd.skewedInfo = ttypes.SkewedInfo(
            skewedColNames=[], skewedColValues=[], skewedColValueLocationMaps={}
        )
    if sd.serdeInfo.parameters is None:
        sd.serdeInfo.parameters = {}


def _check_sd(sd: Any, what: str) -> None:
    if sd is None:
        raise meta_error(f"{what} has no storage descriptor")
    if sd.serdeInfo is None:
        raise meta_error("Invalid SerDeInfo object")


def _same_partition_keys(old: list[Any] | None, new: list[Any] | None) -> bool:
    """Partition keys may change their comments only."""
    old, new = old or [], new or []
    return len(old) == len(new) and all(
        (a.name or "").lower() == (b.name or "").lower() and a.type == b.type
        for a, b in zip(old, new, strict=True)
    )


def _table_type(table: Any) -> str:
    """The stored type, as ``ObjectStore`` derives it from the type given and ``EXTERNAL``."""
    kind = table.tableType
    if kind is None:
        return VIEW if table.viewOriginalText is not None else EXTERNAL if _is_external(table) else MANAGED
    if kind == MANAGED and _is_external(table):
        return EXTERNAL
    if kind == EXTERNAL and not _is_external(table):
        return MANAGED
    return str(kind)


def _rebase(location: str, old_root: str, new_root: str) -> str | None:
    """``location`` moved from under ``old_root`` to under ``new_root``; None if not under it."""
    path, old_path = location_path(location), location_path(old_root)
    if path != old_path and not path.startswith(old_path.rstrip("/") + "/"):
        return None
    prefix = location[: len(location) - len(path)] if "://" in location else ""
    return prefix + location_path(new_root) + path[len(old_path) :]


class MetastoreHandler(SecurityHandler):
    """Implements the ThriftHiveMetastore.Iface calls the embedded metastore supports.

    Methods are looked up by name by the generated Processor, which passes arguments
    positionally; a call that is not defined here is refused by the server's dispatcher.
    """

    def __init__(self, store: MetastoreStore, warehouse: str) -> None:
        super().__init__(store)
        self.warehouse = qualify_location(warehouse, warehouse)
        self.started = now_seconds()
        self.config = {"hive.metastore.warehouse.dir": self.warehouse}
        with store.transaction() as txn:
            if txn.get_database(DEFAULT_DB) is None:
                default = ttypes.Database(
                    name=DEFAULT_DB,
                    description="Default Hive database",
                    locationUri=self.warehouse,
                    parameters={},
                    ownerName="public",
                    ownerType=ttypes.PrincipalType.ROLE,
                )
                txn.put_database(default)
            self.init_security(txn)

    # -- helpers ---------------------------------------------------------------------------
    def _qualify(self, location: str) -> str:
        return qualify_location(location, self.warehouse)

    def _database_location(self, db: Any) -> str:
        return self.warehouse if db.name == DEFAULT_DB else str(db.locationUri)

    @staticmethod
    def _require_table(
        txn: Transaction, db: str, name: str, error: type = ttypes.NoSuchObjectException
    ) -> Any:
        table = txn.get_table(normalize_identifier(db or ""), normalize_identifier(name or ""))
        if table is None:
            raise error(message=f"{db}.{name} table not found")
        return table

    @staticmethod
    def _part_name(table: Any, values: list[str] | None) -> str:
        keys = [k.name for k in table.partitionKeys or []]
        try:
            if values is None or any(v is None for v in values):
                raise PartitionSpecError(
                    f"Invalid partition values {values} for {table.dbName}.{table.tableName}"
                )
            return make_part_name(keys, values)
        except PartitionSpecError as exc:
            raise meta_error(str(exc)) from exc

    # -- fb303 and configuration -----------------------------------------------------------
    def getName(self) -> str:
        return "Hive Metastore (Tandem embedded)"

    def getVersion(self) -> str:
        return VERSION

    def getStatus(self) -> int:
        return int(fb303_types.fb_status.ALIVE)

    def getStatusDetails(self) -> str:
        return ""

    def aliveSince(self) -> int:
        return self.started

    def getCounters(self) -> dict[str, int]:
        return {}

    def getCpuProfile(self, profile_duration_in_sec: int) -> str:
        return ""

    def getMetaConf(self, key: str) -> str:
        if key not in self.config:
            raise meta_error(f"Invalid configuration key {key}")
        return self.config[key]

    def get_config_value(self, name: str | None, default_value: str | None) -> str | None:
        if name is None:
            return default_value
        if not re.match(r"(hive|hdfs|mapred)", name):
            raise ttypes.ConfigValSecurityException(
                message=f"For security reasons, the config key {name} cannot be accessed"
            )
        return self.config.get(name, default_value)

    def set_ugi(self, user_name: str, group_names: list[str] | None) -> list[str]:
        return [*(group_names or []), user_name]

    def flushCache(self) -> None:
        return None

    def get_current_notificationEventId(self) -> Any:
        return ttypes.CurrentNotificationEventId(eventId=0)

    def get_next_notification(self, rqst: Any) -> Any:
        return ttypes.NotificationEventResponse(events=[])

    def get_all_functions(self) -> Any:
        return ttypes.GetAllFunctionsResponse(functions=[])

    def get_functions(self, db_name: str, pattern: str) -> list[str]:
        return []

    # -- databases -------------------------------------------------------------------------
    def create_database(self, database: Any) -> None:
        """Create a database; AlreadyExistsException if one of that name (any case) exists."""
        if database is None or not is_valid_name(database.name):
            raise ttypes.InvalidObjectException(
                message=f"{getattr(database, 'name', None)} is not a valid database name"
            )
        database.name = database.name.lower()
        if database.locationUri:
            database.locationUri = self._qualify(database.locationUri)
        elif database.name == DEFAULT_DB:
            database.locationUri = self.warehouse
        else:
            database.locationUri = join_location(self.warehouse, f"{database.name}.db")
        database.privileges = None
        database.ownerType = database.ownerType or ttypes.PrincipalType.USER
        database.parameters = database.parameters if database.parameters is not None else {}
        with self._store.transaction() as txn:
            if txn.get_database(database.name) is not None:
                raise ttypes.AlreadyExistsException(message=f"Database {database.name} already exists")
            txn.put_database(database)

    def get_database(self, name: str) -> Any:
        with self._store.transaction() as txn:
            db = txn.get_database(normalize_identifier(name or ""))
        if db is None:
            raise ttypes.NoSuchObjectException(message=f"There is no database named {name}")
        return db

    def get_databases(self, pattern: str | None) -> list[str]:
        with self._store.transaction() as txn:
            names = txn.database_names()
        try:
            return matches_pattern(pattern, names)
        except ValueError as exc:
            raise meta_error(str(exc)) from exc

    def get_all_databases(self) -> list[str]:
        with self._store.transaction() as txn:
            return txn.database_names()

    def alter_database(self, dbname: str, db: Any) -> None:
        """Change parameters, owner and (when given) description and location; idempotent."""
        with self._store.transaction() as txn:
            current = txn.get_database(normalize_identifier(dbname or ""))
            if current is None:
                raise ttypes.NoSuchObjectException(message=f"There is no database named {dbname}")
            current.parameters = db.parameters if db.parameters is not None else {}
            current.ownerName = db.ownerName
            if db.ownerType is not None:
                current.ownerType = db.ownerType
            if db.description and db.description.strip():
                current.description = db.description
            if db.locationUri and db.locationUri.strip():
                current.locationUri = self._qualify(db.locationUri)
            txn.put_database(current)

    def drop_database(self, name: str, delete_data: bool, cascade: bool) -> None:
        """Drop a database; with ``cascade`` its tables, partitions and grants go with it."""
        db_name = normalize_identifier(name or "")
        if db_name == DEFAULT_DB:
            raise meta_error("Can not drop default database")
        with self._store.transaction() as txn:
            if txn.get_database(db_name) is None:
                raise ttypes.NoSuchObjectException(message=f"There is no database named {name}")
            tables = txn.table_names(db_name)
            if tables and not cascade:
                raise ttypes.InvalidOperationException(
                    message=f"Database {db_name} is not empty. One or more tables exist."
                )
            for table in tables:
                self._drop_table_rows(txn, db_name, table)
            txn.delete_privileges_on(db_name)
            txn.delete_database(db_name)

    # -- tables ----------------------------------------------------------------------------
    def _normalize_table(self, table: Any) -> None:
        table.tableName = table.tableName.lower()
        _lower_columns(table.partitionKeys)
        table.partitionKeys = table.partitionKeys if table.partitionKeys is not None else []
        table.parameters = table.parameters if table.parameters is not None else {}
        table.tableType = _table_type(table)
        table.lastAccessTime = table.lastAccessTime or 0
        table.retention = table.retention or 0
        table.rewriteEnabled = bool(table.rewriteEnabled)
        table.privileges = None
        _fill_sd(table.sd)

    def create_table(self, tbl: Any) -> None:
        self.create_table_with_environment_context(tbl, None)

    def create_table_with_environment_context(self, tbl: Any, environment_context: Any) -> None:
        """Create a table (its privileges become grants). Unknown database: InvalidObjectException."""
        if tbl is None or not is_valid_name(tbl.tableName):
            raise ttypes.InvalidObjectException(
                message=f"{getattr(tbl, 'tableName', None)} is not a valid object name"
            )
        _check_sd(tbl.sd, "Table")
        tbl.dbName = normalize_identifier(tbl.dbName or "")
        privileges = tbl.privileges
        self._normalize_table(tbl)
        with self._store.transaction() as txn:
            db = txn.get_database(tbl.dbName)
            if db is None:
                raise ttypes.InvalidObjectException(message=f"There is no database named {tbl.dbName}")
            if txn.get_table(tbl.dbName, tbl.tableName) is not None:
                raise ttypes.AlreadyExistsException(message=f"Table {tbl.tableName} already exists")
            if tbl.tableType != VIEW:
                if tbl.sd.location:
                    tbl.sd.location = self._qualify(tbl.sd.location)
                else:
                    tbl.sd.location = self._qualify(join_location(self._database_location(db), tbl.tableName))
            now = now_seconds()
            tbl.createTime = now
            tbl.parameters.setdefault(DDL_TIME, str(now))
            txn.put_table(tbl)
            if privileges is not None:
                self.grant_table_privileges(txn, tbl.dbName, tbl.tableName, privileges)

    def get_table(self, dbname: str, tbl_name: str) -> Any:
        with self._store.transaction() as txn:
            return self._require_table(txn, dbname, tbl_name)

    def get_table_req(self, req: Any) -> Any:
        return ttypes.GetTableResult(table=self.get_table(req.dbName, req.tblName))

    def get_tables(self, db_name: str, pattern: str | None) -> list[str]:
        with self._store.transaction() as txn:
            names = txn.table_names(normalize_identifier(db_name or ""))
        try:
            return matches_pattern(pattern, names)
        except ValueError as exc:
            raise meta_error(str(exc)) from exc

    def get_tables_by_type(self, db_name: str, pattern: str | None, table_type: str) -> list[str]:
        db = normalize_identifier(db_name or "")
        with self._store.transaction() as txn:
            tables = [txn.get_table(db, n) for n in self.get_tables(db, pattern)]
        return [t.tableName for t in tables if t is not None and t.tableType == table_type]

    def get_table_meta(
        self, db_patterns: str | None, tbl_patterns: str | None, tbl_types: list[str] | None
    ) -> list[Any]:
        metas = []
        for db in self.get_databases(db_patterns):
            with self._store.transaction() as txn:
                tables = [txn.get_table(db, n) for n in self.get_tables(db, tbl_patterns)]
            for t in tables:
                if t is not None and (not tbl_types or t.tableType in tbl_types):
                    comment = (t.parameters or {}).get("comment")
                    metas.append(
                        ttypes.TableMeta(
                            dbName=db, tableName=t.tableName, tableType=t.tableType, comments=comment
                        )
                    )
        return metas

    def get_all_tables(self, db_name: str) -> list[str]:
        with self._store.transaction() as txn:
            return txn.table_names(normalize_identifier(db_name or ""))

    def _tables_by_name(self, dbname: str | None, names: list[str] | None, missing_db: type) -> list[Any]:
        if not dbname:
            raise missing_db(message="DB name is null or empty")
        if names is None:
            raise ttypes.InvalidOperationException(message=f"{dbname} cannot find null tables")
        db = normalize_identifier(dbname)
        with self._store.transaction() as txn:
            if txn.get_database(db) is None:
                raise missing_db(message=f"Could not find database {dbname}")
            wanted = dict.fromkeys(normalize_identifier(n) for n in names if n is not None)
            return [t for t in (txn.get_table(db, n) for n in wanted) if t is not None]

    def get_table_objects_by_name(self, dbname: str, tbl_names: list[str]) -> list[Any]:
        """The tables that exist among ``tbl_names``; this old call declares no exception, so
        errors reach the client as TApplicationException with the message."""
        try:
            return self._tables_by_name(dbname, tbl_names, ttypes.UnknownDBException)
        except (ttypes.UnknownDBException, ttypes.InvalidOperationException) as exc:
            raise TApplicationException(TApplicationException.INTERNAL_ERROR, exc.message) from exc

    def get_table_objects_by_name_req(self, req: Any) -> Any:
        return ttypes.GetTablesResult(
            tables=self._tables_by_name(req.dbName, req.tblNames, ttypes.UnknownDBException)
        )

    def get_fields(self, db_name: str, table_name: str) -> list[Any]:
        return self.get_fields_with_environment_context(db_name, table_name, None)

    def get_fields_with_environment_context(
        self, db_name: str, table_name: str, environment_context: Any
    ) -> list[Any]:
        with self._store.transaction() as txn:
            table = self._require_table(
                txn, db_name, (table_name or "").split(".")[0], ttypes.UnknownTableException
            )
        return list(table.sd.cols or [])

    def get_schema(self, db_name: str, table_name: str) -> list[Any]:
        return self.get_schema_with_environment_context(db_name, table_name, None)

    def get_schema_with_environment_context(
        self, db_name: str, table_name: str, environment_context: Any
    ) -> list[Any]:
        with self._store.transaction() as txn:
            table = self._require_table(
                txn, db_name, (table_name or "").split(".")[0], ttypes.UnknownTableException
            )
        return list(table.sd.cols or []) + list(table.partitionKeys or [])

    def alter_table(self, dbname: str, tbl_name: str, new_tbl: Any) -> None:
        self._alter_table(dbname, tbl_name, new_tbl)

    def alter_table_with_environment_context(
        self, dbname: str, tbl_name: str, new_tbl: Any, environment_context: Any
    ) -> None:
        self._alter_table(dbname, tbl_name, new_tbl)

    def alter_table_with_cascade(self, dbname: str, tbl_name: str, new_tbl: Any, cascade: bool) -> None:
        self._alter_table(dbname, tbl_name, new_tbl)

    def _alter_table(self, dbname: str, name: str, new: Any) -> None:
        """Replace a table's definition, or rename it (with its partitions and grants).

        Renaming a managed table that kept its location moves it, as the metastore does, to
        the default location under its new name, and partitions under it follow.
        """
        if new is None or new.sd is None:
            raise ttypes.InvalidOperationException(message=f"New table is invalid: {new}")
        if not is_valid_name(new.tableName):
            raise ttypes.InvalidOperationException(message=f"{new.tableName} is not a valid object name")
        _check_sd(new.sd, "Table")
        db, name = normalize_identifier(dbname or ""), normalize_identifier(name or "")
        new.dbName = normalize_identifier(new.dbName or db)
        self._normalize_table(new)
        new.parameters.setdefault(DDL_TIME, str(now_seconds()))
        if new.sd.location and new.tableType != VIEW:
            new.sd.location = self._qualify(new.sd.location)
        with self._store.transaction() as txn:
            old = txn.get_table(db, name)
            if old is None:
                raise ttypes.InvalidOperationException(message=f"table {db}.{name} doesn't exist")
            rename = (new.dbName, new.tableName) != (db, name)
            target_db = txn.get_database(new.dbName)
            if rename and txn.get_table(new.dbName, new.tableName) is not None:
                raise ttypes.InvalidOperationException(
                    message=f"new table {new.dbName}.{new.tableName} already exists"
                )
            if target_db is None:
                raise ttypes.InvalidOperationException(
                    message=f"Unable to change partition or table. Database {new.dbName} does not exist"
                )
            if old.tableType != VIEW and not _same_partition_keys(old.partitionKeys, new.partitionKeys):
                raise ttypes.InvalidOperationException(message="partition keys can not be changed.")
            new.createTime = old.createTime
            if not new.sd.location:
                new.sd.location = old.sd.location
            moved = (
                rename
                and old.tableType != VIEW
                and new.sd.location == old.sd.location
                and not _is_external(old)
                and bool(old.sd.location)
            )
            if moved:
                new.sd.location = self._qualify(
                    join_location(self._database_location(target_db), new.tableName)
                )
            if rename:
                txn.delete_table(db, name)
                txn.rename_table(db, name, new.dbName, new.tableName)
                for row in txn.partition_rows(new.dbName, new.tableName):
                    self._follow_rename(txn, row, new, old.sd.location if moved else None)
            txn.put_table(new)

    @staticmethod
    def _follow_rename(txn: Transaction, row: PartitionRow, table: Any, old_root: str | None) -> None:
        part = row.partition()
        part.dbName, part.tableName = table.dbName, table.tableName
        if old_root and part.sd is not None and part.sd.location:
            part.sd.location = _rebase(part.sd.location, old_root, table.sd.location) or part.sd.location
        txn.put_partition(table.dbName, table.tableName, row.name, part)

    def drop_table(self, dbname: str, name: str, delete_data: bool) -> None:
        self.drop_table_with_environment_context(dbname, name, delete_data, None)

    def drop_table_with_environment_context(
        self, dbname: str, name: str, delete_data: bool, environment_context: Any
    ) -> None:
        """Drop a table with its partitions and grants. Metadata only: no data is deleted."""
        with self._store.transaction() as txn:
            table = self._require_table(txn, dbname, name)
            self._drop_table_rows(txn, table.dbName, table.tableName)

    @staticmethod
    def _drop_table_rows(txn: Transaction, db: str, table: str) -> None:
        txn.delete_partitions(db, table)
        txn.delete_privileges_on(db, table)
        txn.delete_table(db, table)

    # -- adding partitions -----------------------------------------------------------------
    def _new_partition(self, table: Any, part: Any, now: int) -> str:
        """Make ``part`` ready to store under ``table``; returns its partition name."""
        name = self._part_name(table, part.values)
        _check_sd(part.sd, "Partition")
        part.dbName, part.tableName = table.dbName, table.tableName
        if part.sd.location:
            if table.sd.location is None:
                raise meta_error("Cannot specify location for a view partition")
            part.sd.location = self._qualify(part.sd.location)
        elif table.sd.location:
            part.sd.location = join_location(table.sd.location, name)
        part.createTime = now
        part.lastAccessTime = part.lastAccessTime or 0
        part.parameters = part.parameters if part.parameters is not None else {}
        part.parameters.setdefault(DDL_TIME, str(now))
        part.privileges = None
        _fill_sd(part.sd)
        return name

    def add_partition(self, new_part: Any) -> Any:
        return self.add_partition_with_environment_context(new_part, None)

    def add_partition_with_environment_context(self, new_part: Any, environment_context: Any) -> Any:
        """Add one partition; AlreadyExistsException if its values are taken."""
        return self._add_partitions([new_part], if_not_exists=False, single=True)[0]

    def add_partitions(self, new_parts: list[Any]) -> int:
        """Add partitions of one table, all or none."""
        if not new_parts:
            return 0
        return len(self._add_partitions(new_parts, if_not_exists=False, single=False))

    def add_partitions_req(self, request: Any) -> Any:
        result = ttypes.AddPartitionsResult()
        if not request.parts:
            return result
        for part in request.parts:
            part.dbName = part.dbName if part.dbName is not None else request.dbName
            part.tableName = part.tableName if part.tableName is not None else request.tblName
        added = self._add_partitions(
            request.parts,
            if_not_exists=bool(request.ifNotExists),
            single=False,
            target=(request.dbName, request.tblName),
        )
        if request.needResult is None or request.needResult:
            result.partitions = added
        return result

    def _add_partitions(
        self, parts: list[Any], *, if_not_exists: bool, single: bool, target: tuple[str, str] | None = None
    ) -> list[Any]:
        db_arg, table_arg = target or (parts[0].dbName, parts[0].tableName)
        db, table_name = normalize_identifier(db_arg or ""), normalize_identifier(table_arg or "")
        now = now_seconds()
        added: list[Any] = []
        with self._store.transaction() as txn:
            table = txn.get_table(db, table_name)
            if table is None:
                what = (
                    "table or database do not exist"
                    if single
                    else f"database or table {db}.{table_name} does not exist"
                )
                raise ttypes.InvalidObjectException(
                    message=f"Unable to add partition{'' if single else 's'} because {what}"
                )
            seen: set[str] = set()
            for part in parts:
                if (normalize_identifier(part.dbName or ""), normalize_identifier(part.tableName or "")) != (
                    db,
                    table_name,
                ):
                    raise meta_error(
                        f"Partition does not belong to target table {db}.{table_name}: {part.values}"
                    )
                name = self._part_name(table, part.values)
                if name in seen:
                    raise meta_error(f"Duplicate partitions in the list: {db}.{table_name}/{name}")
                if txn.get_partition(db, table_name, name) is not None:
                    if if_not_exists:
                        continue
                    raise ttypes.AlreadyExistsException(
                        message=f"Partition already exists: {db}.{table_name}/{name}"
                    )
                seen.add(name)
                self._new_partition(table, part, now)
                txn.put_partition(db, table_name, name, part)
                added.append(part)
        return added

    def append_partition(self, db_name: str, tbl_name: str, part_vals: list[str]) -> Any:
        return self.append_partition_with_environment_context(db_name, tbl_name, part_vals, None)

    def append_partition_with_environment_context(
        self, db_name: str, tbl_name: str, part_vals: list[str], environment_context: Any
    ) -> Any:
        """Add a partition from its values alone: it takes the table's storage descriptor."""
        with self._store.transaction() as txn:
            table = self._require_table(txn, db_name, tbl_name, ttypes.InvalidObjectException)
            if table.sd.location is None:
                raise meta_error("Cannot append a partition to a view")
        part = ttypes.Partition(
            values=list(part_vals or []),
            dbName=table.dbName,
            tableName=table.tableName,
            sd=copy.deepcopy(table.sd),
        )
        part.sd.location = None
        return self._add_partitions([part], if_not_exists=False, single=True)[0]

    def append_partition_by_name(self, db_name: str, tbl_name: str, part_name: str) -> Any:
        return self.append_partition_by_name_with_environment_context(db_name, tbl_name, part_name, None)

    def append_partition_by_name_with_environment_context(
        self, db_name: str, tbl_name: str, part_name: str, environment_context: Any
    ) -> Any:
        with self._store.transaction() as txn:
            table = self._require_table(txn, db_name, tbl_name, ttypes.InvalidObjectException)
        try:
            values = values_from_name([k.name for k in table.partitionKeys or []], part_name)
        except PartitionSpecError as exc:
            raise ttypes.InvalidObjectException(message=str(exc)) from exc
        return self.append_partition(db_name, tbl_name, values)

    # -- reading partitions ----------------------------------------------------------------
    def get_partition(self, db_name: str, tbl_name: str, part_vals: list[str]) -> Any:
        with self._store.transaction() as txn:
            table = self._require_table(txn, db_name, tbl_name)
            part = txn.get_partition(table.dbName, table.tableName, self._part_name(table, part_vals))
        if part is None:
            raise ttypes.NoSuchObjectException(message=f"partition values={part_vals}")
        return part

    def get_partition_with_auth(
        self, db_name: str, tbl_name: str, part_vals: list[str], user_name: str, group_names: list[str]
    ) -> Any:
        return self.get_partition(db_name, tbl_name, part_vals)

    def get_partition_by_name(self, db_name: str, tbl_name: str, part_name: str) -> Any:
        with self._store.transaction() as txn:
            table = self._require_table(txn, db_name, tbl_name)
            try:
                values = values_from_name([k.name for k in table.partitionKeys or []], part_name)
            except PartitionSpecError as exc:
                raise ttypes.NoSuchObjectException(message=str(exc)) from exc
            part = txn.get_partition(table.dbName, table.tableName, self._part_name(table, values))
        if part is None:
            raise ttypes.NoSuchObjectException(
                message=f"{db_name}.{tbl_name} partition ({part_name}) not found"
            )
        return part

    def _rows(self, db_name: str, tbl_name: str, *, required: bool) -> tuple[Any | None, list[PartitionRow]]:
        """The table and its partition rows; a missing table is an error only when ``required``
        (the metastore answers an empty list to ``get_partitions`` on a missing table)."""
        with self._store.transaction() as txn:
            if required:
                table = self._require_table(txn, db_name, tbl_name)
            else:
                table = txn.get_table(
                    normalize_identifier(db_name or ""), normalize_identifier(tbl_name or "")
                )
                if table is None:
                    return None, []
            return table, txn.partition_rows(table.dbName, table.tableName)

    def get_partitions(self, db_name: str, tbl_name: str, max_parts: int) -> list[Any]:
        _, rows = self._rows(db_name, tbl_name, required=False)
        return [r.partition() for r in _limit(rows, max_parts)]

    def get_partitions_with_auth(
        self, db_name: str, tbl_name: str, max_parts: int, user_name: str, group_names: list[str]
    ) -> list[Any]:
        return self.get_partitions(db_name, tbl_name, max_parts)

    def get_partition_names(self, db_name: str, tbl_name: str, max_parts: int) -> list[str]:
        _, rows = self._rows(db_name, tbl_name, required=False)
        return [r.name for r in _limit(rows, max_parts)]

    def _rows_ps(
        self, db_name: str, tbl_name: str, part_vals: list[str] | None, max_parts: int
    ) -> list[PartitionRow]:
        """Partitions matching a partial spec: leading values, an empty value matches any."""
        table, rows = self._rows(db_name, tbl_name, required=True)
        assert table is not None
        wanted = list(part_vals or [])
        if len(wanted) > len(table.partitionKeys or []):
            raise meta_error(f"Incorrect number of partition values: {wanted}")
        matching = [r for r in rows if all(not v or r.values[i] == v for i, v in enumerate(wanted))]
        return _limit(matching, max_parts)

    def get_partitions_ps(
        self, db_name: str, tbl_name: str, part_vals: list[str], max_parts: int
    ) -> list[Any]:
        return [r.partition() for r in self._rows_ps(db_name, tbl_name, part_vals, max_parts)]

    def get_partitions_ps_with_auth(
        self,
        db_name: str,
        tbl_name: str,
        part_vals: list[str],
        max_parts: int,
        user_name: str,
        group_names: list[str],
    ) -> list[Any]:
        return self.get_partitions_ps(db_name, tbl_name, part_vals, max_parts)

    def get_partition_names_ps(
        self, db_name: str, tbl_name: str, part_vals: list[str], max_parts: int
    ) -> list[str]:
        return [r.name for r in self._rows_ps(db_name, tbl_name, part_vals, max_parts)]

    def _filtered(self, db_name: str, tbl_name: str, filter_text: str | None) -> list[PartitionRow]:
        table, rows = self._rows(db_name, tbl_name, required=True)
        assert table is not None
        keys = [(k.name, k.type) for k in table.partitionKeys or []]
        try:
            predicate = compile_filter(parse_filter(filter_text), keys)
        except FilterError as exc:
            raise meta_error(str(exc)) from exc
        return [r for r in rows if predicate(r.values)]

    def get_partitions_by_filter(self, db_name: str, tbl_name: str, filter: str, max_parts: int) -> list[Any]:
        """Partitions matching a filter such as ``ds >= '2024-01-01' AND region = "eu"``."""
        return [r.partition() for r in _limit(self._filtered(db_name, tbl_name, filter), max_parts)]

    def get_num_partitions_by_filter(self, db_name: str, tbl_name: str, filter: str) -> int:
        return len(self._filtered(db_name, tbl_name, filter))

    def get_partitions_by_names(self, db_name: str, tbl_name: str, names: list[str]) -> list[Any]:
        _, rows = self._rows(db_name, tbl_name, required=False)
        wanted = set(names or [])
        return [r.partition() for r in rows if r.name in wanted]

    def partition_name_to_vals(self, part_name: str) -> list[str]:
        if not part_name:
            return []
        try:
            return list(spec_from_name(part_name).values())
        except PartitionSpecError as exc:
            raise meta_error(str(exc)) from exc

    def partition_name_to_spec(self, part_name: str) -> dict[str, str]:
        if not part_name:
            return {}
        try:
            return spec_from_name(part_name)
        except PartitionSpecError as exc:
            raise meta_error(str(exc)) from exc

    def partition_name_has_valid_characters(self, part_vals: list[str], throw_exception: bool) -> bool:
        return True  # no hive.metastore.partition.name.whitelist.pattern is configured

    # -- dropping and altering partitions ----------------------------------------------------
    def drop_partition(self, db_name: str, tbl_name: str, part_vals: list[str], delete_data: bool) -> bool:
        return self.drop_partition_with_environment_context(db_name, tbl_name, part_vals, delete_data, None)

    def drop_partition_with_environment_context(
        self, db_name: str, tbl_name: str, part_vals: list[str], delete_data: bool, environment_context: Any
    ) -> bool:
        """Drop one partition and its grants. Metadata only: no data is deleted."""
        with self._store.transaction() as txn:
            table = self._require_table(txn, db_name, tbl_name)
            name = self._part_name(table, part_vals)
            if txn.get_partition(table.dbName, table.tableName, name) is None:
                raise ttypes.NoSuchObjectException(message=f"partition values={part_vals}")
            txn.delete_partition(table.dbName, table.tableName, name)
            txn.delete_privileges_on(table.dbName, table.tableName, name)
        return True

    def drop_partition_by_name(self, db_name: str, tbl_name: str, part_name: str, delete_data: bool) -> bool:
        return self.drop_partition_by_name_with_environment_context(
            db_name, tbl_name, part_name, delete_data, None
        )

    def drop_partition_by_name_with_environment_context(
        self, db_name: str, tbl_name: str, part_name: str, delete_data: bool, environment_context: Any
    ) -> bool:
        with self._store.transaction() as txn:
            table = self._require_table(txn, db_name, tbl_name)
        try:
            values = values_from_name([k.name for k in table.partitionKeys or []], part_name)
        except PartitionSpecError as exc:
            raise ttypes.NoSuchObjectException(message=str(exc)) from exc
        return self.drop_partition(db_name, tbl_name, values, delete_data)

    def drop_partitions_req(self, req: Any) -> Any:
        """Drop partitions by name, all or none (missing ones are fine with ``ifExists``)."""
        spec = req.parts
        if spec is None or (spec.names is None and spec.exprs is None):
            raise meta_error("Partition spec is not set")
        if spec.names is None:
            raise meta_error("Dropping partitions by expression is not supported by the embedded metastore")
        with self._store.transaction() as txn:
            table = self._require_table(txn, req.dbName, req.tblName)
            wanted = set(spec.names)
            rows = [r for r in txn.partition_rows(table.dbName, table.tableName) if r.name in wanted]
            if_exists = True if req.ifExists is None else req.ifExists
            if len(rows) < len(wanted) and not if_exists:
                raise ttypes.NoSuchObjectException(message="Some partitions to drop are missing")
            for row in rows:
                txn.delete_partition(table.dbName, table.tableName, row.name)
                txn.delete_privileges_on(table.dbName, table.tableName, row.name)
        need_result = True if req.needResult is None else req.needResult
        return ttypes.DropPartitionsResult(partitions=[r.partition() for r in rows] if need_result else None)

    def alter_partition(self, db_name: str, tbl_name: str, new_part: Any) -> None:
        self.alter_partitions(db_name, tbl_name, [new_part])

    def alter_partition_with_environment_context(
        self, db_name: str, tbl_name: str, new_part: Any, environment_context: Any
    ) -> None:
        self.alter_partitions(db_name, tbl_name, [new_part])

    def alter_partitions_with_environment_context(
        self, db_name: str, tbl_name: str, new_parts: list[Any], environment_context: Any
    ) -> None:
        self.alter_partitions(db_name, tbl_name, new_parts)

    def alter_partitions(self, db_name: str, tbl_name: str, new_parts: list[Any]) -> None:
        """Replace existing partitions (found by their values), all or none."""
        now = str(now_seconds())
        with self._store.transaction() as txn:
            table = self._require_table(txn, db_name, tbl_name, ttypes.InvalidOperationException)
            for part in new_parts or []:
                name = self._part_name(table, part.values)
                old = txn.get_partition(table.dbName, table.tableName, name)
                if old is None:
                    raise ttypes.InvalidOperationException(message="alter is not possible")
                _check_sd(part.sd, "Partition")
                part.dbName, part.tableName = table.dbName, table.tableName
                part.sd.location = self._qualify(part.sd.location) if part.sd.location else old.sd.location
                part.createTime = old.createTime if part.createTime is None else part.createTime
                part.lastAccessTime = part.lastAccessTime or 0
                part.parameters = part.parameters if part.parameters is not None else {}
                if part.parameters.get(DDL_TIME) in (None, "0"):
                    part.parameters[DDL_TIME] = now
                part.privileges = None
                _fill_sd(part.sd)
                txn.put_partition(table.dbName, table.tableName, name, part)
