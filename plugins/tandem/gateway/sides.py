"""The sides a gateway plan writes to, each reached through its Airflow connection.

A :class:`Side` is one primary cluster (application paths map to themselves) or the plan's
target (a path ``P`` maps to ``<target root>/P``; a cluster, a NAS directory or a bucket, see
:mod:`tandem.gateway.targets`). It builds its client lazily (primaries through the provider's
WebHDFS hook), so a side that is down when the gateway starts is simply down, and it
remembers a failure for a short while so that a dead side costs one refused connection per
``RETRY_AFTER`` instead of one per request. Requests on behalf of an application carry its user
as ``doas``, as HttpFS does (the connection's user must be a proxy user on real clusters).
"""

from __future__ import annotations

import copy
import logging
import posixpath
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import requests

from tandem.errors import RemoteHdfsError, TandemError
from tandem.hdfs.client import Hdfs

log = logging.getLogger(__name__)

RETRY_AFTER = 1.0
# connect, read: a side that stops answering fails a request instead of holding it forever
TIMEOUT = (3.05, 60.0)


class SideDown(TandemError):
    """A side could not be reached (refused, reset, timed out); its data is pending there."""


def is_unreachable(exc: BaseException) -> bool:
    """Whether an error means the side is down, rather than that it refused the request."""
    if isinstance(exc, SideDown | requests.RequestException | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, RemoteHdfsError):
        return exc.exception in {"StandbyException", "RetriableException", "SafeModeException"}
    # the provider's hook when no NameNode of the connection answers
    return type(exc).__name__ == "AirflowWebHDFSHookException"


S = TypeVar("S")


def hdfs_client(conn_id: str) -> Hdfs:
    """A cluster's client from its WebHDFS connection, tuned for the gateway's many small calls."""
    client = Hdfs.from_conn_id(conn_id)
    client._client._timeout = TIMEOUT
    client._ext._timeout = TIMEOUT
    # proxies and .netrc come from the connection, not the environment: skipping the
    # environment scan saves a quarter of the client's CPU per request
    client._client._session.trust_env = False
    return client.enable_lean()  # the write path's calls without requests' per-call machinery


class Side(Generic[S]):
    """One side of a plan; ``connect`` builds its client (:class:`Hdfs` for primaries)."""

    def __init__(self, name: str, connect: Callable[[], S], root: str = "") -> None:
        self.name = name
        self.connect = connect
        self.root = root.rstrip("/")
        self._client: S | None = None
        self._users: dict[str, Hdfs] = {}
        self._lock = threading.Lock()
        self._down_until = 0.0
        self.last_error: str | None = None

    def __repr__(self) -> str:
        return f"Side({self.name!r})"

    # -- paths ----------------------------------------------------------------------------
    def local(self, path: str) -> str:
        """Where application path ``path`` lives on this side."""
        return posixpath.normpath(self.root + path) if self.root else path

    # -- health ---------------------------------------------------------------------------
    def healthy(self) -> bool:
        """False for ``RETRY_AFTER`` seconds after a failure, then worth another try."""
        return time.monotonic() >= self._down_until

    def failed(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + RETRY_AFTER
        self.last_error = f"{type(exc).__name__}: {exc}"
        log.warning("%s unreachable: %s", self.name, self.last_error)

    def answered(self) -> None:
        self._down_until = 0.0
        self.last_error = None

    # -- clients --------------------------------------------------------------------------
    @property
    def store(self) -> S:
        """The side's own client (Tandem's records, copies). Raises SideDown when it cannot be
        built because the side does not answer (the hook finds no NameNode)."""
        with self._lock:
            if self._client is None:
                try:
                    self._client = self.connect()
                except Exception as exc:
                    if not is_unreachable(exc):
                        raise
                    raise SideDown(f"{self.name}: {exc}") from exc
            return self._client

    def as_user(self: Side[Hdfs], user: str | None) -> Hdfs:
        """A primary's client acting for ``user`` (``doas``), sharing the connection's authentication."""
        base = self.store
        if not user:
            return base
        with self._lock:
            found = self._users.get(user)
            if found is None:
                raw: Any = copy.copy(base._client)
                # the client's own proxy (Kerberos: the connection's login) would be sent as a
                # per-request doas, which wins over the session's: the copy acts only for ``user``
                raw._proxy = None
                session = requests.Session()
                original = base._client._session
                session.auth, session.verify, session.cert = original.auth, original.verify, original.cert
                session.headers.update(original.headers)
                session.params = {**dict(original.params or {}), "doas": user}
                session.trust_env = False
                adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=64)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                raw._session = session
                found = Hdfs(raw).enable_lean()
                found._ext._timeout = TIMEOUT
                self._users[user] = found
            return found
