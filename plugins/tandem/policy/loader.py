"""Loading policy and topology files: YAML (libyaml, duplicate keys refused), every error as
file: field: reason, one bad file isolated from the others, cross-file warnings. Reads files only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    TypeAdapter,
    ValidationError,
)

from tandem.errors import ConfigError
from tandem.policy.models import (
    DatasetEntry,
    PairConfig,
    Policy,
    Topology,
    _group_problems,
    _pair_problems,
    _tenant_problems,
)
from tandem.policy.types import (
    _CROSS_ERROR,
    _OWN_ERROR,
    FILE_FIELD,
    MIN_QUIET_PERIOD,
    HdfsPath,
    format_duration,
    shown,
)

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


def read_yaml(path: Path) -> tuple[Any, list[ConfigError]]:
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
    value = error.get("input")
    suffix = "" if isinstance(value, dict | list) else f" (got {shown(value)})"
    message = str(error["msg"])
    return message[:1].lower() + message[1:] + suffix


def validation_errors(file: str, root: type[BaseModel], exc: ValidationError) -> list[ConfigError]:
    errors = exc.errors()

    def follows(error: Any) -> bool:
        """A list too short only because its items were refused: those errors say why."""
        loc = error["loc"]
        return error["type"] == "too_short" and any(
            len(other["loc"]) > len(loc) and other["loc"][: len(loc)] == loc for other in errors
        )

    return [
        ConfigError(file, _format_loc(error["loc"]), _reason(root, error))
        for error in errors
        if error["type"] != _CROSS_ERROR and not follows(error)
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
        errors = validation_errors(file, Policy, exc) + errors
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
    raw, errors = read_yaml(path)
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
    raw, errors = read_yaml(path)
    if raw is None:
        return None, tuple(errors)
    file = str(path)
    try:
        return Topology.model_validate(raw), ()
    except ValidationError as exc:
        found = validation_errors(file, Topology, exc)
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
