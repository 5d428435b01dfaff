"""What every component kind provides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from tandem.hdfs.client import Hdfs
from tandem.metastore import Metastore


@dataclass(frozen=True)
class ResolvedDataset:
    """A dataset with the HDFS paths that hold its data, found ahead of the snapshot."""

    component: str
    name: str
    paths: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"component": self.component, "name": self.name, "paths": list(self.paths)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResolvedDataset:
        return cls(str(data["component"]), str(data["name"]), tuple(data["paths"]))


class Component(Protocol):
    kind: str

    def resolve(
        self, name: str, hdfs: Hdfs, metastore: Metastore | None, nameservice: str | None = None
    ) -> ResolvedDataset:
        """Where the dataset's data is on the source (``nameservice``: the source's, for data
        found through the metastore, which must be there). Read-only."""
