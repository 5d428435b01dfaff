"""Promotion lands on a restore point.

Before any role is written, every business of the pair is checked on the cluster to promote
(``verify --live`` against its newest published point) and restored where it differs (what its
live data held beyond the point goes to the quarantine). Only then does
:func:`tandem.failover.promote.promote` write the roles; its reads, refusals and
compare-and-set are unchanged, and the landing runs in its ``before_write`` hook, so a refused
promotion lands nothing and a failed landing writes no role.

A cluster that already says active (promoting it again is how a split brain ends) is never
landed: it serves applications, and its data is newer than any point.

Backups in flight would write into the cluster while it is landed: promotion refuses while any
backup run of the pair runs, unless asked to stop them, in which case the active cluster is
fenced first (every run stops at its next step, see tandem.backup.guard) and promotion waits
for the runs to end. The same code serves ``tandem_promote__<pair>`` and ``tandem promote``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tandem.errors import RestoreError
from tandem.failover.promote import PromotionRefused, PromotionResult, check_request, fence, promote
from tandem.policy import Policy, Topology, load_policies
from tandem.runtime import Clusters

log = logging.getLogger(__name__)

InFlight = Callable[[Sequence[str]], list[str]]  # backup DAG ids -> those with a running run
Stop = Callable[[Sequence[str]], list[str]]  # backup DAG ids -> the runs it stopped


@dataclass
class Landed:
    """What the landing did for one business."""

    business: str
    point: str | None
    restored: bool = False
    changes: dict[str, int] = field(default_factory=dict)
    quarantine: str | None = None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "business": self.business,
            "point": self.point,
            "restored": self.restored,
            "changes": self.changes,
            "quarantine": self.quarantine,
            "note": self.note,
        }


def businesses_of(include: Path, topology: Topology, pair: str) -> list[Policy]:
    """The valid policies of ``pair`` (a bad policy file has no point to land on anyway)."""
    policies = load_policies(include / "policies", topology)
    return sorted((p for p in policies.files.values() if p.pair == pair), key=lambda p: p.business)


def land(clusters: Clusters, topology: Topology, policies: Sequence[Policy], cluster: str) -> list[Landed]:
    """Check each business on ``cluster`` against its newest point; restore those that differ.
    RestoreError (nothing more is changed) when a business cannot be put on its point."""
    from tandem.points import find_point, open_point
    from tandem.restore import plan_landing, restore
    from tandem.verify import check_metadata

    out = []
    for policy in policies:
        try:
            landing = find_point(policy, topology, clusters, cluster, None)
        except RestoreError as exc:
            log.warning("promote: %s: %s; nothing to land on", policy.business, exc)
            out.append(Landed(policy.business, None, note=str(exc)))
            continue
        opened = open_point(clusters, landing)
        differences = [str(a) for a in plan_landing(opened.hdfs, landing.manifest)]
        if opened.capture is not None and opened.metastore is not None:
            differences += check_metadata(opened.capture, opened.metastore, landing.nameservice).mismatches
        point = landing.manifest.point
        if not differences:
            log.info("promote: %s on %s is at its newest point %s", policy.business, cluster, point)
            out.append(Landed(policy.business, point, note="at the point"))
            continue
        log.warning(
            "promote: %s on %s differs from its newest point %s in %d place(s); restoring it",
            policy.business,
            cluster,
            point,
            len(differences),
        )
        outcome = restore(landing, opened.hdfs, opened.metastore, opened.capture)
        for action in outcome.actions:
            log.info("promote: %s: %s", policy.business, action)
        if outcome.check is None or not outcome.check.ok:
            mismatches = outcome.check.mismatches if outcome.check else []
            raise RestoreError(
                f"{policy.business} could not be put back on {point} on {cluster} ({len(mismatches)} "
                f"mismatches left, first: {mismatches[:3]}): no role was written"
            )
        changes = {**outcome.counts(), **{k: v for k, v in outcome.metadata.items() if v}}
        out.append(Landed(policy.business, point, True, changes, outcome.quarantine, "restored to the point"))
    return out


def promote_on_points(
    cluster: str,
    confirmation: str,
    pair: str,
    topology: Topology,
    include: Path,
    clusters: Clusters,
    zk_hosts: dict[str, str],
    in_flight: InFlight,
    *,
    stop_backups: bool = False,
    stop: Stop | None = None,
    wait_s: float = 600.0,
) -> tuple[PromotionResult, list[Landed]]:
    """Land every business of ``pair`` on ``cluster``, then promote it (see the module doc).

    With ``stop_backups``, the active cluster is fenced, ``stop`` (when given) marks the runs
    failed in Airflow, and promotion waits up to ``wait_s`` for them to end."""
    spec = topology.pairs[pair]
    members = (spec.primary, spec.standby)
    refusal = check_request(cluster, confirmation, members)
    if refusal:
        return PromotionResult(cluster, "refused", refusal), []
    policies = businesses_of(include, topology, pair)
    dag_ids = [p.dag_id for p in policies]
    running = in_flight(dag_ids)
    if running and not stop_backups:
        return (
            PromotionResult(
                cluster,
                "refused",
                f"backup runs of pair {pair} are in flight ({', '.join(running)}): they write into "
                f"{cluster}; wait for them, or promote with stop_backups (--stop-backups) to fence and "
                "stop them",
            ),
            [],
        )
    if running:
        other = members[1] if cluster == members[0] else members[0]
        log.warning("promote: %s", fence(other, zk_hosts))
        if stop is not None:
            log.warning("promote: stopped %s", ", ".join(stop(dag_ids)) or "nothing")
        deadline = time.monotonic() + wait_s
        while running and time.monotonic() < deadline:
            log.info("promote: waiting for %s to stop", ", ".join(running))
            time.sleep(2.0)
            running = in_flight(dag_ids)
        if running:
            return PromotionResult(cluster, "refused", f"backup runs still in flight: {running}"), []
    landed: list[Landed] = []
    # A cluster that says active serves applications (promoting it again ends a split brain):
    # its data is newer than any point and must never be rolled back.
    serving = clusters.observe(cluster).role == "active"

    def before_write() -> None:
        if serving:
            log.info("promote: %s already says active: its data is live, nothing is landed", cluster)
        else:
            landed.extend(land(clusters, topology, policies, cluster))
        late = in_flight(dag_ids)
        if late:
            raise PromotionRefused(f"backup runs started while {cluster} was landed ({late}): promote again")

    try:
        result = promote(cluster, confirmation, zk_hosts, before_write=before_write)
    except (RestoreError, PromotionRefused) as exc:
        return PromotionResult(cluster, "refused", str(exc)), landed
    return result, landed


# -- the command -----------------------------------------------------------------------------------
def run_promote(args: Any) -> int:
    """``tandem promote CLUSTER --confirm CLUSTER [--stop-backups]``."""
    from tandem import environment
    from tandem.airflow_cli import AirflowCommand
    from tandem.environment import include_dir
    from tandem.policy import load_topology
    from tandem.runtime import cluster_clients_for_cli

    environment.use(args.home, with_airflow=True)
    clusters = cluster_clients_for_cli(args.home)
    include = include_dir()
    topology = load_topology(include / "clusters.yaml")
    pairs = [name for name, spec in topology.pairs.items() if args.cluster in (spec.primary, spec.standby)]
    if len(pairs) != 1:
        raise PromotionRefused(
            f"{args.cluster!r} belongs to {len(pairs)} pairs of {include / 'clusters.yaml'}"
        )
    pair = pairs[0]
    spec = topology.pairs[pair]
    hosts = {name: clusters.zk_hosts(name) for name in (spec.primary, spec.standby)}
    airflow = AirflowCommand()
    result, landed = promote_on_points(
        args.cluster,
        args.confirm,
        pair,
        topology,
        include,
        clusters,
        hosts,
        airflow.in_flight,
        stop_backups=args.stop_backups,
        stop=airflow.stop,
    )
    if args.json:
        print(json.dumps({**result.to_json(), "businesses": [b.to_json() for b in landed]}, indent=2))
    else:
        for b in landed:
            where = f"; beyond-point data in {b.quarantine}" if b.quarantine else ""
            changes = ", ".join(f"{k} {v}" for k, v in sorted(b.changes.items()))
            changed = f" ({changes})" if changes else ""
            print(f"  {b.business}: {b.point or 'no point'}: {b.note}{changed}{where}")
        print(f"promotion of {result.cluster}: {result.outcome}: {result.reason}")
    return 0 if result.ok else 1
