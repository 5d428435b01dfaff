"""Instants for tests, derived from now: no test may depend on today's date.

Points are whole hours in the recent past, so retention (``max_age``) never expires them
during a test and every point is earlier than the wall clock, as a scheduled run's would be.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tandem.plan import point_id


def recent_hour(hours_ago: int = 12) -> datetime:
    """A whole hour ``hours_ago`` hours before now (UTC)."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours_ago)


def stamp(instant: datetime) -> str:
    """``%Y%m%dT%H%M%SZ``, as in snapshot names and quarantine paths."""
    return point_id(instant)


def iso(instant: datetime) -> str:
    """``%Y-%m-%dT%H:%M:%SZ``, as in manifests."""
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")
