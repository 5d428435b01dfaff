"""An embedded Hive metastore: the metastore's Thrift protocol, served over a SQLite file.

Any metastore client works against it as against a real metastore: ``hmsclient.HMSClient``,
the provider's ``HiveMetastoreHook`` and ``HivePartitionSensor``. The wire format is what the
provider's NOSASL default speaks: buffered transport, binary protocol, no SASL; or, with
``kerberos_keytab``, SASL GSSAPI first (:mod:`tandem_dev.embedded.sasl`), as a Kerberized
metastore requires.

The server is Hive's generated ``ThriftHiveMetastore.Processor`` in front of
:class:`~tandem_dev.embedded.metastore_handler.MetastoreHandler`. It accepts connections in its own
loop (``TThreadedServer`` spins once its socket is closed) and runs one thread per connection.
Calls the handler does not implement are refused at once with a ``TApplicationException``
naming the call, so a client never waits for an answer that will not come.

Usage::

    with MetastoreServer(tmp_path / "metastore.db") as hms:
        client = hmsclient.HMSClient(host="127.0.0.1", port=hms.port)
"""

from __future__ import annotations

import contextlib
import errno
import logging
import selectors
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from hmsclient.genthrift.fb303 import FacebookService
from hmsclient.genthrift.hive_metastore import ThriftHiveMetastore, ttypes
from thrift.protocol.TBinaryProtocol import TBinaryProtocol, TBinaryProtocolAccelerated
from thrift.Thrift import TApplicationException, TException, TMessageType, TType
from thrift.transport import TSocket, TTransport

from tandem.errors import EmbeddedError
from tandem_dev.embedded.metastore_handler import MetastoreHandler
from tandem_dev.embedded.metastore_store import MetastoreStore
from tandem_dev.embedded.sasl import GssapiServerTransport, SaslRefused

log = logging.getLogger(__name__)

_JOIN_TIMEOUT_S = 5.0


def _declares_meta_exception(method: str) -> bool:
    result = getattr(ThriftHiveMetastore, f"{method}_result", None) or getattr(
        FacebookService, f"{method}_result", None
    )
    spec = getattr(result, "thrift_spec", None) or ()
    return any(field and field[1] == TType.STRUCT and field[3][0] is ttypes.MetaException for field in spec)


class _Guarded:
    """The handler as the Processor sees it: unexpected errors become metastore errors.

    The generated Processor answers any exception a call does not declare with a bare
    "Internal error". The metastore instead wraps such failures in a MetaException carrying
    the cause, which this wrapper does for calls that declare one; the others get a
    TApplicationException with the cause in its message.
    """

    def __init__(self, handler: MetastoreHandler) -> None:
        self._handler = handler

    def __getattr__(self, method: str) -> Callable[..., Any]:
        target = getattr(self._handler, method)

        def call(*args: Any) -> Any:
            try:
                return target(*args)
            except TException:
                raise
            except Exception as exc:
                log.exception("embedded metastore: %s failed", method)
                message = f"{method}: {type(exc).__name__}: {exc}"
                if _declares_meta_exception(method):
                    raise ttypes.MetaException(message=message) from exc
                raise TApplicationException(TApplicationException.INTERNAL_ERROR, message) from exc

        return call


class _Dispatcher:
    """Routes one request to the generated Processor, or refuses a call that is not served."""

    def __init__(self, handler: MetastoreHandler) -> None:
        self._processor = ThriftHiveMetastore.Processor(_Guarded(handler))
        process_map: dict[str, Any] = self._processor._processMap
        self._calls = {name: fn for name, fn in process_map.items() if callable(getattr(handler, name, None))}

    @property
    def served(self) -> frozenset[str]:
        return frozenset(self._calls)

    def process(self, iprot: Any, oprot: Any) -> None:
        name, _kind, seqid = iprot.readMessageBegin()
        call = self._calls.get(name)
        if call is not None:
            call(self._processor, seqid, iprot, oprot)
            return
        iprot.skip(TType.STRUCT)
        iprot.readMessageEnd()
        error = TApplicationException(
            TApplicationException.UNKNOWN_METHOD,
            f"{name} is not implemented by the Tandem embedded metastore",
        )
        oprot.writeMessageBegin(name, TMessageType.EXCEPTION, seqid)
        error.write(oprot)
        oprot.writeMessageEnd()
        oprot.trans.flush()


class MetastoreServer:
    """A Hive metastore Thrift server over SQLite, on 127.0.0.1 and a free port by default.

    ``start`` returns once the server accepts connections; ``stop`` is idempotent and closes
    the listening socket and every client connection. Data lives in ``db_path`` and survives
    a restart: a new server over the same file sees the same databases, tables, partitions,
    roles and grants. ``warehouse`` is the root of default locations (``hive.metastore.
    warehouse.dir``); its scheme and authority qualify every location the metastore stores.
    """

    def __init__(
        self,
        db_path: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        warehouse: str = "hdfs://localhost/warehouse",
        kerberos_keytab: Path | None = None,
    ) -> None:
        self.db_path = Path(db_path)
        # with a keytab, every connection must authenticate with SASL GSSAPI first (Hive's
        # hive.metastore.sasl.enabled); the principals that did are kept, in order
        self.kerberos_keytab = kerberos_keytab
        self.authenticated: list[str] = []
        self._credentials: Any = None
        self.host = host
        self.port = port
        self.warehouse = warehouse
        self._store: MetastoreStore | None = None
        self._dispatcher: _Dispatcher | None = None
        self._listener: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._clients: dict[socket.socket, threading.Thread] = {}

    @property
    def uri(self) -> str:
        return f"thrift://{self.host}:{self.port}"

    @property
    def served_calls(self) -> frozenset[str]:
        """The Thrift calls this server answers (everything else is refused by name)."""
        if self._dispatcher is None:
            raise EmbeddedError("the metastore server is not started")
        return self._dispatcher.served

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Open the store and listen; returns once accepting. EmbeddedError if the port is taken."""
        if self._accept_thread is not None:
            return
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self.port))
            listener.listen(128)
        except OSError as exc:
            listener.close()
            reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound: {exc}"
            raise EmbeddedError(
                f"metastore port {self.host}:{self.port} {reason}; stop whatever holds it or use port 0"
            ) from exc
        if self.kerberos_keytab is not None:
            import gssapi

            self._credentials = gssapi.Credentials(
                usage="accept", store={"keytab": str(self.kerberos_keytab)}
            )
        try:
            self._store = MetastoreStore(self.db_path)
            self._dispatcher = _Dispatcher(MetastoreHandler(self._store, self.warehouse))
        except Exception as exc:
            listener.close()
            if self._store is not None:
                self._store.close()
                self._store = None
            raise EmbeddedError(f"cannot open the metastore database {self.db_path}: {exc}") from exc
        listener.setblocking(False)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping.clear()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"metastore-accept-{self.port}", daemon=True
        )
        self._accept_thread.start()
        log.info("embedded metastore listening on %s (db %s)", self.uri, self.db_path)

    def stop(self) -> None:
        """Stop accepting, close client connections, close the store. Idempotent."""
        if self._accept_thread is None:
            return
        self._stopping.set()
        assert self._wake_w is not None
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self._accept_thread.join(_JOIN_TIMEOUT_S)
        with self._lock:
            clients = list(self._clients.items())
        for conn, _thread in clients:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for _conn, thread in clients:
            thread.join(_JOIN_TIMEOUT_S)
        for sock in (self._listener, self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        if self._store is not None:
            self._store.close()
        self._listener = self._wake_r = self._wake_w = None
        self._store = None
        self._dispatcher = None
        self._accept_thread = None
        log.info("embedded metastore on port %s stopped", self.port)

    def __enter__(self) -> MetastoreServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- serving -------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        assert self._listener is not None and self._wake_r is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping.is_set():
                ready = selector.select()
                if self._stopping.is_set():
                    return
                if any(key.fileobj is self._listener for key, _ in ready):
                    self._accept_one()

    def _accept_one(self) -> None:
        assert self._listener is not None
        try:
            conn, _addr = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # e.g. out of file descriptors: wait for a client to leave
            log.warning("embedded metastore: accept failed: %s", exc)
            self._stopping.wait(0.1)
            return
        conn.setblocking(True)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        thread = threading.Thread(
            target=self._serve, args=(conn,), name=f"metastore-{self.port}-conn", daemon=True
        )
        with self._lock:
            self._clients[conn] = thread
        thread.start()

    def _protocol(self, conn: socket.socket) -> Any:
        """The connection's protocol: plain (NOSASL), or after a SASL GSSAPI exchange."""
        if self._credentials is None:
            tsocket = TSocket.TSocket()
            tsocket.setHandle(conn)
            return TBinaryProtocolAccelerated(TTransport.TBufferedTransport(tsocket))
        transport = GssapiServerTransport(conn, self._credentials)
        principal = transport.negotiate()
        with self._lock:
            self.authenticated.append(principal)
        log.info("embedded metastore: %s authenticated (SASL GSSAPI)", principal)
        return TBinaryProtocol(transport)

    def _serve(self, conn: socket.socket) -> None:
        """Answer one connection's calls until the client hangs up or the server stops."""
        dispatcher = self._dispatcher
        try:
            protocol = self._protocol(conn)
            while not self._stopping.is_set() and dispatcher is not None:
                dispatcher.process(protocol, protocol)
        except (TTransport.TTransportException, OSError, EOFError):
            pass  # the client closed the connection, or stop() shut it down
        except SaslRefused as refused:
            log.warning("embedded metastore: refused a connection: %s", refused)
        except Exception:
            log.exception("embedded metastore: connection failed")
        finally:
            with self._lock:
                self._clients.pop(conn, None)
            conn.close()
