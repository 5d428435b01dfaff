"""Names, patterns and paths as the Hive metastore spells them (pure functions, no I/O).

The rules follow Hive's own code: ``Warehouse``/``FileUtils`` for partition names and their
escaping, ``MetaStoreUtils.validateName`` for object names, ``ObjectStore`` for the ``*``/``|``
patterns of ``get_databases``/``get_tables``, and Hadoop's ``Path`` for location strings.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urlsplit

DEFAULT_PARTITION_NAME = "__HIVE_DEFAULT_PARTITION__"

# FileUtils.charToEscape on a non-Windows metastore: control characters and the characters
# that would break a path component or its key=value syntax.
_ESCAPED = frozenset(chr(c) for c in range(0x20)) | frozenset("\"#%'*/:=?\\\x7f{[]^")
_VALID_NAME = re.compile(r"[A-Za-z0-9_]+")
_PART_COMPONENT = re.compile(r"([^/]+)=([^/]+)")
_HEX2 = re.compile(r"[0-9A-Fa-f]{2}")


def normalize_identifier(name: str) -> str:
    """Hive stores database, table and column names trimmed and lower-cased."""
    return name.strip().lower()


def is_valid_name(name: str | None) -> bool:
    """``MetaStoreUtils.validateName``: letters, digits and underscores only."""
    return bool(name) and _VALID_NAME.fullmatch(name or "") is not None


def escape_path_name(text: str | None) -> str:
    """One partition key or value as a path component; empty becomes the default partition."""
    if not text:
        return DEFAULT_PARTITION_NAME
    return "".join(f"%{ord(c):02X}" if c in _ESCAPED else c for c in text)


def unescape_path_name(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "%" and _HEX2.fullmatch(text[i + 1 : i + 3]):
            out.append(chr(int(text[i + 1 : i + 3], 16)))
            i += 3
            continue
        out.append(c)
        i += 1
    return "".join(out)


class PartitionSpecError(ValueError):
    """Partition keys and values do not fit together (the metastore answers MetaException)."""


def make_part_name(keys: Sequence[str], values: Sequence[str | None]) -> str:
    """``k1=v1/k2=v2``: keys lower-cased, both sides escaped, as ``Warehouse.makePartName``."""
    if not keys or len(keys) != len(values):
        raise PartitionSpecError(
            f"Invalid partition key & values; keys [{', '.join(keys)}], "
            f"values [{', '.join(str(v) for v in values)}]"
        )
    return "/".join(
        f"{escape_path_name(k.lower())}={escape_path_name(v)}" for k, v in zip(keys, values, strict=True)
    )


def spec_from_name(name: str) -> dict[str, str]:
    """``Warehouse.makeSpecFromName``: ordered key -> value; components without ``=`` are skipped."""
    if not name:
        raise PartitionSpecError(f"Partition name is invalid. {name}")
    spec: dict[str, str] = {}
    for component in name.split("/"):
        match = _PART_COMPONENT.fullmatch(component)
        if match:
            spec[unescape_path_name(match.group(1))] = unescape_path_name(match.group(2))
    return spec


def values_from_name(keys: Sequence[str], name: str) -> list[str]:
    """The values of ``name`` in key order; a missing key is an error, extra keys are ignored."""
    spec = spec_from_name(name)
    values = []
    for key in keys:
        if key not in spec:
            raise PartitionSpecError(f"incomplete partition name - missing {key}")
        values.append(spec[key])
    return values


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """A Hive name pattern: ``|`` separates alternatives, ``*`` matches anything.

    Like ``ObjectStore`` (which hands the rest to a JDOQL ``matches``), every other character
    keeps its regular-expression meaning; matching is on the whole (lower-cased) name.
    """
    alternatives = [p.replace("*", ".*") for p in normalize_identifier(pattern).split("|")]
    try:
        return re.compile("|".join(f"(?:{alt})" for alt in alternatives))
    except re.error as exc:
        raise ValueError(f"invalid pattern {pattern!r}: {exc}") from exc


def matches_pattern(pattern: str | None, names: Sequence[str]) -> list[str]:
    if pattern is None or pattern.strip() == "*":
        return list(names)
    regex = pattern_regex(pattern)
    return [n for n in names if regex.fullmatch(n)]


def normalize_path(path: str) -> str:
    """Hadoop ``Path`` normalisation: no repeated slashes, no trailing slash except the root."""
    collapsed = re.sub(r"/{2,}", "/", path)
    return collapsed.rstrip("/") or "/"


def qualify_location(location: str, default_fs: str) -> str:
    """What ``Warehouse.getDnsPath`` makes of a location: scheme and authority always present.

    A bare path, or a URI of the default scheme without an authority, takes the default file
    system's scheme and authority; other URIs keep theirs.
    """
    default = urlsplit(default_fs)
    scheme, authority, raw = _path_parts(location)
    if not scheme:
        scheme, authority = default.scheme, default.netloc
    elif not authority and scheme == default.scheme:
        authority = default.netloc
    path = normalize_path("/" + raw.lstrip("/"))
    if not scheme:
        return path
    return f"{scheme}://{authority}{path}" if authority else f"{scheme}:{path}"


def join_location(parent: str, child: str) -> str:
    """``new Path(parent, child)`` for a relative child."""
    return parent.rstrip("/") + "/" + child.lstrip("/")


def location_path(location: str) -> str:
    return _path_parts(location)[2]


def _path_parts(location: str) -> tuple[str, str, str]:
    """(scheme, authority, path) as Hadoop's ``Path(String)`` splits them: a scheme before the
    first ``:`` that comes before any ``/``, an authority after ``//``, and the rest the path,
    ``#`` and ``?`` included (a Path has no query or fragment)."""
    colon, slash = location.find(":"), location.find("/")
    scheme, rest = "", location
    if colon != -1 and (slash == -1 or colon < slash):
        scheme, rest = location[:colon], location[colon + 1 :]
    authority = ""
    if rest.startswith("//"):
        end = rest.find("/", 2)
        authority, rest = (rest[2:], "") if end == -1 else (rest[2:end], rest[end:])
    return scheme, authority, rest
