import pytest

from tandem.metastore import (
    PartitionInfo,
    TableInfo,
    TableRef,
    foreign_location,
    location_path,
    rebase_location,
)


def test_table_ref_parses_and_lowercases():
    assert TableRef.parse("Billing.Customers") == TableRef("billing", "customers")
    for bad in ("customers", ".x", "a.", "a.b.c"):
        with pytest.raises(ValueError, match=r"db\.table"):
            TableRef.parse(bad)


def test_locations_become_paths_and_rebase_onto_another_nameservice():
    assert (
        location_path("hdfs://primary/warehouse/billing.db/customers/") == "/warehouse/billing.db/customers"
    )
    assert location_path("/plain/path") == "/plain/path"
    assert rebase_location("hdfs://primary:8020/w/t", "hdfs://standby") == "hdfs://standby/w/t"


@pytest.mark.parametrize("name", ["sales#2024", "why?", "a b", "dt=a%2Fb", "50%"])
def test_a_location_is_read_as_hadoop_reads_a_path_not_as_a_url(name: str) -> None:
    """``#`` and ``?`` are legal in HDFS names; a URL parser would cut the path there."""
    assert location_path(f"hdfs://primary/data/x/{name}") == f"/data/x/{name}"
    assert location_path(f"/data/x/{name}") == f"/data/x/{name}"
    assert location_path(f"file:/data/x/{name}") == f"/data/x/{name}"
    assert (
        rebase_location(f"hdfs://primary/data/x/{name}", "hdfs://standby") == f"hdfs://standby/data/x/{name}"
    )


@pytest.mark.parametrize(
    ("location", "foreign"),
    [
        ("hdfs://primary/w/t", False),
        ("hdfs://PRIMARY/w/t", False),
        ("/w/t", False),  # the default filesystem: the cluster's own
        ("hdfs://primary:8020/w/t", False),  # the default NameNode port
        ("hdfs://primary:9000/w/t", True),
        ("hdfs://other-cluster/w/t", True),
        ("s3a://bucket/w/t", True),
        ("file:///w/t", True),
        ("file:/w/t", True),  # how a Path prints a URI without an authority
        ("hdfs:/w/t", False),  # the default filesystem's authority
    ],
)
def test_a_location_on_another_filesystem_is_foreign(location: str, foreign: bool) -> None:
    assert foreign_location(location, "hdfs://primary") is foreign


def test_data_paths_add_partitions_outside_the_table_location_once():
    info = TableInfo(
        ref=TableRef("billing", "customers"),
        table_type="MANAGED_TABLE",
        location="hdfs://primary/warehouse/billing.db/customers",
        partition_keys=("region",),
        partitions=(
            PartitionInfo(("eu",), "region=eu", "hdfs://primary/warehouse/billing.db/customers/region=eu"),
            PartitionInfo(("us",), "region=us", "hdfs://primary/archive/customers/us"),
            PartitionInfo(("ca",), "region=ca", "hdfs://primary/archive/customers/us"),
        ),
        provider=None,
    )
    assert info.data_paths() == ("/warehouse/billing.db/customers", "/archive/customers/us")
    assert not info.is_spark_datasource
