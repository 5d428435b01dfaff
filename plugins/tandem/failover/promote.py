"""Promotion: a human makes a standby the active cluster of its pair.

:func:`promote` is the only writer of roles after a cluster's first start. Its guarantees:

- **Refuses, with the reason, before writing anything** when the confirmation does not repeat
  the target's name exactly, when the target is not in the pair, or when the target is dead,
  unreachable or has an unreadable record.
- **Fences first**: if the old active cluster's ZooKeeper answers, its record is set to standby
  before the target's is set to active. If it does not answer it cannot be fenced; the result
  says so, and the watch reports split brain should it come back saying active.
- **Compare-and-set**: each write names the znode version that was read, so two promotions
  racing cannot both win: of two promotions of the same target exactly one wins (the other
  gets ``conflict``, or ``unchanged`` if it read after the winner finished); of two opposite
  ones at most one wins. The target's write is one ZooKeeper transaction that also checks its
  ``/tandem/alive`` still exists.
- **Idempotent**: promoting the cluster that is already active while the other is standby (or
  unreachable) changes nothing. Promoting it while the other also says active (split brain)
  fences the other again: that is how an operator ends a split brain.

Epochs: both records get ``max(epochs read) + 1``, so across the pair the most recent
promotion has the highest epoch, which is what an operator compares in a split brain.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from kazoo.client import KazooClient
from kazoo.exceptions import AuthFailedError, BadVersionError, KazooException, NodeExistsError, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError

from tandem.errors import TandemError
from tandem.failover.arbiter import ClusterView
from tandem.failover.state import ALIVE_PATH, CLUSTER_PATH, ClusterRecord, CorruptRecordError
from tandem.security import zookeeper_client

log = logging.getLogger(__name__)

Outcome = Literal["promoted", "unchanged", "refused", "conflict"]


class PromotionRefused(TandemError):
    """A promotion did not happen; the message is the reason (nothing was written, unless it says so)."""


@dataclass(frozen=True)
class PromotionResult:
    """What a promotion did, and why."""

    cluster: str
    outcome: Outcome
    reason: str
    epoch: int | None = None
    fenced: str | None = None

    @property
    def promoted(self) -> bool:
        return self.outcome == "promoted"

    @property
    def ok(self) -> bool:
        """Promoted, or nothing to do because it already was."""
        return self.outcome in ("promoted", "unchanged")

    def to_json(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "outcome": self.outcome,
            "reason": self.reason,
            "epoch": self.epoch,
            "fenced": self.fenced,
        }


def check_request(cluster: str, confirmation: str, members: tuple[str, str]) -> str | None:
    """The reason to refuse a promotion request before reading any cluster, or None. Pure."""
    if cluster not in members:
        return f"{cluster!r} is not a cluster of this pair ({members[0]}, {members[1]}): nothing was changed"
    if confirmation != cluster:
        return (
            f"the confirmation {confirmation!r} does not repeat the cluster name {cluster!r} exactly: "
            "nothing was changed"
        )
    return None


def check_target(view: ClusterView) -> str | None:
    """The reason the target cannot be promoted in the state ``view`` shows, or None. Pure."""
    if not view.reachable:
        return f"{view.name} is unreachable ({view.problem}): a cluster nobody can reach cannot serve"
    if not view.alive:
        return (
            f"{view.name} is dead (no /tandem/alive): promoting it would send applications to a "
            "cluster that cannot serve them"
        )
    if view.role == "unknown":
        return f"{view.name}'s record is unreadable ({view.problem}): repair /tandem/cluster first"
    return None


# --------------------------------------------------------------------------- ZooKeeper reads


@dataclass(frozen=True)
class _Read:
    """A cluster's record as read, with the znode version for compare-and-set."""

    view: ClusterView
    record: ClusterRecord | None
    version: int | None  # None: /tandem/cluster does not exist
    alive_version: int | None


@contextlib.contextmanager
def _session(hosts: str, timeout: float) -> Iterator[KazooClient | None]:
    """A connected client, or None if ZooKeeper does not answer within ``timeout`` or (Kerberos)
    none of its servers proves itself: such a cluster is unreachable, never a role."""
    zk = zookeeper_client(hosts, timeout=max(timeout, 2.0))
    try:
        zk.start(timeout=timeout)
    except (KazooTimeoutError, AuthFailedError) as exc:
        if isinstance(exc, AuthFailedError):
            log.warning("ZooKeeper %s: %s", hosts, exc)
        zk.close()
        yield None
        return
    try:
        yield zk
    finally:
        zk.stop()
        zk.close()


def _read(zk: KazooClient, name: str) -> _Read:
    alive = zk.exists(ALIVE_PATH)
    alive_version = alive.version if alive is not None else None
    try:
        data, stat = zk.get(CLUSTER_PATH)
    except NoNodeError:
        return _Read(ClusterView.from_record(name, None, alive is not None), None, None, alive_version)
    try:
        record = ClusterRecord.parse(bytes(data))
    except CorruptRecordError as exc:
        view = ClusterView(name, "unknown", "alive" if alive else "dead", None, str(exc))
        return _Read(view, None, stat.version, alive_version)
    return _Read(
        ClusterView.from_record(name, record, alive is not None), record, stat.version, alive_version
    )


# --------------------------------------------------------------------------- writes


def _fence(zk: KazooClient, name: str, read: _Read, epoch: int) -> str | None:
    """Set ``name`` to standby at ``epoch`` if its record is still the one read. None, or the conflict."""
    data = ClusterRecord.new(name, "standby", epoch).to_bytes()
    try:
        if read.version is None:
            zk.create(CLUSTER_PATH, data, makepath=True)
        else:
            zk.set(CLUSTER_PATH, data, version=read.version)
    except (BadVersionError, NodeExistsError, NoNodeError):
        return f"{name}'s record changed after it was read (another promotion?): nothing was written"
    return None


def _activate(zk: KazooClient, name: str, read: _Read, epoch: int) -> str | None:
    """Set ``name`` active in one transaction that also checks ``/tandem/alive`` is unchanged."""
    assert read.version is not None and read.alive_version is not None
    tx = zk.transaction()
    tx.check(ALIVE_PATH, read.alive_version)
    tx.set_data(CLUSTER_PATH, ClusterRecord.new(name, "active", epoch).to_bytes(), version=read.version)
    results = tx.commit()
    failures = [r for r in results if isinstance(r, Exception)]
    if not failures:
        return None
    if isinstance(results[0], NoNodeError):
        return f"{name} died during the promotion (its /tandem/alive went away)"
    return f"{name}'s record changed after it was read (another promotion?)"


def promote(
    cluster: str,
    confirmation: str,
    zk_hosts: Mapping[str, str],
    *,
    timeout: float = 5.0,
    before_write: Callable[[], None] | None = None,
) -> PromotionResult:
    """Make ``cluster`` the active cluster of its pair (``zk_hosts``: both clusters' ZooKeepers).

    Compare-and-set and fenced; see the module docstring for every guarantee. Never raises for
    a refusal: the result's ``outcome`` and ``reason`` say what happened. ``before_write`` runs
    after both clusters are read and before the first write (tests use it to force races).
    """
    members = tuple(zk_hosts)
    if len(members) != 2:
        raise ValueError(f"a pair has two clusters, got {members}")
    refusal = check_request(cluster, confirmation, (members[0], members[1]))
    if refusal:
        return PromotionResult(cluster, "refused", refusal)
    other = members[1] if cluster == members[0] else members[0]
    try:
        return _promote(cluster, other, zk_hosts, timeout, before_write)
    except (KazooException, KazooTimeoutError) as exc:
        return PromotionResult(
            cluster,
            "conflict",
            f"ZooKeeper failed during the promotion ({type(exc).__name__}: {exc}); run `tandem status` "
            "and promote again if roles are not as intended",
        )


def fence(cluster: str, zk_hosts: Mapping[str, str], *, timeout: float = 5.0) -> tuple[str, int | None]:
    """Set ``cluster`` to standby (compare-and-set, epoch above both records) if it says active,
    so that every backup run of its pair stops at its next step. Returns what happened and the
    epoch it was fenced at (None: nothing was written); never raises for an unreachable
    ZooKeeper (that cluster cannot be fenced, which the text says)."""
    epochs: list[int] = []
    for name, hosts in zk_hosts.items():
        if name == cluster:
            continue
        with _session(hosts, timeout) as zk:
            if zk is not None:
                seen = _read(zk, name).view.epoch
                epochs += [seen] if seen is not None else []
    with _session(zk_hosts[cluster], timeout) as zk:
        if zk is None:
            return f"{cluster} is unreachable: it cannot be fenced (and no backup can read from it)", None
        read = _read(zk, cluster)
        if read.view.role != "active":
            return f"{read.view.describe()}: nothing to fence", None
        epoch = max([*epochs, read.view.epoch or 0]) + 1
        conflict = _fence(zk, cluster, read, epoch)
    if conflict:
        raise PromotionRefused(conflict)
    log.info("fenced %s: standby at epoch %d", cluster, epoch)
    return f"{cluster} set to standby at epoch {epoch}", epoch


def unfence(cluster: str, zk_hosts: Mapping[str, str], epoch: int, *, timeout: float = 5.0) -> str:
    """Give ``cluster`` back the active role :func:`fence` took at ``epoch``, if its record is
    still exactly that fence (compare-and-set, at a higher epoch) and it is alive; otherwise
    leave it and say why. Returns what happened."""
    with _session(zk_hosts[cluster], timeout) as zk:
        if zk is None:
            return f"{cluster} was fenced (standby at epoch {epoch}) and is now unreachable: it stays standby"
        read = _read(zk, cluster)
        if read.view.role != "standby" or read.view.epoch != epoch or read.alive_version is None:
            return (
                f"{cluster} was fenced at epoch {epoch} and has changed since ({read.view.describe()}): "
                "left as it is"
            )
        conflict = _activate(zk, cluster, read, epoch + 1)
    if conflict:
        return f"{cluster} was fenced at epoch {epoch} and could not be given its role back ({conflict})"
    log.info("gave %s back its active role at epoch %d", cluster, epoch + 1)
    return f"{cluster}, fenced to stop backups, is active again (epoch {epoch + 1})"


def _promote(
    cluster: str,
    other: str,
    zk_hosts: Mapping[str, str],
    timeout: float,
    before_write: Callable[[], None] | None,
) -> PromotionResult:
    with _session(zk_hosts[cluster], timeout) as tzk:
        if tzk is None:
            view = ClusterView.unreachable(cluster, f"ZooKeeper {zk_hosts[cluster]} did not answer")
            return PromotionResult(cluster, "refused", str(check_target(view)))
        target = _read(tzk, cluster)
        refusal = check_target(target.view)
        if refusal:
            return PromotionResult(cluster, "refused", refusal)
        with _session(zk_hosts[other], timeout) as ozk:
            old = _read(ozk, other) if ozk is not None else None
            if target.view.role == "active" and (old is None or old.view.role != "active"):
                said = "unreachable" if old is None else old.view.describe()
                return PromotionResult(
                    cluster,
                    "unchanged",
                    f"{cluster} is already active (epoch {target.view.epoch}) and {other} is {said}: "
                    "nothing to do",
                    target.view.epoch,
                )
            epochs = [e for e in (target.view.epoch, old.view.epoch if old else None) if e is not None]
            epoch = max(epochs, default=0) + 1
            if before_write is not None:
                before_write()
            fenced: str | None = None
            if ozk is not None and old is not None:
                conflict = _fence(ozk, other, old, epoch)
                if conflict:
                    return PromotionResult(cluster, "conflict", conflict)
                fenced = other
        conflict = _activate(tzk, cluster, target, epoch)
    if conflict:
        after = f"; {other} was already set to standby, so no cluster is active now" if fenced else ""
        # the epoch names the fence (so that whoever called can give the role back)
        return PromotionResult(
            cluster,
            "conflict",
            f"{conflict}: {cluster} was not promoted{after}",
            epoch if fenced else None,
            fenced,
        )
    how = (
        f"{other} was set to standby first"
        if fenced
        else f"{other} is unreachable and could not be fenced: set it to standby when it returns "
        f"(promoting {cluster} again does that)"
    )
    log.info("promoted %s at epoch %d; %s", cluster, epoch, how)
    return PromotionResult(
        cluster, "promoted", f"{cluster} is now active (epoch {epoch}); {how}", epoch, fenced
    )
