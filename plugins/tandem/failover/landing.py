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

import contextlib
import json
import logging
import os
import posixpath
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tandem.catalog import Manifest
from tandem.errors import NoPoint, RemoteHdfsError, RestoreError
from tandem.failover.promote import (
    PromotionRefused,
    PromotionResult,
    check_request,
    fence,
    promote,
    unfence,
)
from tandem.hdfs.client import Hdfs
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
    # changes the other cluster, still active and alive, holds beyond the point (a planned
    # switchover without a last backup): they stay there; None when it was not asked or unknown
    left_behind: list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "business": self.business,
            "point": self.point,
            "restored": self.restored,
            "changes": self.changes,
            "quarantine": self.quarantine,
            "note": self.note,
            "left_behind": self.left_behind,
        }


def businesses_of(include: Path, topology: Topology, pair: str) -> list[Policy]:
    """The valid policies of ``pair`` (a bad policy file has no point to land on anyway)."""
    policies = load_policies(include / "policies", topology)
    return sorted((p for p in policies.files.values() if p.pair == pair), key=lambda p: p.business)


def held_without_point(clusters: Clusters, cluster: str, policy: Policy) -> list[str]:
    """What ``cluster`` holds of a business that has no point there: its HDFS paths that are not
    empty, its tables that exist. A first backup killed mid-copy leaves such a half; a read that
    fails raises (it proves nothing either way)."""
    from tandem.metastore import TableRef

    found = []
    hdfs = clusters.hdfs(cluster)
    for entry in policy.protection_group:
        if entry.hdfs is not None:
            status = hdfs.status(entry.hdfs)
            if status is not None and (not status.is_dir or hdfs.list(entry.hdfs)):
                found.append(entry.hdfs)
        elif clusters.metastore(cluster).get_table(TableRef.parse(entry.name)) is not None:
            found.append(f"{entry.component} table {entry.name}")
    return found


def changes_beyond(hdfs: Hdfs, manifest: Manifest, limit: int = 5) -> list[str] | None:
    """What a cluster holds of a point's trees that changed since the point (its snapshot diff to
    now, a few paths), or None when it no longer has the point's snapshot to tell."""
    from tandem.verify import within

    found: list[str] = []
    for root, subtree in manifest.subtrees():
        try:
            report = hdfs.snapshot_diff(root, manifest.snapshot_name, "")
        except RemoteHdfsError:
            return None
        for entry in report.entries:
            rel = entry.target or entry.source
            if rel and within(rel, subtree) and rel != subtree:
                found.append(f"{entry.type.value} {posixpath.join(root, rel)}")
                if len(found) >= limit:
                    return found
    return found


def land(
    clusters: Clusters,
    topology: Topology,
    policies: Sequence[Policy],
    cluster: str,
    *,
    allow_no_point: bool = False,
    serving: str | None = None,
) -> list[Landed]:
    """Check each business on ``cluster`` against its newest point; restore those that differ.
    RestoreError (nothing more is changed) when a business cannot be put on its point, when its
    points cannot be read, or when it has none there but the cluster holds part of it (unless
    ``allow_no_point``: it is then promoted as it stands, and the result says so).

    ``serving``: the other cluster, when it is active and alive (a planned switchover): what it
    holds beyond each point is reported (it stays there; a backup before promoting brings it)."""
    from tandem.points import find_point, open_point
    from tandem.restore import plan_landing, restore
    from tandem.verify import check_metadata

    out = []
    for policy in policies:
        try:
            landing = find_point(policy, topology, clusters, cluster, None)
        except NoPoint as exc:
            try:
                held = held_without_point(clusters, cluster, policy)
            except Exception as read:
                raise RestoreError(
                    f"{policy.business}: {exc}, and what {cluster} holds of it cannot be read ({read}): "
                    "no role was written"
                ) from read
            if held and not allow_no_point:
                raise RestoreError(
                    f"{policy.business} has no restore point on {cluster}, but {cluster} holds part of it "
                    f"({', '.join(held[:5])}): a first backup that never published? Promoting would serve "
                    "it from no single instant. No role was written; promote with allow_no_point "
                    "(--allow-no-point) to serve it as it stands"
                ) from exc
            note = f"{exc}; promoted as it stands ({', '.join(held[:5])})" if held else str(exc)
            log.warning("promote: %s: %s; nothing to land on", policy.business, note)
            out.append(Landed(policy.business, None, note=note))
            continue
        # any other RestoreError (the points could not be read) refuses: nothing is known of them
        opened = open_point(clusters, landing)
        differences = [str(a) for a in plan_landing(opened.hdfs, landing.manifest)]
        if opened.capture is not None and opened.metastore is not None:
            differences += check_metadata(opened.capture, opened.metastore, landing.nameservice).mismatches
        point = landing.manifest.point
        behind = _left_behind(clusters, serving, policy.business, landing.manifest)
        if not differences:
            log.info("promote: %s on %s is at its newest point %s", policy.business, cluster, point)
            out.append(
                Landed(policy.business, point, note=_noted("at the point", behind), left_behind=behind)
            )
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
        note = _noted("restored to the point", behind)
        out.append(Landed(policy.business, point, True, changes, outcome.quarantine, note, behind))
    return out


def _left_behind(
    clusters: Clusters, serving: str | None, business: str, manifest: Manifest
) -> list[str] | None:
    if serving is None:
        return None
    try:
        found = changes_beyond(clusters.hdfs(serving), manifest)
    except Exception as exc:  # a report, never a reason to refuse: the point is what lands
        log.warning("promote: %s: cannot tell what %s holds beyond the point: %s", business, serving, exc)
        return None
    if found is None:
        found = [f"unknown: {serving} no longer has the point's snapshot {manifest.snapshot_name}"]
    if found:
        log.warning(
            "promote: %s: %s, still active, holds changes newer than point %s that are not landed: %s",
            business,
            serving,
            manifest.point,
            "; ".join(found),
        )
    return [f"{serving}: {change}" for change in found]


def _noted(note: str, behind: list[str] | None) -> str:
    if not behind:
        return note
    return (
        f"{note}; newer changes on the cluster that was active stay there, not landed (a backup "
        f"before promoting brings them): {'; '.join(behind)}"
    )


PROMOTING_PATH = "/tandem/promoting"  # the lock a promotion holds on its target's ZooKeeper
LOCK_WAIT_S = 60.0  # beyond a dead promoter's session; a landing that takes longer refuses the other


@contextlib.contextmanager
def promotion_lock(
    cluster: str, hosts: str, timeout: float = 5.0, wait_s: float = LOCK_WAIT_S
) -> Iterator[Callable[[], bool]]:
    """Held on ``cluster``'s ZooKeeper for a whole promotion, landing included: a second
    promotion of the same cluster (the CLI and the DAG's approval at once) waits for the first
    and then finds the cluster active (nothing to land) instead of landing a cluster that
    applications already write to; after ``wait_s`` it is refused. Ephemeral: a promoter that
    dies lets go when its session ends (seconds). Yields whether it is still held (a lost
    connection may have let another promoter in)."""
    from kazoo.exceptions import LockTimeout
    from kazoo.protocol.states import KazooState

    from tandem.security import zookeeper_client

    zk = zookeeper_client(hosts, timeout=max(timeout, 2.0))
    try:
        zk.start(timeout=timeout)
    except Exception as exc:
        zk.close()
        raise PromotionRefused(
            f"{cluster}'s ZooKeeper {hosts} did not answer ({exc}): nothing was written"
        ) from exc
    lost = threading.Event()
    zk.add_listener(lambda state: lost.set() if state != KazooState.CONNECTED else None)
    try:
        lock = zk.Lock(PROMOTING_PATH, f"{socket.gethostname()}:{os.getpid()}")
        try:
            got = lock.acquire(timeout=wait_s)
        except LockTimeout:
            got = False
        if not got:
            holders = ", ".join(str(h) for h in lock.contenders()) or "another process"
            raise PromotionRefused(
                f"another promotion of {cluster} has been under way for over {wait_s:.0f} s ({holders}): "
                "nothing was written; see its outcome, then promote again if needed"
            )
        try:
            yield lambda: not lost.is_set()
        finally:
            with contextlib.suppress(Exception):
                lock.release()
    finally:
        zk.stop()
        zk.close()


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
    allow_no_point: bool = False,
) -> tuple[PromotionResult, list[Landed]]:
    """Land every business of ``pair`` on ``cluster``, then promote it (see the module doc).

    With ``stop_backups``, the active cluster is fenced, ``stop`` (when given) marks the runs
    failed in Airflow, and promotion waits up to ``wait_s`` for them to end. A promotion that is
    then refused gives the fenced cluster its role back. ``allow_no_point``: see :func:`land`."""
    spec = topology.pairs[pair]
    members = (spec.primary, spec.standby)
    refusal = check_request(cluster, confirmation, members)
    if refusal:
        return PromotionResult(cluster, "refused", refusal), []
    try:
        with promotion_lock(cluster, zk_hosts[cluster]) as held:
            other = members[1] if cluster == members[0] else members[0]
            promotion = _Promotion(
                cluster,
                confirmation,
                pair,
                other,
                businesses_of(include, topology, pair),
                topology,
                clusters,
                zk_hosts,
                in_flight,
                held,
                stop=stop,
                wait_s=wait_s,
                allow_no_point=allow_no_point,
            )
            return promotion.run(stop_backups)
    except PromotionRefused as exc:
        return PromotionResult(cluster, "refused", str(exc)), []


@dataclass
class _Promotion:
    """One promotion of ``cluster`` over ``other``, under the promotion lock: what it needs, and
    the epoch it fenced ``other`` at once it has (given back if it does not promote)."""

    cluster: str
    confirmation: str
    pair: str
    other: str
    policies: list[Policy]
    topology: Topology
    clusters: Clusters
    zk_hosts: dict[str, str]
    in_flight: InFlight
    held: Callable[[], bool]
    stop: Stop | None
    wait_s: float
    allow_no_point: bool
    fenced: int | None = None

    @property
    def dag_ids(self) -> list[str]:
        return [p.dag_id for p in self.policies]

    def run(self, stop_backups: bool) -> tuple[PromotionResult, list[Landed]]:
        running = self.in_flight(self.dag_ids)
        if running and not stop_backups:
            return (
                PromotionResult(
                    self.cluster,
                    "refused",
                    f"backup runs of pair {self.pair} are in flight ({', '.join(running)}): they write "
                    f"into {self.cluster}; wait for them, or promote with stop_backups (--stop-backups) to "
                    "fence and stop them",
                ),
                [],
            )
        try:
            return self._land_and_promote(running)
        except BaseException:
            # whatever stopped it (a cluster's error, the task killed), a promotion that fenced the
            # active cluster and did not promote gives it its role back
            if self.fenced is not None:
                log.warning("promote: %s", unfence(self.other, self.zk_hosts, self.fenced))
            raise

    def _land_and_promote(self, running: list[str]) -> tuple[PromotionResult, list[Landed]]:
        cluster, other = self.cluster, self.other
        if running:
            said, self.fenced = fence(other, self.zk_hosts)
            log.warning("promote: %s", said)
            if self.stop is not None:
                log.warning("promote: stopped %s", ", ".join(self.stop(self.dag_ids)) or "nothing")
            deadline = time.monotonic() + self.wait_s
            while running and time.monotonic() < deadline:
                log.info("promote: waiting for %s to stop", ", ".join(running))
                time.sleep(2.0)
                running = self.in_flight(self.dag_ids)
            if running:
                return self._refused(f"backup runs still in flight: {running}"), []
        landed: list[Landed] = []
        # Read under the lock: a promotion that finished just before this one took it has made the
        # cluster active. A cluster that says active serves applications (promoting it again ends a
        # split brain): its data is newer than any point and must never be rolled back.
        serving = self.clusters.observe(cluster).role == "active"

        def before_write() -> None:
            if serving:
                log.info("promote: %s already says active: its data is live, nothing is landed", cluster)
            else:
                seen = self.clusters.observe(other)
                active = other if seen.reachable and seen.alive and seen.role == "active" else None
                landed.extend(
                    land(
                        self.clusters,
                        self.topology,
                        self.policies,
                        cluster,
                        allow_no_point=self.allow_no_point,
                        serving=active,
                    )
                )
            late = self.in_flight(self.dag_ids)
            if late:
                raise PromotionRefused(
                    f"backup runs started while {cluster} was landed ({late}): promote again"
                )
            if not self.held():
                raise PromotionRefused(
                    f"the connection to {cluster}'s ZooKeeper was lost while it was landed (another "
                    "promotion may have begun): promote again"
                )

        try:
            result = promote(cluster, self.confirmation, self.zk_hosts, before_write=before_write)
        except (RestoreError, PromotionRefused) as exc:
            return self._refused(str(exc)), landed
        if not result.ok:
            # promote itself may have fenced ``other`` (at its own epoch) before it failed
            if result.fenced == other and result.epoch is not None:
                self.fenced = result.epoch
            back = self._refused(result.reason)
            result = PromotionResult(cluster, result.outcome, back.reason, result.epoch, result.fenced)
        self.fenced = None  # settled: nothing left to give back
        return result, landed

    def _refused(self, reason: str) -> PromotionResult:
        """A refusal after ``other`` was fenced gives ``other`` its role back, so a refused
        promotion leaves the pair as it found it (and says what it did)."""
        if self.fenced is None:
            return PromotionResult(self.cluster, "refused", reason)
        said = unfence(self.other, self.zk_hosts, self.fenced)
        log.warning("promote: %s", said)
        self.fenced = None
        return PromotionResult(self.cluster, "refused", f"{reason}; {said}")


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
        allow_no_point=args.allow_no_point,
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
