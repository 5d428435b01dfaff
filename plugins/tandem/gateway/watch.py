"""Waiting for the sides a plan's pending work needs: a deferrable sensor and its trigger.

Pending-backup marks on a primary need that primary and the standby; pending-store marks on
the standby need the standby and the primary they are for. The trigger polls (one LISTSTATUS
per queue) in the triggerer, so waiting out a long outage holds no worker slot, and fires as
soon as every side some pending work needs answers, or at once when nothing is pending.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from airflow.sdk import BaseSensorOperator, Context
from airflow.triggers.base import BaseTrigger, TriggerEvent

TRIGGER_PATH = "tandem.gateway.watch.PendingSidesTrigger"


def waiting_on(include: str, plan: str) -> dict[str, Any]:
    """``{"pending": {primary: marks}, "waiting_on": [sides that do not answer but are needed]}``."""
    from tandem.gateway.context import build_context
    from tandem.gateway.plan import load_plan
    from tandem.gateway.status import plan_status

    status = plan_status(build_context(load_plan(Path(include), plan), Path(include)))
    work = status.work_by_primary()
    down = status.down()
    # a standby that does not answer hides what it holds for the primaries: it is always needed
    needed = set(work) | ({status.standby} if work or status.standby in down else set())
    return {"pending": work, "waiting_on": sorted(needed & set(down))}


class PendingSidesTrigger(BaseTrigger):
    def __init__(self, include: str, plan: str, poll_s: float = 5.0) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.include, self.plan, self.poll_s = include, plan, poll_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return TRIGGER_PATH, {"include": self.include, "plan": self.plan, "poll_s": self.poll_s}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            state = await asyncio.to_thread(waiting_on, self.include, self.plan)
            if not state["waiting_on"]:
                yield TriggerEvent(state)  # type: ignore[no-untyped-call]
                return
            self.log.info(
                "plan %s: pending %s, waiting for %s", self.plan, state["pending"], state["waiting_on"]
            )
            await asyncio.sleep(self.poll_s)


class PendingSidesSensor(BaseSensorOperator):
    """Succeeds when every side the plan's pending work needs answers (at once if it does now)."""

    def __init__(self, *, include: str, plan: str, poll_s: float = 5.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.include, self.plan, self.poll_s = include, plan, poll_s

    def execute(self, context: Context) -> Any:
        state = waiting_on(self.include, self.plan)
        if not state["waiting_on"]:
            self.log.info("plan %s: pending %s; every side needed answers", self.plan, state["pending"])
            return state
        self.log.info("plan %s: pending %s; waiting for %s", self.plan, state["pending"], state["waiting_on"])
        self.defer(
            trigger=PendingSidesTrigger(self.include, self.plan, self.poll_s), method_name="execute_complete"
        )

    def poke(self, context: Context) -> bool:
        raise NotImplementedError("PendingSidesSensor is deferrable only")

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        self.log.info("plan %s: sides answer again; pending %s", self.plan, event.get("pending"))
        return event
