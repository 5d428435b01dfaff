"""What the operators' page shows, as plain values: pure, so every rule is tested without a cluster.

A business's recovery point objective is its schedule's period: a restore point at least every
``schedule.every``. Its actual RPO is the age of its newest restore point, and the compliance
state compares the two: *met* within the period, *exceeded* up to twice it, *severely exceeded*
beyond, *no point yet* before the first backup (as Cloudera Replication Manager and Zerto report
a job's RPO against its target).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

MET, EXCEEDED, SEVERE, NO_POINT, UNKNOWN = "met", "exceeded", "severely exceeded", "no point yet", "unknown"
STATES = (MET, EXCEEDED, SEVERE, NO_POINT, UNKNOWN)


def format_age(seconds: float | None) -> str:
    """An age for people: ``45 s``, ``12 min``, ``3.5 h``, ``2.1 d`` (``-`` for none)."""
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def compliance(rpo_s: float | None, period_s: float, reachable: bool = True) -> str:
    """The state of a business whose newest point is ``rpo_s`` old (None: no point found)."""
    if rpo_s is None:
        return NO_POINT if reachable else UNKNOWN
    if rpo_s <= period_s:
        return MET
    if rpo_s <= 2 * period_s:
        return EXCEEDED
    return SEVERE


@dataclass(frozen=True)
class Point:
    """One restore point as the page lists it."""

    point: str
    mode: str
    files: int
    bytes: int
    skew_ms: int
    verified: bool
    on: str
    source: str
    target: str


@dataclass(frozen=True)
class Run:
    """A DAG's newest run, as Airflow recorded it."""

    run_id: str
    state: str
    started: datetime | None
    ended: datetime | None

    @property
    def duration_s(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return round((self.ended - self.started).total_seconds(), 1)


@dataclass(frozen=True)
class BusinessRow:
    business: str
    pair: str
    dag_id: str
    period_s: float
    newest: Point | None
    rpo_s: float | None
    compliance: str
    last_run: Run | None
    next_run: datetime | None
    problems: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        run = self.last_run
        return {
            "business": self.business,
            "pair": self.pair,
            "dag_id": self.dag_id,
            "period_s": self.period_s,
            "newest_point": self.newest.point if self.newest else None,
            "rpo_s": self.rpo_s,
            "compliance": self.compliance,
            "last_run_state": run.state if run else None,
            "last_run_duration_s": run.duration_s if run else None,
            "bytes_copied": self.newest.bytes if self.newest else None,
            "verified": self.newest.verified if self.newest else None,
            "next_run": self.next_run.isoformat() if self.next_run else None,
            "problems": list(self.problems),
        }


@dataclass(frozen=True)
class ClusterRow:
    name: str
    role: str
    epoch: int | None
    liveness: str
    problem: str | None = None


@dataclass(frozen=True)
class PairRow:
    pair: str
    clusters: tuple[ClusterRow, ...]
    backups: str  # "primary -> standby", or why none run
    verdict: str  # what the watch makes of the pair now
    clients: str  # where ActiveClusterClient sends applications

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "clusters": [asdict(c) for c in self.clusters]}


@dataclass(frozen=True)
class GatewayRow:
    plan: str
    mode: str
    target: str
    degraded: bool | None
    pending: int
    oldest_pending_s: float | None
    down: tuple[str, ...] = ()
    problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Snapshot:
    """Everything the page shows, read at ``taken`` (the page says how old it is)."""

    taken: datetime
    businesses: tuple[BusinessRow, ...]
    pairs: tuple[PairRow, ...]
    gateways: tuple[GatewayRow, ...]
    seconds: float = 0.0
    errors: tuple[str, ...] = field(default=())

    def counts(self) -> dict[str, int]:
        found = Counter(b.compliance for b in self.businesses)
        return {state: found.get(state, 0) for state in STATES}
