"""Point-in-time metadata: the metastore as it was at a restore point's instant.

``snapshot.take`` captures the definition of every protected table (its database, the table,
every partition with its values, location and parameters) and, for the user-data sync, the
Hive roles with their members and the privileges on the protected objects. The capture is
stored with the restore point on both clusters (``<T>/metadata.json`` beside the manifest)
and is what a target's metastore is made to match, never the live source.

Thrift objects are kept in Thrift's own JSON protocol, so they round-trip exactly whatever
fields a metastore version adds. Guarantees:

- :func:`capture` reads only; two captures of an unchanged metastore are equal
  (:meth:`Capture.fingerprint`), which is how ``take`` proves nothing changed while the HDFS
  snapshots were taken.
- :func:`apply_tables` is idempotent and never deletes data (partitions are dropped with
  ``deleteData=False``): the data copy or the restore owns the files.
- :func:`compare_tables` reads only and lists every difference.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tandem.metastore import Metastore, TableRef, data_paths, rebase_partition, table_location

FORMAT = 1
# table parameters the metastore rewrites on every DDL or statistics update: not a definition
_VOLATILE_PARAMS = frozenset({"transient_lastDdlTime", "last_modified_time", "last_modified_by"})


def _factory() -> Any:
    from thrift.protocol.TJSONProtocol import TJSONProtocolFactory

    return TJSONProtocolFactory()


def to_text(obj: Any) -> str:
    """A Thrift object in Thrift's JSON protocol (lossless)."""
    from thrift.TSerialization import serialize

    data: bytes = serialize(obj, _factory())
    return data.decode()


def from_text(kind: type, text: str) -> Any:
    from thrift.TSerialization import deserialize

    return deserialize(kind(), text.encode(), _factory())


@dataclass(frozen=True)
class TableCapture:
    """One protected table at the point: Thrift Database, Table and Partitions."""

    name: str  # db.table as the policy writes it
    component: str
    database: Any
    table: Any
    partitions: tuple[Any, ...]

    @property
    def ref(self) -> TableRef:
        return TableRef.parse(self.name)

    def data_paths(self) -> tuple[str, ...]:
        """The table location and every partition location outside it, as HDFS paths."""
        locations = (str(p.sd.location or "") if p.sd else "" for p in self.partitions)
        return data_paths(table_location(self.table), locations)


@dataclass(frozen=True)
class Capture:
    """Everything a restore point needs of the metastore."""

    tables: tuple[TableCapture, ...]
    # role name -> its principal grants (Thrift RolePrincipalGrant); None when not captured
    roles: dict[str, tuple[Any, ...]] | None = None
    # "db" or "db.table" -> privileges on it (Thrift HiveObjectPrivilege)
    privileges: dict[str, tuple[Any, ...]] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "tables": [
                {
                    "name": t.name,
                    "component": t.component,
                    "database": to_text(t.database),
                    "table": to_text(t.table),
                    "partitions": [to_text(p) for p in t.partitions],
                }
                for t in self.tables
            ],
            "roles": None
            if self.roles is None
            else {role: [to_text(g) for g in grants] for role, grants in sorted(self.roles.items())},
            "privileges": None
            if self.privileges is None
            else {obj: [to_text(p) for p in privs] for obj, privs in sorted(self.privileges.items())},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Capture:
        from hmsclient.genthrift.hive_metastore.ttypes import (
            Database,
            HiveObjectPrivilege,
            Partition,
            RolePrincipalGrant,
            Table,
        )

        if data.get("format") != FORMAT:
            raise ValueError(f"unknown metadata capture format {data.get('format')!r}")
        tables = tuple(
            TableCapture(
                name=t["name"],
                component=t["component"],
                database=from_text(Database, t["database"]),
                table=from_text(Table, t["table"]),
                partitions=tuple(from_text(Partition, p) for p in t["partitions"]),
            )
            for t in data["tables"]
        )
        roles = data.get("roles")
        privileges = data.get("privileges")
        return cls(
            tables,
            None
            if roles is None
            else {r: tuple(from_text(RolePrincipalGrant, g) for g in gs) for r, gs in roles.items()},
            None
            if privileges is None
            else {o: tuple(from_text(HiveObjectPrivilege, p) for p in ps) for o, ps in privileges.items()},
        )

    def fingerprint(self) -> str:
        """Equal for captures of the same definitions (access times and DDL stamps ignored)."""
        body = self.to_json()
        for table in body["tables"]:
            table["table"] = _stable(json.loads(table["table"]))
            table["partitions"] = sorted(
                json.dumps(_stable(json.loads(p)), sort_keys=True) for p in table["partitions"]
            )
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    def summary(self) -> str:
        parts = sum(len(t.partitions) for t in self.tables)
        return f"{len(self.tables)} table(s), {parts} partition(s)"


def _stable(thrift_json: Any) -> Any:
    """Drop the fields the metastore changes without a definition changing: lastAccessTime
    (field 5 of Table and Partition, an i32) and volatile parameters. Thrift JSON names fields
    by id, so this works on the encoded form."""
    if isinstance(thrift_json, dict):
        out = {}
        for key, value in thrift_json.items():
            if key == "5" and isinstance(value, dict) and set(value) == {"i32"}:
                continue
            if isinstance(value, list) and len(value) == 4 and value[:2] == ["str", "str"]:
                value = [*value[:3], {k: v for k, v in value[3].items() if k not in _VOLATILE_PARAMS}]
            out[key] = _stable(value)
        return out
    if isinstance(thrift_json, list):
        return [_stable(v) for v in thrift_json]
    return thrift_json


def capture(metastore: Metastore, tables: Sequence[tuple[str, str]], *, user_data: bool) -> Capture:
    """Read the definitions of ``tables`` ((component, db.table) pairs) and, with
    ``user_data``, roles and privileges on the protected objects. Read-only."""
    from tandem.errors import MetastoreError

    out = []
    dbs: dict[str, Any] = {}
    for component, name in tables:
        ref = TableRef.parse(name)
        table = metastore.get_table(ref)
        if table is None:
            raise MetastoreError(f"NoSuchObjectException: {ref} does not exist on the source metastore")
        if ref.db not in dbs:
            dbs[ref.db] = metastore.get_database(ref.db)
        parts = metastore.get_partitions(ref) if table.partitionKeys else []
        parts.sort(key=lambda p: list(p.values))
        out.append(TableCapture(name, component, dbs[ref.db], table, tuple(parts)))
    roles = privileges = None
    if user_data and tables:
        roles, privileges = _capture_grants(metastore, [TableRef.parse(n) for _, n in tables])
    return Capture(tuple(out), roles, privileges)


BUILTIN_ROLES = frozenset({"admin", "public"})


def _capture_grants(
    metastore: Metastore, refs: Iterable[TableRef]
) -> tuple[dict[str, tuple[Any, ...]], dict[str, tuple[Any, ...]]]:
    from hmsclient.genthrift.hive_metastore.ttypes import GetPrincipalsInRoleRequest

    roles: dict[str, tuple[Any, ...]] = {}
    privileges: dict[str, tuple[Any, ...]] = {}
    with metastore.session() as client:
        for role in sorted(set(client.get_role_names()) - BUILTIN_ROLES):
            grants = client.get_principals_in_role(GetPrincipalsInRoleRequest(roleName=role)).principalGrants
            roles[role] = tuple(sorted(grants or [], key=lambda g: (g.principalName, g.principalType)))
        for key, obj in object_refs(refs).items():
            found = client.list_privileges(None, None, obj)
            privileges[key] = tuple(sorted(found, key=grant_key))
    return roles, privileges


def grant_key(priv: Any) -> tuple[Any, ...]:
    info = priv.grantInfo
    return (priv.principalName, priv.principalType, info.privilege, bool(info.grantOption))


def object_refs(tables: Iterable[TableRef]) -> dict[str, Any]:
    """``db`` and ``db.table`` -> the HiveObjectRef of each protected database and table."""
    from hmsclient.genthrift.hive_metastore.ttypes import HiveObjectRef, HiveObjectType

    out: dict[str, Any] = {}
    refs = list(tables)
    for ref in refs:
        out.setdefault(ref.db, HiveObjectRef(objectType=HiveObjectType.DATABASE, dbName=ref.db))
    for ref in refs:
        out[str(ref)] = HiveObjectRef(objectType=HiveObjectType.TABLE, dbName=ref.db, objectName=ref.name)
    return out


# -- making a metastore match a capture ---------------------------------------------------------
def apply_tables(captured: Capture, target: Metastore, nameservice: str) -> dict[str, int]:
    """Databases (created if missing), tables (created or altered) and partitions (added,
    altered, dropped) exactly as captured, locations rebased onto ``nameservice``. Idempotent."""
    counts: dict[str, int] = {}

    def add(key: str, value: int) -> None:
        counts[key] = counts.get(key, 0) + value

    for t in captured.tables:
        outcome = target.ensure_database(t.database, nameservice)
        add("databases_created", int(outcome == "created"))
        add("databases_altered", int(outcome == "altered"))
        outcome = target.upsert_table(t.table, nameservice)
        add("tables_created", int(outcome == "created"))
        add("tables_altered", int(outcome == "altered"))
        add("tables_recreated", int(outcome == "recreated"))
        if t.table.partitionKeys:
            for key, value in target.sync_partitions(t.ref, list(t.partitions), nameservice).items():
                add(f"partitions_{key}", value)
    return counts


@dataclass(frozen=True)
class TableChange:
    """How a target's metastore differs from a capture for one table (see :func:`table_changes`)."""

    table: str
    missing: bool = False
    definition_differs: bool = False
    partitions_missing: tuple[str, ...] = ()  # name=value/... in the point, not on the target
    partitions_extra: tuple[str, ...] = ()  # on the target, not in the point
    partitions_moved: tuple[str, ...] = ()  # in both, stored otherwise (location, columns, format)

    @property
    def action(self) -> str | None:
        """What registering the capture does to the table itself: create, alter or nothing."""
        return "create" if self.missing else "alter" if self.definition_differs else None

    @property
    def changes(self) -> bool:
        return bool(self.action or self.partitions_missing or self.partitions_extra or self.partitions_moved)

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "action": self.action,
            "partitions_added": list(self.partitions_missing),
            "partitions_dropped": list(self.partitions_extra),
            "partitions_altered": list(self.partitions_moved),
        }


def table_changes(captured: Capture, target: Metastore, nameservice: str) -> list[TableChange]:
    """Per protected table, what ``target``'s metastore lacks or has beyond the capture
    (locations rebased onto ``nameservice``). Read-only."""
    from tandem.metastore import rebase_table, same_definition, same_storage

    out = []
    for t in captured.tables:
        current = target.get_table(t.ref)
        if current is None:
            partitions = tuple(_partition_name(t.table, tuple(p.values)) for p in t.partitions)
            out.append(TableChange(str(t.ref), missing=True, partitions_missing=partitions))
            continue
        differs = not same_definition(current, rebase_table(t.table, nameservice))
        if not t.table.partitionKeys:
            out.append(TableChange(str(t.ref), definition_differs=differs))
            continue
        want = {tuple(p.values): rebase_partition(p, nameservice) for p in t.partitions}
        have = {tuple(p.values): p for p in target.get_partitions(t.ref)}

        def names(keys: Iterable[tuple[str, ...]], table: Any = t.table) -> tuple[str, ...]:
            return tuple(_partition_name(table, values) for values in sorted(keys))

        moved = [v for v in want.keys() & have.keys() if not same_storage(have[v].sd, want[v].sd)]
        out.append(
            TableChange(
                str(t.ref),
                definition_differs=differs,
                partitions_missing=names(want.keys() - have.keys()),
                partitions_extra=names(have.keys() - want.keys()),
                partitions_moved=names(moved),
            )
        )
    return out


def _partition_name(table: Any, values: tuple[str, ...]) -> str:
    keys = [k.name for k in (table.partitionKeys or [])]
    return "/".join(f"{k}={v}" for k, v in zip(keys, values, strict=True))


def database_changes(captured: Capture, target: Metastore, nameservice: str) -> list[str]:
    """The protected tables' databases that ``target`` lacks or holds otherwise than the capture
    (description, location rebased, parameters, owner). Read-only."""
    from hmsclient.genthrift.hive_metastore.ttypes import NoSuchObjectException

    from tandem.metastore import rebase_location, same_database

    problems = []
    for db in {t.database.name: t.database for t in captured.tables}.values():
        wanted = copy.deepcopy(db)
        if wanted.locationUri:
            wanted.locationUri = rebase_location(wanted.locationUri, nameservice)
        try:
            current = target.get_database(db.name)
        except NoSuchObjectException:
            problems.append(f"database {db.name}: missing")
            continue
        if not same_database(current, wanted):
            problems.append(f"database {db.name}: definition differs from the point")
    return problems


def compare_tables(captured: Capture, target: Metastore, nameservice: str) -> list[str]:
    """Every difference between ``target``'s metastore and the capture (rebased). Read-only."""
    problems = database_changes(captured, target, nameservice)
    for change in table_changes(captured, target, nameservice):
        if change.missing:
            problems.append(f"table {change.table}: missing")
            continue
        if change.definition_differs:
            problems.append(f"table {change.table}: definition differs from the point")
        problems += [
            f"table {change.table}: partition {n} is not in the point" for n in change.partitions_extra
        ]
        problems += [f"table {change.table}: partition {n} is missing" for n in change.partitions_missing]
        problems += [
            f"table {change.table}: partition {n} has another location or layout"
            for n in change.partitions_moved
        ]
    return problems


def apply_grants(captured: Capture, target: Metastore) -> dict[str, int]:
    """Roles and memberships added (never removed: other businesses may use them); privileges
    on the protected objects made exactly the captured ones. Idempotent."""
    from hmsclient.genthrift.hive_metastore.ttypes import GetPrincipalsInRoleRequest, PrivilegeBag, Role

    counts = {"roles_created": 0, "role_grants_added": 0, "grants_added": 0, "grants_revoked": 0}
    if captured.roles is None or captured.privileges is None:
        return counts
    refs = object_refs(TableRef.parse(t.name) for t in captured.tables)
    with target.session() as d:
        present_roles = set(d.get_role_names())
        for role, grants in sorted(captured.roles.items()):
            if role not in present_roles:
                d.create_role(Role(roleName=role, ownerName="tandem"))
                counts["roles_created"] += 1
            have = d.get_principals_in_role(GetPrincipalsInRoleRequest(roleName=role)).principalGrants or []
            present = {(g.principalName, g.principalType) for g in have}
            for grant in grants:
                if (grant.principalName, grant.principalType) not in present:
                    d.grant_role(
                        role,
                        grant.principalName,
                        grant.principalType,
                        grant.grantorName,
                        grant.grantorPrincipalType,
                        grant.grantOption,
                    )
                    counts["role_grants_added"] += 1
        for key, obj in refs.items():
            want = {grant_key(p): p for p in captured.privileges.get(key, ())}
            have_privs = {grant_key(p): p for p in d.list_privileges(None, None, obj)}
            added = [copy.deepcopy(p) for k, p in want.items() if k not in have_privs]
            revoked = [p for k, p in have_privs.items() if k not in want]
            if added:
                d.grant_privileges(PrivilegeBag(privileges=added))
            if revoked:
                d.revoke_privileges(PrivilegeBag(privileges=revoked))
            counts["grants_added"] += len(added)
            counts["grants_revoked"] += len(revoked)
    return counts


__all__ = [
    "Capture",
    "TableCapture",
    "apply_grants",
    "apply_tables",
    "capture",
    "compare_tables",
]
