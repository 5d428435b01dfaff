"""What a plan's sides hold pending, read from their journals: one LISTSTATUS per queue.

:func:`plan_status` is what ``tandem gateway status``, the gateway's ``/tandem/status`` and the
replay DAG's sensor all read; a plan is *degraded* while a side does not answer or any queue
holds a mark (as HBase's DOWNGRADE_ACTIVE says a peer is behind).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tandem.gateway.context import PlanContext
from tandem.gateway.marks import INFLIGHT, PENDING_BACKUP, PENDING_STORE, Queue
from tandem.gateway.sides import is_unreachable

EVICTIONS = "evictions"  # the queue of eviction records on the target (:mod:`.space`)


@dataclass(frozen=True)
class SideQueues:
    """One side: whether it answers, and its queues by key (``pending_backup``, ``inflight`` on a
    primary; ``pending_store_<primary>`` on the standby, keyed by the primary the work is for)."""

    name: str
    reachable: bool
    queues: dict[str, Queue] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)  # queue key -> the primary its work is for
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        if not self.reachable:
            return {"reachable": False, "error": self.error}
        return {
            "reachable": True,
            **{k: {"count": q.count, "oldest_age_s": q.oldest_age_s()} for k, q in self.queues.items()},
        }


@dataclass(frozen=True)
class PlanStatus:
    plan: str
    mode: str
    standby: str
    sides: tuple[SideQueues, ...]
    evictions: int = 0  # eviction runs recorded on the target (each logged with what it deleted)
    target: str = ""  # the target's protocol

    @property
    def degraded(self) -> bool:
        return any(not s.reachable or any(q.count for q in s.queues.values()) for s in self.sides)

    def work_by_primary(self) -> dict[str, int]:
        """Marks per primary they concern (pending-store marks count for their primary)."""
        work: dict[str, int] = {}
        for side in self.sides:
            for key, queue in side.queues.items():
                if queue.count:
                    owner = side.owners.get(key, side.name)
                    work[owner] = work.get(owner, 0) + queue.count
        return work

    def down(self) -> list[str]:
        return [s.name for s in self.sides if not s.reachable]

    def to_json(self) -> dict[str, Any]:
        return {
            "plan": self.plan,
            "mode": self.mode,
            "degraded": self.degraded,
            "target": self.target,
            "sides": {s.name: s.to_json() for s in self.sides},
            "evictions": self.evictions,
        }


def plan_status(ctx: PlanContext) -> PlanStatus:
    sides = []
    evictions = 0
    for side in ctx.all_sides():
        try:
            journal = ctx.journal(side)
            if side is ctx.standby:
                keys = {f"pending_store_{p}": p for p in ctx.primaries}
                queues = {key: journal.queue(PENDING_STORE, p) for key, p in keys.items()}
                sides.append(SideQueues(side.name, True, queues, keys))
                evictions = journal.queue(EVICTIONS).count
            else:
                queues = {s.replace("-", "_"): journal.queue(s) for s in (PENDING_BACKUP, INFLIGHT)}
                sides.append(SideQueues(side.name, True, queues))
        except Exception as exc:
            if not is_unreachable(exc):
                raise
            sides.append(SideQueues(side.name, False, error=str(exc)))
    return PlanStatus(
        ctx.plan.plan, ctx.plan.mode, ctx.standby.name, tuple(sides), evictions, ctx.plan.target.protocol
    )
