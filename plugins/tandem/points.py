"""Finding a business's restore point on a cluster: what ``verify``, ``restore`` and promotion
start from. Read-only.

The point is read from the cluster's own manifests (they live with the data), so this works
when the other cluster, or the Airflow deployment, is gone. By default the point is the newest
one published and the cluster is the one that currently receives backups (the pair's member
that says standby in its ZooKeeper).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tandem import catalog, plan, verify
from tandem.capture import Capture
from tandem.environment import include_dir
from tandem.errors import NoPoint, RestoreError, TandemError
from tandem.hdfs.client import Hdfs
from tandem.metastore import Metastore
from tandem.policy import Policy, Topology, load_policies, load_topology
from tandem.runtime import Clusters


def load_business(business: str, include: Path | None = None) -> tuple[Policy, Topology]:
    """The policy of ``business`` and the topology; RestoreError naming the known ones."""
    where = include or include_dir()
    topology = load_topology(where / "clusters.yaml")
    policies = load_policies(where / "policies", topology)
    for policy in policies.files.values():
        if policy.business == business:
            return policy, topology
    known = ", ".join(sorted(p.business for p in policies.files.values())) or "none"
    raise RestoreError(f"no business {business!r} in {where / 'policies'} (known: {known})")


def pair_members(policy: Policy, topology: Topology) -> tuple[str, str]:
    pair = topology.pairs[policy.pair]
    return pair.primary, pair.standby


def backup_target(policy: Policy, topology: Topology, clusters: Clusters) -> str:
    """The member of the business's pair that says standby: where backups go now."""
    members = pair_members(policy, topology)
    seen = [clusters.observe(name) for name in members]
    standby = [o.name for o in seen if o.reachable and o.role == "standby"]
    if len(standby) == 1:
        return standby[0]
    said = ", ".join(f"{o.name} {o.role if o.reachable else 'unreachable'}" for o in seen)
    raise RestoreError(f"cannot tell which cluster receives backups ({said}): name one with --cluster")


def parse_point(text: str) -> str:
    """``2026-11-20T13:00:00Z`` or ``20261120T130000Z`` -> the manifest's ``point`` text."""
    try:
        instant = plan.parse_point_id(text) if "-" not in text else catalog.parse_iso(text)
    except ValueError as exc:
        raise RestoreError(
            f"--point {text!r} is not an instant like 2026-11-20T13:00:00Z or 20261120T130000Z"
        ) from exc
    return catalog.iso(instant)


@dataclass(frozen=True)
class PointOnCluster:
    """One published point as a cluster holds it."""

    policy: Policy
    topology: Topology
    cluster: str
    manifest: catalog.Manifest

    @property
    def other(self) -> str:
        first, second = pair_members(self.policy, self.topology)
        return second if self.cluster == first else first

    @property
    def nameservice(self) -> str:
        return self.topology.clusters[self.cluster].nameservice


def find_point(
    policy: Policy, topology: Topology, clusters: Clusters, cluster: str | None, point: str | None
) -> PointOnCluster:
    """The point (newest when ``point`` is None) on ``cluster`` (the backup target when None)."""
    members = pair_members(policy, topology)
    name = cluster or backup_target(policy, topology, clusters)
    if name not in members:
        raise RestoreError(f"{name!r} is not a cluster of pair {policy.pair} ({members[0]}, {members[1]})")
    try:
        points = catalog.list_points(clusters.hdfs(name), policy.business)
    except Exception as exc:  # the hook raises its own types when no NameNode answers
        raise RestoreError(f"cannot read {name}'s restore points ({exc})") from exc
    if not points:
        raise NoPoint(f"{name} has no published restore point of {policy.business}")
    if point is None:
        return PointOnCluster(policy, topology, name, points[-1])
    wanted = parse_point(point)
    for manifest in points:
        if manifest.point == wanted:
            return PointOnCluster(policy, topology, name, manifest)
    listed = ", ".join(p.point for p in points[-5:])
    raise RestoreError(f"{name} has no published point {wanted} of {policy.business} (newest: {listed})")


def load_capture(hdfs: Hdfs, manifest: catalog.Manifest) -> Capture | None:
    """The point's metadata capture; None for a point without tables. RestoreError when a
    point with tables has none (published before captures existed) or it is unreadable."""
    tables = [ds for ds in manifest.datasets if ds.component != "hdfs"]
    if not tables:
        return None
    if not manifest.metadata:
        raise RestoreError(
            f"point {manifest.point} has no metadata capture (published by an older Tandem): its tables "
            "cannot be checked or restored"
        )
    try:
        return Capture.from_json(catalog.read_json(hdfs, manifest.metadata))
    except (TandemError, ValueError) as exc:
        raise RestoreError(f"the metadata capture {manifest.metadata} is unreadable: {exc}") from exc


@dataclass(frozen=True)
class OpenPoint:
    """A point on its cluster with what checking or landing on it needs: the cluster's HDFS
    client, the point's metadata capture (None without tables) and then the metastore client."""

    landing: PointOnCluster
    hdfs: Hdfs
    capture: Capture | None
    metastore: Metastore | None


def open_point(clusters: Clusters, landing: PointOnCluster) -> OpenPoint:
    """Clients and capture for ``landing``; RestoreError when a point with tables has no capture."""
    hdfs = clusters.hdfs(landing.cluster)
    captured = load_capture(hdfs, landing.manifest)
    metastore = clusters.metastore(landing.cluster) if captured is not None else None
    return OpenPoint(landing, hdfs, captured, metastore)


def load_records(hdfs: Hdfs, manifest: catalog.Manifest) -> verify.Records | None:
    """The point's per-file records, or None when it has none or they are unreadable."""
    if not manifest.files_record:
        return None
    try:
        return verify.records_from_body(catalog.read_json(hdfs, manifest.files_record))
    except (TandemError, ValueError, OSError):
        return None
