"""User-data syncs against the embedded clusters: each reports what it changed, and a second
pass changes nothing."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hmsclient.genthrift.hive_metastore.ttypes import (
    Database,
    FieldSchema,
    HiveObjectPrivilege,
    HiveObjectRef,
    HiveObjectType,
    PrincipalType,
    PrivilegeBag,
    PrivilegeGrantInfo,
    Role,
    SerDeInfo,
    StorageDescriptor,
    Table,
)

from tandem import userdata
from tandem.capture import Capture, apply_grants, capture
from tandem.metastore import Metastore
from tandem.policy import load_topology
from tandem.runtime import Clusters

pytestmark = pytest.mark.integration

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture
def clusters(airflow_conns) -> Clusters:
    return Clusters(load_topology(PROJECT / "include" / "clusters.yaml"))


def test_tree_metadata_follows_the_source(clusters):
    src, dst = clusters.hdfs("primary"), clusters.hdfs("standby")
    for hdfs in (src, dst):
        hdfs.write("/ud/tree/a/one.txt", b"1")
        hdfs.write("/ud/tree/two.txt", b"2")
    src.set_owner("/ud/tree/a/one.txt", "ann", "finance")
    src.set_permission("/ud/tree/a", "750")
    src.set_acl("/ud/tree/two.txt", ["user:auditor:r--"])
    dst.set_acl("/ud/tree/a/one.txt", ["user:intruder:rwx"])  # drift on the standby

    first = userdata.sync_tree_metadata(src, "/ud/tree", dst, "/ud/tree")
    # the drifted ACL also widened one.txt's group bits (its mask): two permission fixes
    assert first == {"owner_changes": 1, "permission_changes": 2, "acl_changes": 2}
    assert dst.status("/ud/tree/a/one.txt").owner == "ann"
    assert dst.status("/ud/tree/a").permission == "750"
    assert dst.acl_status("/ud/tree/two.txt") == src.acl_status("/ud/tree/two.txt")
    assert "user:intruder:rwx" not in dst.acl_status("/ud/tree/a/one.txt").entries
    assert userdata.sync_tree_metadata(src, "/ud/tree", dst, "/ud/tree") == {
        "owner_changes": 0,
        "permission_changes": 0,
        "acl_changes": 0,
    }


def test_quotas_of_tenant_directories(clusters):
    src, dst = clusters.hdfs("primary"), clusters.hdfs("standby")
    src.mkdirs("/ud/tenant")
    src.set_quota("/ud/tenant", 1000, 10_000_000)
    assert userdata.sync_quotas(src, dst, ["/ud/tenant", "/ud/missing"]) == {"quota_changes": 1}
    usage = dst.quota_usage("/ud/tenant")
    assert (usage.quota, usage.space_quota) == (1000, 10_000_000)
    assert userdata.sync_quotas(src, dst, ["/ud/tenant"]) == {"quota_changes": 0}


def _table(ms: Metastore, db: str, name: str) -> None:
    with ms.session() as c:
        if db not in c.get_all_databases():
            c.create_database(
                Database(name=db, description="", locationUri=f"hdfs://x/w/{db}.db", parameters={})
            )
        if name not in c.get_all_tables(db):
            sd = StorageDescriptor(
                cols=[FieldSchema("id", "int", "")],
                location=f"hdfs://x/w/{db}.db/{name}",
                serdeInfo=SerDeInfo(parameters={}),
                parameters={},
            )
            c.create_table(
                Table(
                    tableName=name,
                    dbName=db,
                    owner="o",
                    sd=sd,
                    partitionKeys=[],
                    parameters={},
                    tableType="MANAGED_TABLE",
                )
            )


def _grant(
    ms: Metastore, obj: HiveObjectRef, principal: str, kind: int, privilege: str, revoke: bool = False
) -> None:
    info = PrivilegeGrantInfo(
        privilege=privilege,
        createTime=int(time.time()),
        grantor="admin",
        grantorType=PrincipalType.USER,
        grantOption=False,
    )
    bag = PrivilegeBag(privileges=[HiveObjectPrivilege(obj, principal, kind, info)])
    with ms.session() as c:
        (c.revoke_privileges if revoke else c.grant_privileges)(bag)


def test_roles_memberships_and_grants_follow_the_source(clusters):
    src, dst = clusters.metastore("primary"), clusters.metastore("standby")
    for ms in (src, dst):
        _table(ms, "udb", "orders")
    with src.session() as c:
        c.create_role(Role(roleName="ud_analyst", ownerName="admin"))
        c.grant_role("ud_analyst", "bob", PrincipalType.USER, "admin", PrincipalType.USER, False)
    table = HiveObjectRef(objectType=HiveObjectType.TABLE, dbName="udb", objectName="orders")
    _grant(src, table, "ud_analyst", PrincipalType.ROLE, "SELECT")
    _grant(dst, table, "mallory", PrincipalType.USER, "ALL")  # only on the standby: revoked

    # what a restore point stores: the capture, through its JSON form
    captured = Capture.from_json(
        json.loads(json.dumps(capture(src, [("hive", "udb.orders")], user_data=True).to_json()))
    )
    _grant(src, table, "eve", PrincipalType.USER, "ALL")  # granted after the point: not synced

    assert apply_grants(captured, dst) == {
        "roles_created": 1,
        "role_grants_added": 1,
        "grants_added": 1,
        "grants_revoked": 1,
    }
    with dst.session() as c:
        assert "ud_analyst" in c.get_role_names()
        privileges = {(p.principalName, p.grantInfo.privilege) for p in c.list_privileges(None, None, table)}
    assert privileges == {("ud_analyst", "SELECT")}

    assert apply_grants(captured, dst) == {
        "roles_created": 0,
        "role_grants_added": 0,
        "grants_added": 0,
        "grants_revoked": 0,
    }
