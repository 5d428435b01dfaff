"""Scalar types of policies and the topology: durations, rates, instants, HDFS paths, names;
each parses text once and fails with a reason naming what it expected. Pure.
"""

from __future__ import annotations

import posixpath
import re
import reprlib
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType
from typing import Annotated, Any, NoReturn

from pydantic import (
    AfterValidator,
    BeforeValidator,
    PlainSerializer,
)
from pydantic_core import PydanticCustomError

# A "field" for problems that concern the whole file rather than one key in it.
FILE_FIELD = "<file>"

# Our own errors carry their sentence in ctx["reason"], which becomes the ConfigError's reason.
_OWN_ERROR = "tandem"
# Cross-item checks (duplicates, overlaps) run again inside the model so that a Policy built in
# code is valid too; the loader reports them itself, per item, and drops this summary.
_CROSS_ERROR = "tandem_cross"

MIN_QUIET_PERIOD = timedelta(minutes=5)


def _bounded_repr() -> reprlib.Repr:
    bounded = reprlib.Repr()
    bounded.maxlevel, bounded.maxlist, bounded.maxdict, bounded.maxtuple, bounded.maxset = 2, 4, 4, 4, 4
    bounded.maxstring, bounded.maxother = 200, 200
    return bounded


_SHOWN = _bounded_repr()


def shown(value: object) -> str:
    """A value as an error message shows it: its repr, cut short (a YAML alias can make a small
    file hold a value whose whole repr takes minutes to build and gigabytes to hold)."""
    return _SHOWN.repr(value)


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
        raise ValueError(f"{shown(text)} is not a duration: write a number and a unit, {_DURATION_HINT}")
    total = timedelta()
    last = -1
    for number, unit in _DURATION_PART.findall(compact):
        rank = _UNIT_ORDER.index(unit)
        if rank <= last:
            raise ValueError(
                f"{shown(text)} is not a duration: give each unit once, largest first, as in 1h30m"
            )
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
    _fail(f"{shown(value)} is not a duration: a duration needs a unit, {_DURATION_HINT}")


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
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$")
_SIZE_UNITS = {**_RATE_UNITS, "TB": 10**12, "TiB": 1 << 40}


def parse_rate(text: str) -> int:
    """``100MB/s``, ``1.5GiB/s``, ``800KB/s`` -> bytes per second (decimal and binary units)."""
    match = _RATE.match(text)
    if not match:
        raise ValueError(
            f"{shown(text)} is not a rate like 100MB/s (units B, KB, MB, GB, KiB, MiB, GiB per s)"
        )
    rate = int(float(match.group(1)) * _RATE_UNITS[match.group(2)])
    if rate <= 0:
        raise ValueError(f"{shown(text)}: a rate must be more than zero")
    return rate


def format_size(count: int) -> str:
    """Bytes for people: ``512 B``, ``4.0 KiB``, ``1.5 GiB`` (binary units, one decimal)."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


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
    _fail(f"{shown(value)} is not a rate: write it with a unit, like 100MB/s")


Rate = Annotated[int, BeforeValidator(_to_rate), PlainSerializer(format_rate, return_type=str)]


def parse_size(text: str) -> int:
    """``2GiB``, ``500MB``, ``64KiB`` -> bytes (the units of rates, and TB, TiB)."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(
            f"{shown(text)} is not a size like 2GiB or 500MB (units B, KB, MB, GB, TB, KiB...TiB)"
        )
    size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
    if size <= 0:
        raise ValueError(f"{shown(text)}: a size must be more than zero")
    return size


def _to_size(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        try:
            return parse_size(value)
        except ValueError as exc:
            _fail(str(exc))
    _fail(f"{shown(value)} is not a size: write it with a unit, like 2GiB")


Size = Annotated[int, BeforeValidator(_to_size)]


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
            _fail(f"{shown(value)} is not an ISO-8601 instant: {hint}")
    else:
        _fail(f"{shown(value)} is not an instant: {hint}")
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
        _fail(f"{shown(value)} is not an HDFS path: write an absolute path such as /data/billing")
    text = value.strip()
    if "://" in text:
        _fail(f"{shown(text)} names a filesystem: write the path only, the pair decides the cluster")
    if not text.startswith("/"):
        _fail(f"relative HDFS path {shown(text)}: write it from the root, such as /{text}")
    parts = text.split("/")
    if ".." in parts:
        _fail(f"{shown(text)} contains '..': write the path it leads to")
    if ".snapshot" in parts:
        _fail(f"{shown(text)} points into a .snapshot directory, which is read-only history")
    normalised = normalise_hdfs_path(text)
    if normalised == "/":
        _fail("the filesystem root cannot be protected: name the business's own directories")
    return normalised


HdfsPath = Annotated[str, BeforeValidator(_to_hdfs_path)]

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_TABLE = re.compile(rf"({_IDENTIFIER})\.({_IDENTIFIER})")


def _to_table_name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail(f"{shown(value)} is not a table name: write <database>.<table>")
    text = value.strip()
    if "." not in text:
        _fail(
            f"table name {shown(text)} has no database: "
            f"write it as <database>.<table>, such as default.{text}"
        )
    if not _TABLE.fullmatch(text):
        _fail(f"{shown(text)} is not <database>.<table> made of letters, digits and underscores")
    # The metastore stores names in lower case, so compare and copy them that way.
    return text.lower()


TableName = Annotated[str, BeforeValidator(_to_table_name)]

_BUSINESS = re.compile(r"[a-z][a-z0-9_]{0,63}")
_CLUSTER_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")


def _to_name(value: object) -> str:
    if not isinstance(value, str) or not _CLUSTER_NAME.fullmatch(value):
        _fail(
            f"{shown(value)} is not a name: "
            "use lowercase letters, digits, '-' and '_', starting with a letter"
        )
    return value


Name = Annotated[str, BeforeValidator(_to_name)]


def _to_conn_id(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", value):
        _fail(f"{shown(value)} is not an Airflow connection id")
    return value


ConnId = Annotated[str, BeforeValidator(_to_conn_id)]


def _freeze_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))
