import pytest

from tandem.metastore import PartitionInfo, TableInfo, TableRef, location_path, rebase_location


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
