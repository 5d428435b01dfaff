"""Which restore points expire: ``keep_last`` and ``max_age``, with the reason. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import NamedTuple

from tandem.plan.names import _utc

# --------------------------------------------------------------------------------------------
# Retention


class RetentionChoice(NamedTuple):
    """Points to keep and to expire, newest first, and a reason for every point."""

    keep: tuple[datetime, ...]
    expire: tuple[datetime, ...]
    reasons: Mapping[datetime, str]


def _span(span: timedelta) -> str:
    """``7d``, ``8d2h``, ``1h30m``, ``45s``: whole seconds, largest units first."""
    seconds = int(span.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def choose_expired(
    points: Iterable[datetime], keep_last: int, max_age: timedelta | None, now: datetime
) -> RetentionChoice:
    """Which published points to delete.

    A point expires when it is beyond the ``keep_last`` newest or older than ``max_age``
    (None: no age limit); the newest point never expires, so one always remains.
    """
    if keep_last < 1:
        raise ValueError("keep_last must be at least 1: the newest restore point is always kept")
    now = _utc(now)
    ordered = sorted({_utc(p) for p in points}, reverse=True)
    keep: list[datetime] = []
    expire: list[datetime] = []
    reasons: dict[datetime, str] = {}
    limit = f"max_age {_span(max_age)}" if max_age is not None else "no age limit"
    for rank, point in enumerate(ordered):
        age = now - point
        if rank == 0:
            keep.append(point)
            reasons[point] = "the newest restore point is always kept"
        elif rank >= keep_last:
            expire.append(point)
            reasons[point] = f"beyond the {keep_last} newest restore points"
        elif max_age is not None and age > max_age:
            expire.append(point)
            reasons[point] = f"{_span(age)} old, older than {limit}"
        else:
            keep.append(point)
            reasons[point] = f"among the {keep_last} newest and within {limit}"
    return RetentionChoice(tuple(keep), tuple(expire), MappingProxyType(reasons))
