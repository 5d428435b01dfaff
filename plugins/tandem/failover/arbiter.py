"""The arbiter: where applications point, and whether the pair needs a human, from both states.

Everything here is pure. ZooKeeper payloads become :class:`ClusterView` values once, at the
edge (:meth:`ClusterView.from_znodes`); a missing or corrupt ``/tandem/cluster`` is the role
``"unknown"``, never an exception. Decisions carry the sentence that explains them; tests,
task logs and the UI show that sentence.

Two decisions are made here, from the same two views: where applications point
(:func:`arbitrate`) and which way backups run (:func:`backup_direction`).

Rules (DESIGN.md, "Failover"):

- Clients leave their current cluster only when it says standby, is dead (no ``/tandem/alive``)
  or is unreachable, **and** the other cluster says active and is alive.
- If both clusters say active (split brain), nothing moves.
- A cluster whose role is unknown, or which is dead or unreachable, is never chosen.
- The rules are symmetric: after a promotion reversed the roles they apply the other way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from tandem.failover.state import ClusterRecord, CorruptRecordError

SeenRole = Literal["active", "standby", "unknown"]
Liveness = Literal["alive", "dead", "unreachable"]
SEEN_ROLES: tuple[SeenRole, ...] = ("active", "standby", "unknown")
LIVENESSES: tuple[Liveness, ...] = ("alive", "dead", "unreachable")


@dataclass(frozen=True)
class ClusterView:
    """One cluster as seen from its own ZooKeeper at one moment.

    ``role`` is what ``/tandem/cluster`` says (``unknown`` when it is missing, corrupt, names
    another cluster, or ZooKeeper is unreachable); ``liveness`` is ``alive`` when
    ``/tandem/alive`` exists, ``dead`` when it does not, ``unreachable`` when ZooKeeper did not
    answer. ``problem`` says what was wrong, if anything.
    """

    name: str
    role: SeenRole
    liveness: Liveness
    epoch: int | None = None
    problem: str | None = None

    def __post_init__(self) -> None:
        if self.role not in SEEN_ROLES:
            raise ValueError(f"role must be one of {SEEN_ROLES}, not {self.role!r}")
        if self.liveness not in LIVENESSES:
            raise ValueError(f"liveness must be one of {LIVENESSES}, not {self.liveness!r}")
        if self.liveness == "unreachable" and self.role != "unknown":
            raise ValueError("an unreachable cluster's role cannot be known")

    # -- parsing at the edge ------------------------------------------------------------------
    @classmethod
    def from_record(
        cls, name: str, record: ClusterRecord | None, alive: bool, problem: str | None = None
    ) -> ClusterView:
        """From a parsed record (None: missing) and whether ``/tandem/alive`` exists."""
        liveness: Liveness = "alive" if alive else "dead"
        if record is None:
            return cls(name, "unknown", liveness, None, problem or "/tandem/cluster is missing")
        if record.name != name:
            why = (
                f"/tandem/cluster names cluster {record.name!r}, not {name!r}: two clusters share a ZooKeeper"
            )
            return cls(name, "unknown", liveness, record.epoch, why)
        return cls(name, record.role, liveness, record.epoch, problem)

    @classmethod
    def from_znodes(cls, name: str, record_data: bytes | None, alive: bool) -> ClusterView:
        """From the raw ``/tandem/cluster`` payload (None: no node). Never raises on bad data."""
        if record_data is None:
            return cls.from_record(name, None, alive)
        try:
            record = ClusterRecord.parse(record_data)
        except CorruptRecordError as exc:
            return cls(name, "unknown", "alive" if alive else "dead", None, str(exc))
        return cls.from_record(name, record, alive)

    @classmethod
    def unreachable(cls, name: str, problem: str) -> ClusterView:
        return cls(name, "unknown", "unreachable", None, problem)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ClusterView:
        epoch = data.get("epoch")
        return cls(
            str(data["name"]),
            cast(SeenRole, data["role"]),
            cast(Liveness, data["liveness"]),
            int(epoch) if epoch is not None else None,
            str(data["problem"]) if data.get("problem") is not None else None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "liveness": self.liveness,
            "epoch": self.epoch,
            "problem": self.problem,
        }

    # -- questions ----------------------------------------------------------------------------
    @property
    def reachable(self) -> bool:
        return self.liveness != "unreachable"

    @property
    def alive(self) -> bool:
        return self.liveness == "alive"

    @property
    def serving(self) -> bool:
        """Says active and is alive: the only kind of cluster clients are sent to."""
        return self.role == "active" and self.alive

    def describe(self) -> str:
        """``standby (active, alive, epoch 3)``; ``primary (unreachable: ...)``."""
        if not self.reachable:
            return f"{self.name} (unreachable: {self.problem})"
        epoch = f", epoch {self.epoch}" if self.epoch is not None else ""
        extra = f": {self.problem}" if self.role == "unknown" and self.problem else ""
        return f"{self.name} ({self.role}, {self.liveness}{epoch}{extra})"


# --------------------------------------------------------------------------- client arbitration


@dataclass(frozen=True)
class Decision:
    """Where clients point after looking at both clusters, and why."""

    target: str
    previous: str
    reason: str
    split_brain: bool = False

    @property
    def switched(self) -> bool:
        return self.target != self.previous


def _reason_to_leave(here: ClusterView) -> str | None:
    if here.liveness == "unreachable":
        return f"{here.name} is unreachable ({here.problem})"
    if here.liveness == "dead":
        return f"{here.name} is dead (no /tandem/alive)"
    if here.role == "standby":
        return f"{here.name} says standby"
    return None


def _reason_not_to_join(other: ClusterView) -> str | None:
    if other.liveness == "unreachable":
        return f"{other.name} is unreachable"
    if other.role == "unknown":
        return f"{other.name}'s role is unknown ({other.problem})"
    if other.role == "standby":
        return f"{other.name} says standby"
    if other.liveness == "dead":
        return f"{other.name} says active but is dead"
    return None


def _split(first: ClusterView, second: ClusterView, current: str) -> tuple[ClusterView, ClusterView]:
    if current == first.name:
        return first, second
    if current == second.name:
        return second, first
    raise ValueError(f"current target {current!r} is neither {first.name!r} nor {second.name!r}")


def arbitrate(first: ClusterView, second: ClusterView, current: str) -> Decision:
    """Where clients now pointing at ``current`` (one of the two) should point. Pure.

    Clients move to the other cluster only when ``current`` says standby, is dead or is
    unreachable **and** the other says active and is alive; if both say active, nothing moves.
    """
    here, other = _split(first, second, current)
    if here.role == "active" and other.role == "active":
        return Decision(
            current,
            current,
            f"split brain: both {here.name} and {other.name} say active; clients stay on {here.name} "
            f"until one of them is set to standby (promote the one that must serve)",
            split_brain=True,
        )
    leave = _reason_to_leave(here)
    if leave is None:
        if here.role == "active":
            return Decision(current, current, f"{here.name} is active and alive: staying")
        return Decision(
            current,
            current,
            f"{here.name} is alive but its role is unknown ({here.problem}): staying, an unreadable "
            "record never moves clients",
        )
    refuse = _reason_not_to_join(other)
    if refuse is not None:
        return Decision(current, current, f"{leave}, but {refuse}: staying on {here.name}")
    return Decision(
        other.name, current, f"{leave} and {other.name} is active and alive: switching to {other.name}"
    )


# --------------------------------------------------------------------------- watching the pair

HealthKind = Literal["healthy", "standby_lost", "primary_failed", "split_brain", "no_active"]


@dataclass(frozen=True)
class BackupDirection:
    """Which way backups run now: from ``source`` to ``target``, or not at all (both None)."""

    source: str | None
    target: str | None
    reason: str

    @property
    def runs(self) -> bool:
        return self.source is not None


def backup_direction(first: ClusterView, second: ClusterView) -> BackupDirection:
    """From the cluster that says active and is alive to the other, when that one is alive and
    says standby; otherwise no backup, with the reason (split brain, no active cluster, a sick
    source, an unreachable, dead or non-standby target)."""
    views = (first, second)
    active = [v for v in views if v.reachable and v.role == "active"]

    def refuse(reason: str) -> BackupDirection:
        return BackupDirection(None, None, reason)

    if len(active) == 2:
        return refuse(f"both {first.name} and {second.name} say active (split brain): no backup runs")
    if not active:
        said = ", ".join(f"{v.name} {v.role if v.reachable else 'unreachable'}" for v in views)
        return refuse(f"no active cluster in the pair ({said}): nothing to back up from")
    source = active[0]
    target = second if source is first else first
    if not target.reachable:
        return refuse(
            f"target {target.name} is unreachable ({target.problem}): backups resume when it is back"
        )
    if target.liveness != "alive":
        return refuse(f"target {target.name} is down (no /tandem/alive): backups resume when it is back")
    if target.role != "standby":
        return refuse(f"target {target.name} says {target.role}, not standby")
    if source.liveness != "alive":
        return refuse(f"source {source.name} is active but not alive: refusing to snapshot a sick cluster")
    return BackupDirection(source.name, target.name, f"{source.name} is active and {target.name} standby")


@dataclass(frozen=True)
class PairHealth:
    """What the failover watch reports about a pair.

    ``watched`` is the cluster to watch from now on: the active one, or the one that failed
    (so that a later run keeps watching it until someone promotes). ``key`` identifies the
    situation: the watch fires when it changes, and alerts when the new one is not healthy.
    """

    kind: HealthKind
    watched: str | None
    reason: str
    key: str

    @property
    def alert(self) -> bool:
        return self.kind != "healthy"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "watched": self.watched, "reason": self.reason, "key": self.key}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PairHealth:
        watched = data.get("watched")
        return cls(
            cast(HealthKind, data["kind"]),
            str(watched) if watched else None,
            str(data["reason"]),
            str(data["key"]),
        )


def _failed_reason(view: ClusterView) -> str:
    if view.liveness == "unreachable":
        return f"{view.name}, the active cluster, is unreachable ({view.problem})"
    if view.role == "unknown":
        return f"{view.name}, the active cluster, no longer says active: its role is unknown ({view.problem})"
    return f"{view.name}, the active cluster, is dead (no /tandem/alive)"


def _lost_reason(view: ClusterView) -> str:
    if not view.reachable:
        return f"{view.name} is unreachable ({view.problem})"
    if view.role == "unknown":
        return f"{view.name} has an unreadable record ({view.problem})"
    return f"{view.name} is dead (no /tandem/alive)"


def assess_pair(first: ClusterView, second: ClusterView, watched: str | None) -> PairHealth:
    """Healthy, primary failed, split brain or no active cluster, with the reason. Pure.

    ``watched`` is the cluster known to be active when watching began (None if unknown): when
    it becomes unreachable or unreadable nobody says active any more, and only this tells a
    failed primary from a pair that never had one.
    """
    views = (first, second)
    active = [v for v in views if v.role == "active"]
    if len(active) == 2:
        return PairHealth(
            "split_brain",
            watched,
            f"split brain: both {first.describe()} and {second.describe()} say active; clients do not "
            "move until one is set to standby",
            f"split_brain:{first.epoch}:{second.epoch}",
        )
    # One failure is one incident, one key (one alert, one promotion decision asked), however its
    # look changes (dead, then unreachable): the key names the failed cluster and the epoch of
    # the other, which every promotion raises, so a later failure is a new incident.
    if len(active) == 1:
        view = active[0]
        other = second if view is first else first
        if not view.alive:
            return PairHealth(
                "primary_failed", view.name, _failed_reason(view), f"failed:{view.name}:{other.epoch}"
            )
        if other.role == "standby" and other.alive:
            return PairHealth(
                "healthy",
                view.name,
                f"{view.name} is active and alive (epoch {view.epoch})",
                f"healthy:{view.name}:{view.epoch}",
            )
        return PairHealth(
            "standby_lost",
            view.name,
            f"{view.name} is active, but its standby {_lost_reason(other)}: the pair has no disaster "
            "recovery until it is back",
            f"standby_lost:{view.name}:{view.epoch}:{other.name}",
        )
    by_name = {v.name: v for v in views}
    gone = by_name.get(watched or "")
    if gone is not None and gone.role != "standby":
        other = second if gone is first else first
        return PairHealth(
            "primary_failed", gone.name, _failed_reason(gone), f"failed:{gone.name}:{other.epoch}"
        )
    said = " and ".join(v.describe() for v in views)
    return PairHealth(
        "no_active",
        watched,
        f"no cluster says active: {said}",
        f"no_active:{first.epoch}:{second.epoch}",
    )


# --------------------------------------------------------------------------- what a human does


@dataclass(frozen=True)
class PromoteHow:
    """How to promote a cluster of a pair: the UI steps and the REST call."""

    pair: str
    cluster: str
    dag_id: str
    asked: bool = False  # the watch has asked for the decision (a required action in Airflow)

    @property
    def conf(self) -> dict[str, str]:
        return {"cluster": self.cluster, "confirmation": self.cluster}

    def text(self) -> str:
        body = json.dumps({"logical_date": None, "conf": self.conf})
        answer = (
            f"The watch asked for the decision in a run of {self.dag_id}: answer it on Airflow's "
            f'Required Actions page (choose "Promote {self.cluster}" and type {self.cluster} as the '
            "confirmation) or with PATCH .../hitlDetails of the REST API; nothing is promoted "
            "without an answer. Otherwise: "
            if self.asked
            else ""
        )
        return answer + (
            f"To promote {self.cluster}: in the Airflow UI open DAG {self.dag_id}, Trigger, set "
            f"cluster = {self.cluster} and type confirmation = {self.cluster}. "
            f'Or with the REST API: curl -X POST "$AIRFLOW_URL/api/v2/dags/{self.dag_id}/dagRuns" '
            f"-H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d '{body}' "
            f"(token from POST $AIRFLOW_URL/auth/token)."
        )


def advice(health: PairHealth, views: tuple[ClusterView, ClusterView], pair: str, dag_id: str) -> str:
    """What a human should do about ``health``: a paragraph for the alert. Pure."""
    if health.kind == "healthy":
        return f"Nothing to do: {health.reason}."
    if health.kind == "standby_lost":
        return (
            "Do not promote: the active cluster serves. Bring the standby back (its ZooKeeper, its "
            "/tandem/alive, its record); backups of the pair fail until then, and this watch reports "
            "when it returns."
        )
    if health.kind == "split_brain":
        names = " or ".join(v.name for v in views)
        return (
            f"Decide which cluster must serve ({names}) and promote it again: promotion sets the other "
            f"to standby first. {PromoteHow(pair, views[1].name, dag_id).text()}"
        )
    failed = health.watched
    candidates = [v for v in views if v.name != failed] if failed else list(views)
    ready = [v for v in candidates if v.alive and v.role != "unknown"]
    if not ready:
        said = ", ".join(v.describe() for v in candidates)
        return (
            f"No cluster can be promoted now ({said}): promotion is refused for a dead or unreachable "
            "cluster. Bring one back; this watch reports when the state changes."
        )
    target = ready[0]
    how = PromoteHow(pair, target.name, dag_id, asked=health.kind == "primary_failed")
    return f"{target.name} is alive and can take over. {how.text()}"
