"""SQLite storage for the embedded metastore: Thrift objects kept whole, keyed by name.

Every object a client sends is stored as its Thrift binary encoding, so every field survives
the round trip, including fields this module never looks at. The columns beside each blob are
only the keys the metastore's semantics need (names, partition values, grant identities).

One connection serves all threads behind a lock: :meth:`MetastoreStore.transaction` is the
only way in, and everything done inside one transaction commits or rolls back as a whole.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from hmsclient.genthrift.hive_metastore import ttypes
from thrift import TSerialization
from thrift.protocol.TBinaryProtocol import TBinaryProtocolAcceleratedFactory

SCHEMA_VERSION = 1
_PROTOCOL = TBinaryProtocolAcceleratedFactory()
_SCHEMA = """
CREATE TABLE IF NOT EXISTS dbs (name TEXT PRIMARY KEY, obj BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tbls (
    db TEXT NOT NULL, name TEXT NOT NULL, obj BLOB NOT NULL, PRIMARY KEY (db, name));
CREATE TABLE IF NOT EXISTS parts (
    db TEXT NOT NULL, tbl TEXT NOT NULL, name TEXT NOT NULL, vals TEXT NOT NULL, obj BLOB NOT NULL,
    PRIMARY KEY (db, tbl, name));
CREATE TABLE IF NOT EXISTS roles (name TEXT PRIMARY KEY, obj BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS role_members (
    role TEXT NOT NULL, principal TEXT NOT NULL, principal_type INTEGER NOT NULL, obj BLOB NOT NULL,
    PRIMARY KEY (role, principal, principal_type));
CREATE TABLE IF NOT EXISTS privs (
    principal TEXT NOT NULL, principal_type INTEGER NOT NULL, object_type INTEGER NOT NULL,
    db TEXT NOT NULL, tbl TEXT NOT NULL, part TEXT NOT NULL, col TEXT NOT NULL,
    privilege TEXT NOT NULL, grantor TEXT NOT NULL, part_vals TEXT NOT NULL, info BLOB NOT NULL,
    PRIMARY KEY (principal, principal_type, object_type, db, tbl, part, col, privilege, grantor));
"""

T = TypeVar("T")


def encode(obj: Any) -> bytes:
    data: bytes = TSerialization.serialize(obj, _PROTOCOL)
    return data


def decode(cls: type[T], blob: bytes) -> T:
    obj: T = TSerialization.deserialize(cls(), blob, _PROTOCOL)
    return obj


@dataclass(frozen=True)
class PartitionRow:
    """A stored partition: its name and values, the Thrift object decoded on demand."""

    name: str
    values: tuple[str, ...]
    blob: bytes

    def partition(self) -> Any:
        return decode(ttypes.Partition, self.blob)


@dataclass(frozen=True)
class PrivilegeKey:
    """Who holds which privilege on what, granted by whom: one stored grant.

    Names are normalised by the caller (database, table and column lower-cased, the grantor
    lower-cased because the metastore compares grantors case-insensitively); unused parts of
    the object are empty strings.
    """

    principal: str
    principal_type: int
    object_type: int
    db: str = ""
    table: str = ""
    partition: str = ""
    column: str = ""
    privilege: str = ""
    grantor: str = ""

    def row(self) -> tuple[str, int, int, str, str, str, str, str, str]:
        return (
            self.principal,
            self.principal_type,
            self.object_type,
            self.db,
            self.table,
            self.partition,
            self.column,
            self.privilege,
            self.grantor,
        )


@dataclass(frozen=True)
class PrivilegeRow:
    key: PrivilegeKey
    partition_values: tuple[str, ...]
    info: Any  # ttypes.PrivilegeGrantInfo


_PRIV_COLUMNS = "principal, principal_type, object_type, db, tbl, part, col, privilege, grantor"
_PRIV_KEY_MATCH = " AND ".join(f"{c} = ?" for c in _PRIV_COLUMNS.split(", "))


class Transaction:
    """Typed access to the tables inside one open transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def _one(self, sql: str, *args: object) -> bytes | None:
        row = self._conn.execute(sql, args).fetchone()
        return None if row is None else bytes(row[0])

    def _column(self, sql: str, *args: object) -> list[Any]:
        return [row[0] for row in self._conn.execute(sql, args)]

    # databases
    def get_database(self, name: str) -> Any | None:
        blob = self._one("SELECT obj FROM dbs WHERE name = ?", name)
        return None if blob is None else decode(ttypes.Database, blob)

    def put_database(self, db: Any) -> None:
        self._conn.execute("INSERT OR REPLACE INTO dbs (name, obj) VALUES (?, ?)", (db.name, encode(db)))

    def delete_database(self, name: str) -> None:
        self._conn.execute("DELETE FROM dbs WHERE name = ?", (name,))

    def database_names(self) -> list[str]:
        return self._column("SELECT name FROM dbs ORDER BY name")

    # tables
    def get_table(self, db: str, name: str) -> Any | None:
        blob = self._one("SELECT obj FROM tbls WHERE db = ? AND name = ?", db, name)
        return None if blob is None else decode(ttypes.Table, blob)

    def put_table(self, table: Any) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO tbls (db, name, obj) VALUES (?, ?, ?)",
            (table.dbName, table.tableName, encode(table)),
        )

    def delete_table(self, db: str, name: str) -> None:
        self._conn.execute("DELETE FROM tbls WHERE db = ? AND name = ?", (db, name))

    def table_names(self, db: str) -> list[str]:
        return self._column("SELECT name FROM tbls WHERE db = ? ORDER BY name", db)

    # partitions
    def get_partition(self, db: str, table: str, name: str) -> Any | None:
        blob = self._one("SELECT obj FROM parts WHERE db = ? AND tbl = ? AND name = ?", db, table, name)
        return None if blob is None else decode(ttypes.Partition, blob)

    def put_partition(self, db: str, table: str, name: str, partition: Any) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO parts (db, tbl, name, vals, obj) VALUES (?, ?, ?, ?, ?)",
            (db, table, name, json.dumps(list(partition.values)), encode(partition)),
        )

    def delete_partition(self, db: str, table: str, name: str) -> None:
        self._conn.execute("DELETE FROM parts WHERE db = ? AND tbl = ? AND name = ?", (db, table, name))

    def delete_partitions(self, db: str, table: str) -> None:
        self._conn.execute("DELETE FROM parts WHERE db = ? AND tbl = ?", (db, table))

    def partition_rows(self, db: str, table: str) -> list[PartitionRow]:
        """Every partition of the table, ordered by partition name as the metastore lists them."""
        cursor = self._conn.execute(
            "SELECT name, vals, obj FROM parts WHERE db = ? AND tbl = ? ORDER BY name", (db, table)
        )
        return [PartitionRow(name, tuple(json.loads(vals)), bytes(obj)) for name, vals, obj in cursor]

    def partition_names(self, db: str, table: str) -> list[str]:
        return self._column("SELECT name FROM parts WHERE db = ? AND tbl = ? ORDER BY name", db, table)

    # roles
    def get_role(self, name: str) -> Any | None:
        blob = self._one("SELECT obj FROM roles WHERE name = ?", name)
        return None if blob is None else decode(ttypes.Role, blob)

    def put_role(self, role: Any) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO roles (name, obj) VALUES (?, ?)", (role.roleName, encode(role))
        )

    def delete_role(self, name: str) -> None:
        self._conn.execute("DELETE FROM roles WHERE name = ?", (name,))

    def role_names(self) -> list[str]:
        return self._column("SELECT name FROM roles ORDER BY name")

    # role membership (RolePrincipalGrant objects)
    def get_role_member(self, role: str, principal: str, principal_type: int) -> Any | None:
        blob = self._one(
            "SELECT obj FROM role_members WHERE role = ? AND principal = ? AND principal_type = ?",
            role,
            principal,
            principal_type,
        )
        return None if blob is None else decode(ttypes.RolePrincipalGrant, blob)

    def put_role_member(self, grant: Any) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO role_members (role, principal, principal_type, obj) VALUES (?, ?, ?, ?)",
            (grant.roleName, grant.principalName, grant.principalType, encode(grant)),
        )

    def delete_role_member(self, role: str, principal: str, principal_type: int) -> None:
        self._conn.execute(
            "DELETE FROM role_members WHERE role = ? AND principal = ? AND principal_type = ?",
            (role, principal, principal_type),
        )

    def members_of_role(self, role: str) -> list[Any]:
        blobs = self._column("SELECT obj FROM role_members WHERE role = ? ORDER BY rowid", role)
        return [decode(ttypes.RolePrincipalGrant, bytes(b)) for b in blobs]

    def roles_of_principal(self, principal: str, principal_type: int) -> list[Any]:
        blobs = self._column(
            "SELECT obj FROM role_members WHERE principal = ? AND principal_type = ? ORDER BY rowid",
            principal,
            principal_type,
        )
        return [decode(ttypes.RolePrincipalGrant, bytes(b)) for b in blobs]

    def delete_role_memberships(self, role: str, role_type: int) -> None:
        """Both directions: who was granted ``role``, and where ``role`` was granted as a member."""
        self._conn.execute(
            "DELETE FROM role_members WHERE role = ? OR (principal = ? AND principal_type = ?)",
            (role, role, role_type),
        )

    # privileges
    def add_privilege(self, key: PrivilegeKey, partition_values: tuple[str, ...], info: Any) -> bool:
        """Store one grant; False (nothing stored) when the same grant already exists."""
        try:
            self._conn.execute(
                f"INSERT INTO privs ({_PRIV_COLUMNS}, part_vals, info) VALUES ({', '.join('?' * 11)})",
                (*key.row(), json.dumps(list(partition_values)), encode(info)),
            )
        except sqlite3.IntegrityError:
            return False
        return True

    def update_privilege(self, key: PrivilegeKey, info: Any) -> None:
        self._conn.execute(f"UPDATE privs SET info = ? WHERE {_PRIV_KEY_MATCH}", (encode(info), *key.row()))

    def delete_privilege(self, key: PrivilegeKey) -> None:
        self._conn.execute(f"DELETE FROM privs WHERE {_PRIV_KEY_MATCH}", key.row())

    def find_privileges(self, **where: object) -> list[PrivilegeRow]:
        """Grants whose columns equal the given values (``principal=``, ``db=``, ``object_type=``...)."""
        columns = {"table": "tbl", "partition": "part", "column": "col"}
        clauses = [f"{columns.get(name, name)} = ?" for name in where]
        sql = f"SELECT {_PRIV_COLUMNS}, part_vals, info FROM privs"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        rows = self._conn.execute(sql + " ORDER BY rowid", tuple(where.values())).fetchall()
        return [
            PrivilegeRow(
                PrivilegeKey(*row[:9]),
                tuple(json.loads(row[9])),
                decode(ttypes.PrivilegeGrantInfo, bytes(row[10])),
            )
            for row in rows
        ]

    def delete_privileges_on(self, db: str, table: str | None = None, partition: str | None = None) -> None:
        """Every grant on a database (and all in it), a table (and its partitions), or a partition."""
        sql, args = "DELETE FROM privs WHERE db = ?", [db]
        if table is not None:
            sql, args = sql + " AND tbl = ?", [*args, table]
        if partition is not None:
            sql, args = sql + " AND part = ?", [*args, partition]
        self._conn.execute(sql, args)

    def delete_privileges_of(self, principal: str, principal_type: int) -> None:
        self._conn.execute(
            "DELETE FROM privs WHERE principal = ? AND principal_type = ?", (principal, principal_type)
        )

    def rename_partition_privileges(
        self, db: str, table: str, partition: str, new_partition: str, new_values: tuple[str, ...]
    ) -> None:
        """The grants on a partition follow it to its new name."""
        self._conn.execute(
            "UPDATE privs SET part = ?, part_vals = ? WHERE db = ? AND tbl = ? AND part = ?",
            (new_partition, json.dumps(list(new_values)), db, table, partition),
        )

    def rename_table(self, db: str, table: str, new_db: str, new_table: str) -> None:
        """Move the table's partitions and grants to its new name (the table row is the caller's)."""
        self._conn.execute(
            "UPDATE parts SET db = ?, tbl = ? WHERE db = ? AND tbl = ?", (new_db, new_table, db, table)
        )
        self._conn.execute(
            "UPDATE privs SET db = ?, tbl = ? WHERE db = ? AND tbl = ?", (new_db, new_table, db, table)
        )


class MetastoreStore:
    """The SQLite file behind one embedded metastore; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        self._depth = 0  # open transactions of the thread holding the lock
        self._conn: sqlite3.Connection | None = sqlite3.connect(
            str(path), check_same_thread=False, isolation_level=None, timeout=30
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        with self._lock:
            self._conn.executescript(_SCHEMA)
            self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One atomic unit of work: committed when the block ends, rolled back if it raises.

        A transaction opened inside another (same thread) joins it: the outer one commits.
        """
        with self._lock:
            if self._conn is None:
                raise sqlite3.ProgrammingError("the metastore store is closed")
            conn = self._conn
            if self._depth:
                self._depth += 1
                try:
                    yield Transaction(conn)
                finally:
                    self._depth -= 1
                return
            conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield Transaction(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")
            finally:
                self._depth = 0

    def close(self) -> None:
        """Idempotent; waits for the transaction in progress, if any."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
