"""Partitions of the embedded metastore through hmsclient: names, locations, the metastore's
errors, and the filter language of get_partitions_by_filter."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
from hmsclient import HMSClient
from hmsclient.genthrift.hive_metastore import ThriftHiveMetastore, ttypes

from tandem_dev.embedded.metastore import MetastoreServer

pytestmark = pytest.mark.integration

WAREHOUSE = "hdfs://nn1:8020/warehouse"
TABLE_LOCATION = f"{WAREHOUSE}/sales.db/orders"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MetastoreServer]:
    with MetastoreServer(tmp_path_factory.mktemp("hms") / "metastore.db", warehouse=WAREHOUSE) as hms:
        yield hms


@pytest.fixture
def client(server: MetastoreServer) -> Iterator[HMSClient]:
    """A fresh ``sales.orders`` (ds string, region string, hr int) for every test."""
    with HMSClient(host="127.0.0.1", port=server.port) as hms_client:
        if "sales" in hms_client.get_all_databases():
            hms_client.drop_database("sales", True, True)
        hms_client.create_database(ttypes.Database(name="sales"))
        keys = [("DS", "string"), ("region", "string"), ("hr", "int")]
        hms_client.create_table(table("orders", keys))
        yield hms_client


def storage(location: str | None = None) -> ttypes.StorageDescriptor:
    return ttypes.StorageDescriptor(
        cols=[ttypes.FieldSchema("id", "bigint", "")],
        location=location,
        serdeInfo=ttypes.SerDeInfo("s", "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe", {}),
    )


def table(name: str, keys: list[tuple[str, str]]) -> ttypes.Table:
    return ttypes.Table(
        tableName=name,
        dbName="sales",
        sd=storage(),
        partitionKeys=[ttypes.FieldSchema(k, t, "") for k, t in keys],
        parameters={},
        tableType="MANAGED_TABLE",
    )


def part(*values: str, location: str | None = None, params: dict[str, str] | None = None) -> ttypes.Partition:
    return ttypes.Partition(
        values=list(values), dbName="sales", tableName="orders", sd=storage(location), parameters=params
    )


def add_partition(client: HMSClient, partition: ttypes.Partition) -> ttypes.Partition:
    """The Thrift call itself (HMSClient shadows it with a helper taking a table and values)."""
    added: ttypes.Partition = ThriftHiveMetastore.Client.add_partition(client, partition)
    return added


# -- names and locations ---------------------------------------------------------------------------
def test_default_location_and_name_are_escaped_like_warehouse(client: HMSClient) -> None:
    added = add_partition(client, part("2024-01-01", "eu/west:1=x y", "7"))
    expected_name = "ds=2024-01-01/region=eu%2Fwest%3A1%3Dx y/hr=7"
    assert added.sd.location == f"{TABLE_LOCATION}/{expected_name}"
    assert client.get_partition_names("sales", "orders", -1) == [expected_name]
    got = client.get_partition_by_name("sales", "orders", expected_name)
    assert got.values == ["2024-01-01", "eu/west:1=x y", "7"]
    assert got.sd.location == added.sd.location
    assert client.partition_name_to_vals(expected_name) == ["2024-01-01", "eu/west:1=x y", "7"]
    assert client.partition_name_to_spec(expected_name) == {
        "ds": "2024-01-01",
        "region": "eu/west:1=x y",
        "hr": "7",
    }
    assert client.partition_name_to_vals("") == []


def test_empty_value_is_the_default_partition(client: HMSClient) -> None:
    add_partition(client, part("2024-01-01", "", "1"))
    assert client.get_partition_names("sales", "orders", -1) == [
        "ds=2024-01-01/region=__HIVE_DEFAULT_PARTITION__/hr=1"
    ]


def test_given_location_is_kept_and_qualified(client: HMSClient) -> None:
    add_partition(client, part("2024-01-01", "eu", "1", location="/landing/2024-01-01"))
    (got,) = client.get_partitions("sales", "orders", -1)
    assert got.sd.location == "hdfs://nn1:8020/landing/2024-01-01"


def test_partition_fields_round_trip(client: HMSClient) -> None:
    sent = part("2024-01-01", "eu", "1", params={"numFiles": "3"})
    sent.sd.inputFormat = "org.apache.hadoop.hive.ql.io.orc.OrcInputFormat"
    sent.lastAccessTime = 42
    add_partition(client, copy.deepcopy(sent))
    got = client.get_partition("sales", "orders", ["2024-01-01", "eu", "1"])
    assert (got.dbName, got.tableName, got.lastAccessTime) == ("sales", "orders", 42)
    assert got.sd.inputFormat == sent.sd.inputFormat
    assert got.parameters["numFiles"] == "3"
    assert got.createTime > 0
    assert "transient_lastDdlTime" in got.parameters


# -- errors ----------------------------------------------------------------------------------------
def test_values_must_match_the_partition_keys(client: HMSClient) -> None:
    with pytest.raises(ttypes.MetaException):
        add_partition(client, part("2024-01-01", "eu"))
    with pytest.raises(ttypes.MetaException):
        client.get_partition("sales", "orders", ["2024-01-01"])


def test_add_errors(client: HMSClient) -> None:
    missing = part("1", "eu", "1")
    missing.tableName = "missing"
    with pytest.raises(ttypes.InvalidObjectException):
        add_partition(client, missing)
    add_partition(client, part("1", "eu", "1"))
    with pytest.raises(ttypes.AlreadyExistsException):
        add_partition(client, part("1", "eu", "1"))


def test_add_partitions_is_all_or_nothing(client: HMSClient) -> None:
    add_partition(client, part("1", "eu", "1"))
    with pytest.raises(ttypes.AlreadyExistsException):
        client.add_partitions([part("2", "eu", "1"), part("1", "eu", "1")])
    with pytest.raises(ttypes.MetaException):
        client.add_partitions([part("3", "eu", "1"), part("3", "eu", "1")])
    assert client.get_partition_names("sales", "orders", -1) == ["ds=1/region=eu/hr=1"]
    assert client.add_partitions([part("2", "eu", "1"), part("3", "eu", "1")]) == 2


def test_add_partitions_req_if_not_exists(client: HMSClient) -> None:
    add_partition(client, part("1", "eu", "1"))
    request = ttypes.AddPartitionsRequest(
        "sales", "orders", [part("1", "eu", "1"), part("2", "eu", "1")], True
    )
    result = client.add_partitions_req(request)
    assert [p.values for p in result.partitions] == [["2", "eu", "1"]]


def test_reads_of_a_missing_table(client: HMSClient) -> None:
    assert client.get_partitions("sales", "missing", -1) == []
    assert client.get_partition_names("sales", "missing", -1) == []
    with pytest.raises(ttypes.NoSuchObjectException):
        client.get_partitions_by_filter("sales", "missing", "ds='1'", -1)
    with pytest.raises(ttypes.NoSuchObjectException):
        client.get_partition("sales", "missing", ["1"])
    with pytest.raises(ttypes.NoSuchObjectException):
        client.get_partition_by_name("sales", "orders", "ds=1/region=eu/hr=1")
    with pytest.raises(ttypes.NoSuchObjectException):
        client.get_partition_by_name("sales", "orders", "ds=1")


# -- listing ---------------------------------------------------------------------------------------
def test_listing_orders_by_name_and_limits(client: HMSClient) -> None:
    client.add_partitions([part("2", "us", "1"), part("1", "eu", "1"), part("1", "ap", "2")])
    names = ["ds=1/region=ap/hr=2", "ds=1/region=eu/hr=1", "ds=2/region=us/hr=1"]
    assert client.get_partition_names("sales", "orders", -1) == names
    assert client.get_partition_names("sales", "orders", 2) == names[:2]
    assert [p.values for p in client.get_partitions("sales", "orders", 1)] == [["1", "ap", "2"]]
    by_name = client.get_partitions_by_names("sales", "orders", [names[2], "ds=9/region=x/hr=0", names[0]])
    assert [p.values for p in by_name] == [["1", "ap", "2"], ["2", "us", "1"]]
    assert [p.values[1] for p in client.get_partitions_ps("sales", "orders", ["1"], -1)] == ["ap", "eu"]
    assert client.get_partition_names_ps("sales", "orders", ["", "us"], -1) == [names[2]]


# -- drop and alter --------------------------------------------------------------------------------
def test_drop_partitions(client: HMSClient) -> None:
    client.add_partitions([part("1", "eu", "1"), part("2", "eu", "1"), part("3", "eu", "1")])
    assert client.drop_partition("sales", "orders", ["1", "eu", "1"], False) is True
    with pytest.raises(ttypes.NoSuchObjectException):
        client.drop_partition("sales", "orders", ["1", "eu", "1"], False)
    assert client.drop_partition_by_name("sales", "orders", "ds=2/region=eu/hr=1", False) is True
    result = client.drop_partitions("sales", "orders", ["ds=3/region=eu/hr=1"], True)
    assert [p.values for p in result.partitions] == [["3", "eu", "1"]]
    assert client.get_partition_names("sales", "orders", -1) == []
    request = ttypes.DropPartitionsRequest(
        "sales", "orders", ttypes.RequestPartsSpec(names=["ds=9/region=eu/hr=1"]), ifExists=False
    )
    with pytest.raises(ttypes.NoSuchObjectException):
        client.drop_partitions_req(request)


def test_alter_partition(client: HMSClient) -> None:
    add_partition(client, part("1", "eu", "1"))
    current = client.get_partition("sales", "orders", ["1", "eu", "1"])
    current.parameters["numRows"] = "10"
    current.sd.location = "/moved/here"
    client.alter_partition("sales", "orders", current)
    got = client.get_partition("sales", "orders", ["1", "eu", "1"])
    assert got.parameters["numRows"] == "10"
    assert got.sd.location == "hdfs://nn1:8020/moved/here"
    assert got.createTime == current.createTime
    with pytest.raises(ttypes.InvalidOperationException):
        client.alter_partition("sales", "orders", part("9", "eu", "1"))
    with pytest.raises(ttypes.InvalidOperationException):
        client.alter_partitions("sales", "orders", [current, part("9", "eu", "1")])
    with pytest.raises(ttypes.InvalidOperationException):
        client.alter_partition("sales", "missing", current)


# -- filters ---------------------------------------------------------------------------------------
FILTER_PARTS = [
    ("2024-01-01", "eu", "1"),
    ("2024-01-02", "eu", "2"),
    ("2024-01-02", "us", "10"),
    ("2024-01-03", "ap", "3"),
]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("", [0, 1, 2, 3]),
        ("ds = '2024-01-02'", [1, 2]),
        ('ds="2024-01-02"', [1, 2]),
        ("DS = '2024-01-02' and REGION = 'us'", [2]),
        ("ds >= '2024-01-02' AND region = 'eu'", [1]),
        ("region = 'us' OR region = 'ap'", [2, 3]),
        ("(region = 'us' or region = 'ap') and ds < '2024-01-03'", [2]),
        ("region = 'eu' and ds = '2024-01-01' or region = 'ap'", [0, 3]),
        ("ds <> '2024-01-02'", [0, 3]),
        ("ds != '2024-01-02'", [0, 3]),
        ("ds > 2024-01-01", [1, 2, 3]),
        ("'2024-01-02' <= ds", [1, 2, 3]),
        ("hr > 2", [2, 3]),
        ("hr <= 2", [0, 1]),
        ("3 > hr", [0, 1]),
        ("ds BETWEEN '2024-01-01' AND '2024-01-02'", [0, 1, 2]),
        ("ds NOT BETWEEN '2024-01-01' AND '2024-01-02'", [3]),
        ("hr between 2 and 3", [1, 3]),
        ("region LIKE 'e.*'", [0, 1]),
        ("(region) IN ('us', 'ap')", [2, 3]),
        ("(region) NOT IN ('eu')", [2, 3]),
        ("hr in (1, 10) and ds = '2024-01-02'", [2]),
    ],
)
def test_filter(client: HMSClient, expression: str, expected: list[int]) -> None:
    client.add_partitions([part(*values) for values in FILTER_PARTS])
    found = client.get_partitions_by_filter("sales", "orders", expression, -1)
    assert sorted(tuple(p.values) for p in found) == sorted(FILTER_PARTS[i] for i in expected)
    assert client.get_num_partitions_by_filter("sales", "orders", expression) == len(expected)


@pytest.mark.parametrize(
    "expression",
    [
        "nokey = 'x'",
        "ds = ",
        "ds = 'a' AND",
        "(ds = 'a'",
        "ds = 'a')",
        "ds == 'a'",
        "hr = '1'",
        "ds = 5",
        "'e.*' LIKE region",
        "hr LIKE '1'",
        "(region) IN ('eu', 1)",
        "(region) IN ()",
    ],
)
def test_bad_filters_are_meta_exceptions(client: HMSClient, expression: str) -> None:
    with pytest.raises(ttypes.MetaException):
        client.get_partitions_by_filter("sales", "orders", expression, -1)


def test_filter_limit(client: HMSClient) -> None:
    client.add_partitions([part(*values) for values in FILTER_PARTS])
    assert len(client.get_partitions_by_filter("sales", "orders", "region = 'eu'", 1)) == 1


def test_rename_partition_gives_new_values_and_the_default_location_of_its_new_name(
    client: HMSClient,
) -> None:
    """HiveAlterHandler.alterPartition with ``part_vals`` (Spark's ALTER TABLE ... PARTITION ...
    RENAME TO PARTITION): a managed table's partition moves to its new name's default location;
    a name taken or a partition missing is InvalidOperationException (what HMSHandler turns both
    into: the call declares no other)."""
    client.add_partitions([part("2024-01-01", "eu", "1"), part("2024-01-02", "eu", "1")])
    client.rename_partition("sales", "orders", ["2024-01-01", "eu", "1"], part("2024-01-01", "e/u", "1"))
    assert sorted(client.get_partition_names("sales", "orders", -1)) == [
        "ds=2024-01-01/region=e%2Fu/hr=1",
        "ds=2024-01-02/region=eu/hr=1",
    ]
    moved = client.get_partition("sales", "orders", ["2024-01-01", "e/u", "1"])
    assert moved.sd.location == f"{TABLE_LOCATION}/ds=2024-01-01/region=e%2Fu/hr=1"
    with pytest.raises(ttypes.InvalidOperationException, match="already exists"):
        client.rename_partition("sales", "orders", ["2024-01-02", "eu", "1"], part("2024-01-01", "e/u", "1"))
    with pytest.raises(ttypes.InvalidOperationException, match="does not exist"):
        client.rename_partition("sales", "orders", ["2024-01-09", "eu", "1"], part("2024-01-10", "eu", "1"))
