"""The backup schedule: runs at ``start + k * every``, each with logical date equal to its instant.

Airflow's DeltaTriggerTimetable counts from the last run or from "now", so after a pause its
runs drift off the policy's grid; restore points named by instant must stay on it. Registered
by :class:`tandem.plugin.TandemPlugin` (Airflow refuses to serialise unregistered timetables).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.timetables.base import DagRunInfo, DataInterval, TimeRestriction, Timetable
from pendulum import DateTime, instance


def _utc(value: datetime) -> DateTime:
    return instance(value.astimezone(UTC))


class PolicyTimetable(Timetable):
    """Every ``every`` from ``start`` (aware UTC); zero-length data intervals at each instant."""

    def __init__(self, start: datetime, every: timedelta) -> None:
        if every <= timedelta(0):
            raise ValueError("every must be positive")
        self.start = _utc(start)
        self.every = every
        self.description = f"every {every} from {self.start.isoformat()}"

    @property
    def summary(self) -> str:
        return self.description

    def serialize(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "every_s": self.every.total_seconds()}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> Timetable:
        return cls(datetime.fromisoformat(data["start"]), timedelta(seconds=data["every_s"]))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PolicyTimetable):
            return NotImplemented
        return (self.start, self.every) == (other.start, other.every)

    def __hash__(self) -> int:
        return hash((self.start, self.every))

    def _periods(self, at: datetime) -> float:
        # pendulum's Duration / timedelta breaks (pendulum 3); divide plain seconds instead
        return (_utc(at).timestamp() - self.start.timestamp()) / self.every.total_seconds()

    def align_up(self, at: datetime) -> DateTime:
        """The first instant of the grid at or after ``at``."""
        steps = max(0, math.ceil(self._periods(at)))
        return self.start + self.every * steps

    def align_down(self, at: datetime) -> DateTime:
        """The last instant of the grid at or before ``at`` (``start`` at the earliest)."""
        steps = max(0, math.floor(self._periods(at)))
        return self.start + self.every * steps

    def infer_manual_data_interval(self, *, run_after: DateTime) -> DataInterval:
        return DataInterval.exact(run_after)

    def next_dagrun_info(
        self, *, last_automated_data_interval: DataInterval | None, restriction: TimeRestriction
    ) -> DagRunInfo | None:
        if last_automated_data_interval is not None:
            candidate = self.align_up(last_automated_data_interval.start + self.every)
        else:
            earliest = restriction.earliest or self.start
            candidate = self.align_up(max(_utc(earliest), self.start))
        if not restriction.catchup:
            # Without catch-up, skip to the newest due instant rather than replaying the past.
            now = _utc(datetime.now(UTC))
            if candidate < now:
                candidate = max(candidate, self.align_down(now))
        if restriction.latest is not None and candidate > restriction.latest:
            return None
        return DagRunInfo.exact(candidate)
