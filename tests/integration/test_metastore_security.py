"""Roles, role grants and privileges of the embedded metastore through hmsclient."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hmsclient import HMSClient
from hmsclient.genthrift.hive_metastore import ttypes

from tandem_dev.embedded.metastore import MetastoreServer

pytestmark = pytest.mark.integration

USER, ROLE, GROUP = ttypes.PrincipalType.USER, ttypes.PrincipalType.ROLE, ttypes.PrincipalType.GROUP
OBJ = ttypes.HiveObjectType


@pytest.fixture
def client(tmp_path: Path) -> Iterator[HMSClient]:
    with (
        MetastoreServer(tmp_path / "metastore.db") as hms,
        HMSClient(host="127.0.0.1", port=hms.port) as hms_client,
    ):
        hms_client.create_database(ttypes.Database(name="billing"))
        sd = ttypes.StorageDescriptor(
            cols=[ttypes.FieldSchema("id", "int", ""), ttypes.FieldSchema("amount", "double", "")],
            serdeInfo=ttypes.SerDeInfo("s", "lazy", {}),
        )
        table = ttypes.Table(
            tableName="bills",
            dbName="billing",
            sd=sd,
            partitionKeys=[ttypes.FieldSchema("ds", "string", "")],
            parameters={},
            tableType="MANAGED_TABLE",
        )
        hms_client.create_table(table)
        hms_client.add_partition(hms_client.get_table("billing", "bills"), ["2024-01-01"])
        yield hms_client


def privilege(
    ref: ttypes.HiveObjectRef,
    principal: str,
    kind: int,
    what: str,
    *,
    grantor: str = "admin",
    option: bool = False,
) -> ttypes.HiveObjectPrivilege:
    return ttypes.HiveObjectPrivilege(
        ref, principal, kind, ttypes.PrivilegeGrantInfo(what, 0, grantor, ROLE, option)
    )


def table_ref() -> ttypes.HiveObjectRef:
    return ttypes.HiveObjectRef(OBJ.TABLE, "billing", "bills", None, None)


def granted(
    client: HMSClient, principal: str | None, kind: int | None, ref: ttypes.HiveObjectRef | None
) -> set:
    return {
        (
            p.principalName,
            p.hiveObject.objectType,
            p.hiveObject.dbName,
            p.hiveObject.objectName,
            tuple(p.hiveObject.partValues or ()),
            p.hiveObject.columnName,
            p.grantInfo.privilege,
        )
        for p in client.list_privileges(principal, kind, ref)
    }


# -- roles -----------------------------------------------------------------------------------------
def test_builtin_roles(client: HMSClient) -> None:
    assert client.get_role_names() == ["admin", "public"]
    (admin_all,) = client.list_privileges(
        "admin", ROLE, ttypes.HiveObjectRef(OBJ.GLOBAL, None, None, None, None)
    )
    assert (admin_all.grantInfo.privilege, admin_all.grantInfo.grantOption) == ("All", True)
    for call in (
        lambda: client.drop_role("admin"),
        lambda: client.drop_role("public"),
        lambda: client.create_role(ttypes.Role("public", 0, "x")),
        lambda: client.grant_role("public", "alice", USER, "admin", ROLE, False),
        lambda: client.revoke_role("public", "alice", USER),
    ):
        with pytest.raises(ttypes.MetaException):
            call()


def test_role_lifecycle(client: HMSClient) -> None:
    assert client.create_role(ttypes.Role("analysts", 0, "bob")) is True
    with pytest.raises(ttypes.MetaException, match="already exists"):
        client.create_role(ttypes.Role("analysts", 0, "bob"))
    assert client.get_role_names() == ["admin", "analysts", "public"]
    assert client.grant_role("analysts", "alice", USER, "bob", USER, True) is True
    with pytest.raises(ttypes.MetaException):
        client.grant_role("analysts", "alice", USER, "bob", USER, False)
    with pytest.raises(ttypes.MetaException):
        client.grant_role("no_such_role", "alice", USER, "bob", USER, False)
    roles = client.list_roles("alice", USER)
    assert [(r.roleName, r.ownerName) for r in roles] == [("analysts", "bob"), ("public", "public")]
    assert roles[0].createTime > 0
    assert [r.roleName for r in client.list_roles("analysts", ROLE)] == []
    members = client.get_principals_in_role(ttypes.GetPrincipalsInRoleRequest("analysts")).principalGrants
    assert [(m.principalName, m.principalType, m.grantOption, m.grantorName) for m in members] == [
        ("alice", USER, True, "bob")
    ]
    grants = client.get_role_grants_for_principal(ttypes.GetRoleGrantsForPrincipalRequest("alice", USER))
    assert [g.roleName for g in grants.principalGrants] == ["analysts", "public"]
    assert client.revoke_role("analysts", "alice", USER) is True
    with pytest.raises(ttypes.MetaException):
        client.revoke_role("analysts", "alice", USER)
    assert [r.roleName for r in client.list_roles("alice", USER)] == ["public"]
    assert client.drop_role("analysts") is True
    assert client.get_role_names() == ["admin", "public"]


def test_roles_of_roles_refuse_cycles(client: HMSClient) -> None:
    client.create_role(ttypes.Role("a", 0, "x"))
    client.create_role(ttypes.Role("b", 0, "x"))
    client.grant_role("a", "b", ROLE, "x", USER, False)  # b belongs to a
    with pytest.raises(ttypes.MetaException, match="cycle"):
        client.grant_role("b", "a", ROLE, "x", USER, False)
    with pytest.raises(ttypes.MetaException):
        client.grant_role("a", "no_such_role", ROLE, "x", USER, False)
    client.drop_role("a")
    assert client.list_roles("b", ROLE) == []


def test_grant_revoke_role_with_grant_option(client: HMSClient) -> None:
    client.create_role(ttypes.Role("ops", 0, "x"))
    grant = ttypes.GrantRevokeRoleRequest(
        ttypes.GrantRevokeType.GRANT, "ops", "carol", GROUP, "admin", ROLE, True
    )
    assert client.grant_revoke_role(grant).success is True
    revoke_option = ttypes.GrantRevokeRoleRequest(
        ttypes.GrantRevokeType.REVOKE, "ops", "carol", GROUP, grantOption=True
    )
    assert client.grant_revoke_role(revoke_option).success is True
    (member,) = client.get_principals_in_role(ttypes.GetPrincipalsInRoleRequest("ops")).principalGrants
    assert member.grantOption is False
    with pytest.raises(ttypes.MetaException):
        client.grant_revoke_role(revoke_option)


# -- privileges ------------------------------------------------------------------------------------
def test_privileges_round_trip_on_every_object_type(client: HMSClient) -> None:
    client.create_role(ttypes.Role("analysts", 0, "admin"))
    refs = {
        "global": ttypes.HiveObjectRef(OBJ.GLOBAL, None, None, None, None),
        "db": ttypes.HiveObjectRef(OBJ.DATABASE, "BILLING", None, None, None),
        "table": table_ref(),
        "partition": ttypes.HiveObjectRef(OBJ.PARTITION, "billing", "bills", ["2024-01-01"], None),
        "column": ttypes.HiveObjectRef(OBJ.COLUMN, "billing", "bills", None, "Amount"),
    }
    bag = ttypes.PrivilegeBag(
        [
            privilege(refs["global"], "alice", USER, "CREATE"),
            privilege(refs["db"], "analysts", ROLE, "SELECT"),
            privilege(refs["table"], "analysts", ROLE, "SELECT,INSERT", option=True),
            privilege(refs["partition"], "alice", USER, "SELECT"),
            privilege(refs["column"], "etl", GROUP, "SELECT"),
        ]
    )
    assert client.grant_privileges(bag) is True
    assert granted(client, "analysts", ROLE, None) == {
        ("analysts", OBJ.DATABASE, "billing", None, (), None, "SELECT"),
        ("analysts", OBJ.TABLE, "billing", "bills", (), None, "SELECT"),
        ("analysts", OBJ.TABLE, "billing", "bills", (), None, "INSERT"),
    }
    assert granted(client, "alice", USER, refs["partition"]) == {
        ("alice", OBJ.PARTITION, "billing", "bills", ("2024-01-01",), None, "SELECT")
    }
    assert granted(client, "etl", GROUP, refs["column"]) == {
        ("etl", OBJ.COLUMN, "billing", "bills", (), "amount", "SELECT")
    }
    assert granted(client, "alice", USER, refs["global"]) == {
        ("alice", OBJ.GLOBAL, None, None, (), None, "CREATE")
    }
    assert {p[0] for p in granted(client, None, None, table_ref())} == {"analysts"}
    (table_grant,) = [
        p for p in client.list_privileges("analysts", ROLE, table_ref()) if p.grantInfo.privilege == "INSERT"
    ]
    assert (table_grant.grantInfo.grantor, table_grant.grantInfo.grantorType) == ("admin", ROLE)
    assert table_grant.grantInfo.grantOption is True
    assert table_grant.grantInfo.createTime > 0


def test_grant_errors(client: HMSClient) -> None:
    select = privilege(table_ref(), "alice", USER, "SELECT")
    client.grant_privileges(ttypes.PrivilegeBag([select]))
    with pytest.raises(ttypes.MetaException, match="already granted"):
        client.grant_privileges(ttypes.PrivilegeBag([select]))
    client.grant_privileges(
        ttypes.PrivilegeBag([privilege(table_ref(), "alice", USER, "SELECT", grantor="bob")])
    )
    with pytest.raises(ttypes.MetaException):
        db_ref = ttypes.HiveObjectRef(OBJ.DATABASE, "no_such_db", None, None, None)
        client.grant_privileges(ttypes.PrivilegeBag([privilege(db_ref, "alice", USER, "SELECT")]))
    with pytest.raises(ttypes.MetaException):
        client.grant_privileges(ttypes.PrivilegeBag([privilege(table_ref(), "nobody", ROLE, "SELECT")]))
    # As in the metastore, a grant on a table that does not exist is silently ignored.
    missing = ttypes.HiveObjectRef(OBJ.TABLE, "billing", "missing", None, None)
    assert client.grant_privileges(ttypes.PrivilegeBag([privilege(missing, "alice", USER, "SELECT")])) is True
    assert granted(client, "alice", USER, missing) == set()


def test_revoke(client: HMSClient) -> None:
    bag = ttypes.PrivilegeBag([privilege(table_ref(), "alice", USER, "SELECT,UPDATE", option=True)])
    client.grant_privileges(bag)
    client.revoke_privileges(ttypes.PrivilegeBag([privilege(table_ref(), "alice", USER, "update")]))
    assert {p[-1] for p in granted(client, "alice", USER, table_ref())} == {"SELECT"}
    with pytest.raises(ttypes.MetaException, match="No grant"):
        client.revoke_privileges(ttypes.PrivilegeBag([privilege(table_ref(), "alice", USER, "DELETE")]))
    option_only = ttypes.GrantRevokePrivilegeRequest(
        ttypes.GrantRevokeType.REVOKE,
        ttypes.PrivilegeBag([privilege(table_ref(), "alice", USER, "SELECT")]),
        revokeGrantOption=True,
    )
    assert client.grant_revoke_privileges(option_only).success is True
    (left,) = client.list_privileges("alice", USER, table_ref())
    assert left.grantInfo.grantOption is False


def test_grants_follow_their_objects(client: HMSClient) -> None:
    part_ref = ttypes.HiveObjectRef(OBJ.PARTITION, "billing", "bills", ["2024-01-01"], None)
    client.grant_privileges(
        ttypes.PrivilegeBag(
            [privilege(table_ref(), "alice", USER, "SELECT"), privilege(part_ref, "bob", USER, "SELECT")]
        )
    )
    table = client.get_table("billing", "bills")
    table.tableName = "invoices"
    client.alter_table("billing", "bills", table)
    renamed = ttypes.HiveObjectRef(OBJ.TABLE, "billing", "invoices", None, None)
    assert granted(client, "alice", USER, renamed) == {
        ("alice", OBJ.TABLE, "billing", "invoices", (), None, "SELECT")
    }
    client.drop_partition("billing", "invoices", ["2024-01-01"], False)
    assert granted(client, "bob", USER, None) == set()
    client.drop_table("billing", "invoices", False)
    assert granted(client, "alice", USER, None) == set()


def test_table_created_with_privileges_gets_grants(client: HMSClient) -> None:
    table = client.get_table("billing", "bills")
    table.tableName = "with_privs"
    info = ttypes.PrivilegeGrantInfo("ALL", 0, "creator", USER, True)
    table.privileges = ttypes.PrincipalPrivilegeSet({"creator": [info]}, None, None)
    client.create_table(table)
    assert client.get_table("billing", "with_privs").privileges is None
    ref = ttypes.HiveObjectRef(OBJ.TABLE, "billing", "with_privs", None, None)
    assert granted(client, "creator", USER, ref) == {
        ("creator", OBJ.TABLE, "billing", "with_privs", (), None, "ALL")
    }


def test_privilege_set_includes_groups_and_role_hierarchy(client: HMSClient) -> None:
    client.create_role(ttypes.Role("readers", 0, "admin"))
    client.create_role(ttypes.Role("analysts", 0, "admin"))
    client.grant_role("readers", "analysts", ROLE, "admin", ROLE, False)
    client.grant_role("analysts", "alice", USER, "admin", ROLE, False)
    client.grant_privileges(
        ttypes.PrivilegeBag(
            [
                privilege(table_ref(), "readers", ROLE, "SELECT"),
                privilege(table_ref(), "etl", GROUP, "INSERT"),
                privilege(table_ref(), "alice", USER, "UPDATE"),
            ]
        )
    )
    held = client.get_privilege_set(table_ref(), "alice", ["etl"])
    assert [i.privilege for i in held.userPrivileges["alice"]] == ["UPDATE"]
    assert [i.privilege for i in held.groupPrivileges["etl"]] == ["INSERT"]
    assert [i.privilege for i in held.rolePrivileges["readers"]] == ["SELECT"]
    assert set(held.rolePrivileges) == {"analysts", "readers", "public"}
