"""An application writing through :class:`~tandem.client.ActiveClusterClient`, as the drill runs it:
a small file every ``every`` seconds, each acknowledged write remembered (by which cluster, when,
with what bytes) so that after a failover the writes lost can be counted on the new active cluster.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tandem.client import ActiveClusterClient


@dataclass(frozen=True)
class Ack:
    """One write the application saw acknowledged: by which cluster, when, with what bytes."""

    seq: int
    cluster: str
    at: float
    path: str
    data: bytes


class Writer:
    """An application writing a small file into ``folder`` every ``every`` seconds through
    ActiveClusterClient."""

    def __init__(self, clients: ActiveClusterClient, folder: str, every: float = 0.1) -> None:
        self.clients = clients
        self.folder = folder
        self.every = every
        self.acks: list[Ack] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drill-writer", daemon=True)
        self._seq = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            self._seq += 1
            cluster = self.clients.target
            path = f"{self.folder}/w-{self._seq:06d}.json"
            data = json.dumps({"seq": self._seq, "cluster": cluster, "at": time.time()}).encode()
            try:
                self.clients.hdfs(cluster).write(path, data, overwrite=True)
                self.acks.append(Ack(self._seq, cluster, time.time(), path, data))
            except Exception:  # a dead cluster refuses in many ways; the write is simply not acknowledged
                self.failures += 1
            self._stop.wait(max(0.0, self.every - (time.monotonic() - began)))

    def on(self, cluster: str) -> list[Ack]:
        return [a for a in self.acks if a.cluster == cluster]


def lost_writes(clients: ActiveClusterClient, cluster: str, acks: list[Ack]) -> int:
    """How many acknowledged writes are missing, or changed, on ``cluster`` now."""
    hdfs = clients.hdfs(cluster)
    lost = 0
    for ack in acks:
        try:
            if hdfs.read_bytes(ack.path) != ack.data:
                lost += 1
        except Exception:
            lost += 1
    return lost
