"""A log of every request and connection an embedded WebHDFS server serves, for benchmarks.

The product is never instrumented to count its own calls: what a backup costs in requests is
read from the servers' side, as one would read a NameNode's audit log. When the cluster process
finds :data:`ENV` (a directory) in its environment, its WebHDFS server appends one line per
answered request and one per accepted connection to ``<dir>/<cluster>.log``; off otherwise.

Each line is tab-separated: ``role  kind  op  status  path  ms`` where ``kind`` is the HTTP
method, or ``CONNECT`` for a new connection (op, status, path and ms are then ``-``), and ``ms``
the server's time on the request up to its answer (not sending a streamed body). A request's line is
written before its answer is sent, so whoever has the answer finds the line in the file.
:func:`read` parses a file from an offset, so a caller can count what one step cost.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ENV = "TANDEM_WEBHDFS_REQUEST_LOG"


class RequestLog:
    """Appends request and connection lines to one file; thread-safe, unbuffered per line."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, cluster: str) -> RequestLog | None:
        where = os.environ.get(ENV)
        return cls(Path(where) / f"{cluster}.log") if where else None

    def request(self, role: str, method: str, op: str, status: int, path: str, seconds: float) -> None:
        self._append(f"{role}\t{method}\t{op or '-'}\t{status}\t{path}\t{seconds * 1000:.2f}\n")

    def connection(self, role: str) -> None:
        self._append(f"{role}\tCONNECT\t-\t-\t-\t-\n")

    def _append(self, line: str) -> None:
        # one write(2) per line under O_APPEND: lines never interleave
        with self._lock:
            os.write(self._fd, line.encode("utf-8", "replace"))

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


@dataclass
class Tally:
    """What a stretch of a request log holds: requests and the servers' milliseconds on them by
    ``role method op``, and new connections by role."""

    requests: Counter[str] = field(default_factory=Counter)
    connections: Counter[str] = field(default_factory=Counter)
    server_ms: dict[str, float] = field(default_factory=dict)

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    @property
    def total_connections(self) -> int:
        return sum(self.connections.values())

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.requests + other.requests,
            self.connections + other.connections,
            {
                k: self.server_ms.get(k, 0.0) + other.server_ms.get(k, 0.0)
                for k in self.server_ms | other.server_ms
            },
        )


def size(path: Path) -> int:
    """The log's current length: the offset to read from after the next step."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def read(path: Path, offset: int = 0) -> Tally:
    """Count the lines of ``path`` from byte ``offset`` on; an absent file counts nothing."""
    tally = Tally()
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return tally
    for line in data.decode("utf-8", "replace").splitlines():
        fields = line.split("\t")
        if len(fields) < 6:
            continue
        role, kind, op = fields[0], fields[1], fields[2]
        if kind == "CONNECT":
            tally.connections[role] += 1
        else:
            key = f"{role} {kind} {op}"
            tally.requests[key] += 1
            tally.server_ms[key] = tally.server_ms.get(key, 0.0) + float(fields[5])
    return tally
