"""One module per component kind: how a dataset maps to the HDFS paths that hold its data."""

from __future__ import annotations

from tandem.components.base import Component, ResolvedDataset
from tandem.components.hdfs import HdfsComponent
from tandem.components.hive import HiveComponent, SparkSqlComponent

COMPONENTS: dict[str, Component] = {
    c.kind: c for c in (HdfsComponent(), HiveComponent(), SparkSqlComponent())
}

__all__ = ["COMPONENTS", "Component", "ResolvedDataset"]
