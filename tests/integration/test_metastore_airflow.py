"""The embedded metastore behind Airflow's own Hive provider: HiveMetastoreHook and
HivePartitionSensor, configured by an ordinary connection, as against a real metastore."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hmsclient import HMSClient
from hmsclient.genthrift.hive_metastore import ttypes

from tandem_dev.embedded.metastore import MetastoreServer

pytestmark = pytest.mark.integration

CONN_ID = "metastore_test"


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MetastoreServer]:
    with MetastoreServer(tmp_path / "metastore.db", warehouse="hdfs://prod/warehouse") as hms:
        conn = {"conn_type": "hive_metastore", "host": "127.0.0.1", "port": hms.port}
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
        with HMSClient(host="127.0.0.1", port=hms.port) as client:
            client.create_database(ttypes.Database(name="billing"))
            for name, keys in (("bills", ["ds", "region"]), ("customers", [])):
                sd = ttypes.StorageDescriptor(
                    cols=[ttypes.FieldSchema("id", "int", "")], serdeInfo=ttypes.SerDeInfo("s", "lazy", {})
                )
                client.create_table(
                    ttypes.Table(
                        tableName=name,
                        dbName="billing",
                        sd=sd,
                        partitionKeys=[ttypes.FieldSchema(k, "string", "") for k in keys],
                        parameters={},
                        tableType="MANAGED_TABLE",
                    )
                )
            bills = client.get_table("billing", "bills")
            for values in (["2024-01-01", "eu"], ["2024-01-02", "eu"], ["2024-01-02", "us"]):
                client.add_partition(bills, values)
        yield hms


@pytest.fixture
def hook(server: MetastoreServer) -> Any:
    from airflow.providers.apache.hive.hooks.hive import HiveMetastoreHook

    return HiveMetastoreHook(metastore_conn_id=CONN_ID)


def test_hook_reads(hook: Any) -> None:
    assert hook.get_databases() == ["billing", "default"]
    assert hook.get_databases("bill*") == ["billing"]
    assert [t.tableName for t in hook.get_tables("billing")] == ["bills", "customers"]
    assert [t.tableName for t in hook.get_tables("billing", "cust*")] == ["customers"]
    table = hook.get_table("billing.bills")
    assert table.sd.location == "hdfs://prod/warehouse/billing.db/bills"
    assert hook.table_exists("bills", db="billing") is True
    assert hook.table_exists("nope", db="billing") is False


def test_hook_partitions(hook: Any) -> None:
    assert hook.get_partitions("billing", "bills") == [
        {"ds": "2024-01-01", "region": "eu"},
        {"ds": "2024-01-02", "region": "eu"},
        {"ds": "2024-01-02", "region": "us"},
    ]
    assert hook.get_partitions("billing", "bills", "region = 'us'") == [{"ds": "2024-01-02", "region": "us"}]
    with pytest.raises(Exception, match="isn't partitioned"):
        hook.get_partitions("billing", "customers")
    assert hook.check_for_partition("billing", "bills", "ds='2024-01-02' AND region='eu'") is True
    assert hook.check_for_partition("billing", "bills", "ds='2024-01-03'") is False
    assert hook.check_for_named_partition("billing", "bills", "ds=2024-01-01/region=eu") is True
    assert hook.check_for_named_partition("billing", "bills", "ds=2024-01-03/region=eu") is False
    assert hook.max_partition("billing", "bills", field="ds") == "2024-01-02"
    assert hook.max_partition("billing", "bills", field="region", filter_map={"ds": "2024-01-01"}) == "eu"


def test_hook_drop_partitions(hook: Any) -> None:
    assert hook.drop_partitions("bills", ["2024-01-01", "eu"], db="billing") is True
    assert hook.check_for_named_partition("billing", "bills", "ds=2024-01-01/region=eu") is False
    assert hook.drop_partitions("missing", ["x"], db="billing") is False


def test_partition_sensor_pokes_false_then_true(server: MetastoreServer) -> None:
    from airflow.providers.apache.hive.sensors.hive_partition import HivePartitionSensor

    sensor = HivePartitionSensor(
        task_id="wait_for_bills",
        table="billing.bills",
        partition="ds='2024-01-03' and region='eu'",
        metastore_conn_id=CONN_ID,
        poke_interval=1,
    )
    assert sensor.poke(context={}) is False
    with HMSClient(host="127.0.0.1", port=server.port) as client:
        client.add_partition(client.get_table("billing", "bills"), ["2024-01-03", "eu"])
    assert sensor.poke(context={}) is True
