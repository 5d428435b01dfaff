"""The embedded metastore driven by hmsclient, a client not written for it: lifecycle,
databases, tables, the metastore's exceptions and persistence across restarts."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hmsclient import HMSClient
from hmsclient.genthrift.fb303.ttypes import fb_status
from hmsclient.genthrift.hive_metastore import ttypes
from thrift.Thrift import TApplicationException
from thrift.transport.TTransport import TTransportException

from tandem.errors import EmbeddedError
from tandem_dev.embedded.metastore import MetastoreServer

pytestmark = pytest.mark.integration

WAREHOUSE = "hdfs://nn1:8020/warehouse"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MetastoreServer]:
    with MetastoreServer(tmp_path / "metastore.db", warehouse=WAREHOUSE) as hms:
        yield hms


@pytest.fixture
def client(server: MetastoreServer) -> Iterator[HMSClient]:
    with HMSClient(host="127.0.0.1", port=server.port) as hms_client:
        yield hms_client


def make_table(
    db: str,
    name: str,
    *,
    keys: tuple[str, ...] = (),
    location: str | None = None,
    table_type: str = "MANAGED_TABLE",
    parameters: dict[str, str] | None = None,
) -> ttypes.Table:
    sd = ttypes.StorageDescriptor(
        cols=[ttypes.FieldSchema("id", "bigint", "key"), ttypes.FieldSchema("Name", "string", "")],
        location=location,
        inputFormat="org.apache.hadoop.mapred.TextInputFormat",
        outputFormat="org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
        serdeInfo=ttypes.SerDeInfo(
            "serde", "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe", {"field.delim": ","}
        ),
    )
    return ttypes.Table(
        tableName=name,
        dbName=db,
        owner="etl",
        sd=sd,
        partitionKeys=[ttypes.FieldSchema(k, "string", "") for k in keys],
        parameters=dict(parameters or {}),
        tableType=table_type,
    )


# -- lifecycle -------------------------------------------------------------------------------------
def test_listens_on_loopback_on_a_free_port(server: MetastoreServer) -> None:
    assert server.port > 0
    assert server.uri == f"thrift://127.0.0.1:{server.port}"
    with socket.create_connection(("127.0.0.1", server.port), timeout=5):
        pass  # the hook's reachability probe: connect and close without a word


def test_port_in_use_is_an_embedded_error(server: MetastoreServer, tmp_path: Path) -> None:
    other = MetastoreServer(tmp_path / "other.db", port=server.port)
    with pytest.raises(EmbeddedError, match="in use"):
        other.start()
    other.stop()  # never started: still fine


def test_stop_is_idempotent_and_closes_clients(tmp_path: Path) -> None:
    hms = MetastoreServer(tmp_path / "metastore.db")
    hms.start()
    port = hms.port
    connected = HMSClient(host="127.0.0.1", port=port).open()
    assert connected.get_all_databases() == ["default"]
    hms.stop()
    hms.stop()
    with pytest.raises((TTransportException, OSError)):
        connected.get_all_databases()
    with pytest.raises((TTransportException, OSError)):
        HMSClient(host="127.0.0.1", port=port).open()
    leftovers = [
        t
        for t in threading.enumerate()
        if t.name.startswith(f"metastore-{port}") or t.name.endswith(str(port))
    ]
    assert leftovers == []


def test_stopped_server_uses_no_cpu(tmp_path: Path) -> None:
    hms = MetastoreServer(tmp_path / "metastore.db")
    hms.start()
    hms.stop()
    before = time.process_time()
    time.sleep(0.3)
    assert time.process_time() - before < 0.1  # a spinning accept loop would burn the whole slice


def test_unimplemented_call_fails_loudly_and_the_connection_survives(client: HMSClient) -> None:
    with pytest.raises(TApplicationException) as error:
        client.get_type("anything")
    assert "get_type" in str(error.value)
    assert error.value.type == TApplicationException.UNKNOWN_METHOD
    assert client.get_all_databases() == ["default"]


def test_fb303_and_configuration(client: HMSClient) -> None:
    assert client.getStatus() == fb_status.ALIVE
    assert 0 < client.aliveSince() <= time.time()
    assert client.getName()
    assert client.getVersion()
    assert client.getMetaConf("hive.metastore.warehouse.dir") == WAREHOUSE
    with pytest.raises(ttypes.MetaException):
        client.getMetaConf("no.such.key")
    assert client.get_config_value("hive.metastore.warehouse.dir", "x") == WAREHOUSE
    assert client.get_config_value("hive.unknown", "fallback") == "fallback"
    with pytest.raises(ttypes.ConfigValSecurityException):
        client.get_config_value("javax.jdo.option.ConnectionPassword", "")
    assert client.get_current_notification_id() == 0
    assert client.set_ugi("alice", ["staff"]) == ["staff", "alice"]


# -- databases -------------------------------------------------------------------------------------
def test_default_database_is_the_warehouse(client: HMSClient) -> None:
    db = client.get_database("DEFAULT")
    assert db.name == "default"
    assert db.locationUri == WAREHOUSE


def test_create_database_lowercases_and_defaults_location(client: HMSClient) -> None:
    client.create_database(ttypes.Database(name="Billing", description="bills", parameters={"team": "fin"}))
    db = client.get_database("billing")
    assert db.name == "billing"
    assert db.locationUri == f"{WAREHOUSE}/billing.db"
    assert (db.description, db.parameters) == ("bills", {"team": "fin"})
    assert db.ownerType == ttypes.PrincipalType.USER


def test_database_location_is_qualified_with_the_warehouse_file_system(client: HMSClient) -> None:
    client.create_database(ttypes.Database(name="raw", locationUri="/data//raw/"))
    assert client.get_database("raw").locationUri == "hdfs://nn1:8020/data/raw"
    client.create_database(ttypes.Database(name="ext", locationUri="s3a://bucket/ext"))
    assert client.get_database("ext").locationUri == "s3a://bucket/ext"


def test_database_errors(client: HMSClient) -> None:
    client.create_database(ttypes.Database(name="sales"))
    with pytest.raises(ttypes.AlreadyExistsException):
        client.create_database(ttypes.Database(name="SALES"))
    with pytest.raises(ttypes.InvalidObjectException):
        client.create_database(ttypes.Database(name="bad-name"))
    with pytest.raises(ttypes.NoSuchObjectException):
        client.get_database("nope")
    with pytest.raises(ttypes.NoSuchObjectException):
        client.drop_database("nope", False, False)
    with pytest.raises(ttypes.MetaException):
        client.drop_database("default", False, True)
    with pytest.raises(ttypes.NoSuchObjectException):
        client.alter_database("nope", ttypes.Database(name="nope"))


def test_get_databases_patterns(client: HMSClient) -> None:
    for name in ("billing", "billing_mart", "sales"):
        client.create_database(ttypes.Database(name=name))
    assert client.get_all_databases() == ["billing", "billing_mart", "default", "sales"]
    assert client.get_databases("*") == ["billing", "billing_mart", "default", "sales"]
    assert client.get_databases("bill*") == ["billing", "billing_mart"]
    assert client.get_databases("SALES|def*") == ["default", "sales"]
    assert client.get_databases("nothing*") == []


def test_drop_database_needs_cascade_when_not_empty(client: HMSClient) -> None:
    client.create_database(ttypes.Database(name="sales"))
    client.create_table(make_table("sales", "orders", keys=("ds",)))
    client.add_partition(client.get_table("sales", "orders"), ["2024-01-01"])
    with pytest.raises(ttypes.InvalidOperationException):
        client.drop_database("sales", False, False)
    client.drop_database("sales", False, True)
    assert client.get_all_databases() == ["default"]
    client.create_database(ttypes.Database(name="sales"))
    client.create_table(make_table("sales", "orders", keys=("ds",)))
    assert client.get_partitions("sales", "orders", -1) == []


def test_alter_database_changes_parameters_and_owner(client: HMSClient) -> None:
    client.create_database(ttypes.Database(name="sales", description="d"))
    client.alter_database(
        "sales",
        ttypes.Database(
            name="sales", parameters={"k": "v"}, ownerName="ops", ownerType=ttypes.PrincipalType.ROLE
        ),
    )
    db = client.get_database("sales")
    assert (db.parameters, db.ownerName, db.ownerType) == ({"k": "v"}, "ops", ttypes.PrincipalType.ROLE)
    assert db.description == "d"
    assert db.locationUri == f"{WAREHOUSE}/sales.db"


# -- tables ----------------------------------------------------------------------------------------
def test_create_table_defaults_location_and_create_time(client: HMSClient) -> None:
    client.create_database(ttypes.Database(name="billing"))
    before = int(time.time())
    client.create_table(make_table("Billing", "Customers"))
    table = client.get_table("billing", "CUSTOMERS")
    assert (table.dbName, table.tableName) == ("billing", "customers")
    assert table.sd.location == f"{WAREHOUSE}/billing.db/customers"
    assert before <= table.createTime <= int(time.time())
    assert int(table.parameters["transient_lastDdlTime"]) >= before
    client.create_table(make_table("default", "in_default"))
    assert client.get_table("default", "in_default").sd.location == f"{WAREHOUSE}/in_default"


def test_table_fields_round_trip(client: HMSClient) -> None:
    client.create_database(ttypes.Database(name="billing"))
    table = make_table("billing", "t", keys=("ds",), parameters={"comment": "c", "x": "y"})
    table.sd.bucketCols = ["id"]
    table.sd.numBuckets = 4
    table.sd.sortCols = [ttypes.Order("id", 1)]
    table.sd.skewedInfo = ttypes.SkewedInfo(["id"], [["1"]], {})
    table.sd.parameters = {"sdkey": "sdval"}
    table.retention = 7
    table.viewExpandedText = "not a view"
    client.create_table(table)
    got = client.get_table("billing", "t")
    assert got.owner == "etl"
    assert [(c.name, c.type, c.comment) for c in got.sd.cols] == [
        ("id", "bigint", "key"),
        ("name", "string", ""),
    ]
    assert got.sd.inputFormat == table.sd.inputFormat
    assert got.sd.serdeInfo == table.sd.serdeInfo
    assert (got.sd.bucketCols, got.sd.numBuckets, got.sd.sortCols) == (["id"], 4, [ttypes.Order("id", 1)])
    assert got.sd.skewedInfo == table.sd.skewedInfo
    assert got.sd.parameters == {"sdkey": "sdval"}
    assert (got.retention, got.viewExpandedText) == (7, "not a view")
    assert {k: v for k, v in got.parameters.items() if k != "transient_lastDdlTime"} == {
        "comment": "c",
        "x": "y",
    }


def test_create_table_errors(client: HMSClient) -> None:
    with pytest.raises(ttypes.InvalidObjectException):
        client.create_table(make_table("no_such_db", "t"))
    client.create_table(make_table("default", "t"))
    with pytest.raises(ttypes.AlreadyExistsException):
        client.create_table(make_table("default", "T"))
    with pytest.raises(ttypes.InvalidObjectException):
        client.create_table(make_table("default", "bad name"))
    with pytest.raises(ttypes.NoSuchObjectException):
        client.get_table("default", "missing")
    with pytest.raises(ttypes.NoSuchObjectException):
        client.drop_table("default", "missing", False)


def test_external_parameter_sets_the_table_type(client: HMSClient) -> None:
    client.create_table(make_table("default", "ext", location="/data/ext", parameters={"EXTERNAL": "TRUE"}))
    table = client.get_table("default", "ext")
    assert table.tableType == "EXTERNAL_TABLE"
    assert table.sd.location == "hdfs://nn1:8020/data/ext"
    table.parameters.pop("EXTERNAL")
    client.alter_table("default", "ext", table)
    assert client.get_table("default", "ext").tableType == "MANAGED_TABLE"


def test_get_tables_patterns_and_objects(client: HMSClient) -> None:
    for name in ("orders", "order_lines", "customers"):
        client.create_table(make_table("default", name))
    assert client.get_all_tables("default") == ["customers", "order_lines", "orders"]
    assert client.get_tables("default", "*") == ["customers", "order_lines", "orders"]
    assert client.get_tables("default", "order*") == ["order_lines", "orders"]
    assert client.get_tables("default", "CUST*|orders") == ["customers", "orders"]
    assert client.get_tables("no_such_db", "*") == []
    found = client.get_table_objects_by_name("default", ["orders", "missing", "CUSTOMERS"])
    assert [t.tableName for t in found] == ["orders", "customers"]
    with pytest.raises(TApplicationException, match="Could not find database"):
        client.get_table_objects_by_name("no_such_db", ["orders"])
    assert client.get_tables_by_type("default", "*", "MANAGED_TABLE") == [
        "customers",
        "order_lines",
        "orders",
    ]
    assert [m.tableName for m in client.get_table_meta("def*", "order*", [])] == ["order_lines", "orders"]


def test_alter_table_and_its_errors(client: HMSClient) -> None:
    client.create_table(make_table("default", "t", keys=("ds",)))
    table = client.get_table("default", "t")
    created = table.createTime
    table.parameters["owner_team"] = "fin"
    table.sd.cols.append(ttypes.FieldSchema("amount", "double", ""))
    client.alter_table_with_environment_context("default", "t", table, ttypes.EnvironmentContext({}))
    got = client.get_table("default", "t")
    assert got.parameters["owner_team"] == "fin"
    assert [c.name for c in got.sd.cols][-1] == "amount"
    assert got.createTime == created
    with pytest.raises(ttypes.InvalidOperationException):
        client.alter_table("default", "missing", make_table("default", "missing"))
    changed_keys = client.get_table("default", "t")
    changed_keys.partitionKeys = [ttypes.FieldSchema("day", "string", "")]
    with pytest.raises(ttypes.InvalidOperationException):
        client.alter_table("default", "t", changed_keys)


def test_rename_moves_a_managed_table_with_its_partitions(client: HMSClient) -> None:
    client.create_database(ttypes.Database(name="billing"))
    client.create_table(make_table("default", "old", keys=("ds",)))
    client.add_partitions(
        [ttypes.Partition(values=["1"], dbName="default", tableName="old", sd=make_table("", "x").sd)]
    )
    table = client.get_table("default", "old")
    table.dbName, table.tableName = "billing", "new"
    client.alter_table("default", "old", table)
    with pytest.raises(ttypes.NoSuchObjectException):
        client.get_table("default", "old")
    moved = client.get_table("billing", "new")
    assert moved.sd.location == f"{WAREHOUSE}/billing.db/new"
    (part,) = client.get_partitions("billing", "new", -1)
    assert (part.dbName, part.tableName) == ("billing", "new")
    assert part.sd.location == f"{WAREHOUSE}/billing.db/new/ds=1"
    other = make_table("default", "other")
    client.create_table(other)
    clash = client.get_table("default", "other")
    clash.dbName, clash.tableName = "billing", "new"
    with pytest.raises(ttypes.InvalidOperationException):
        client.alter_table("default", "other", clash)


def test_rename_keeps_a_managed_table_in_a_location_of_its_own(client: HMSClient) -> None:
    """HiveAlterHandler.alterTable: a managed table whose directory is not ``<db dir>/<name>``
    (``tableInSpecifiedLoc``) is renamed in its metadata only, location and partitions kept
    (before, its metadata pointed at an empty default directory; found by a conformance read)."""
    client.create_table(make_table("default", "custom", keys=("ds",), location="hdfs://nn1:8020/data/custom"))
    client.add_partition(client.get_table("default", "custom"), ["a"])
    table = client.get_table("default", "custom")
    table.tableName = "renamed"
    client.alter_table("default", "custom", table)
    assert client.get_table("default", "renamed").sd.location == "hdfs://nn1:8020/data/custom"
    assert client.get_partition("default", "renamed", ["a"]).sd.location == "hdfs://nn1:8020/data/custom/ds=a"


def test_alter_table_with_cascade_gives_partitions_the_new_columns(client: HMSClient) -> None:
    """``cascade``, asked either way a client asks it (the call's flag, or CASCADE in the
    environment context as HiveMetaStoreClient sends it): changed columns reach every partition."""
    for name, alter in (
        ("flag", lambda t: client.alter_table_with_cascade("default", "flag", t, True)),
        (
            "context",
            lambda t: client.alter_table_with_environment_context(
                "default", "context", t, ttypes.EnvironmentContext(properties={"CASCADE": "true"})
            ),
        ),
    ):
        client.create_table(make_table("default", name, keys=("ds",)))
        client.add_partition(client.get_table("default", name), ["a"])
        table = client.get_table("default", name)
        table.sd.cols = [*table.sd.cols, ttypes.FieldSchema("added", "string", "")]
        alter(table)
        assert [f.name for f in client.get_partition("default", name, ["a"]).sd.cols] == [
            "id",
            "name",
            "added",
        ]


def test_functions_and_statistics_are_read_as_none_kept(client: HMSClient) -> None:
    """No permanent functions nor column statistics are kept: lookups find none, as a client
    expects of a metastore where none were made (Spark's function lookup, planners' stats)."""
    client.create_table(make_table("default", "s", keys=("ds",)))
    with pytest.raises(ttypes.NoSuchObjectException):
        client.get_function("default", "my_udf")
    asked = ttypes.TableStatsRequest(dbName="default", tblName="s", colNames=["id"])
    assert client.get_table_statistics_req(asked).tableStats == []
    parts = ttypes.PartitionsStatsRequest(dbName="default", tblName="s", colNames=["id"], partNames=["ds=a"])
    assert client.get_partitions_statistics_req(parts).partStats == {}


def test_drop_table_drops_its_partitions(client: HMSClient) -> None:
    client.create_table(make_table("default", "t", keys=("ds",)))
    client.add_partition(client.get_table("default", "t"), ["1"])
    client.drop_table("default", "T", True)
    assert client.get_all_tables("default") == []
    client.create_table(make_table("default", "t", keys=("ds",)))
    assert client.get_partition_names("default", "t", -1) == []


def test_fields_and_schema(client: HMSClient) -> None:
    client.create_table(make_table("default", "t", keys=("ds",)))
    assert [f.name for f in client.get_fields("default", "t")] == ["id", "name"]
    assert [f.name for f in client.get_schema("default", "t")] == ["id", "name", "ds"]
    with pytest.raises(ttypes.UnknownTableException):
        client.get_fields("default", "missing")


# -- concurrency and persistence -------------------------------------------------------------------
def test_concurrent_clients(server: MetastoreServer, client: HMSClient) -> None:
    client.create_table(make_table("default", "t", keys=("worker", "n")))
    table = client.get_table("default", "t")
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            with HMSClient(host="127.0.0.1", port=server.port) as own:
                for n in range(15):
                    own.add_partition(table, [str(worker), str(n)])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(client.get_partition_names("default", "t", -1)) == 60


def test_restart_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "metastore.db"
    with (
        MetastoreServer(path, warehouse=WAREHOUSE) as first,
        HMSClient(host="127.0.0.1", port=first.port) as c,
    ):
        c.create_database(ttypes.Database(name="billing", parameters={"k": "v"}))
        c.create_table(make_table("billing", "customers", keys=("ds",)))
        c.add_partition(c.get_table("billing", "customers"), ["2024-01-01"])
        c.create_role(ttypes.Role(roleName="analysts", ownerName="admin"))
        c.grant_role(
            "analysts", "alice", ttypes.PrincipalType.USER, "admin", ttypes.PrincipalType.ROLE, False
        )
        select = ttypes.HiveObjectPrivilege(
            ttypes.HiveObjectRef(ttypes.HiveObjectType.TABLE, "billing", "customers", None, None),
            "analysts",
            ttypes.PrincipalType.ROLE,
            ttypes.PrivilegeGrantInfo("SELECT", 0, "admin", ttypes.PrincipalType.ROLE, False),
        )
        c.grant_privileges(ttypes.PrivilegeBag([select]))
        table_before = c.get_table("billing", "customers")
    with (
        MetastoreServer(path, warehouse=WAREHOUSE) as second,
        HMSClient(host="127.0.0.1", port=second.port) as c,
    ):
        assert c.get_all_databases() == ["billing", "default"]
        assert c.get_database("billing").parameters == {"k": "v"}
        assert c.get_table("billing", "customers") == table_before
        assert c.get_partition_names("billing", "customers", -1) == ["ds=2024-01-01"]
        assert c.get_role_names() == ["admin", "analysts", "public"]
        assert [r.roleName for r in c.list_roles("alice", ttypes.PrincipalType.USER)] == [
            "analysts",
            "public",
        ]
        (grant,) = c.list_privileges("analysts", ttypes.PrincipalType.ROLE, None)
        assert grant.hiveObject == select.hiveObject
        assert grant.grantInfo.privilege == "SELECT"
