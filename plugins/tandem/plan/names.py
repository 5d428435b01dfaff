"""Names of restore points and their snapshots (``tandem-<business>-<T>``). Pure."""

from __future__ import annotations

import re
from datetime import UTC, datetime

# --------------------------------------------------------------------------------------------
# Names of restore points and their snapshots

POINT_FORMAT = "%Y%m%dT%H%M%SZ"
SNAPSHOT_PREFIX = "tandem-"
_SNAPSHOT_NAME = re.compile(r"tandem-([a-z][a-z0-9_]*)-(\d{8}T\d{6}Z)")


def _utc(instant: datetime) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{instant.isoformat()} has no time zone: restore points are named in UTC")
    return instant.astimezone(UTC)


def point_id(instant: datetime) -> str:
    """``2026-11-20T13:00:00Z`` -> ``20261120T130000Z``; refuses naive and sub-second instants.

    A fraction of a second would be dropped from the name, so two points could share it.
    """
    utc = _utc(instant)
    if utc.microsecond:
        raise ValueError(f"{utc.isoformat()} has a fraction of a second: points are named to the second")
    return utc.strftime(POINT_FORMAT)


def parse_point_id(text: str) -> datetime:
    """The inverse of :func:`point_id`; ValueError when ``text`` is not one."""
    return datetime.strptime(text, POINT_FORMAT).replace(tzinfo=UTC)


def snapshot_name(business: str, instant: datetime) -> str:
    """``tandem-<business>-<%Y%m%dT%H%M%SZ>``: the name of every snapshot of one restore point."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", business):
        raise ValueError(f"{business!r} is not a business name")
    return f"{SNAPSHOT_PREFIX}{business}-{point_id(instant)}"


def parse_snapshot_name(name: str) -> tuple[str, datetime] | None:
    """``(business, instant)`` of a Tandem snapshot name; None for any other snapshot."""
    match = _SNAPSHOT_NAME.fullmatch(name)
    if match is None:
        return None
    try:
        return match.group(1), parse_point_id(match.group(2))
    except ValueError:  # digits in the right places but no such date
        return None
