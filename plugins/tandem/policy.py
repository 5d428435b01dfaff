"""Business policies and the cluster topology: parsed once, validated with reasons.

A policy file (``include/policies/<business>.yaml``) says which datasets of one business must
agree at every restore point, how often, how they are copied and how long points are kept.
The topology (``include/clusters.yaml``) names the clusters and the pairs that back each other up.

Loading never stops at the first problem: every error of a file is reported with the file, the
field as a dotted path (``protection_group[2].hive``) and a reason, and one bad file never stops
the other businesses from loading (:func:`load_policies` isolates files).

The only I/O here is reading those YAML files; everything else is pure.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import MappingProxyType, UnionType
from typing import Annotated, Any, Literal, NoReturn, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from tandem.errors import ConfigError

# A "field" for problems that concern the whole file rather than one key in it.
FILE_FIELD = "<file>"

# Our own errors carry their sentence in ctx["reason"], which becomes the ConfigError's reason.
_OWN_ERROR = "tandem"
# Cross-item checks (duplicates, overlaps) run again inside the model so that a Policy built in
# code is valid too; the loader reports them itself, per item, and drops this summary.
_CROSS_ERROR = "tandem_cross"

MIN_QUIET_PERIOD = timedelta(minutes=5)


def _fail(reason: str) -> NoReturn:
    raise PydanticCustomError(_OWN_ERROR, "{reason}", {"reason": reason})


# --------------------------------------------------------------------------------------------
# Durations

_DURATION = re.compile(r"(?:\d+(?:ms|s|m|h|d|w))+")
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_UNITS: dict[str, timedelta] = {
    "w": timedelta(weeks=1),
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
    "ms": timedelta(milliseconds=1),
}
_UNIT_ORDER = list(_UNITS)
_DURATION_HINT = "such as 500ms, 90s, 15m, 1h, 7d or 1h30m"


def parse_duration(text: str) -> timedelta:
    """``"500ms"``, ``"90s"``, ``"15m"``, ``"1h"``, ``"7d"``, ``"1h30m"`` -> timedelta.

    Units, largest first, each at most once: w, d, h, m, s, ms. Raises ValueError with a
    sentence fit for a user.
    """
    compact = text.strip()
    if not _DURATION.fullmatch(compact):
        raise ValueError(f"{text!r} is not a duration: write a number and a unit, {_DURATION_HINT}")
    total = timedelta()
    last = -1
    for number, unit in _DURATION_PART.findall(compact):
        rank = _UNIT_ORDER.index(unit)
        if rank <= last:
            raise ValueError(f"{text!r} is not a duration: give each unit once, largest first, as in 1h30m")
        last = rank
        total += int(number) * _UNITS[unit]
    return total


def format_duration(value: timedelta) -> str:
    """The shortest text :func:`parse_duration` reads back as ``value`` (``7d``, ``1h30m``)."""
    millis = value // timedelta(milliseconds=1)
    if millis == 0:
        return "0s"
    sign = "-" if millis < 0 else ""
    millis = abs(millis)
    parts = []
    for unit in ("d", "h", "m", "s", "ms"):
        size = _UNITS[unit] // timedelta(milliseconds=1)
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return sign + "".join(parts)


def _to_duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError as exc:
            _fail(str(exc))
    _fail(f"{value!r} is not a duration: a duration needs a unit, {_DURATION_HINT}")


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        _fail(f"{format_duration(value)} must be longer than zero")
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(_to_duration),
    AfterValidator(_positive),
    PlainSerializer(format_duration, return_type=str),
]

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)/s\s*$")
_RATE_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def parse_rate(text: str) -> int:
    """``100MB/s``, ``1.5GiB/s``, ``800KB/s`` -> bytes per second (decimal and binary units)."""
    match = _RATE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a rate like 100MB/s (units B, KB, MB, GB, KiB, MiB, GiB per s)")
    rate = int(float(match.group(1)) * _RATE_UNITS[match.group(2)])
    if rate <= 0:
        raise ValueError(f"{text!r}: a rate must be more than zero")
    return rate


def format_rate(value: int) -> str:
    for unit in ("GB", "MB", "KB"):
        if value % _RATE_UNITS[unit] == 0:
            return f"{value // _RATE_UNITS[unit]}{unit}/s"
    return f"{value}B/s"


def _to_rate(value: object) -> int:
    if isinstance(value, str):
        try:
            return parse_rate(value)
        except ValueError as exc:
            _fail(str(exc))
    _fail(f"{value!r} is not a rate: write it with a unit, like 100MB/s")


Rate = Annotated[int, BeforeValidator(_to_rate), PlainSerializer(format_rate, return_type=str)]


# --------------------------------------------------------------------------------------------
# Scalar types


def _to_utc_instant(value: object) -> datetime:
    hint = "write an instant such as 2026-11-20T13:00:00Z"
    if isinstance(value, datetime):
        instant = value
    elif isinstance(value, date):
        _fail(f"{value.isoformat()} is a date without a time: {hint}")
    elif isinstance(value, str):
        try:
            instant = datetime.fromisoformat(value.strip())
        except ValueError:
            _fail(f"{value!r} is not an ISO-8601 instant: {hint}")
    else:
        _fail(f"{value!r} is not an instant: {hint}")
    offset = instant.utcoffset()
    if offset is None:
        _fail(f"{instant.isoformat()} has no time zone: end it with Z, as in 2026-11-20T13:00:00Z")
    if offset != timedelta(0):
        _fail(f"{instant.isoformat()} is not in UTC: restore points are named in UTC, end it with Z")
    if instant.microsecond:
        _fail(f"{instant.isoformat()} has a fraction of a second: restore points are named to the second")
    return instant.astimezone(UTC)


def _format_instant(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


UtcInstant = Annotated[
    datetime,
    BeforeValidator(_to_utc_instant),
    PlainSerializer(_format_instant, return_type=str),
]


def normalise_hdfs_path(path: str) -> str:
    """Collapse repeated slashes, ``.`` and a trailing slash; keeps the path absolute."""
    return posixpath.normpath(re.sub("/+", "/", path))


def _to_hdfs_path(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail(f"{value!r} is not an HDFS path: write an absolute path such as /data/billing")
    text = value.strip()
    if "://" in text:
        _fail(f"{text!r} names a filesystem: write the path only, the pair decides the cluster")
    if not text.startswith("/"):
        _fail(f"relative HDFS path {text!r}: write it from the root, such as /{text}")
    parts = text.split("/")
    if ".." in parts:
        _fail(f"{text!r} contains '..': write the path it leads to")
    if ".snapshot" in parts:
        _fail(f"{text!r} points into a .snapshot directory, which is read-only history")
    normalised = normalise_hdfs_path(text)
    if normalised == "/":
        _fail("the filesystem root cannot be protected: name the business's own directories")
    return normalised


HdfsPath = Annotated[str, BeforeValidator(_to_hdfs_path)]

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_TABLE = re.compile(rf"({_IDENTIFIER})\.({_IDENTIFIER})")


def _to_table_name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail(f"{value!r} is not a table name: write <database>.<table>")
    text = value.strip()
    if "." not in text:
        _fail(f"table name {text!r} has no database: write it as <database>.<table>, such as default.{text}")
    if not _TABLE.fullmatch(text):
        _fail(f"{text!r} is not <database>.<table> made of letters, digits and underscores")
    # The metastore stores names in lower case, so compare and copy them that way.
    return text.lower()


TableName = Annotated[str, BeforeValidator(_to_table_name)]

_BUSINESS = re.compile(r"[a-z][a-z0-9_]{0,63}")
_CLUSTER_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")


def _to_name(value: object) -> str:
    if not isinstance(value, str) or not _CLUSTER_NAME.fullmatch(value):
        _fail(f"{value!r} is not a name: use lowercase letters, digits, '-' and '_', starting with a letter")
    return value


Name = Annotated[str, BeforeValidator(_to_name)]


def _to_conn_id(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", value):
        _fail(f"{value!r} is not an Airflow connection id")
    return value


ConnId = Annotated[str, BeforeValidator(_to_conn_id)]


def _freeze_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


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
            _fail(f"{value!r} is not a nameservice: write hdfs://<nameservice>, such as hdfs://primary")
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
                f"{value!r} is not a business name: use lowercase letters, digits and '_', "
                "starting with a letter"
            )
        stem = (info.context or {}).get("stem")
        if stem is not None and value != stem:
            _fail(
                f"business {value!r} must match the file name {stem!r}: one file per business, named after it"
            )
        return value

    @field_validator("pair", mode="before")
    @classmethod
    def _pair(cls, value: object, info: ValidationInfo) -> str:
        if not isinstance(value, str):
            _fail(f"{value!r} is not a pair name")
        topology = (info.context or {}).get("topology")
        if isinstance(topology, Topology) and value not in topology.pairs:
            known = ", ".join(sorted(topology.pairs)) or "none"
            _fail(f"pair {value!r} is not defined in the cluster topology; defined pairs: {known}")
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


# --------------------------------------------------------------------------------------------
# Loading


@dataclass(frozen=True)
class ConfigWarning:
    """Valid, but probably not what was meant; fails ``tandem policy validate --strict``."""

    file: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.reason}"


class InvalidConfig(ConfigError):
    """A file has one or more errors; ``errors`` holds them all, the message lists them."""

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        if not errors:
            raise ValueError("InvalidConfig needs at least one error")
        self.errors = tuple(errors)
        first = self.errors[0]
        super().__init__(first.file, first.field, first.reason)
        self.args = ("\n".join(str(e) for e in self.errors),)


@dataclass(frozen=True)
class PolicySet:
    """Policies loaded from one directory; a bad file is in ``errors`` and nowhere else.

    ``files`` maps each good file to its policy; ``errors`` maps each bad file to all of its
    errors (the DAG factory turns them into that file's own import error); ``warnings`` may
    concern good files.
    """

    files: Mapping[Path, Policy]
    errors: Mapping[Path, tuple[ConfigError, ...]] = field(default_factory=dict)
    warnings: Mapping[Path, tuple[ConfigWarning, ...]] = field(default_factory=dict)

    @property
    def policies(self) -> tuple[Policy, ...]:
        return tuple(sorted(self.files.values(), key=lambda p: p.business))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.business for p in self.policies)

    def policy(self, business: str) -> Policy:
        for policy in self.files.values():
            if policy.business == business:
                return policy
        raise KeyError(business)

    def all_errors(self) -> tuple[ConfigError, ...]:
        return tuple(e for path in sorted(self.errors) for e in self.errors[path])

    def all_warnings(self) -> tuple[ConfigWarning, ...]:
        return tuple(w for path in sorted(self.warnings) for w in self.warnings[path])


# libyaml's parser when PyYAML was built with it: several times faster than the pure-Python one
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_SafeLoader):  # type: ignore[valid-type,misc]
    """SafeLoader that refuses repeated keys, which plain YAML loading silently overwrites."""


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node)
        try:
            repeated = key in seen
        except TypeError:  # an unhashable key; construct_mapping reports it
            continue
        if repeated:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _read_yaml(path: Path) -> tuple[Any, list[ConfigError]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [ConfigError(str(path), FILE_FIELD, "file not found")]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [ConfigError(str(path), FILE_FIELD, f"cannot be read: {exc}")]
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        return None, [ConfigError(str(path), FILE_FIELD, f"not valid YAML: {exc.problem}{where}")]
    except yaml.YAMLError as exc:
        return None, [ConfigError(str(path), FILE_FIELD, f"not valid YAML: {exc}")]
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        reason = f"must be a mapping of keys to values, it is {kind}"
        return None, [ConfigError(str(path), FILE_FIELD, reason)]
    return data, []


def _format_loc(loc: Sequence[str | int]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part == "[key]":
            continue  # pydantic's marker for "the key itself": the field already names it
        else:
            text += f".{part}" if text else str(part)
    return text or FILE_FIELD


def _field_keys(annotation: Any) -> tuple[str, ...] | None:
    """The keys a model accepts (aliases first), or None when annotation is not a model."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return tuple(info.alias or name for name, info in annotation.model_fields.items())
    return None


def _model_at(root: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """Walk a model's annotations along an error location to the model that holds it."""
    current: Any = root
    for part in loc:
        while get_origin(current) is Annotated:
            current = get_args(current)[0]
        if isinstance(part, int) or get_origin(current) in (dict, tuple, list, Mapping):
            args = [a for a in get_args(current) if a is not Ellipsis]
            current = args[-1] if args else None
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        by_key = {info.alias or name: info.annotation for name, info in current.model_fields.items()}
        current = by_key.get(part)
        if get_origin(current) in (Union, UnionType):  # Optional[Model]
            current = next((a for a in get_args(current) if _field_keys(a) is not None), None)
    while get_origin(current) is Annotated:
        current = get_args(current)[0]
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _reason(root: type[BaseModel], error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == _OWN_ERROR:
        return str(error["ctx"]["reason"])
    if kind == "missing":
        return "required, but missing"
    if kind == "extra_forbidden":
        holder = _model_at(root, error["loc"][:-1])
        keys = _field_keys(holder)
        allowed = f"; allowed keys: {', '.join(keys)}" if keys else ""
        return f"unknown key{allowed}"
    shown = error.get("input")
    suffix = "" if isinstance(shown, dict | list) else f" (got {shown!r})"
    message = str(error["msg"])
    return message[:1].lower() + message[1:] + suffix


def _convert(file: str, root: type[BaseModel], exc: ValidationError) -> list[ConfigError]:
    return [
        ConfigError(file, _format_loc(error["loc"]), _reason(root, error))
        for error in exc.errors()
        if error["type"] != _CROSS_ERROR
    ]


def _valid_items(adapter: TypeAdapter[Any], raw: Any) -> list[tuple[Any, Any]]:
    """The (key or index, value) items of a list or mapping that validate on their own.

    Cross-item checks (repeats, overlaps, pair members) run on these, so they are reported even
    when another item of the same file is broken; the broken ones are reported by the model.
    """
    if isinstance(raw, dict):
        pairs: Iterable[tuple[Any, Any]] = raw.items()
    elif isinstance(raw, list | tuple):
        pairs = enumerate(raw)
    else:
        return []
    valid = []
    for key, value in pairs:
        try:
            valid.append((key, adapter.validate_python(value)))
        except ValidationError:
            continue
    return valid


_ENTRY = TypeAdapter(DatasetEntry)
_TENANT_DIR = TypeAdapter(HdfsPath)
_PAIR = TypeAdapter(PairConfig)


def _policy_errors(path: Path, raw: Mapping[str, Any], topology: Topology | None) -> list[ConfigError]:
    file = str(path)
    problems: list[tuple[str, str]] = []
    problems += _group_problems(_valid_items(_ENTRY, raw.get("protection_group")))
    problems += _tenant_problems(_valid_items(_TENANT_DIR, raw.get("tenant_dirs")))
    errors = [ConfigError(file, where, reason) for where, reason in problems]
    try:
        Policy.model_validate(raw, context={"stem": path.stem, "topology": topology})
    except ValidationError as exc:
        errors = _convert(file, Policy, exc) + errors
    return errors


def policy_warnings(policy: Policy, file: str) -> list[ConfigWarning]:
    """Valid but doubtful settings: ``--strict`` turns these into failures."""
    warnings = []
    every = policy.schedule.every
    if every < MIN_QUIET_PERIOD:
        warnings.append(
            ConfigWarning(
                file,
                "schedule.every",
                f"runs every {format_duration(every)}: more often than every "
                f"{format_duration(MIN_QUIET_PERIOD)} loads the NameNode with snapshots and a copy may "
                "not finish before the next run starts",
            )
        )
    retention = policy.retention
    if retention.max_age is not None:
        reachable = retention.max_age // every + 1
        if reachable < retention.keep_last:
            warnings.append(
                ConfigWarning(
                    file,
                    "retention.max_age",
                    f"max_age {format_duration(retention.max_age)} keeps at most {reachable} points at one "
                    f"every {format_duration(every)}, fewer than keep_last {retention.keep_last}: "
                    "keep_last never applies",
                )
            )
    if not policy.description.strip():
        warnings.append(
            ConfigWarning(
                file,
                "description",
                "no description: say why these datasets must agree; it heads the DAG's documentation",
            )
        )
    return warnings


def check_policy_file(path: Path, topology: Topology | None) -> tuple[Policy | None, tuple[ConfigError, ...]]:
    """Every error of one policy file, and the policy when there is none.

    ``topology`` None skips the pair check (the topology itself is broken or missing and is
    reported on its own).
    """
    raw, errors = _read_yaml(path)
    if raw is not None:
        errors = _policy_errors(path, raw, topology)
    if errors:
        return None, tuple(errors)
    return Policy.model_validate(raw, context={"topology": topology}), ()


def load_policy(path: Path, topology: Topology | None) -> Policy:
    """One policy file, or :class:`InvalidConfig` carrying all of its errors."""
    policy, errors = check_policy_file(path, topology)
    if policy is None:
        raise InvalidConfig(errors)
    return policy


def policy_files(directory: Path) -> tuple[Path, ...]:
    """The policy files of a directory: ``*.yaml`` and ``*.yml``, hidden files skipped, sorted."""
    return tuple(
        sorted(
            p
            for p in directory.iterdir()
            if p.is_file() and p.suffix in (".yaml", ".yml") and not p.name.startswith(".")
        )
    )


def load_policies(directory: Path, topology: Topology | None) -> PolicySet:
    """All policies of ``directory``, each file isolated from the others' errors.

    A business defined by two files (``billing.yaml`` and ``billing.yml``) is refused in both,
    since neither can be picked safely. Raises :class:`ConfigError` only when the directory
    itself is missing.
    """
    if not directory.is_dir():
        raise ConfigError(str(directory), FILE_FIELD, "policy directory not found")
    good: dict[Path, Policy] = {}
    errors: dict[Path, tuple[ConfigError, ...]] = {}
    for path in policy_files(directory):
        policy, problems = check_policy_file(path, topology)
        if policy is None:
            errors[path] = problems
        else:
            good[path] = policy
    by_business: dict[str, list[Path]] = {}
    for path, policy in good.items():
        by_business.setdefault(policy.business, []).append(path)
    for business, paths in by_business.items():
        if len(paths) < 2:
            continue
        for path in paths:
            others = ", ".join(str(p) for p in paths if p != path)
            reason = f"business {business!r} is also defined in {others}"
            errors[path] = (ConfigError(str(path), "business", reason),)
            del good[path]
    warnings: dict[Path, list[ConfigWarning]] = {p: policy_warnings(pol, str(p)) for p, pol in good.items()}
    for path, warning in _shared_dataset_warnings(good):
        warnings[path].append(warning)
    return PolicySet(
        files=MappingProxyType(good),
        errors=MappingProxyType(errors),
        warnings=MappingProxyType({p: tuple(w) for p, w in warnings.items() if w}),
    )


def _shared_dataset_warnings(good: Mapping[Path, Policy]) -> list[tuple[Path, ConfigWarning]]:
    """Datasets protected by two businesses are copied twice and restored at two instants.

    Indexed, not compared pairwise: tables by name, HDFS paths by every ancestor of each path,
    so the cost grows with the number of datasets times the depth of their paths. A path nested
    in another business's path warns on both sides.
    """
    order = {path: n for n, path in enumerate(sorted(good))}
    hdfs: dict[str, list[tuple[Path, int]]] = {}
    tables: dict[str, list[tuple[Path, int]]] = {}
    for path, policy in good.items():
        for index, entry in enumerate(policy.protection_group):
            index_of = hdfs if entry.component == "hdfs" else tables
            index_of.setdefault(_normal(entry.name) if entry.component == "hdfs" else entry.name, []).append(
                (path, index)
            )
    pairs: set[tuple[Path, int, Path]] = set()
    for owners in tables.values():
        for path, index in owners:
            pairs |= {(path, index, other) for other, _ in owners if other != path}
    for name, owners in hdfs.items():
        for ancestor in _ancestors_or_self(name):
            for other, other_index in hdfs.get(ancestor, ()):
                for path, index in owners:
                    if other == path:
                        continue
                    pairs.add((path, index, other))
                    if ancestor != name:
                        pairs.add((other, other_index, path))
    found = []
    for path, index, other in sorted(pairs, key=lambda t: (order[t[0]], t[1], order[t[2]])):
        entry = good[path].protection_group[index]
        found.append(
            (
                path,
                ConfigWarning(
                    str(path),
                    f"protection_group[{index}].{entry.component}",
                    f"{entry.name} is also protected by business {good[other].business!r}: it will be "
                    "copied by both and may be restored to two different instants",
                ),
            )
        )
    return found


def _normal(path: str) -> str:
    return path.rstrip("/") or "/"


def _ancestors_or_self(path: str) -> list[str]:
    out = [path]
    while path not in ("/", ""):
        path = path.rsplit("/", 1)[0] or "/"
        out.append(path)
    return out


def check_topology_file(path: Path) -> tuple[Topology | None, tuple[ConfigError, ...]]:
    """Every error of ``clusters.yaml``, and the topology when there is none."""
    raw, errors = _read_yaml(path)
    if raw is None:
        return None, tuple(errors)
    file = str(path)
    try:
        return Topology.model_validate(raw), ()
    except ValidationError as exc:
        found = _convert(file, Topology, exc)
    pairs = dict(_valid_items(_PAIR, raw.get("pairs")))
    clusters = raw.get("clusters")
    if isinstance(clusters, dict):
        problems = _pair_problems(pairs, map(str, clusters))
        found += [ConfigError(file, where, reason) for where, reason in problems]
    return None, tuple(found)


def load_topology(path: Path) -> Topology:
    """``include/clusters.yaml``, or :class:`InvalidConfig` carrying all of its errors."""
    topology, errors = check_topology_file(path)
    if topology is None:
        raise InvalidConfig(errors)
    return topology


# --------------------------------------------------------------------------------------------
# `tandem policy validate`


def _display(path: Path) -> Path:
    """Relative to the working directory when inside it, so messages stay short."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def clusters_file_for(policy_dir: Path, root: Path) -> Path:
    """``clusters.yaml`` beside the policy directory (``include/``), else the project's."""
    beside = policy_dir.parent / "clusters.yaml"
    return beside if beside.is_file() else root / "include" / "clusters.yaml"


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of ``tandem policy validate``: what loaded, what is wrong, what is doubtful."""

    policies: tuple[str, ...]
    errors: tuple[ConfigError, ...]
    warnings: tuple[ConfigWarning, ...]

    def exit_code(self, strict: bool) -> int:
        return 1 if self.errors or (strict and self.warnings) else 0

    def as_json(self) -> str:
        def row(item: ConfigError | ConfigWarning) -> dict[str, str]:
            return {"file": item.file, "field": item.field, "reason": item.reason}

        return json.dumps(
            {
                "policies": list(self.policies),
                "errors": [row(e) for e in self.errors],
                "warnings": [row(w) for w in self.warnings],
            },
            indent=2,
        )

    def as_text(self) -> str:
        lines = [str(e) for e in self.errors] + [f"{w} (warning)" for w in self.warnings]
        lines.append(
            f"{len(self.policies)} valid {'policy' if len(self.policies) == 1 else 'policies'}"
            f" ({', '.join(self.policies) or 'none'}), "
            f"{len(self.errors)} errors, {len(self.warnings)} warnings"
        )
        return "\n".join(lines)


def validate_directory(policy_dir: Path, clusters_file: Path) -> ValidationReport:
    """Validate the topology and every policy; a broken topology still lets policies be checked."""
    topology, topology_errors = check_topology_file(clusters_file)
    try:
        loaded = load_policies(policy_dir, topology)
    except ConfigError as exc:
        return ValidationReport((), (*topology_errors, exc), ())
    return ValidationReport(loaded.names, (*topology_errors, *loaded.all_errors()), loaded.all_warnings())


def run_policy(args: Any, out: Callable[[str], None] | None = None) -> int:
    """``tandem policy validate [DIR] [--strict] [--json]``: 0 when clean, 1 otherwise."""
    write = out or (lambda text: print(text, file=sys.stdout))
    if args.action != "validate":
        write(f"unknown policy action {args.action!r}")
        return 2
    from tandem.environment import project_root

    root = project_root(Path(os.getcwd()))
    policy_dir = _display(args.dir if args.dir is not None else root / "include" / "policies")
    report = validate_directory(policy_dir, _display(clusters_file_for(policy_dir, root)))
    write(report.as_json() if args.json else report.as_text())
    return report.exit_code(bool(args.strict))
