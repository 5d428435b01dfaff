"""The ThriftHiveMetastore.Iface calls the embedded metastore serves, over SQLite.

Semantics and error types follow Hive's ``HiveMetaStore``/``ObjectStore`` (2.x/3.x):

* names of databases, tables and columns are stored lower-cased; lookups ignore case;
* a database without a location gets ``<warehouse>/<name>.db`` (``default`` is the warehouse);
  a table without one gets ``<database location>/<table>``; a partition without one gets
  ``<table location>/<k1=v1/k2=v2>``, escaped as ``Warehouse.makePartName``; every location
  is qualified with the warehouse's scheme and authority;
* the server sets ``createTime`` and, unless given, ``transient_lastDdlTime``;
* an ``EXTERNAL=TRUE`` parameter makes a managed table external and its absence the reverse.

Every call is one store transaction, so a call that fails changes nothing (``add_partitions``
and ``alter_partitions`` included). Data is never touched: the embedded metastore has no file
system, so ``deleteData`` and renames only change metadata.

The calls are grouped by area: :mod:`tandem_dev.embedded.metastore_tables` (databases and
tables), :mod:`tandem_dev.embedded.metastore_partitions` (partitions) and
:mod:`tandem_dev.embedded.metastore_security` (roles, grants, privileges); :class:`MetastoreHandler`
joins them and answers the fb303 and configuration calls.
"""

from __future__ import annotations

import re
from typing import Any

from hmsclient.genthrift.fb303 import ttypes as fb303_types
from hmsclient.genthrift.hive_metastore import ttypes

from tandem_dev.embedded.metastore_partitions import PartitionCalls
from tandem_dev.embedded.metastore_security import meta_error

VERSION = "2.3.0"


class MetastoreHandler(PartitionCalls):
    """Implements the ThriftHiveMetastore.Iface calls the embedded metastore supports.

    Methods are looked up by name by the generated Processor, which passes arguments
    positionally; a call that is not defined here is refused by the server's dispatcher.
    """

    def getName(self) -> str:
        return "Hive Metastore (Tandem embedded)"

    def getVersion(self) -> str:
        return VERSION

    def getStatus(self) -> int:
        return int(fb303_types.fb_status.ALIVE)

    def getStatusDetails(self) -> str:
        return ""

    def aliveSince(self) -> int:
        return self.started

    def getCounters(self) -> dict[str, int]:
        return {}

    def getCpuProfile(self, profile_duration_in_sec: int) -> str:
        return ""

    def getMetaConf(self, key: str) -> str:
        if key not in self.config:
            raise meta_error(f"Invalid configuration key {key}")
        return self.config[key]

    def get_config_value(self, name: str | None, default_value: str | None) -> str | None:
        if name is None:
            return default_value
        if not re.match(r"(hive|hdfs|mapred)", name):
            raise ttypes.ConfigValSecurityException(
                message=f"For security reasons, the config key {name} cannot be accessed"
            )
        return self.config.get(name, default_value)

    def set_ugi(self, user_name: str, group_names: list[str] | None) -> list[str]:
        return [*(group_names or []), user_name]

    def flushCache(self) -> None:
        return None

    def get_current_notificationEventId(self) -> Any:
        return ttypes.CurrentNotificationEventId(eventId=0)

    def get_next_notification(self, rqst: Any) -> Any:
        return ttypes.NotificationEventResponse(events=[])

    def get_all_functions(self) -> Any:
        return ttypes.GetAllFunctionsResponse(functions=[])

    def get_functions(self, db_name: str, pattern: str) -> list[str]:
        return []

    def get_function(self, db_name: str, func_name: str) -> Any:
        # no permanent functions are kept: a lookup (Spark's getFunctionOption) finds none
        raise ttypes.NoSuchObjectException(message=f"Function {db_name}.{func_name} does not exist")

    # column statistics are not kept: reads find none, as on a metastore where none were computed
    def get_table_statistics_req(self, request: Any) -> Any:
        return ttypes.TableStatsResult(tableStats=[])

    def get_partitions_statistics_req(self, request: Any) -> Any:
        return ttypes.PartitionsStatsResult(partStats={})

    def get_aggr_stats_for(self, request: Any) -> Any:
        return ttypes.AggrStats(colStats=[], partsFound=0)

    def get_table_column_statistics(self, db_name: str, tbl_name: str, col_name: str) -> Any:
        raise ttypes.NoSuchObjectException(
            message=f"Specified database/table/column does not exist ({db_name}.{tbl_name}.{col_name})"
        )
