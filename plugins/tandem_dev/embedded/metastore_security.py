"""Roles, role grants and privileges of the embedded metastore, with the metastore's semantics.

The built-in roles ``admin`` and ``public`` always exist; ``admin`` holds ``All`` on the global
object; every user implicitly belongs to ``public``, which can be neither granted, revoked nor
dropped. Grants are kept per principal, object, privilege and grantor, so the same privilege
granted twice by one grantor is refused and two grantors may grant the same privilege.

Errors travel as ``MetaException`` (the only exception these calls declare), with the message
Hive gives the underlying cause. Every method runs in one store transaction: it applies
completely or not at all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from hmsclient.genthrift.hive_metastore import ttypes

from tandem_dev.embedded.metastore_names import PartitionSpecError, make_part_name, normalize_identifier
from tandem_dev.embedded.metastore_store import MetastoreStore, PrivilegeKey, PrivilegeRow, Transaction

ADMIN = "admin"
PUBLIC = "public"
USER = ttypes.PrincipalType.USER
ROLE = ttypes.PrincipalType.ROLE
GROUP = ttypes.PrincipalType.GROUP
_OBJ = ttypes.HiveObjectType


def now_seconds() -> int:
    return int(time.time())


def meta_error(message: str) -> Any:
    return ttypes.MetaException(message=message)


@dataclass(frozen=True)
class HiveObject:
    """A resolved HiveObjectRef: names normalised, a partition named as the metastore names it."""

    object_type: int
    db: str = ""
    table: str = ""
    partition: str = ""
    column: str = ""
    partition_values: tuple[str, ...] = ()

    def columns(self) -> dict[str, object]:
        return {
            "object_type": self.object_type,
            "db": self.db,
            "table": self.table,
            "partition": self.partition,
            "column": self.column,
        }

    def describe(self) -> str:
        names = ",".join(n for n in (self.db, self.table, self.partition) if n)
        where = {_OBJ.DATABASE: f" on database {self.db}", _OBJ.GLOBAL: ""}.get(self.object_type)
        if where is None:
            where = f" on {_OBJ._VALUES_TO_NAMES.get(self.object_type, '?').lower()} [{names}]"
            if self.column:
                where = f" on column {self.column} [{names}]"
        return where


def to_hive_privilege(row: PrivilegeRow) -> Any:
    key = row.key
    ref = ttypes.HiveObjectRef(
        objectType=key.object_type,
        dbName=key.db or None,
        objectName=key.table or None,
        partValues=list(row.partition_values) if key.partition else None,
        columnName=key.column or None,
    )
    return ttypes.HiveObjectPrivilege(
        hiveObject=ref, principalName=key.principal, principalType=key.principal_type, grantInfo=row.info
    )


class SecurityHandler:
    """The role and privilege calls of ThriftHiveMetastore.Iface."""

    def __init__(self, store: MetastoreStore) -> None:
        self._store = store

    # -- setup -------------------------------------------------------------------------------
    @staticmethod
    def init_security(txn: Transaction) -> None:
        """Create the built-in roles and admin's global grant; idempotent."""
        now = now_seconds()
        for name in (ADMIN, PUBLIC):
            if txn.get_role(name) is None:
                txn.put_role(ttypes.Role(roleName=name, createTime=now, ownerName=name))
        admin_all = PrivilegeKey(ADMIN, ROLE, _OBJ.GLOBAL, privilege="All", grantor=ADMIN)
        info = ttypes.PrivilegeGrantInfo(
            privilege="All", createTime=0, grantor=ADMIN, grantorType=ROLE, grantOption=True
        )
        txn.add_privilege(admin_all, (), info)

    # -- objects -----------------------------------------------------------------------------
    @staticmethod
    def resolve(txn: Transaction, ref: Any, *, granting: bool) -> HiveObject | None:
        """Normalise a HiveObjectRef. When granting, a missing table or partition yields None
        (the metastore ignores such grants); a missing database is always an error."""
        otype = ref.objectType
        if otype == _OBJ.GLOBAL:
            return HiveObject(otype)
        db = normalize_identifier(ref.dbName or "")
        if otype == _OBJ.DATABASE:
            if granting and txn.get_database(db) is None:
                raise meta_error(f"There is no database named {db}")
            return HiveObject(otype, db)
        if otype not in (_OBJ.TABLE, _OBJ.PARTITION, _OBJ.COLUMN):
            raise meta_error(f"Unknown hive object type {otype}")
        table_name = normalize_identifier(ref.objectName or "")
        table = txn.get_table(db, table_name)
        column = normalize_identifier(ref.columnName or "") if otype == _OBJ.COLUMN else ""
        values = tuple(ref.partValues or ())
        if table is None:
            if granting:
                return None
            if otype == _OBJ.PARTITION or values:
                raise ttypes.MetaException(message=f"{db}.{table_name} table not found")
            return HiveObject(otype, db, table_name, "", column)
        partition = ""
        if otype == _OBJ.PARTITION or values:
            keys = [k.name for k in table.partitionKeys or []]
            try:
                partition = make_part_name(keys, list(values))
            except PartitionSpecError as exc:
                raise meta_error(str(exc)) from exc
            if granting and txn.get_partition(db, table_name, partition) is None:
                return None
        return HiveObject(otype, db, table_name, partition, column, values)

    # -- roles -------------------------------------------------------------------------------
    def create_role(self, role: Any) -> bool:
        if role is None or not role.roleName:
            raise meta_error("Role name must not be empty")
        if role.roleName == PUBLIC:
            raise meta_error(f"{PUBLIC} role implicitly exists. It can't be created.")
        with self._store.transaction() as txn:
            if txn.get_role(role.roleName) is not None:
                raise meta_error(f"Role {role.roleName} already exists.")
            txn.put_role(
                ttypes.Role(roleName=role.roleName, createTime=now_seconds(), ownerName=role.ownerName)
            )
        return True

    def drop_role(self, role_name: str) -> bool:
        if role_name in (ADMIN, PUBLIC):
            raise meta_error(f"{PUBLIC},{ADMIN} roles can't be dropped.")
        with self._store.transaction() as txn:
            # As in the metastore, dropping a role that does not exist succeeds (idempotent).
            if txn.get_role(role_name) is not None:
                txn.delete_role_memberships(role_name, ROLE)
                txn.delete_privileges_of(role_name, ROLE)
                txn.delete_role(role_name)
        return True

    def get_role_names(self) -> list[str]:
        with self._store.transaction() as txn:
            return txn.role_names()

    @staticmethod
    def _is_ancestor(txn: Transaction, candidate: str, role: str, seen: set[str] | None = None) -> bool:
        """True when ``candidate`` is ``role`` or a role ``role`` belongs to, directly or not."""
        if candidate == role:
            return True
        seen = seen if seen is not None else set()
        seen.add(role)
        for grant in txn.roles_of_principal(role, ROLE):
            parent = grant.roleName
            if parent not in seen and SecurityHandler._is_ancestor(txn, candidate, parent, seen):
                return True
        return False

    def grant_role(
        self,
        role_name: str,
        principal_name: str,
        principal_type: int,
        grantor: str | None,
        grantor_type: int | None,
        grant_option: bool | None,
    ) -> bool:
        if role_name == PUBLIC:
            raise meta_error(
                f"No user can be added to {PUBLIC}. Since all users implicitly belong to {PUBLIC} role."
            )
        with self._store.transaction() as txn:
            if txn.get_role(role_name) is None:
                raise meta_error(f"{role_name} role can not be found.")
            if principal_type == ROLE and self._is_ancestor(txn, principal_name, role_name):
                raise meta_error(
                    f"Cannot grant role {principal_name} to {role_name} as {role_name} already belongs "
                    f"to the role {principal_name}. (no cycles allowed)"
                )
            if txn.get_role_member(role_name, principal_name, principal_type) is not None:
                raise meta_error(f"Principal {principal_name} already has the role {role_name}")
            if principal_type == ROLE and txn.get_role(principal_name) is None:
                raise meta_error(f"Role {principal_name} does not exist")
            txn.put_role_member(
                ttypes.RolePrincipalGrant(
                    roleName=role_name,
                    principalName=principal_name,
                    principalType=principal_type,
                    grantOption=bool(grant_option),
                    grantTime=now_seconds(),
                    grantorName=grantor,
                    grantorPrincipalType=grantor_type,
                )
            )
        return True

    def revoke_role(self, role_name: str, principal_name: str, principal_type: int) -> bool:
        return self._revoke_role(role_name, principal_name, principal_type, grant_option=False)

    def _revoke_role(
        self, role_name: str, principal_name: str, principal_type: int, *, grant_option: bool
    ) -> bool:
        if role_name == PUBLIC:
            raise meta_error(f"{PUBLIC} role can't be revoked.")
        with self._store.transaction() as txn:
            if txn.get_role(role_name) is None:
                raise meta_error(f"{role_name} role can not be found.")
            member = txn.get_role_member(role_name, principal_name, principal_type)
            if member is None:
                raise meta_error(f"Principal {principal_name} does not have the role {role_name}")
            if not grant_option:
                txn.delete_role_member(role_name, principal_name, principal_type)
            elif member.grantOption:
                member.grantOption = False
                txn.put_role_member(member)
            else:
                raise meta_error(f"User {principal_name} does not have grant option with role {role_name}")
        return True

    def grant_revoke_role(self, request: Any) -> Any:
        if request.requestType == ttypes.GrantRevokeType.GRANT:
            ok = self.grant_role(
                request.roleName,
                request.principalName,
                request.principalType,
                request.grantor,
                request.grantorType,
                bool(request.grantOption),
            )
        elif request.requestType == ttypes.GrantRevokeType.REVOKE:
            ok = self._revoke_role(
                request.roleName,
                request.principalName,
                request.principalType,
                grant_option=bool(request.grantOption),
            )
        else:
            raise meta_error(f"Unknown request type {request.requestType}")
        return ttypes.GrantRevokeRoleResponse(success=ok)

    @staticmethod
    def _public_role() -> Any:
        return ttypes.Role(roleName=PUBLIC, createTime=0, ownerName=PUBLIC)

    def list_roles(self, principal_name: str, principal_type: int) -> list[Any]:
        """Roles granted directly to the principal; a user also lists the implicit ``public``."""
        with self._store.transaction() as txn:
            roles = [txn.get_role(g.roleName) for g in txn.roles_of_principal(principal_name, principal_type)]
        result = [r for r in roles if r is not None]
        if principal_type == USER:
            result.append(self._public_role())
        return result

    def get_principals_in_role(self, request: Any) -> Any:
        with self._store.transaction() as txn:
            grants = txn.members_of_role(request.roleName)
        return ttypes.GetPrincipalsInRoleResponse(principalGrants=grants)

    def get_role_grants_for_principal(self, request: Any) -> Any:
        with self._store.transaction() as txn:
            grants = txn.roles_of_principal(request.principal_name, request.principal_type)
        if request.principal_type == USER:
            grants.append(
                ttypes.RolePrincipalGrant(
                    roleName=PUBLIC,
                    principalName=request.principal_name,
                    principalType=USER,
                    grantOption=False,
                    grantTime=0,
                )
            )
        return ttypes.GetRoleGrantsForPrincipalResponse(principalGrants=grants)

    # -- privileges --------------------------------------------------------------------------
    def grant_privileges(self, privileges: Any) -> bool:
        """Store every grant of the bag, or none: a grant that already exists fails the call."""
        now = now_seconds()
        with self._store.transaction() as txn:
            for item in (privileges.privileges if privileges else None) or []:
                self._grant_one(txn, item, now)
        return True

    def _grant_one(self, txn: Transaction, item: Any, now: int) -> None:
        info = item.grantInfo
        if item.hiveObject is None or info is None or item.principalName is None:
            raise meta_error("A privilege needs an object, a principal and grant info")
        if item.principalType == ROLE and txn.get_role(item.principalName) is None:
            raise meta_error(f"Role {item.principalName} does not exist")
        obj = self.resolve(txn, item.hiveObject, granting=True)
        if obj is None:
            return
        for privilege in (info.privilege or "").split(","):
            if not privilege:
                continue
            key = PrivilegeKey(
                item.principalName,
                item.principalType,
                obj.object_type,
                obj.db,
                obj.table,
                obj.partition,
                obj.column,
                privilege,
                (info.grantor or "").lower(),
            )
            stored = ttypes.PrivilegeGrantInfo(
                privilege=privilege,
                createTime=now,
                grantor=info.grantor,
                grantorType=info.grantorType,
                grantOption=bool(info.grantOption),
            )
            if not txn.add_privilege(key, obj.partition_values, stored):
                raise meta_error(f"{privilege} is already granted{obj.describe()} by {info.grantor}")

    def grant_table_privileges(self, txn: Transaction, db: str, table: str, privileges: Any) -> None:
        """The PrincipalPrivilegeSet a table is created with becomes ordinary table grants."""
        now = now_seconds()
        for principals, principal_type in (
            (privileges.userPrivileges, USER),
            (privileges.groupPrivileges, GROUP),
            (privileges.rolePrivileges, ROLE),
        ):
            for principal, infos in (principals or {}).items():
                for info in infos or []:
                    if info is None or not info.privilege:
                        continue
                    key = PrivilegeKey(
                        principal,
                        principal_type,
                        _OBJ.TABLE,
                        db,
                        table,
                        privilege=info.privilege,
                        grantor=(info.grantor or "").lower(),
                    )
                    stored = ttypes.PrivilegeGrantInfo(
                        privilege=info.privilege,
                        createTime=now,
                        grantor=info.grantor,
                        grantorType=info.grantorType,
                        grantOption=bool(info.grantOption),
                    )
                    txn.add_privilege(key, (), stored)

    def revoke_privileges(self, privileges: Any) -> bool:
        return self._revoke_privileges(privileges, grant_option=False)

    def _revoke_privileges(self, privileges: Any, *, grant_option: bool) -> bool:
        """Remove every listed grant, or none: a grant that does not exist fails the call.
        With ``grant_option`` only the grant option is taken away."""
        with self._store.transaction() as txn:
            for item in (privileges.privileges if privileges else None) or []:
                info = item.grantInfo
                if info is None or not (info.privilege or "").strip() or item.hiveObject is None:
                    continue
                obj = self.resolve(txn, item.hiveObject, granting=False)
                assert obj is not None
                if obj.object_type == _OBJ.DATABASE and txn.get_database(obj.db) is None:
                    raise meta_error(f"There is no database named {obj.db}")
                for privilege in info.privilege.split(","):
                    self._revoke_one(txn, item, obj, privilege, grant_option=grant_option)
        return True

    @staticmethod
    def _revoke_one(
        txn: Transaction, item: Any, obj: HiveObject, privilege: str, *, grant_option: bool
    ) -> None:
        rows = txn.find_privileges(
            principal=item.principalName, principal_type=item.principalType, **obj.columns()
        )
        fold = obj.object_type == _OBJ.TABLE  # the metastore compares table privileges ignoring case
        row = next(
            (
                r
                for r in rows
                if (r.key.privilege.lower() == privilege.lower() if fold else r.key.privilege == privilege)
            ),
            None,
        )
        if row is None:
            raise meta_error(f"No grant ({privilege}) found{obj.describe()} for {item.principalName}")
        if not grant_option:
            txn.delete_privilege(row.key)
        elif row.info.grantOption:
            row.info.grantOption = False
            txn.update_privilege(row.key, row.info)
        else:
            raise meta_error(
                f"User {item.principalName} does not have grant option with privilege {privilege}"
            )

    def grant_revoke_privileges(self, request: Any) -> Any:
        if request.requestType == ttypes.GrantRevokeType.GRANT:
            ok = self.grant_privileges(request.privileges)
        elif request.requestType == ttypes.GrantRevokeType.REVOKE:
            ok = self._revoke_privileges(request.privileges, grant_option=bool(request.revokeGrantOption))
        else:
            raise meta_error(f"Unknown request type {request.requestType}")
        return ttypes.GrantRevokePrivilegeResponse(success=ok)

    def _object_filter(self, txn: Transaction, ref: Any | None) -> dict[str, object]:
        """Column filters for an object given to list_privileges/get_privilege_set.

        No object (or no object type) means every object; within an object type, names left
        unset widen the match the way the metastore's listings do.
        """
        if ref is None or ref.objectType is None:
            return {}
        where: dict[str, object] = {"object_type": ref.objectType}
        if ref.objectType == _OBJ.GLOBAL or ref.dbName is None:
            return where
        where["db"] = normalize_identifier(ref.dbName)
        if ref.objectType == _OBJ.DATABASE or ref.objectName is None:
            return where
        obj = self.resolve(txn, ref, granting=False)
        assert obj is not None
        where.update(table=obj.table, partition=obj.partition)
        if obj.object_type == _OBJ.COLUMN and ref.columnName is not None:
            where["column"] = obj.column
        return where

    def list_privileges(
        self, principal_name: str | None, principal_type: int | None, hive_object: Any
    ) -> list[Any]:
        """Grants of one principal (every principal when the name is None) on one object
        (every object when ``hive_object`` or its type is None)."""
        with self._store.transaction() as txn:
            where = self._object_filter(txn, hive_object)
            if principal_name is not None:
                where["principal"] = principal_name
                if principal_type is not None:
                    where["principal_type"] = principal_type
            rows = txn.find_privileges(**where)
        return [to_hive_privilege(r) for r in rows]

    @staticmethod
    def _role_closure(txn: Transaction, user_name: str | None, group_names: list[str] | None) -> list[str]:
        """Every role the user and groups hold, directly or through other roles (and ``public``)."""
        pending = []
        if user_name is not None:
            pending += [g.roleName for g in txn.roles_of_principal(user_name, USER)] + [PUBLIC]
        for group in group_names or []:
            pending += [g.roleName for g in txn.roles_of_principal(group, GROUP)]
        seen: list[str] = []
        while pending:
            role = pending.pop(0)
            if role not in seen:
                seen.append(role)
                pending += [g.roleName for g in txn.roles_of_principal(role, ROLE)]
        return seen

    def get_privilege_set(
        self, hive_object: Any, user_name: str | None, group_names: list[str] | None
    ) -> Any:
        """What the user, its groups and all their roles hold on one object."""
        if hive_object is None or hive_object.objectType is None:
            raise meta_error("get_privilege_set needs an object type")
        with self._store.transaction() as txn:
            where = self._object_filter(txn, hive_object)

            def held(principal: str, principal_type: int) -> list[Any]:
                rows = txn.find_privileges(principal=principal, principal_type=principal_type, **where)
                return [r.info for r in rows]

            users = {user_name: held(user_name, USER)} if user_name is not None else None
            groups = {g: held(g, GROUP) for g in group_names} if group_names else None
            roles = {r: held(r, ROLE) for r in self._role_closure(txn, user_name, group_names)} or None
        return ttypes.PrincipalPrivilegeSet(
            userPrivileges=users, groupPrivileges=groups, rolePrivileges=roles
        )
