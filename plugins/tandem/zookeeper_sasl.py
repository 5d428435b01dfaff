"""kazoo's client with SASL GSSAPI as Tandem needs it: no server is trusted before it proved
itself, and in an ensemble one that cannot is skipped for the next.

kazoo 2.11 runs the SASL exchange inside its connect step, after the Connect request, and
1. reports CONNECTED *before* the exchange (so ``start()`` returns, and the first operation is
   what fails, or is lost with the connection);
2. on a failed exchange ends the client (AUTH_FAILED) without trying the other servers of the
   list, or, when the server answers the exchange with an error (``SessionClosedRequireSasl``),
   lets that escape its connection thread.

:class:`SaslConnection` defers CONNECTED until the exchange completed, and turns a failed
exchange into a dropped connection (logged as failing mutual authentication, naming the server),
so kazoo moves on to the next host; the session that server handed out is forgotten (a genuine
server would not know it). Requests queued meanwhile wait: kazoo sends them only once connected,
so nothing reaches a server that did not prove itself. When every host failed the exchange (since
the last success) the client ends AUTH_FAILED, and :meth:`SaslKazooClient.start` raises
``AuthFailedError`` naming every one, at once rather than at its time-out.

These override private kazoo methods (``ConnectionHandler._connect``,
``_authenticate_with_sasl``, ``KazooClient._session_callback``); the Kerberos ZooKeeper tests
(tests/integration/test_zookeeper_kerberos.py) pin the behaviour on a kazoo upgrade.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import AuthFailedError, ConnectionDropped
from kazoo.protocol.connection import ConnectionHandler
from kazoo.protocol.states import KeeperState

log = logging.getLogger(__name__)


class _Unproven(Exception):
    """The SASL exchange with one server failed."""


class SaslConnection(ConnectionHandler):  # type: ignore[misc]
    """kazoo's connection handler with the fall-through described in the module docstring."""

    def __init__(self, *args: Any, service: str, sasl_host: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.service = service
        self.sasl_host = sasl_host
        self.refused: dict[str, str] = {}  # host:port -> why, since the last success
        self.gave_up = threading.Event()
        self.refusal = ""

    def _authenticate_with_sasl(self, host: str, timeout: float) -> None:
        try:
            super()._authenticate_with_sasl(self.sasl_host or host, timeout)
        except self.handler.timeout_exception:
            raise  # slow, not refused: kazoo retries it as a lost connection
        except Exception as exc:
            raise _Unproven(f"{type(exc).__name__}: {exc}") from exc
        self.refused.clear()

    def _connect(self, host: str, hostip: str, port: int) -> Any:
        client = self.client
        before = (client._session_id, client._session_passwd, client.last_zxid)
        held: list[Any] = []
        report = client._session_callback

        def hold_connected(state: Any) -> None:
            if state in (KeeperState.CONNECTED, KeeperState.CONNECTED_RO):
                held.append(state)
            else:
                report(state)

        client._session_callback = hold_connected
        try:
            result = super()._connect(host, hostip, port)
        except _Unproven as unproven:
            client._session_id, client._session_passwd, client.last_zxid = before
            raise self._refuse(host, port, str(unproven)) from unproven
        finally:
            del client._session_callback  # the class's method again
        for state in held:
            report(state)
        return result

    def _refuse(self, host: str, port: int, why: str) -> Exception:
        """What a failed exchange with ``host:port`` becomes: a dropped connection, or, once every
        host failed, the client's end."""
        where = f"{host}:{port}"
        self.refused[where] = why
        every = [f"{h.strip()}:{p}" for h, p in self.client.hosts]
        if set(every) <= set(self.refused):
            self.refusal = "no ZooKeeper server proved it is its Kerberos service: " + ", ".join(
                f"{self.service}/{self.sasl_host or w.rsplit(':', 1)[0]} at {w} ({self.refused[w]})"
                for w in every
            )
            self.gave_up.set()
            ended: Exception = AuthFailedError(self.refusal)
            return ended
        log.warning(
            "ZooKeeper %s failed mutual authentication: it did not prove it is the Kerberos service "
            "%s/%s (%s); skipping it",
            where,
            self.service,
            self.sasl_host or host,
            why,
        )
        dropped: Exception = ConnectionDropped(f"{where} failed mutual authentication")
        return dropped


class SaslKazooClient(KazooClient):  # type: ignore[misc]
    """A ``KazooClient`` with SASL GSSAPI to ``<service>/<host>`` through :class:`SaslConnection`;
    ``sasl_host``: the host of every server's principal, when it is not the host dialled (as Java
    clients' ``zookeeper.server.principal``): an address dialled, a name mapping to another realm."""

    _connection: SaslConnection

    def __init__(self, hosts: str, service: str, sasl_host: str | None = None, **options: Any) -> None:
        options["sasl_options"] = {"mechanism": "GSSAPI", "service": service}
        super().__init__(hosts=hosts, **options)
        stock = self._connection
        self._connection = SaslConnection(
            self,
            stock.retry_sleeper,
            logger=stock.logger,
            sasl_options=stock.sasl_options,
            service=service,
            sasl_host=sasl_host,
        )

    def start(self, timeout: float = 15) -> None:
        """Connect (a server proved itself) within ``timeout``; ``AuthFailedError`` naming every
        server as soon as none could, kazoo's time-out error when none answered in time."""
        self._connection.gave_up.clear()
        self._connection.refused.clear()
        connected = self.start_async()
        deadline = time.monotonic() + timeout
        while not connected.wait(0.05):
            if self._connection.gave_up.is_set() or time.monotonic() >= deadline:
                break
        if not self.connected:
            self.stop()
            self.close()
            if self._connection.gave_up.is_set():
                raise AuthFailedError(self._connection.refusal)
            raise self.handler.timeout_exception("Connection time-out")
        if self.chroot and not self.exists("/"):
            log.warning("ZooKeeper %s: the chroot %s does not exist", self.hosts, self.chroot)
