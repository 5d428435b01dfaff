"""Pending marks: what one side holds that another still lacks, kept with the data.

A mark is a small JSON file in the plan's journal on the cluster that holds the data
(``/.tandem/gateway/<plan>/`` there), so losing the gateway host loses nothing:

- ``inflight/<id>`` on a primary: written while a write is under way; a gateway that dies
  mid-write leaves it behind, and replay reconciles the path (never acknowledged, never torn);
- ``pending-backup/<id>`` on a primary: the standby still lacks this change;
- ``pending-store/<primary>/<id>`` on the standby: the primary was down, the standby holds the
  change and writes it back when the primary answers again (the side that took over is right).

Ids start with the mark's time in milliseconds, so a listing sorted by name is oldest first:
the count and the oldest age of a queue cost one LISTSTATUS. A mark whose fields fit in a file
name carries them in its id (``<ms>-<hex>~<base64url JSON>``) and, on a cluster, is an empty
directory: one MKDIRS makes it durable (a file costs the CREATE and its data step, two round
trips on the write path) and reading it back costs nothing beyond the listing. A mark names paths, not bytes:
replaying it makes the receiving side match the holder's current state of those paths, so
replaying twice, or replaying an older mark after a newer write, is harmless.
"""

from __future__ import annotations

import base64
import json
import posixpath
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tandem.errors import RemoteHdfsError
from tandem.hdfs.client import is_missing

if TYPE_CHECKING:
    from tandem.gateway.targets.base import Store

INFLIGHT = "inflight"
PENDING_BACKUP = "pending-backup"
PENDING_STORE = "pending-store"
# the gateway's own temporary names, beside the final name; hidden from listings
TEMP_PREFIX = ".tandem-gw."
# HDFS's default dfs.namenode.fs-limits.max-component-length is 255 bytes; a mark whose fields do
# not fit stays a file
MAX_NAME = 255
_COMPACT = "~"


def new_id(now_ms: int | None = None) -> str:
    return f"{now_ms if now_ms is not None else int(time.time() * 1000):013d}-{secrets.token_hex(6)}"


def id_time_ms(mark_id: str) -> int:
    return int(mark_id.split("-", 1)[0])


def temp_name(path: str, tag: str | None = None) -> str:
    """A hidden name beside ``path``: random for a write; ``tag`` (a mark's short id) for a replay
    copy, so replaying the mark again after a crash overwrites what the dead copy left, never
    leaks it. Within HDFS's limit on a name (``MAX_NAME`` bytes): the file's own name is cut to
    fit, the tag keeps the name unique."""
    parent, name = posixpath.split(path)
    head = f"{TEMP_PREFIX}{tag or secrets.token_hex(6)}."
    room = MAX_NAME - len(head.encode())
    tail = name.encode()[:room].decode("utf-8", "ignore")
    return posixpath.join(parent, head + tail)


def short_id(mark_id: str) -> str:
    """The id without the fields a compact id carries: its time and random part."""
    return mark_id.partition(_COMPACT)[0]


def is_compact(mark_id: str) -> bool:
    """Whether the id carries the mark's fields (and the mark may be an empty directory)."""
    return _COMPACT in mark_id


@dataclass(frozen=True)
class Mark:
    """One change a side still lacks: ``paths`` as the application wrote them."""

    id: str
    op: str
    paths: tuple[str, ...]
    primary: str
    user: str = ""
    temp: str | None = None
    size: int = 0
    written_at_ms: int = field(default=0)

    @classmethod
    def new(cls, op: str, paths: tuple[str, ...], primary: str, user: str = "", **kw: Any) -> Mark:
        now = int(time.time() * 1000)
        return cls(new_id(now), op, paths, primary, user, written_at_ms=now, **kw)

    @classmethod
    def new_compact(
        cls, op: str, paths: tuple[str, ...], primary: str, user: str = "", *, with_temp: bool = False
    ) -> Mark:
        """A new mark whose id carries its fields when they fit in a file name (else a plain id).
        ``with_temp``: the write goes through a temporary name beside ``paths[0]``, named after
        the id (:meth:`temp_of`), so the id says where a dead write's bytes are."""
        now = int(time.time() * 1000)
        base = new_id(now)
        tag = base.split("-", 1)[1]
        temp = temp_name(paths[0], tag) if with_temp else None
        doc = {"o": op, "p": list(paths), "r": primary, "u": user, "t": int(with_temp)}
        payload = base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode()
        compact = f"{base}{_COMPACT}{payload.rstrip('=')}"
        mark_id = compact if len(compact.encode()) <= MAX_NAME else base
        return cls(mark_id, op, paths, primary, user, temp, written_at_ms=now)

    @classmethod
    def from_id(cls, mark_id: str) -> Mark:
        """The mark a compact id describes (see :meth:`new_compact`); ValueError otherwise."""
        base, _, payload = mark_id.partition(_COMPACT)
        if not payload:
            raise ValueError(f"mark id {mark_id!r} carries no fields")
        doc = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        paths = tuple(str(p) for p in doc["p"])
        temp = temp_name(paths[0], base.split("-", 1)[1]) if doc.get("t") else None
        return cls(
            mark_id,
            str(doc["o"]),
            paths,
            str(doc["r"]),
            str(doc.get("u") or ""),
            temp,
            0,
            id_time_ms(mark_id),
        )

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "id": self.id,
                "op": self.op,
                "paths": list(self.paths),
                "primary": self.primary,
                "user": self.user,
                "temp": self.temp,
                "size": self.size,
                "written_at_ms": self.written_at_ms,
            }
        ).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Mark:
        doc = json.loads(raw)
        return cls(
            str(doc["id"]),
            str(doc["op"]),
            tuple(doc["paths"]),
            str(doc["primary"]),
            str(doc.get("user") or ""),
            doc.get("temp"),
            int(doc.get("size") or 0),
            int(doc.get("written_at_ms") or id_time_ms(doc["id"])),
        )


@dataclass(frozen=True)
class Queue:
    """A queue's size and its oldest mark, from one listing."""

    count: int
    oldest_ms: int | None

    def oldest_age_s(self, now: float | None = None) -> float | None:
        if self.oldest_ms is None:
            return None
        return max(0.0, (now if now is not None else time.time()) - self.oldest_ms / 1000)


class Journal:
    """The marks of one plan on one cluster (or target)."""

    def __init__(self, store: Store, journal_root: str) -> None:
        self.store = store
        self.root = journal_root
        # a cluster keeps empty directories (an object store does not): compact marks are MKDIRS
        from tandem.hdfs.client import Hdfs

        self.directories = isinstance(store, Hdfs)

    def dir(self, state: str, primary: str | None = None) -> str:
        return f"{self.root}/{state}/{primary}" if primary else f"{self.root}/{state}"

    def put(self, mark: Mark, state: str, primary: str | None = None) -> None:
        """Durable once this returns (MKDIRS is in the NameNode's edit log when it answers; CREATE
        is acknowledged after the data is written)."""
        where = f"{self.dir(state, primary)}/{mark.id}"
        if self.directories and is_compact(mark.id):
            self.store.mkdirs(where)
        else:
            self.store.write(where, mark.to_bytes(), overwrite=False)
            if not is_compact(mark.id):
                _remember(mark)

    def move(self, mark: Mark, src: str, dst: str) -> None:
        """Atomic (RENAME): the mark is in one queue or the other, never neither."""
        target = self.dir(dst)
        try:
            self.store.rename(f"{self.dir(src)}/{mark.id}", f"{target}/{mark.id}")
        except RemoteHdfsError:
            # WebHDFS answers false when the queue directory does not exist yet
            self.store.mkdirs(target)
            self.store.rename(f"{self.dir(src)}/{mark.id}", f"{target}/{mark.id}")

    def delete(self, mark_id: str, state: str, primary: str | None = None) -> None:
        """Idempotent; a mark is a file or an empty directory, so never recursive."""
        self.store.delete(f"{self.dir(state, primary)}/{mark_id}")

    def ids(self, state: str, primary: str | None = None) -> list[str]:
        """Mark ids of a queue, oldest first; empty when the queue was never used."""
        try:
            return sorted(s.path_suffix for s in self.store.list(self.dir(state, primary)))
        except RemoteHdfsError as exc:
            if is_missing(exc):
                return []
            raise

    def queue(self, state: str, primary: str | None = None) -> Queue:
        ids = self.ids(state, primary)
        return Queue(len(ids), id_time_ms(ids[0]) if ids else None)

    def in_flight(self, exclude: str | None = None) -> list[Mark]:
        """The marks of the writes and changes still under way here (the inflight queue; one
        LISTSTATUS, and a read per mark too long to carry its fields in its id)."""
        found = (self.read_settled(i, INFLIGHT) for i in self.ids(INFLIGHT) if i != exclude)
        return [m for m in found if m is not None]

    def read_settled(self, mark_id: str, state: str, primary: str | None = None) -> Mark | None:
        """:meth:`read`, None for a mark file not written yet (its CREATE landed, its data not:
        being made now, or by a gateway that died there, which then never wrote a byte)."""
        try:
            return self.read(mark_id, state, primary)
        except ValueError:
            return None

    def read(self, mark_id: str, state: str, primary: str | None = None) -> Mark | None:
        """The mark, or None when another replayer already finished it. A compact id is read from
        the id itself, without a request: a mark finished meanwhile is replayed again, which is
        harmless (replay is idempotent). A mark file is read once per process: it never changes
        (made once, never overwritten; a move keeps it). ValueError for a file not written yet
        (listed between its CREATE and its data)."""
        if is_compact(mark_id):
            return Mark.from_id(mark_id)
        known = _READ.get(mark_id)
        if known is not None:
            return known
        try:
            mark = Mark.from_bytes(self.store.read_bytes(f"{self.dir(state, primary)}/{mark_id}"))
        except RemoteHdfsError as exc:
            if is_missing(exc):
                return None
            raise
        _remember(mark)
        return mark


# mark files already read, by id (ids are unique: a time and 48 random bits)
READ_CACHE = 50_000
_READ: OrderedDict[str, Mark] = OrderedDict()
_READ_LOCK = threading.Lock()


def _remember(mark: Mark) -> None:
    with _READ_LOCK:
        _READ[mark.id] = mark
        while len(_READ) > READ_CACHE:
            _READ.popitem(last=False)
