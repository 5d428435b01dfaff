"""What each backup step hands to the next: typed, frozen values, and their JSON form for XCom.

A step returns one of these and takes the ones it needs from the steps before it. Airflow carries
them between tasks as XComs; :func:`encode` and :func:`decode` are the only place that turns them
into JSON and back (the keys are the ones earlier versions stored, so XComs of runs in flight
across an upgrade still decode). The DAG and ``run_once`` both go through them, so what a task
receives is always what a run in one process would have passed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tandem import catalog
from tandem.components import ResolvedDataset


@dataclass(frozen=True)
class Direction:
    """Which cluster the run copies from and to, and why (the arbiter's reason)."""

    source: str
    target: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"source": self.source, "target": self.target, "reason": self.reason}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Direction:
        return cls(str(data["source"]), str(data["target"]), str(data.get("reason", "")))


@dataclass(frozen=True)
class Started:
    """``preflight``: the direction, the epochs every later step must still see, the clocks."""

    direction: Direction
    epochs: Mapping[str, int | None]
    clock_offsets_s: Mapping[str, Mapping[str, float | None]]
    started: datetime

    @property
    def source(self) -> str:
        return self.direction.source

    @property
    def target(self) -> str:
        return self.direction.target

    def to_json(self) -> dict[str, Any]:
        return {
            **self.direction.to_json(),
            "epochs": dict(self.epochs),
            "clock_offsets_s": {k: dict(v) for k, v in self.clock_offsets_s.items()},
            "started": catalog.iso(self.started),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Started:
        return cls(
            Direction.from_json(data),
            dict(data.get("epochs", {})),
            dict(data.get("clock_offsets_s", {})),
            catalog.parse_iso(data["started"]),
        )


@dataclass(frozen=True)
class Taken:
    """``snapshot.take``: the point's snapshot, its roots with the (dataset, subtree) each holds,
    when each root's snapshot was made, and where the metastore capture is (None: no tables)."""

    snapshot: str
    roots: Mapping[str, tuple[tuple[str, str], ...]]
    snapshot_times: Mapping[str, str]
    skew_ms: int
    metadata: str | None

    def subtrees(self, dataset: str | None = None) -> list[tuple[str, str]]:
        """(root, subtree) pairs holding ``dataset``'s data (every dataset's when None)."""
        return [
            (root, subtree)
            for root, members in self.roots.items()
            for name, subtree in members
            if dataset is None or name == dataset
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot,
            "roots": {root: [[name, sub] for name, sub in members] for root, members in self.roots.items()},
            "snapshot_times": dict(self.snapshot_times),
            "skew_ms": self.skew_ms,
            "metadata": self.metadata,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Taken:
        return cls(
            str(data["snapshot"]),
            {root: tuple((str(n), str(s)) for n, s in members) for root, members in data["roots"].items()},
            dict(data.get("snapshot_times", {})),
            int(data.get("skew_ms", 0)),
            data.get("metadata"),
        )


@dataclass(frozen=True)
class PathCopied:
    """One (root, subtree) brought to the point: full or incremental, and why."""

    root: str
    subtree: str
    mode: str
    reason: str
    files_copied: int
    bytes_copied: int
    quarantined: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "subtree": self.subtree,
            "mode": self.mode,
            "reason": self.reason,
            "files_copied": self.files_copied,
            "bytes_copied": self.bytes_copied,
            "quarantined": list(self.quarantined),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PathCopied:
        return cls(
            str(data["root"]),
            str(data["subtree"]),
            str(data["mode"]),
            str(data.get("reason", "")),
            int(data["files_copied"]),
            int(data["bytes_copied"]),
            tuple(data.get("quarantined", ())),
        )


@dataclass(frozen=True)
class DatasetCopied:
    """One dataset's copy: what was copied for it, per (root, subtree). Its size at the point is
    counted by publish, from the point's verified file records (no walk of the dataset)."""

    component: str
    name: str
    paths: tuple[PathCopied, ...]

    @property
    def roots(self) -> list[str]:
        return sorted({p.root for p in self.paths})

    @property
    def mode(self) -> str:
        return "incremental" if self.paths and all(p.mode == "incremental" for p in self.paths) else "full"

    @property
    def files_copied(self) -> int:
        return sum(p.files_copied for p in self.paths)

    @property
    def bytes_copied(self) -> int:
        return sum(p.bytes_copied for p in self.paths)

    @property
    def quarantined(self) -> list[str]:
        return [q for p in self.paths for q in p.quarantined]

    def to_json(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "name": self.name,
            "roots": self.roots,
            "mode": self.mode,
            "files_copied": self.files_copied,
            "bytes_copied": self.bytes_copied,
            "paths": [p.to_json() for p in self.paths],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DatasetCopied:
        return cls(
            str(data["component"]),
            str(data["name"]),
            tuple(PathCopied.from_json(p) for p in data["paths"]),
        )


@dataclass(frozen=True)
class Copied:
    """``copy_<component>``: every dataset of one component, the point copied from (None: full),
    and per root the files the copy verified against the source (relative path -> ``[length,
    modification time, "algorithm:checksum"]``), which publish need not checksum again while they
    stand as verified (empty when there were too many to carry)."""

    component: str
    base_point: str | None
    datasets: tuple[DatasetCopied, ...]
    verified: Mapping[str, Mapping[str, list[Any]]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "component": self.component,
            "base_point": self.base_point,
            "datasets": [d.to_json() for d in self.datasets],
        }
        if self.verified:
            out["verified"] = {root: dict(rows) for root, rows in self.verified.items()}
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Copied:
        return cls(
            str(data["component"]),
            data.get("base_point"),
            tuple(DatasetCopied.from_json(d) for d in data["datasets"]),
            {
                root: {rel: list(row) for rel, row in rows.items()}
                for root, rows in (data.get("verified") or {}).items()
            },
        )


@dataclass(frozen=True)
class StandbySnapshot:
    """``snapshot_standby``: the same snapshot name on every target root, and when each was made."""

    snapshot: str
    roots: tuple[str, ...]
    times: Mapping[str, str]

    def to_json(self) -> dict[str, Any]:
        return {"snapshot": self.snapshot, "roots": list(self.roots), "times": dict(self.times)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StandbySnapshot:
        return cls(str(data["snapshot"]), tuple(data["roots"]), dict(data.get("times", {})))


@dataclass(frozen=True)
class Retained:
    """``apply_retention``: how many points stay, and the points expired."""

    kept: int
    expired: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"kept": self.kept, "expired": list(self.expired)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Retained:
        return cls(int(data["kept"]), tuple(data["expired"]))


Counts = Mapping[str, int]
"""``register_metadata`` and ``sync_user_data``: how many of each kind of thing changed."""


def _resolved_to_json(value: Sequence[ResolvedDataset]) -> list[dict[str, Any]]:
    return [r.to_json() for r in value]


def _resolved_from_json(data: Sequence[Mapping[str, Any]]) -> list[ResolvedDataset]:
    return [ResolvedDataset.from_json(dict(r)) for r in data]


def _manifest_to_json(value: catalog.Manifest) -> dict[str, Any]:
    return value.model_dump(mode="json")


def _counts(value: Mapping[str, Any]) -> dict[str, int]:
    return {str(k): int(v) for k, v in value.items()}


_CODECS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "preflight": (Started.to_json, Started.from_json),
    "resolve": (_resolved_to_json, _resolved_from_json),
    "take": (Taken.to_json, Taken.from_json),
    "copy": (Copied.to_json, Copied.from_json),
    "register_metadata": (_counts, _counts),
    "snapshot_standby": (StandbySnapshot.to_json, StandbySnapshot.from_json),
    "sync_user_data": (_counts, _counts),
    "publish_restore_point": (_manifest_to_json, catalog.Manifest.model_validate),
    "apply_retention": (Retained.to_json, Retained.from_json),
}


def encode(step: str, value: Any) -> Any:
    """The JSON form (for XCom) of what the step of kind ``step`` returned."""
    return _CODECS[step][0](value)


def decode(step: str, data: Any) -> Any:
    """What the step of kind ``step`` returned, from its JSON form."""
    return _CODECS[step][1](data)
