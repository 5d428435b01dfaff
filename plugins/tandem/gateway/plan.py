"""Gateway plans: ``include/gateway/<plan>.yaml``, one file per backup plan, parsed once.

A plan says where applications write (its ``roots``), which primaries hold the data (a data id
hashes to a bucket, each bucket belongs to one primary), where every write is mirrored
(``target``: a cluster of ``clusters.yaml`` and a root there) and when (``mode``: ``sync`` or
``async``). Files are validated like policies: every error is reported as file, field and
reason, and one bad file never stops the other plans (:func:`load_plans`).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from tandem.errors import ConfigError
from tandem.policy.loader import InvalidConfig, policy_files, read_yaml, validation_errors
from tandem.policy.models import Policy, Topology, _join
from tandem.policy.types import _CROSS_ERROR, FILE_FIELD, Duration, HdfsPath, Name, Size

JOURNAL_ROOT = "/.tandem/gateway"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Routing(_Frozen):
    """key = hash(data id) mod buckets; each bucket belongs to one primary."""

    hash: Literal["md5", "sha1", "sha256"] = "md5"
    buckets: int = Field(default=1000, ge=1, le=1_000_000)


class Target(_Frozen):
    """Where every write is mirrored, ``<root>/<path as written>``: on a cluster of
    ``clusters.yaml``, or on any store fsspec's registry reaches by ``uri`` (``file:///mnt/nas``,
    ``s3://bucket/prefix``, ``webhdfs://host:port``), with the Airflow connection ``conn_id``
    holding its credentials. ``capacity`` bounds what the plan may keep there."""

    cluster: Name | None = None
    uri: str | None = Field(default=None, min_length=1)
    conn_id: str | None = Field(default=None, min_length=1)
    name: Name | None = None
    root: HdfsPath
    capacity: Size | None = None

    @property
    def protocol(self) -> str:
        return urlsplit(self.uri).scheme if self.uri else "webhdfs"

    @property
    def label(self) -> str:
        """How status and logs name the target: its cluster, its ``name``, or the URI's host."""
        if self.cluster:
            return self.cluster
        if self.name:
            return self.name
        parts = urlsplit(self.uri or "")
        return f"{parts.scheme}-{parts.netloc}".rstrip("-") if parts.netloc else parts.scheme

    def problems(self) -> list[tuple[str, str]]:
        if within(self.root, "/.tandem") or within("/.tandem", self.root):
            return [("target.root", f"{self.root} overlaps /.tandem, where Tandem keeps its own records")]
        if (self.cluster is None) == (self.uri is None):
            return [("target", "name either a cluster of clusters.yaml or a uri (file://, s3://, ...)")]
        if self.uri is None:
            return [("target.conn_id", "only a uri target takes a connection")] if self.conn_id else []
        import fsspec

        scheme = urlsplit(self.uri).scheme
        if not scheme:
            return [("target.uri", f"{self.uri!r} has no protocol (file://, s3://, webhdfs://...)")]
        if scheme not in fsspec.available_protocols():
            return [("target.uri", f"no filesystem is registered with fsspec for {scheme!r}")]
        return []


class AsyncOptions(_Frozen):
    """Async mode: back a write up this long after the primary acknowledged it."""

    interval: Duration = timedelta(minutes=1)


class Replay(_Frozen):
    """How often ``tandem_gateway_replay__<plan>`` looks for pending work."""

    every: Duration = timedelta(minutes=5)


class PrivateData(_Frozen):
    """What makes a file private (its first MiB), and the master key that encrypts it on the target."""

    words: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    images: bool = True
    # seal every file: detection reads a text file's first MiB; binary formats (Parquet, ORC,
    # gzip...) are not looked into, only recognised as images or not
    everything: bool = False
    key_conn_id: str = Field(min_length=1)
    chunk: Size = 1 << 20  # plaintext bytes per sealed chunk

    @model_validator(mode="after")
    def _patterns_compile(self) -> PrivateData:
        from tandem.gateway.private import BUILT_IN

        for pattern in self.patterns:
            if pattern not in BUILT_IN:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(
                        f"pattern {pattern!r} is neither a built-in ({', '.join(BUILT_IN)}) nor a regular "
                        f"expression: {exc}"
                    ) from exc
        if not 16 <= self.chunk <= 64 << 20:
            raise ValueError(f"chunk {self.chunk} must be between 16 bytes and 64 MiB")
        return self


class SpaceRules(_Frozen):
    """When the target is full: evict the plan's oldest backups (``oldest``), or only those older
    than ``max_age`` (``older_than_max_age``); without ``evict``, a full target leaves writes pending."""

    max_age: Duration | None = None
    evict: Literal["oldest", "older_than_max_age"] | None = None

    @model_validator(mode="after")
    def _age_given(self) -> SpaceRules:
        if self.evict == "older_than_max_age" and self.max_age is None:
            raise ValueError("evict: older_than_max_age needs max_age")
        return self


class Access(_Frozen):
    """Who may write where: a token's user writes only under these paths."""

    user: str = Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")
    paths: tuple[HdfsPath, ...] = Field(min_length=1)


def within(path: str, root: str) -> bool:
    """``path`` is ``root`` or inside it."""
    return path == root or path.startswith(root.rstrip("/") + "/")


class GatewayPlan(_Frozen):
    """One backup plan of the write gateway."""

    plan: Name
    description: str = ""
    roots: tuple[HdfsPath, ...] = ()
    primaries: tuple[Name, ...] = Field(min_length=1)
    routing: Routing = Routing()
    target: Target
    mode: Literal["sync", "async"] = "sync"
    async_: AsyncOptions = Field(default=AsyncOptions(), alias="async")
    large_write_advice: Size = 2 << 30
    access: tuple[Access, ...] = ()
    replay: Replay = Replay()
    private_data: PrivateData | None = None
    space: SpaceRules | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> GatewayPlan:
        # a plan built in code is checked too; the loader reports each problem on its own
        context = info.context or {}
        problems = self.problems(context.get("stem"), context.get("topology"))
        if problems and context.get("cross", True):
            raise PydanticCustomError(_CROSS_ERROR, "{reason}", {"reason": _join(problems)})
        return self

    def problems(self, stem: str | None = None, topology: Topology | None = None) -> list[tuple[str, str]]:
        """Checks across fields and files, as (field, reason): the file's name, the clusters, the roots."""
        problems = []
        if stem is not None and stem != self.plan:
            problems.append(
                ("plan", f"is {self.plan!r} but the file is named {stem!r}: name it {self.plan}.yaml")
            )
        if len(set(self.primaries)) != len(self.primaries):
            problems.append(("primaries", "a cluster is listed twice"))
        problems += self.target.problems()
        if self.target.cluster in self.primaries:
            problems.append(
                ("target.cluster", f"{self.target.cluster!r} is also a primary; the standby must differ")
            )
        if self.routing.buckets < len(self.primaries):
            problems.append(
                (
                    "routing.buckets",
                    f"{self.routing.buckets} buckets cannot spread over {len(self.primaries)} primaries",
                )
            )
        if topology is not None:
            named = [("primaries", p) for p in self.primaries]
            if self.target.cluster:
                named.append(("target.cluster", self.target.cluster))
            known = ", ".join(sorted(topology.clusters))
            problems += [
                (where, f"cluster {name!r} is not defined in clusters.yaml; defined: {known}")
                for where, name in named
                if name not in topology.clusters
            ]
        return problems + self._root_problems()

    def _root_problems(self) -> list[tuple[str, str]]:
        roots = self.write_roots
        problems = [
            ("roots", f"{root} overlaps /.tandem, where Tandem keeps its own records")
            for root in roots
            if within(root, "/.tandem") or within("/.tandem", root)
        ]
        problems += [
            ("roots", f"{a} and {b} overlap: list the outer one only")
            for i, a in enumerate(roots)
            for b in roots[i + 1 :]
            if within(a, b) or within(b, a)
        ]
        problems += [
            (f"access[{n}].paths", f"{path} is outside the plan's roots {', '.join(roots)}")
            for n, rule in enumerate(self.access)
            for path in rule.paths
            if not any(within(path, r) for r in roots)
        ]
        return problems

    # -- derived --------------------------------------------------------------------------
    @property
    def write_roots(self) -> tuple[str, ...]:
        """Where applications may write: ``roots``, by default ``/<plan>``."""
        return self.roots or (f"/{self.plan}",)

    @property
    def journal(self) -> str:
        """Tandem's own records for the plan on every cluster (marks, routing map)."""
        return f"{JOURNAL_ROOT}/{self.plan}"

    @property
    def async_interval(self) -> timedelta:
        return self.async_.interval

    def within_roots(self, path: str) -> bool:
        return any(within(path, root) for root in self.write_roots)

    def may_write(self, user: str, path: str) -> bool:
        """Whether ``user`` may change ``path``: anyone when the plan has no ``access`` rules."""
        if not self.access:
            return True
        return any(rule.user == user and any(within(path, p) for p in rule.paths) for rule in self.access)


@dataclass(frozen=True)
class PlanSet:
    """The plans of a directory, by name, and the errors of the files that did not load."""

    plans: Mapping[str, GatewayPlan]
    errors: Mapping[Path, tuple[ConfigError, ...]]


def check_plan_file(
    path: Path, topology: Topology | None, policies: Sequence[Policy] = ()
) -> tuple[GatewayPlan | None, tuple[ConfigError, ...]]:
    """Every error of one plan file, and the plan when there is none (``policies``: the
    businesses whose data its target root must stay clear of)."""
    raw, errors = read_yaml(path)
    if raw is None:
        return None, tuple(errors)
    context: dict[str, Any] = {"stem": path.stem, "topology": topology, "cross": False}
    try:
        plan = GatewayPlan.model_validate(raw, context=context)
    except ValidationError as exc:
        return None, tuple(validation_errors(str(path), GatewayPlan, exc))
    problems = plan.problems(path.stem, topology)
    if topology is not None:
        problems += [("target.root", why) for why in business_overlaps(plan, policies, topology)]
    found = tuple(ConfigError(str(path), field, reason) for field, reason in problems)
    return (None, found) if found else (plan, ())


def business_overlaps(
    plan: GatewayPlan, policies: Sequence[Policy], topology: Topology, on: tuple[str, str] | None = None
) -> list[str]:
    """Why ``plan``'s target root would hold a business's data: on a cluster of the business's
    pair, at or around one of its HDFS datasets. Eviction there could delete what a restore point
    needs, so such a plan is refused. ``on`` is (cluster, root on it) for a URI target found to be
    that cluster (:func:`tandem.gateway.context.cluster_behind`); by default the plan's cluster."""
    cluster, root = on if on is not None else (plan.target.cluster, plan.target.root)
    if cluster is None:
        return []
    found = []
    for policy in policies:
        pair = topology.pairs.get(policy.pair)
        if pair is None or cluster not in (pair.primary, pair.standby):
            continue
        found += [
            f"{root} on {cluster} overlaps {path}, a dataset of business {policy.business}"
            for path in policy.hdfs_paths
            if within(path, root) or within(root, path)
        ]
    return found


def business_policies(include: Path, topology: Topology | None) -> tuple[Policy, ...]:
    """The businesses of ``include/policies`` (none when a site runs only the gateway)."""
    from tandem.policy import load_policies

    directory = include / "policies"
    return load_policies(directory, topology).policies if directory.is_dir() else ()


def plans_dir(include: Path) -> Path:
    return include / "gateway"


def load_plans(directory: Path, topology: Topology | None, policies: Sequence[Policy] = ()) -> PlanSet:
    """Every plan of ``directory`` (``*.yaml``/``*.yml``), each file isolated from the others."""
    if not directory.is_dir():
        return PlanSet(MappingProxyType({}), MappingProxyType({}))
    good: dict[str, GatewayPlan] = {}
    errors: dict[Path, tuple[ConfigError, ...]] = {}
    files: dict[str, Path] = {}
    for path in policy_files(directory):
        plan, problems = check_plan_file(path, topology, policies)
        if plan is None:
            errors[path] = problems
        else:
            good[plan.plan] = plan
            files[plan.plan] = path
    for name, problem in _shared_targets(good).items():
        errors[files[name]] = (ConfigError(str(files[name]), "target.root", problem),)
        del good[name]
    return PlanSet(MappingProxyType(good), MappingProxyType(errors))


def _shared_targets(plans: Mapping[str, GatewayPlan]) -> dict[str, str]:
    """Plans whose target roots overlap on one store: each evicts and replays only under its
    own root, so no two plans may share one. Sorted by store and root, so linear in the plans."""

    def key(plan: GatewayPlan) -> tuple[str, str]:
        """(the store, the root's full path in it): a URI's path and the root field together, so
        ``s3://b/t`` with root ``/backup`` and ``s3://b/t/backup`` with root ``/x`` nest."""
        root = plan.target.root.rstrip("/") + "/"  # a root sorts just before what it holds
        if plan.target.cluster:
            return f"cluster:{plan.target.cluster}", root
        parts = urlsplit(plan.target.uri or "")
        return f"{parts.scheme}://{parts.netloc}", posixpath.normpath("/" + parts.path).rstrip("/") + root

    found: dict[str, str] = {}
    outer: GatewayPlan | None = None
    for plan in sorted(plans.values(), key=key):
        if outer is None or key(outer)[0] != key(plan)[0] or not key(plan)[1].startswith(key(outer)[1]):
            outer = plan
            continue
        for one, other in ((outer, plan), (plan, outer)):
            found[one.plan] = (
                f"{one.target.root} on {one.target.label} overlaps plan {other.plan}'s target root "
                f"{other.target.root}: give each plan a root of its own"
            )
    return found


def load_plan(include: Path, name: str) -> GatewayPlan:
    """The plan ``name`` of ``include/gateway/``, or ConfigError / InvalidConfig saying why not."""
    from tandem.policy import load_topology

    path = next(
        (p for p in (plans_dir(include) / f"{name}.yaml", plans_dir(include) / f"{name}.yml") if p.is_file()),
        None,
    )
    if path is None:
        raise ConfigError(str(plans_dir(include) / f"{name}.yaml"), FILE_FIELD, f"no gateway plan {name!r}")
    topology = load_topology(include / "clusters.yaml")
    plan, errors = check_plan_file(path, topology, business_policies(include, topology))
    if plan is None:
        raise InvalidConfig(errors)
    return plan
