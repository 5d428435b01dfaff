"""A cluster's state in its own ZooKeeper: the contract the arbiter and the failover DAGs read.

Layout (DESIGN.md, "Failover"):

- ``/tandem/cluster``: persistent JSON ``{"name", "role": "active"|"standby", "epoch", "updated"}``;
  ``epoch`` grows by one on every role change, which is what compare-and-set writes check.
- ``/tandem/alive``: ephemeral, present while the cluster is healthy; held by :class:`AliveHolder`.

Payloads are parsed once, here, into :class:`ClusterRecord`; nothing downstream reads raw bytes.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import AuthFailedError, KazooException, NodeExistsError, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError

from tandem.errors import ZooKeeperError
from tandem.security import zookeeper_client

log = logging.getLogger(__name__)

ROOT_PATH = "/tandem"
CLUSTER_PATH = "/tandem/cluster"
ALIVE_PATH = "/tandem/alive"

Role = Literal["active", "standby"]
ROLES: tuple[Role, ...] = ("active", "standby")


class CorruptRecordError(ZooKeeperError):
    """``/tandem/cluster`` holds something that is not a valid cluster record.

    Nothing is decided on such data; an operator must rewrite the node (the message says how).
    """

    def __init__(self, reason: str, data: bytes) -> None:
        self.reason = reason
        self.data = data
        shown = data[:200].decode("utf-8", "replace")
        super().__init__(
            f"{CLUSTER_PATH} is corrupt ({reason}): {shown!r}; rewrite it as JSON "
            '{"name": ..., "role": "active"|"standby", "epoch": <int>, "updated": "<ISO-8601 UTC>"}'
        )


def _format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_time(value: object, data: bytes) -> datetime:
    if not isinstance(value, str):
        raise CorruptRecordError("'updated' must be an ISO-8601 string", data)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise CorruptRecordError(f"'updated' is not ISO-8601: {value!r}", data) from None
    if moment.tzinfo is None:
        raise CorruptRecordError(f"'updated' has no time zone: {value!r}", data)
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class ClusterRecord:
    """What ``/tandem/cluster`` says about its cluster. ``updated`` is an aware UTC datetime."""

    name: str
    role: Role
    epoch: int
    updated: datetime

    @classmethod
    def new(cls, name: str, role: Role, epoch: int = 0, updated: datetime | None = None) -> ClusterRecord:
        moment = (updated or datetime.now(UTC)).astimezone(UTC)
        # stored with millisecond precision: truncate now so the value equals what is read back
        return cls(name, role, epoch, moment.replace(microsecond=moment.microsecond // 1000 * 1000))

    @classmethod
    def parse(cls, data: bytes) -> ClusterRecord:
        """Parse a znode payload; raises :class:`CorruptRecordError` on anything invalid.

        Unknown keys are ignored so that later versions can add fields.
        """
        try:
            obj: Any = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise CorruptRecordError(f"not UTF-8 JSON: {exc}", data) from None
        if not isinstance(obj, dict):
            raise CorruptRecordError("not a JSON object", data)
        missing = [key for key in ("name", "role", "epoch", "updated") if key not in obj]
        if missing:
            raise CorruptRecordError(f"missing {', '.join(missing)}", data)
        name, role, epoch = obj["name"], obj["role"], obj["epoch"]
        if not isinstance(name, str) or not name:
            raise CorruptRecordError("'name' must be a non-empty string", data)
        if role not in ROLES:
            raise CorruptRecordError(f"'role' must be 'active' or 'standby', not {role!r}", data)
        # bool is an int in Python; a JSON true is not an epoch
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
            raise CorruptRecordError(f"'epoch' must be a non-negative integer, not {epoch!r}", data)
        return cls(name, cast(Role, role), epoch, _parse_time(obj["updated"], data))

    def to_dict(self) -> dict[str, object]:
        updated = _format_time(self.updated)
        return {"name": self.name, "role": self.role, "epoch": self.epoch, "updated": updated}

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":")).encode("utf-8")


def read_cluster_record(zk: KazooClient) -> ClusterRecord | None:
    """The current record, or None if the node does not exist. Read-only; safe to retry.

    Raises :class:`CorruptRecordError` if the node exists but is invalid.
    """
    try:
        data, _stat = zk.get(CLUSTER_PATH)
    except NoNodeError:
        return None
    return ClusterRecord.parse(bytes(data))


def init_cluster_record(zk: KazooClient, name: str, role: Role) -> ClusterRecord:
    """Create ``/tandem/cluster`` for ``name`` with ``role`` at epoch 0 unless it already exists.

    Idempotent and safe to retry or race: the create is atomic and an existing record is never
    overwritten (roles written by a failover survive restarts); the record in force is returned.
    Raises :class:`ZooKeeperError` if the existing record belongs to another cluster, which
    means two clusters were pointed at one ZooKeeper.
    """
    if role not in ROLES:
        raise ValueError(f"role must be 'active' or 'standby', not {role!r}")
    record = ClusterRecord.new(name, role)
    try:
        zk.create(CLUSTER_PATH, record.to_bytes(), makepath=True)
        return record
    except NodeExistsError:
        close_open_acls(zk, (ROOT_PATH, CLUSTER_PATH))
    existing = read_cluster_record(zk)
    if existing is None:
        # deleted between our create and our read: nobody else owns the path, try once more
        return init_cluster_record(zk, name, role)
    if existing.name != name:
        raise ZooKeeperError(
            f"this ZooKeeper already holds cluster {existing.name!r}, not {name!r}: give each "
            "cluster its own ZooKeeper (or chroot) in include/clusters.yaml"
        )
    return existing


def close_open_acls(zk: KazooClient, paths: tuple[str, ...]) -> None:
    """Give ``paths`` the client's ACL (Kerberos: :func:`tandem.security.tandem_acl`) where anyone
    may still change them: nodes made before Kerberos was turned on. Best effort and idempotent: a
    node that is not open, or that this principal may not administer, is left as it is (logged)."""
    from kazoo.security import ANYONE_ID_UNSAFE, Permissions

    if not zk.default_acl:
        return  # plain mode: open ACLs are what it creates too
    for path in paths:
        try:
            acls, _stat = zk.get_acls(path)
            if any(a.id == ANYONE_ID_UNSAFE and a.perms != Permissions.READ for a in acls):
                zk.set_acls(path, zk.default_acl)
                log.info("%s: anyone could change it; now only this principal may (anyone may read)", path)
        except KazooException as exc:
            log.warning("cannot close the ACL of %s: %s", path, exc)


class AliveHolder:
    """Keeps the ephemeral ``/tandem/alive`` present while running, on its own ZooKeeper session.

    Guarantees: after :meth:`start` returns the node exists and belongs to this holder's session.
    If the session expires (the server deletes the node) or someone deletes the node, a worker
    thread re-creates it as soon as a session is connected again. :meth:`stop` deletes it
    (best effort) and closes the session, which removes it in any case. If a process dies
    without stopping, the node disappears when its session times out (``session_timeout``).

    A node owned by another live session is left alone (two holders for one cluster is a
    configuration error, logged); this holder takes over once it disappears.
    """

    def __init__(
        self,
        zk_hosts: str,
        name: str,
        payload: bytes = b"",
        *,
        session_timeout: float = 6.0,
        check_interval: float = 2.0,
        kerberos: bool = False,
    ) -> None:
        self.zk_hosts = zk_hosts
        self.name = name
        self.payload = payload
        self.check_interval = check_interval
        # explicit: a cluster's own process holds the node too, and it has no Airflow to ask
        self._zk = zookeeper_client(zk_hosts, kerberos=kerberos, timeout=session_timeout)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._held = threading.Event()
        self._creations = 0

    @property
    def client(self) -> KazooClient:
        """The holder's own client (tests use its ``client_id`` to expire the session)."""
        return self._zk

    def start(self, timeout: float = 30.0) -> None:
        """Connect and create the node; returns once it is held.

        Raises :class:`ZooKeeperError` if ZooKeeper cannot be reached within ``timeout`` or the
        node cannot be taken.
        """
        self._zk.add_listener(self._on_state)
        try:
            self._zk.start(timeout=timeout)
        except KazooTimeoutError:
            self._zk.close()
            raise ZooKeeperError(
                f"cannot reach ZooKeeper at {self.zk_hosts} within {timeout:.0f} s: is it running "
                "(`tandem status`)?"
            ) from None
        except AuthFailedError as exc:  # Kerberos: no server proved itself
            self._zk.close()
            raise ZooKeeperError(f"ZooKeeper at {self.zk_hosts}: {exc}") from exc
        self._thread = threading.Thread(target=self._run, name=f"alive-{self.name}", daemon=True)
        self._thread.start()
        self._wake.set()
        if not self.wait_held(timeout):
            self.stop()
            raise ZooKeeperError(f"could not create {ALIVE_PATH} on {self.zk_hosts} within {timeout:.0f} s")

    def wait_held(self, timeout: float) -> bool:
        """Wait until the node is held by this holder's current session."""
        return self._held.wait(timeout)

    @property
    def held(self) -> bool:
        return self._held.is_set()

    def _on_state(self, state: str) -> None:
        # kazoo calls listeners on its own thread and forbids blocking there: only signal
        if state == KazooState.CONNECTED:
            self._wake.set()
        else:
            self._held.clear()
            if state == KazooState.LOST:
                log.warning("ZooKeeper session for %s lost: %s will be re-created", self.name, ALIVE_PATH)

    def _on_node_event(self, _event: object) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.check_interval)
            self._wake.clear()
            if self._stopping.is_set():
                break
            if not self._zk.connected:
                continue
            try:
                self._ensure_node()
            except (KazooException, KazooTimeoutError) as exc:
                log.warning("cannot hold %s on %s yet: %s", ALIVE_PATH, self.zk_hosts, exc)
                self._held.clear()

    def _ensure_node(self) -> None:
        stat = self._zk.exists(ALIVE_PATH, watch=self._on_node_event)
        session_id = self._zk.client_id[0] if self._zk.client_id else None
        if stat is not None:
            if stat.ephemeralOwner == session_id:
                self._held.set()
            else:
                self._held.clear()
                log.error(
                    "%s on %s is held by another session; waiting for it to go",
                    ALIVE_PATH,
                    self.zk_hosts,
                )
            return
        try:
            self._zk.create(ALIVE_PATH, self.payload, ephemeral=True, makepath=True)
        except NodeExistsError:
            self._wake.set()
            return
        self._creations += 1
        self._held.set()
        # re-arm the watch on the node we just created, so that a deletion wakes us up
        self._zk.exists(ALIVE_PATH, watch=self._on_node_event)

    @property
    def recreations(self) -> int:
        """How many times the node was created again after the first time."""
        return max(0, self._creations - 1)

    def stop(self) -> None:
        """Delete the node (best effort) and close the session. Idempotent."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._held.clear()
        try:
            if self._zk.connected:
                stat = self._zk.exists(ALIVE_PATH)
                if stat is not None and self._zk.client_id and stat.ephemeralOwner == self._zk.client_id[0]:
                    self._zk.delete(ALIVE_PATH)
        except (KazooException, KazooTimeoutError) as exc:
            log.warning("could not delete %s (closing the session removes it): %s", ALIVE_PATH, exc)
        finally:
            self._zk.stop()
            self._zk.close()
