"""Partitions of the embedded metastore (``HiveMetaStore``'s partition calls): adding, reading
(by values, names, partial specs and filters), dropping and altering, each call one transaction.
"""

from __future__ import annotations

import copy
from typing import Any

from hmsclient.genthrift.hive_metastore import ttypes

from tandem_dev.embedded.metastore_filter import FilterError, compile_filter, parse_filter
from tandem_dev.embedded.metastore_names import (
    PartitionSpecError,
    join_location,
    normalize_identifier,
    spec_from_name,
    values_from_name,
)
from tandem_dev.embedded.metastore_security import meta_error, now_seconds
from tandem_dev.embedded.metastore_store import PartitionRow
from tandem_dev.embedded.metastore_tables import DDL_TIME, TableCalls, _is_external, check_sd, fill_sd


def _limit(items: list[Any], max_parts: int | None) -> list[Any]:
    """The metastore's ``max_parts``: negative means all."""
    return items if max_parts is None or max_parts < 0 else items[:max_parts]


class PartitionCalls(TableCalls):
    """The partition calls, over the tables'."""

    def _new_partition(self, table: Any, part: Any, now: int) -> str:
        """Make ``part`` ready to store under ``table``; returns its partition name."""
        name = self._part_name(table, part.values)
        check_sd(part.sd, "Partition")
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
        fill_sd(part.sd)
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

    def rename_partition(self, db_name: str, tbl_name: str, part_vals: list[str], new_part: Any) -> None:
        """Give a partition new values (HiveAlterHandler.alterPartition with ``part_vals``): of a
        managed table it moves to the default location of its new name (metadata only here, as
        every call of this server; the caller's data stays where it is), of an external one it
        keeps its location. Its grants go with it. A missing partition or a taken name is an
        InvalidOperationException, the only one the call declares."""
        with self._store.transaction() as txn:
            table = self._require_table(txn, db_name, tbl_name, ttypes.InvalidOperationException)
            old_name = self._part_name(table, part_vals)
            old = txn.get_partition(table.dbName, table.tableName, old_name)
            if old is None:
                # HMSHandler.alter_partition_core turns these into the one exception the call declares
                raise ttypes.InvalidOperationException(
                    message="Unable to rename partition because old partition does not exist"
                )
            new_name = self._part_name(table, new_part.values)
            if txn.get_partition(table.dbName, table.tableName, new_name) is not None:
                raise ttypes.InvalidOperationException(message=f"Partition already exists:{new_name}")
            renamed = old
            renamed.values = list(new_part.values)
            if not _is_external(table) and table.sd.location:
                renamed.sd.location = join_location(table.sd.location, new_name)
            elif new_part.sd is not None and new_part.sd.location:
                renamed.sd.location = self._qualify(new_part.sd.location)
            txn.delete_partition(table.dbName, table.tableName, old_name)
            txn.put_partition(table.dbName, table.tableName, new_name, renamed)
            txn.rename_partition_privileges(
                table.dbName, table.tableName, old_name, new_name, tuple(renamed.values)
            )

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
                check_sd(part.sd, "Partition")
                part.dbName, part.tableName = table.dbName, table.tableName
                part.sd.location = self._qualify(part.sd.location) if part.sd.location else old.sd.location
                part.createTime = old.createTime if part.createTime is None else part.createTime
                part.lastAccessTime = part.lastAccessTime or 0
                part.parameters = part.parameters if part.parameters is not None else {}
                if part.parameters.get(DDL_TIME) in (None, "0"):
                    part.parameters[DDL_TIME] = now
                part.privileges = None
                fill_sd(part.sd)
                txn.put_partition(table.dbName, table.tableName, name, part)
