"""``tandem drill``: rehearse a failover on the embedded clusters, and the pair report of ``status``.

:func:`pairs_report` is what ``tandem status`` shows per pair: both clusters' roles, epochs and
liveness, what the watch and the arbiter say, and per business the newest restore point and
its age. Read-only; an unreachable cluster or a missing manifest is reported, never raised.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tandem.failover.arbiter import ClusterView, arbitrate, assess_pair

if TYPE_CHECKING:
    from tandem.embedded.manager import Topology as EmbeddedTopology
    from tandem.runtime import Observation


def view_of(observation: Observation) -> ClusterView:
    """A one-shot :class:`~tandem.runtime.Observation` as the arbiter's :class:`ClusterView`."""
    if not observation.reachable:
        return ClusterView.unreachable(observation.name, observation.problem or "no answer")
    return ClusterView.from_record(
        observation.name, observation.record, observation.alive, observation.problem
    )


def read_views(
    topology: EmbeddedTopology, names: tuple[str, str], timeout: float = 3.0
) -> tuple[ClusterView, ClusterView]:
    """Both clusters' views, read once from their ZooKeepers (in parallel). Read-only."""
    from concurrent.futures import ThreadPoolExecutor

    from tandem.runtime import observe

    with ThreadPoolExecutor(max_workers=2) as pool:
        first, second = pool.map(lambda n: view_of(observe(n, topology[n].zookeeper_hosts, timeout)), names)
    return first, second


def newest_point(
    topology: EmbeddedTopology, names: tuple[str, str], business: str, now: datetime
) -> dict[str, Any] | None:
    """The newest published restore point of ``business`` on either cluster, with its age."""
    from tandem import catalog
    from tandem.client import embedded_access

    found = []
    problems = []
    for name in names:
        try:
            manifest = catalog.latest(embedded_access(topology, name, timeout=5.0).hdfs(), business)
        except Exception as exc:  # a cluster that is down must not hide the other's points
            problems.append(f"{name}: {type(exc).__name__}")
            continue
        if manifest is not None:
            found.append((manifest, name))
    if not found:
        return {"point": None, "problems": problems} if problems else None
    manifest, on = max(found, key=lambda item: item[0].instant)
    return {
        "point": manifest.point,
        "age_s": round((now - manifest.instant).total_seconds(), 1),
        "on": on,
        "source": manifest.source,
        "target": manifest.target,
        "mode": manifest.mode,
        "problems": problems,
    }


def pairs_report(
    topology: EmbeddedTopology, include_dir: Path | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Per pair of ``clusters.yaml``: roles, epochs, liveness, health, clients, restore points."""
    from tandem.policy import load_policies, load_topology, project_root

    include = include_dir or project_root(Path.cwd()) / "include"
    config = load_topology(include / "clusters.yaml")
    policies = load_policies(include / "policies", config).policies if (include / "policies").is_dir() else ()
    moment = now or datetime.now(UTC)
    report: dict[str, Any] = {}
    for pair, spec in sorted(config.pairs.items()):
        names = (spec.primary, spec.standby)
        if any(name not in topology.names for name in names):
            report[pair] = {"problem": f"not an embedded pair: {', '.join(names)}"}
            continue
        views = read_views(topology, names)
        health = assess_pair(views[0], views[1], None)
        clients = arbitrate(views[0], views[1], spec.primary)
        report[pair] = {
            "clusters": {v.name: v.to_json() for v in views},
            "health": health.to_json(),
            "clients": {"target": clients.target, "reason": clients.reason},
            "businesses": {
                p.business: newest_point(topology, names, p.business, moment)
                for p in policies
                if p.pair == pair
            },
        }
    return report


def format_pairs(report: Mapping[str, Any]) -> list[str]:
    """The pair report as lines of text for ``tandem status``."""
    lines = []
    for pair, entry in report.items():
        if "problem" in entry:
            lines.append(f"pair {pair}: {entry['problem']}")
            continue
        said = "; ".join(ClusterView.from_json(v).describe() for v in entry["clusters"].values())
        lines.append(f"pair {pair}: {said}")
        lines.append(f"  watch: {entry['health']['reason']}; clients -> {entry['clients']['target']}")
        for business, point in entry["businesses"].items():
            if not point or not point.get("point"):
                lines.append(f"  {business}: no restore point yet")
                continue
            lines.append(
                f"  {business}: newest restore point {point['point']} ({_age(point['age_s'])} old), "
                f"{point['source']} -> {point['target']}, {point['mode']}"
            )
    return lines


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
