"""The clusters a gateway plan writes to, each reached through its Airflow connection.

A :class:`Side` is one cluster: a primary (application paths map to themselves) or the
standby (a path ``P`` maps to ``<target root>/P``). It builds its WebHDFS client lazily through
the provider's hook, so a side that is down when the gateway starts is simply down, and it
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
from typing import Any

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


class Side:
    """One cluster of a plan."""

    def __init__(self, name: str, conn_id: str, root: str = "") -> None:
        self.name = name
        self.conn_id = conn_id
        self.root = root.rstrip("/")
        self._client: Hdfs | None = None
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
    def hdfs(self) -> Hdfs:
        """The connection's own client (Tandem's records, copies). Raises SideDown when the
        hook finds no NameNode answering."""
        with self._lock:
            if self._client is None:
                try:
                    client = Hdfs.from_conn_id(self.conn_id)
                except Exception as exc:
                    if not is_unreachable(exc):
                        raise
                    raise SideDown(f"{self.name}: {exc}") from exc
                client._client._timeout = TIMEOUT
                client._ext._timeout = TIMEOUT
                # proxies and .netrc come from the connection, not the environment: skipping the
                # environment scan saves a quarter of the client's CPU per request
                client._client._session.trust_env = False
                self._client = client
            return self._client

    def as_user(self, user: str | None) -> Hdfs:
        """A client acting for ``user`` (``doas``), sharing the connection's authentication."""
        base = self.hdfs
        if not user:
            return base
        with self._lock:
            found = self._users.get(user)
            if found is None:
                raw: Any = copy.copy(base._client)
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
                found = Hdfs(raw)
                found._ext._timeout = TIMEOUT
                self._users[user] = found
            return found
