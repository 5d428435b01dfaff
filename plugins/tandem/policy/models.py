"""The policy and topology models (frozen pydantic), with their cross-field checks. Pure."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from tandem.policy.types import (
    _BUSINESS,
    _CROSS_ERROR,
    ConnId,
    Duration,
    HdfsPath,
    Name,
    Rate,
    TableName,
    UtcInstant,
    _fail,
    _freeze_mapping,
    format_duration,
    shown,
)

# --------------------------------------------------------------------------------------------
# Cluster topology


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClusterConfig(_Frozen):
    """One Hadoop cluster, reached only through Airflow connections."""

    nameservice: str
    webhdfs_conn_id: ConnId
    metastore_conn_id: ConnId
    zookeeper_conn_id: ConnId
    # Hadoop client configuration of this cluster, for the distcp engine (`hadoop --config`);
    # a `pull` copy runs DistCp on the target cluster, a `push` copy on the source.
    hadoop_conf_dir: str | None = None

    @field_validator("nameservice", mode="before")
    @classmethod
    def _nameservice(cls, value: object) -> str:
        if not isinstance(value, str) or not re.fullmatch(r"hdfs://[A-Za-z0-9_.:-]+/?", value):
            _fail(f"{shown(value)} is not a nameservice: write hdfs://<nameservice>, such as hdfs://primary")
        return value.rstrip("/")


class PairConfig(_Frozen):
    """Two clusters that back each other up; the roles here are the initial ones.

    ``pool``: the Airflow pool every copy task of the pair's businesses runs in, so the pair's
    backups together never use more than its slots (create it in Airflow, e.g. in
    airflow_settings.yaml; a task whose pool does not exist is never scheduled).
    """

    primary: Name
    standby: Name
    pool: str | None = None


def _pair_problems(pairs: Mapping[str, PairConfig], clusters: Iterable[str]) -> list[tuple[str, str]]:
    known = sorted(clusters)
    problems = []
    for name, pair in pairs.items():
        for role in ("primary", "standby"):
            cluster = getattr(pair, role)
            if cluster not in known:
                problems.append(
                    (
                        f"pairs.{name}.{role}",
                        f"cluster {cluster!r} is not defined; defined: {', '.join(known)}",
                    )
                )
        if pair.primary == pair.standby:
            problems.append(
                (f"pairs.{name}.standby", f"a pair needs two different clusters, both are {pair.primary!r}")
            )
    return problems


class Topology(_Frozen):
    """Clusters and pairs of ``include/clusters.yaml``."""

    clusters: Annotated[Mapping[Name, ClusterConfig], AfterValidator(_freeze_mapping)]
    pairs: Annotated[Mapping[Name, PairConfig], AfterValidator(_freeze_mapping)]

    @model_validator(mode="after")
    def _pairs_name_clusters(self) -> Topology:
        problems = _pair_problems(self.pairs, self.clusters)
        if problems:
            raise PydanticCustomError(_CROSS_ERROR, "{reason}", {"reason": _join(problems)})
        return self

    def pair(self, name: str) -> PairConfig:
        return self.pairs[name]

    def cluster(self, name: str) -> ClusterConfig:
        return self.clusters[name]


# --------------------------------------------------------------------------------------------
# Policy

Component = Literal["hdfs", "hive", "sparksql"]
COMPONENTS: tuple[Component, ...] = ("hdfs", "hive", "sparksql")


class DatasetEntry(_Frozen):
    """One item of a protection group: exactly one of ``hdfs``, ``hive`` or ``sparksql``."""

    hdfs: HdfsPath | None = None
    hive: TableName | None = None
    sparksql: TableName | None = None

    @field_validator("hdfs")
    @classmethod
    def _not_tandems_own(cls, value: str | None) -> str | None:
        if value is not None and (value + "/").startswith("/.tandem/"):
            _fail(f"{value} is inside /.tandem, where Tandem keeps its own restore points and journals")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> DatasetEntry:
        given = [c for c in COMPONENTS if getattr(self, c) is not None]
        if len(given) != 1:
            _fail(f"each item names exactly one dataset with one key of: {', '.join(COMPONENTS)}")
        return self

    @model_serializer
    def _as_one_key(self) -> dict[str, str]:
        return {self.component: self.name}

    @property
    def component(self) -> Component:
        return next(c for c in COMPONENTS if getattr(self, c) is not None)

    @property
    def name(self) -> str:
        value: str = getattr(self, self.component)
        return value


class Schedule(_Frozen):
    """Run at ``start`` and every ``every`` after it; run T takes the snapshots of point T."""

    start: UtcInstant
    every: Duration

    @field_validator("every")
    @classmethod
    def _whole_seconds(cls, value: timedelta) -> timedelta:
        if value % timedelta(seconds=1):
            _fail(f"{format_duration(value)} is not whole seconds: points are named to the second")
        return value


class CopyOptions(_Frozen):
    """How data moves: ``pull`` runs the copy against the target, ``push`` against the source."""

    mode: Literal["pull", "push"] = "pull"
    engine: Literal["webhdfs", "distcp"] = "webhdfs"
    parallelism: int = Field(default=4, ge=1, le=64)
    bandwidth_mb: int | None = Field(default=None, ge=1, description="distcp -bandwidth, MB/s per map")
    maps: int | None = Field(default=None, ge=1, description="distcp -m")
    # bytes per second for one copy task, all its threads together (webhdfs engine)
    max_bandwidth: Rate | None = None

    # A field validator rather than a model one, so that it reports even when another key is bad.
    @field_validator("bandwidth_mb", "maps")
    @classmethod
    def _distcp_only(cls, value: int | None, info: ValidationInfo) -> int | None:
        engine = info.data.get("engine")
        if value is not None and engine is not None and engine != "distcp":
            _fail(f"{info.field_name} applies to engine distcp only, this policy copies with {engine}")
        return value


class Consistency(_Frozen):
    """``max_skew``: spread of the snapshot times of one point; ``max_clock_skew``: host vs clusters."""

    max_skew: Duration = timedelta(seconds=2)
    max_clock_skew: Duration = timedelta(seconds=5)


class Retention(_Frozen):
    """Keep the ``keep_last`` newest points, none older than ``max_age`` (null: no age limit)."""

    keep_last: int = Field(default=24, ge=1)
    max_age: Duration | None = timedelta(days=7)


def _group_problems(group: Iterable[tuple[int, DatasetEntry]]) -> list[tuple[str, str]]:
    """Datasets listed twice, and HDFS paths inside one another, with the later item blamed.

    Takes (index, item) pairs so that the loader can pass only the items that parsed.
    """
    problems: list[tuple[str, str]] = []
    seen: dict[tuple[str, str], int] = {}
    hdfs: list[tuple[int, str]] = []
    for index, item in group:
        where = f"protection_group[{index}].{item.component}"
        # Hive and SparkSQL tables share one metastore namespace: one table, two kinds is a repeat.
        key = ("hdfs" if item.component == "hdfs" else "table", item.name)
        if key in seen:
            problems.append((where, f"{item.name} is listed twice: also protection_group[{seen[key]}]"))
            continue
        seen[key] = index
        if item.component != "hdfs":
            continue
        for other_index, other in hdfs:
            if _is_within(item.name, other) or _is_within(other, item.name):
                outer, inner = (other, item.name) if _is_within(item.name, other) else (item.name, other)
                problems.append(
                    (
                        where,
                        f"{item.name} overlaps protection_group[{other_index}] ({other}): {inner} is inside "
                        f"{outer} and would be copied twice; protect {outer} only",
                    )
                )
        hdfs.append((index, item.name))
    return problems


def _tenant_problems(tenant_dirs: Iterable[tuple[int, str]]) -> list[tuple[str, str]]:
    problems = []
    first: dict[str, int] = {}
    for index, path in tenant_dirs:
        if path in first:
            problems.append(
                (f"tenant_dirs[{index}]", f"{path} is listed twice: also tenant_dirs[{first[path]}]")
            )
        else:
            first[path] = index
    return problems


def _is_within(path: str, ancestor: str) -> bool:
    return path.startswith(ancestor.rstrip("/") + "/")


def _join(problems: Sequence[tuple[str, str]]) -> str:
    return "; ".join(f"{where}: {reason}" for where, reason in problems)


class Policy(_Frozen):
    """One business: what must agree at every restore point, how often, how it is copied."""

    business: str
    description: str = ""
    pair: str
    schedule: Schedule
    protection_group: tuple[DatasetEntry, ...] = Field(min_length=1)
    # "copy" would shadow BaseModel.copy; the file keeps the contract's key.
    copy_options: CopyOptions = Field(default_factory=CopyOptions, alias="copy")
    consistency: Consistency = Field(default_factory=Consistency)
    retention: Retention = Field(default_factory=Retention)
    user_data: bool = True
    tenant_dirs: tuple[HdfsPath, ...] = ()

    @field_validator("business", mode="before")
    @classmethod
    def _business(cls, value: object, info: ValidationInfo) -> str:
        if not isinstance(value, str) or not _BUSINESS.fullmatch(value):
            _fail(
                f"{shown(value)} is not a business name: use lowercase letters, digits and '_', "
                "starting with a letter"
            )
        stem = (info.context or {}).get("stem")
        if stem is not None and value != stem:
            _fail(
                f"business {shown(value)} must match the file name {stem!r}: "
                "one file per business, named after it"
            )
        return value

    @field_validator("pair", mode="before")
    @classmethod
    def _pair(cls, value: object, info: ValidationInfo) -> str:
        if not isinstance(value, str):
            _fail(f"{shown(value)} is not a pair name")
        topology = (info.context or {}).get("topology")
        if isinstance(topology, Topology) and value not in topology.pairs:
            known = ", ".join(sorted(topology.pairs)) or "none"
            _fail(f"pair {shown(value)} is not defined in the cluster topology; defined pairs: {known}")
        return value

    @model_validator(mode="after")
    def _no_repeats(self) -> Policy:
        problems = _group_problems(enumerate(self.protection_group)) + _tenant_problems(
            enumerate(self.tenant_dirs)
        )
        if problems:
            raise PydanticCustomError(_CROSS_ERROR, "{reason}", {"reason": _join(problems)})
        return self

    @property
    def dag_id(self) -> str:
        return f"tandem_backup__{self.business}"

    def datasets(self, component: Component | None = None) -> tuple[DatasetEntry, ...]:
        return tuple(d for d in self.protection_group if component is None or d.component == component)

    @property
    def hdfs_paths(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.datasets("hdfs"))

    def effective(self) -> dict[str, Any]:
        """The policy with every default filled in, as plain YAML/JSON values."""
        data: dict[str, Any] = self.model_dump(mode="json", by_alias=True)
        return data

    def effective_yaml(self) -> str:
        """The effective policy as YAML, for the DAG's ``doc_md`` and ``tandem policy validate``."""
        return yaml.safe_dump(self.effective(), sort_keys=False, default_flow_style=None, allow_unicode=True)
