"""A business's backup as a graph of steps, built once from its policy, with no Airflow in it.

The way from a policy to running tasks reads in one direction: the policy (tandem.policy) gives
this graph; the DAG factory (tandem.dags.backup) renders each step as a task and each edge as a
dependency; every task, and ``run_once`` in a single process, runs its step through
:func:`tandem.backup.execute` with what the steps before it returned. The graph is the contract's
task ids (DESIGN.md) and nothing else: no step is named or ordered anywhere but here.

Steps and what they take:

- ``preflight``
- ``snapshot.resolve_<component>`` ← preflight (the source)
- ``snapshot.take`` ← preflight, every resolve
- ``copy_<component>`` ← preflight, its resolve, take
- ``register_metadata`` ← preflight, take; after every copy (a failed copy never touches the
  target's metastore)
- ``snapshot_standby`` ← preflight, take; after register_metadata
- ``sync_user_data`` ← preflight, take; after snapshot_standby
- ``publish_restore_point`` ← preflight, take, every copy, sync_user_data
- ``apply_retention`` ← preflight; after publish_restore_point
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tandem.policy import Component, Policy, Topology

COMPONENT_ORDER: tuple[Component, ...] = ("hdfs", "hive", "sparksql")
SNAPSHOT_GROUP = "snapshot"


@dataclass(frozen=True)
class Input:
    """A value a step takes: what the named step(s) returned (a list when ``many``)."""

    name: str
    steps: tuple[str, ...]
    many: bool = False


@dataclass(frozen=True)
class Step:
    """One task of the backup: its id (with its group), its kind, and where its inputs come from."""

    task_id: str
    kind: str
    inputs: tuple[Input, ...] = ()
    after: tuple[str, ...] = ()  # steps that must succeed first, whose values it does not take
    component: str | None = None
    pool: str | None = None  # the pair's Airflow pool, for copies
    publishes: bool = False  # updates the business's Asset

    @property
    def group(self) -> str | None:
        return self.task_id.split(".", 1)[0] if "." in self.task_id else None

    @property
    def local_id(self) -> str:
        """The id inside its group (what the task is declared with)."""
        return self.task_id.rsplit(".", 1)[-1]

    @property
    def upstream(self) -> tuple[str, ...]:
        ids = [s for i in self.inputs for s in i.steps] + list(self.after)
        return tuple(dict.fromkeys(ids))


@dataclass(frozen=True)
class BackupGraph:
    business: str
    dag_id: str
    components: tuple[str, ...]
    steps: tuple[Step, ...]

    def step(self, task_id: str) -> Step:
        for step in self.steps:
            if step.task_id == task_id:
                return step
        raise KeyError(task_id)

    @property
    def publish(self) -> Step:
        return next(s for s in self.steps if s.publishes)


def backup_graph(policy: Policy, topology: Topology) -> BackupGraph:
    """The steps of ``policy``'s backup, in the order they are declared (and may run)."""
    components = tuple(c for c in COMPONENT_ORDER if policy.datasets(c))
    pool = topology.pairs[policy.pair].pool
    resolves = {c: f"{SNAPSHOT_GROUP}.resolve_{c}" for c in components}
    take = f"{SNAPSHOT_GROUP}.take"
    copies = tuple(f"copy_{c}" for c in components)
    started = Input("started", ("preflight",))
    taken = Input("taken", (take,))
    steps = [
        Step("preflight", "preflight"),
        *(Step(resolves[c], "resolve", (started,), component=c) for c in components),
        Step(take, "take", (started, Input("resolved", tuple(resolves.values()), many=True))),
        *(
            Step(
                f"copy_{c}",
                "copy",
                (started, Input("resolved", (resolves[c],)), taken),
                component=c,
                pool=pool,
            )
            for c in components
        ),
        Step("register_metadata", "register_metadata", (started, taken), after=copies),
        Step("snapshot_standby", "snapshot_standby", (started, taken), after=("register_metadata",)),
        Step("sync_user_data", "sync_user_data", (started, taken), after=("snapshot_standby",)),
        Step(
            "publish_restore_point",
            "publish_restore_point",
            (started, taken, Input("copies", copies, many=True), Input("user_data", ("sync_user_data",))),
            publishes=True,
        ),
        Step("apply_retention", "apply_retention", (started,), after=("publish_restore_point",)),
    ]
    return BackupGraph(policy.business, policy.dag_id, components, tuple(steps))
