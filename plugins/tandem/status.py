"""``tandem status``: each pair as its clusters say it is, from the Airflow connections.

Per pair of ``clusters.yaml``: both clusters' roles, epochs and liveness (their ZooKeepers),
what the watch and the arbiter make of them, and per business the newest restore point on
either cluster with its age (the recovery point a failover would give now). Read-only: an
unreachable cluster or a missing manifest is reported in one line, never raised, and the
ZooKeeper client's retry chatter is kept off the terminal.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tandem.failover.arbiter import ClusterView, arbitrate, assess_pair
from tandem.runtime import Clusters
from tandem.ui.model import format_age


def read_views(
    clusters: Clusters, names: tuple[str, str], timeout: float = 3.0
) -> tuple[ClusterView, ClusterView]:
    """Both clusters' views, read once from their ZooKeepers (in parallel). Read-only."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        first, second = pool.map(lambda n: clusters.observe(n, timeout).view(), names)
    return first, second


def newest_point(clusters: Clusters, names: tuple[str, str], business: str, now: datetime) -> dict[str, Any]:
    """The newest published restore point of ``business`` on either cluster, with its age."""
    from tandem import catalog

    found = []
    problems = []
    for name in names:
        try:
            manifest = catalog.latest(clusters.hdfs(name), business)
        except Exception as exc:  # a cluster that is down must not hide the other's points
            problems.append(f"{name}: {type(exc).__name__}")
            continue
        if manifest is not None:
            found.append((manifest, name))
    if not found:
        return {"point": None, "problems": problems}
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


def pairs_report(clusters: Clusters, include_dir: Path, now: datetime | None = None) -> dict[str, Any]:
    """Per pair of ``clusters.yaml``: roles, epochs, liveness, health, clients, restore points."""
    from tandem.policy import load_policies

    topology = clusters.topology
    policies = (
        load_policies(include_dir / "policies", topology).policies
        if (include_dir / "policies").is_dir()
        else ()
    )
    moment = now or datetime.now(UTC)
    report: dict[str, Any] = {}
    for pair, spec in sorted(topology.pairs.items()):
        names = (spec.primary, spec.standby)
        views = read_views(clusters, names)
        health = assess_pair(views[0], views[1], None)
        decision = arbitrate(views[0], views[1], spec.primary)
        report[pair] = {
            "clusters": {v.name: v.to_json() for v in views},
            "health": health.to_json(),
            "clients": {"target": decision.target, "reason": decision.reason},
            "businesses": {
                p.business: newest_point(clusters, names, p.business, moment)
                for p in policies
                if p.pair == pair
            },
        }
    return report


def format_pairs(report: Mapping[str, Any]) -> list[str]:
    """The pair report as lines of text."""
    lines = []
    for pair, entry in report.items():
        said = "; ".join(ClusterView.from_json(v).describe() for v in entry["clusters"].values())
        lines.append(f"pair {pair}: {said}")
        lines.append(f"  watch: {entry['health']['reason']}; clients -> {entry['clients']['target']}")
        for business, point in entry["businesses"].items():
            if not point or not point.get("point"):
                problems = (point or {}).get("problems") or []
                if problems:  # a cluster that does not answer may hold its points
                    lines.append(f"  {business}: restore points unknown, not read ({'; '.join(problems)})")
                else:
                    lines.append(f"  {business}: no restore point yet")
                continue
            lines.append(
                f"  {business}: newest restore point {point['point']} ({format_age(point['age_s'])} old), "
                f"{point['source']} -> {point['target']}, {point['mode']}"
            )
    return lines


@contextmanager
def _quiet_clients() -> Iterator[None]:
    """kazoo logs every failed connection attempt and the WebHDFS hook every NameNode it could
    not reach; status reports unreachable clusters itself, one line each."""
    loggers = [logging.getLogger(name) for name in ("kazoo", "airflow.task.hooks", "hdfs")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def run_status(args: argparse.Namespace) -> int:
    """Exit 0 when every cluster of every pair answers, 1 otherwise (so scripts can test it)."""
    from tandem.environment import include_dir
    from tandem.runtime import cluster_clients_for_cli

    clusters = cluster_clients_for_cli(args.home)
    with _quiet_clients():
        report = pairs_report(clusters, include_dir())
    reachable = all(
        c["liveness"] != "unreachable" for pair in report.values() for c in pair["clusters"].values()
    )
    if args.json:
        print(json.dumps({"pairs": report, "reachable": reachable}))
    else:
        print("\n".join(format_pairs(report)))
    return 0 if reachable else 1
