"""Databases and tables of the embedded metastore (``HiveMetaStore``'s database and table calls),
with the helpers the partition calls share (storage descriptor defaults and checks); the
semantics are in :mod:`tandem_dev.embedded.metastore_handler`.
"""

from __future__ import annotations

from typing import Any

from hmsclient.genthrift.hive_metastore import ttypes
from thrift.Thrift import TApplicationException

from tandem_dev.embedded.metastore_names import (
    PartitionSpecError,
    is_valid_name,
    join_location,
    location_path,
    make_part_name,
    matches_pattern,
    normalize_identifier,
    qualify_location,
)
from tandem_dev.embedded.metastore_security import SecurityHandler, meta_error, now_seconds
from tandem_dev.embedded.metastore_store import MetastoreStore, PartitionRow, Transaction

DDL_TIME = "transient_lastDdlTime"
DEFAULT_DB = "default"
MANAGED, EXTERNAL, VIEW = "MANAGED_TABLE", "EXTERNAL_TABLE", "VIRTUAL_VIEW"


def _is_external(table: Any) -> bool:
    return str((table.parameters or {}).get("EXTERNAL", "")).upper() == "TRUE"


def _lower_columns(columns: list[Any] | None) -> None:
    for column in columns or []:
        if column.name is not None:
            column.name = column.name.lower()


def fill_sd(sd: Any) -> None:
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


def check_sd(sd: Any, what: str) -> None:
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


class TableCalls(SecurityHandler):
    """The database and table calls, over the store; the base the partition calls build on."""

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
        fill_sd(table.sd)

    def create_table(self, tbl: Any) -> None:
        self.create_table_with_environment_context(tbl, None)

    def create_table_with_environment_context(self, tbl: Any, environment_context: Any) -> None:
        """Create a table (its privileges become grants). Unknown database: InvalidObjectException."""
        if tbl is None or not is_valid_name(tbl.tableName):
            raise ttypes.InvalidObjectException(
                message=f"{getattr(tbl, 'tableName', None)} is not a valid object name"
            )
        check_sd(tbl.sd, "Table")
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
        # HiveMetaStoreClient.alter_table(..., cascade) sends StatsSetupConst.CASCADE this way
        properties = getattr(environment_context, "properties", None) or {}
        self._alter_table(dbname, tbl_name, new_tbl, cascade=properties.get("CASCADE") == "true")

    def alter_table_with_cascade(self, dbname: str, tbl_name: str, new_tbl: Any, cascade: bool) -> None:
        self._alter_table(dbname, tbl_name, new_tbl, cascade=bool(cascade))

    def _alter_table(self, dbname: str, name: str, new: Any, cascade: bool = False) -> None:
        """Replace a table's definition, or rename it (with its partitions and grants).

        Renaming a managed table that kept its default location (``<database dir>/<name>``)
        moves it, as HiveAlterHandler does, to the default location under its new name, and
        partitions under it follow; one in a location of its own keeps it. With ``cascade``,
        changed columns reach every partition too.
        """
        if new is None or new.sd is None:
            raise ttypes.InvalidOperationException(message=f"New table is invalid: {new}")
        if not is_valid_name(new.tableName):
            raise ttypes.InvalidOperationException(message=f"{new.tableName} is not a valid object name")
        check_sd(new.sd, "Table")
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
            target_db = self._check_alter(txn, old, new, rename)
            new.createTime = old.createTime
            if not new.sd.location:
                new.sd.location = old.sd.location
            source_db = txn.get_database(db)
            default = (
                self._qualify(join_location(self._database_location(source_db), name)) if source_db else None
            )
            moved = (
                rename
                and old.tableType != VIEW
                and new.sd.location == old.sd.location
                and not _is_external(old)
                and bool(old.sd.location)
                and old.sd.location == default  # HiveAlterHandler's tableInSpecifiedLoc
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
            if cascade and old.sd.cols != new.sd.cols:
                self._cascade_columns(txn, new)
            txn.put_table(new)

    @staticmethod
    def _check_alter(txn: Transaction, old: Any, new: Any, rename: bool) -> Any:
        """What HiveAlterHandler refuses; returns the new name's database."""
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
        return target_db

    @staticmethod
    def _cascade_columns(txn: Transaction, table: Any) -> None:
        """The table's columns onto every partition (ALTER TABLE ... CASCADE)."""
        for row in txn.partition_rows(table.dbName, table.tableName):
            part = row.partition()
            if part.sd is not None:
                part.sd.cols = list(table.sd.cols or [])
                txn.put_partition(table.dbName, table.tableName, row.name, part)

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
