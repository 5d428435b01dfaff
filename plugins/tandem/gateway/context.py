"""A plan, its sides and its routing map, ready to serve or replay.

:func:`open_plan` builds the sides from ``clusters.yaml`` (each through its WebHDFS
connection) and settles the bucket map: the one stored with the plan's records on the
clusters, or, the first time, the plan's even spread, stored then. A stored map that differs
from the plan (a primary added or removed, another bucket count) is refused with the reason:
moving written data between primaries is an explicit operation, never a side effect.
"""

from __future__ import annotations

import functools
import json
import logging
import posixpath
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tandem.errors import ConfigError, RemoteHdfsError, TandemError
from tandem.gateway.marks import TEMP_PREFIX, Journal
from tandem.gateway.marks import temp_name as temp_name  # with the marks that name it; re-exported
from tandem.gateway.plan import GatewayPlan, business_overlaps, business_policies, load_plan, plans_dir
from tandem.gateway.plan import Target as TargetSpec
from tandem.gateway.protect import Protection
from tandem.gateway.routing import BucketMap
from tandem.gateway.sides import Side, hdfs_client, is_unreachable
from tandem.gateway.targets import Target, connect_target, target_appends
from tandem.hdfs.client import Hdfs, is_missing
from tandem.hdfs.types import FileStatus

if TYPE_CHECKING:
    from tandem.gateway.space import SpaceKeeper
    from tandem.policy import Topology

log = logging.getLogger(__name__)

ROUTING_FILE = "routing.json"


class RoutingConflict(TandemError):
    """The stored bucket map and the plan disagree: serving would move written data."""


def is_gateway_temp(name: str) -> bool:
    return name.startswith(TEMP_PREFIX)


@dataclass
class PlanContext:
    plan: GatewayPlan
    primaries: dict[str, Side[Hdfs]]
    standby: Side[Target]
    routes: BucketMap
    protection: Protection

    @property
    def standby_appends(self) -> bool:
        """Whether an APPEND streams to the target too. Not to an object store (it cannot append)
        nor where files may be encrypted (a sealed file is not extended): replay copies the file."""
        return target_appends(self.plan.target) and self.plan.private_data is None

    @functools.cached_property
    def space(self) -> SpaceKeeper:
        """The target's room for this plan (measured lazily, evicting as the plan allows)."""
        from tandem.gateway.space import SpaceKeeper

        return SpaceKeeper(self)

    def side(self, name: str) -> Side[Any]:
        return self.standby if name == self.standby.name else self.primaries[name]

    def journal(self, side: Side[Any]) -> Journal:
        return Journal(side.store, self.plan.journal)

    def all_sides(self) -> Iterator[Side[Any]]:
        yield from self.primaries.values()
        yield self.standby

    def locate(self, path: str, explicit_id: str | None = None) -> tuple[Side[Hdfs], FileStatus] | None:
        """The primary holding ``path`` and its status: the routed primary first, then the others
        (a directory renamed whole keeps its files where they were written). None when no
        reachable primary has it; SideDown-like errors propagate when the routed one is down."""
        first = self.primaries[self.routes.route(path, explicit_id)]
        order = [first, *(s for s in self.primaries.values() if s is not first)]
        for side in order:
            try:
                status = side.store.status(path)
            except Exception as exc:
                if side is first or not is_unreachable(exc):
                    raise
                continue
            if status is not None:
                return side, status
        return None


def _read_map(side: Side[Any], journal: str) -> BucketMap | None:
    path = f"{journal}/{ROUTING_FILE}"
    try:
        raw = side.store.read_bytes(path)
    except RemoteHdfsError as exc:
        if is_missing(exc):
            return None
        raise
    try:
        return BucketMap.from_json(json.loads(raw))
    except (ValueError, KeyError, TypeError) as exc:
        raise TandemError(
            f"{side.name}:{path} is not a routing map ({len(raw)} bytes: {exc}); "
            "it is only ever written whole, so something else wrote it: put the right one back"
        ) from exc


def _store_map(side: Side[Any], journal: str, wanted: BucketMap) -> BucketMap:
    """The map stored on ``side``: ``wanted``, written under a name of its own and renamed into
    place (a RENAME never over an existing file), or the one another gateway process stored
    first. Gateways of one plan start at once (``serve --processes N``): the map is never read
    half written, no CREATE of the one name races another's lease, and of two processes with
    different plans only the first to store its map serves."""
    path = f"{journal}/{ROUTING_FILE}"
    temp = f"{journal}/{TEMP_PREFIX}{ROUTING_FILE}.{secrets.token_hex(6)}"
    side.store.write(temp, json.dumps(wanted.to_json()).encode(), overwrite=True)
    try:
        try:
            side.store.rename(temp, path)  # never over a map another process stored meanwhile
        except RemoteHdfsError as exc:
            if is_unreachable(exc):
                raise
        stored = _read_map(side, journal)
    finally:
        try:
            side.store.delete(temp)
        except Exception:
            log.debug("could not remove %s on %s", temp, side.name)
    if stored is None:
        raise TandemError(f"{side.name}:{path} vanished as it was stored")
    return stored


def settle_routes(plan: GatewayPlan, sides: list[Side[Any]]) -> BucketMap:
    """The stored map (from any side that answers), or the plan's, stored on every side."""
    wanted = BucketMap.even(plan.plan, plan.primaries, plan.routing.buckets, plan.routing.hash)
    stored: BucketMap | None = None
    reachable, lacking = [], []
    for side in sides:
        try:
            found = _read_map(side, plan.journal)
        except Exception as exc:
            if not is_unreachable(exc):
                raise
            side.failed(exc)
            continue
        reachable.append(side)
        if found is None:
            lacking.append(side)
        stored = stored or found
    if not reachable:
        raise TandemError(f"plan {plan.plan}: no cluster answers ({', '.join(s.name for s in sides)})")
    if stored is not None:
        why = stored.differences(wanted)
        if why:
            raise RoutingConflict(
                f"plan {plan.plan}: the routing map stored in {plan.journal}/{ROUTING_FILE} differs from the "
                f"plan: {why}. Moving written data between primaries is not done silently: restore the "
                "plan's primaries and routing, or move the data and remove the stored map"
            )
    for side in lacking:
        # a process starting beside this one (another plan file, say) may have stored its map
        kept = _store_map(side, plan.journal, stored or wanted)
        why = kept.differences(wanted)
        if why:
            raise RoutingConflict(
                f"plan {plan.plan}: the routing map another gateway just stored in "
                f"{side.name}:{plan.journal}/{ROUTING_FILE} differs from the plan: {why}"
            )
        stored = stored or kept
    return stored or wanted


def build_context(plan: GatewayPlan, include: Path) -> PlanContext:
    """The sides of ``plan`` from ``include/clusters.yaml``; the map is settled by :func:`open_plan`."""
    from tandem.policy import load_topology

    topology = load_topology(include / "clusters.yaml")
    named = [*plan.primaries, *([plan.target.cluster] if plan.target.cluster else [])]
    missing = [n for n in named if n not in topology.clusters]
    if missing:
        raise ConfigError(
            str(include / "clusters.yaml"), "clusters", f"plan {plan.plan} names unknown {missing}"
        )
    primaries = {
        n: Side(n, functools.partial(hdfs_client, topology.cluster(n).webhdfs_conn_id))
        for n in plan.primaries
    }
    standby = Side(plan.target.label, connect_target(plan.target, topology), plan.target.root)
    routes = BucketMap.even(plan.plan, plan.primaries, plan.routing.buckets, plan.routing.hash)
    return PlanContext(plan, primaries, standby, routes, Protection(plan.private_data))


WEBHDFS_SCHEMES = ("webhdfs", "swebhdfs")


def cluster_behind(target: TargetSpec, topology: Topology) -> str | None:
    """The cluster of ``clusters.yaml`` a ``webhdfs://host:port`` target reaches (its NameNode
    is one of the cluster's WebHDFS connection hosts, by address and port), or None."""
    import socket

    from airflow.sdk import BaseHook

    parts = urlsplit(target.uri or "")
    if parts.scheme not in WEBHDFS_SCHEMES or not parts.hostname:
        return None

    def address(host: str) -> str:
        try:
            return socket.gethostbyname(host)
        except OSError:
            return host

    wanted = (address(parts.hostname), parts.port)
    for name, cluster in topology.clusters.items():
        try:
            conn = BaseHook.get_connection(cluster.webhdfs_conn_id)
        except Exception:  # a cluster whose connection is not defined here cannot be the target
            continue
        hosts = [h.strip() for h in (conn.host or "").split(",") if h.strip()]
        if any((address(h), conn.port) == wanted for h in hosts):
            return name
    return None


def open_plan(include: Path, name: str) -> PlanContext:
    from tandem.policy import load_topology

    plan = load_plan(include, name)
    topology = load_topology(include / "clusters.yaml")
    behind = cluster_behind(plan.target, topology) if plan.target.uri else None
    if behind is not None:  # a webhdfs:// URI of a business's cluster: the same rule as a cluster target
        root = posixpath.join(urlsplit(plan.target.uri or "").path or "/", plan.target.root.lstrip("/"))
        problems = business_overlaps(plan, business_policies(include, topology), topology, on=(behind, root))
        if problems:
            raise ConfigError(str(plans_dir(include) / f"{name}.yaml"), "target.uri", "; ".join(problems))
    context = build_context(plan, include)
    context.routes = settle_routes(plan, list(context.all_sides()))
    log.info(
        "plan %s: %d buckets over %s, standby %s:%s",
        plan.plan,
        context.routes.buckets,
        ", ".join(plan.primaries),
        context.standby.name,
        plan.target.root,
    )
    return context
