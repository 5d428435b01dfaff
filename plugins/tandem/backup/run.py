"""A backup run, its direction, and the checks before and during it.

``preflight`` reads only; it fails (with the reason) unless exactly one cluster of the pair is
active and the other is alive and standby, clocks agree, and the target has room. ``guard``
re-reads the pair before every step that writes and stops the run when a promotion moved it.
"""

from __future__ import annotations

import logging
import posixpath
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tandem import catalog, plan, verify
from tandem.backup.payloads import Direction, Started
from tandem.errors import (
    PreflightError,
    RemoteHdfsError,
    TandemError,
)
from tandem.failover.arbiter import backup_direction
from tandem.hdfs.client import Hdfs, is_missing
from tandem.plan import growth
from tandem.runtime import Clusters, Observation

if TYPE_CHECKING:
    from tandem.policy import Policy, Topology

log = logging.getLogger(__name__)


class PointAlreadyPublished(TandemError):
    """This run's point is published already: it is kept as it is, never redone."""


class RolesChanged(PreflightError):
    """The pair's roles or epochs moved since preflight: the run stops before writing."""


class RunOvertaken(TandemError):
    """Another run of the business took its snapshots after this one: this one stops."""


class RunOutOfTime(TandemError):
    """A point is named for the instant its snapshots are taken at: a run whose instant is ahead
    of now would name this moment's data otherwise. Not retried: another try is as wrong."""


class RunSuperseded(RunOutOfTime):
    """A run whose instant is behind a point already published (an old run cleared, the first
    scheduled run after an unpause when a manual backup came since): it is skipped, the newer
    point standing."""


@dataclass(frozen=True)
class Run:
    """One run of a business's backup: the policy, the topology and the point's instant."""

    policy: Policy
    topology: Topology
    instant: datetime
    force_full: bool = False

    @property
    def business(self) -> str:
        return self.policy.business

    @property
    def snapshot(self) -> str:
        return plan.snapshot_name(self.business, self.instant)


# -- preflight -----------------------------------------------------------------------------------
def decide_direction(first: Observation, second: Observation) -> Direction:
    """The arbiter's backup direction (tandem.failover.arbiter), or PreflightError with its reason."""
    decided = backup_direction(first.view(), second.view())
    if decided.source is None or decided.target is None:
        raise PreflightError(decided.reason)
    return Direction(decided.source, decided.target, decided.reason)


def _pair_members(run: Run) -> tuple[str, str]:
    pair = run.topology.pairs[run.policy.pair]
    return pair.primary, pair.standby


def preflight(run: Run, clusters: Clusters) -> Started:
    """Roles, clock skew and target space; returns the direction. Read-only."""
    started = datetime.now(UTC)
    first, second = _pair_members(run)
    seen = {name: clusters.observe(name, clock=True) for name in (first, second)}
    direction = decide_direction(seen[first], seen[second])
    limit = run.policy.consistency.max_clock_skew.total_seconds()
    offsets: dict[str, dict[str, float | None]] = {}
    for name in (direction.source, direction.target):
        http = clusters.hdfs(name).clock_offset_s()
        zk = seen[name].clock_offset_s
        offsets[name] = {"namenode_s": round(http, 3), "zookeeper_s": None if zk is None else round(zk, 3)}
        # ZooKeeper's ctime has ms resolution; the HTTP Date header only 1 s, so it gets 1 s more
        for source, offset, slack in (("its ZooKeeper", zk, 0.0), ("its NameNode", http, 1.0)):
            if offset is not None and abs(offset) > limit + slack:
                raise PreflightError(
                    f"clock of {name} ({source}) is {offset:+.3f} s from this host, more than "
                    f"max_clock_skew {limit:g} s"
                )
    _check_target_space(run, clusters.hdfs(direction.source), clusters.hdfs(direction.target))
    log.info("preflight: %s; clock offsets %s", direction.reason, offsets)
    epochs = {name: o.record.epoch if o.record else None for name, o in seen.items()}
    return Started(direction, epochs, offsets, started)


def guard(run: Run, clusters: Clusters, started: Started, step: str) -> None:
    """Raise RolesChanged unless the pair still looks as preflight saw it: the same epochs, the
    source active and the target standby; after ``take``, RunOvertaken when another run of the
    business claimed the source since (its ``take`` removes this run's snapshots as a dead run's
    leftovers). Every step that writes calls this first. Read-only."""
    for name, role in ((started.source, "active"), (started.target, "standby")):
        seen = clusters.observe(name)
        epoch = seen.record.epoch if seen.record else None
        then = started.epochs.get(name, epoch)
        if not seen.reachable or seen.role != role or epoch != then:
            now = f"{seen.role} at epoch {epoch}" if seen.reachable else f"unreachable ({seen.problem})"
            raise RolesChanged(
                f"{step}: {name} is {now}, but preflight saw it {role} at epoch {then}: the pair "
                "changed (a promotion?), so this run stops without writing"
            )
    if step != "take":
        claimed = claimed_point(clusters.hdfs(started.source), run.business)
        if claimed is not None and claimed != catalog.iso(run.instant):
            raise RunOvertaken(
                f"{step}: another backup of {run.business} (point {claimed}) started after this one "
                f"(point {catalog.iso(run.instant)}) and took its snapshots; this run stops without "
                "writing. Run one backup of a business at a time (the DAG does: max_active_runs=1)"
            )


def claim(hdfs: Hdfs, run: Run) -> None:
    """This run is the business's run under way (see :func:`guard`)."""
    body = {"point": catalog.iso(run.instant), "claimed": catalog.iso(datetime.now(UTC))}
    catalog.write_json(hdfs, catalog.claim_path(run.business), body)


def claimed_point(hdfs: Hdfs, business: str) -> str | None:
    try:
        body = catalog.read_json(hdfs, catalog.claim_path(business))
    except RemoteHdfsError as exc:
        if is_missing(exc):
            return None  # no run claimed yet (or one of a version before claims)
        raise
    return str(body.get("point")) if isinstance(body, dict) else None


def base_snapshot(run: Run, target: Hdfs) -> tuple[str | None, str | None]:
    """The newest point published before this run's instant: its snapshot name and instant."""
    if run.force_full:
        return None, None
    earlier = [p for p in catalog.list_points(target, run.business) if p.instant < run.instant]
    return (earlier[-1].snapshot_name, earlier[-1].point) if earlier else (None, None)


def _check_target_space(run: Run, source: Hdfs, target: Hdfs) -> None:
    """Refuse when an hdfs dataset cannot fit under the target's space quotas.

    A dataset needs the space it takes on the source minus what the target already holds there.
    When the dataset is a snapshot root holding the last published point on both sides, the two
    held the same at that point (publishing verified it; copies keep the replication), so the
    need is the source's growth since the point minus the target's, sized from each side's
    snapshot diff at the cost of the change (:func:`_growth`). Otherwise it takes a content
    summary of each side, each a walk of the dataset.

    A dataset that needs no more space than the target already gives it cannot exceed a quota, so
    the quotas of its ancestors are not read then: GETQUOTAUSAGE of a directory without a quota
    walks its whole subtree (``/`` included), on HDFS as on the embedded NameNode.
    """
    base, _ = base_snapshot(run, target)
    threads = run.policy.copy_options.parallelism
    for dataset in run.policy.datasets("hdfs"):
        path = dataset.name
        since_base = base is not None and all(verify.has_snapshot(h, path, base) for h in (source, target))
        if base is not None and since_base:
            needed = _growth(source, path, base, threads) - _growth(target, path, base, threads)
        else:
            summary = source.content_summary(path) if source.status(path) else None
            if summary is None:
                continue
            needed = int(summary.get("spaceConsumed", summary.get("length", 0)))
            existing = target.content_summary(path) if target.status(path) else None
            needed -= int(existing.get("spaceConsumed", 0)) if existing else 0
        if needed <= 0:
            continue
        for ancestor in _existing_ancestors(target, path):
            usage = target.quota_usage(ancestor)
            if usage.space_quota >= 0 and needed > usage.space_quota - usage.space_consumed:
                free = usage.space_quota - usage.space_consumed
                raise PreflightError(
                    f"target out of quota: {path} needs up to {needed} more bytes but {ancestor} has "
                    f"{free} left of its {usage.space_quota}-byte space quota"
                )


def _growth(hdfs: Hdfs, root: str, base: str, threads: int) -> int:
    """Space consumed under ``root`` now minus at its snapshot ``base``, from the snapshot diff:
    GETSNAPSHOTDIFF, then GETFILESTATUS of each changed file on the side(s) it is on (and a
    content summary of each created, deleted or renamed directory). Read-only."""
    entries = hdfs.snapshot_diff(root, base, "").entries
    if not entries:
        return 0
    then = verify.snap_path(root, base)
    unknown = growth.undecided(entries)
    with ThreadPoolExecutor(max(1, threads), thread_name_prefix="tandem-preflight") as pool:
        looked = pool.map(lambda rel: hdfs.status(verify.join(then, rel)), unknown)
        seen = dict(zip(unknown, looked, strict=True))
        files = {rel for rel, status in seen.items() if status is not None and not status.is_dir}
        dirs = set(growth.modified(entries)) - files
        paths = growth.growth_paths(entries, dirs)

        def space(where: str, rel: str) -> int:
            status = seen.get(rel) if where == then else None
            status = status or hdfs.status(verify.join(where, rel))
            if status is None:
                return 0
            if status.is_dir:
                return int(hdfs.content_summary(verify.join(where, rel)).get("spaceConsumed", 0))
            return status.length * max(1, status.replication)

        before = sum(pool.map(lambda rel: space(then, rel), paths.before))
        after = sum(pool.map(lambda rel: space(root, rel), paths.after))
    return after - before


def _existing_ancestors(hdfs: Hdfs, path: str) -> list[str]:
    out, current = [], path
    while True:
        if hdfs.status(current) is not None:
            out.append(current)
        if current == "/":
            return out
        current = posixpath.dirname(current)
