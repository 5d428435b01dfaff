"""The embedded WebHDFS server's HTTP plumbing: two threaded HTTP/1.1 listeners (NameNode and
DataNode), each connection read, authenticated (SPNEGO or delegation token under Kerberos),
dispatched to the handler of its method and ``op``, and answered; :class:`WebHdfsServer` starts
and stops the pair over one namespace.
"""

from __future__ import annotations

import contextlib
import http
import logging
import os
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tandem.errors import EmbeddedError
from tandem_dev.embedded.hdfs_exceptions import (
    HdfsException,
    IllegalArgument,
    ServerRuntimeError,
    UnsupportedOperation,
)
from tandem_dev.embedded.namespace import Namespace, ReadHandle
from tandem_dev.embedded.request_log import RequestLog
from tandem_dev.embedded.spnego import Refusal, Spnego
from tandem_dev.embedded.webhdfs.data import DATANODE_OPS, NAMENODE_DATA_OPS
from tandem_dev.embedded.webhdfs.protocol import (
    BodyReader,
    Handler,
    Node,
    NotWebHdfs,
    Request,
    Response,
    error_response,
    parse_target,
)
from tandem_dev.embedded.webhdfs.reads import READ_OPS
from tandem_dev.embedded.webhdfs.snapshot_ops import SNAPSHOT_OPS
from tandem_dev.embedded.webhdfs.writes import WRITE_OPS
from tandem_dev.embedded.webhdfs.xattr_ops import XATTR_OPS

LOG = logging.getLogger(__name__)

DRAIN_LIMIT = 256 << 20  # after an error, read at most this much of an unread body to keep the connection
IDLE_TIMEOUT_S = 120.0

# Every operation Hadoop knows, per HTTP method (GetOpParam, PutOpParam, PostOpParam, DeleteOpParam):
# an op outside these is a bad parameter (400 IllegalArgumentException); one inside that this server
# does not implement is UnsupportedOperationException (also 400).
KNOWN_OPS = {
    "GET": {
        "OPEN",
        "GETFILESTATUS",
        "LISTSTATUS",
        "LISTSTATUS_BATCH",
        "GETCONTENTSUMMARY",
        "GETQUOTAUSAGE",
        "GETFILECHECKSUM",
        "GETHOMEDIRECTORY",
        "GETDELEGATIONTOKEN",
        "GETTRASHROOT",
        "GETXATTRS",
        "LISTXATTRS",
        "CHECKACCESS",
        "GETALLSTORAGEPOLICY",
        "GETSTORAGEPOLICY",
        "GETSNAPSHOTDIFF",
        "GETSNAPSHOTDIFFLISTING",
        "GETSNAPSHOTTABLEDIRECTORYLIST",
        "GETSNAPSHOTLIST",
        "GETFILEBLOCKLOCATIONS",
        "GETECPOLICY",
        "GETSERVERDEFAULTS",
        "GETLINKTARGET",
        "GETFILELINKSTATUS",
        "GETSTATUS",
        "GETECPOLICIES",
        "GETACLSTATUS",
        "GET_BLOCK_LOCATIONS",
        "GETTRASHROOTS",
        "GETECCODECS",
    },
    "PUT": {
        "CREATE",
        "MKDIRS",
        "CREATESYMLINK",
        "RENAME",
        "SETREPLICATION",
        "SETOWNER",
        "SETPERMISSION",
        "SETTIMES",
        "RENEWDELEGATIONTOKEN",
        "CANCELDELEGATIONTOKEN",
        "ALLOWSNAPSHOT",
        "DISALLOWSNAPSHOT",
        "CREATESNAPSHOT",
        "RENAMESNAPSHOT",
        "SETXATTR",
        "REMOVEXATTR",
        "SETSTORAGEPOLICY",
        "SATISFYSTORAGEPOLICY",
        "ENABLEECPOLICY",
        "DISABLEECPOLICY",
        "SETECPOLICY",
        "SETQUOTA",
        "SETQUOTABYSTORAGETYPE",
        "MODIFYACLENTRIES",
        "REMOVEACLENTRIES",
        "REMOVEDEFAULTACL",
        "REMOVEACL",
        "SETACL",
    },
    "POST": {"APPEND", "CONCAT", "TRUNCATE", "UNSETSTORAGEPOLICY", "UNSETECPOLICY"},
    "DELETE": {"DELETE", "DELETESNAPSHOT"},
}


# every NameNode operation this server implements; the keys of the tables do not overlap
NAMENODE_OPS: dict[tuple[str, str], Handler] = {
    **NAMENODE_DATA_OPS,
    **READ_OPS,
    **WRITE_OPS,
    **XATTR_OPS,
    **SNAPSHOT_OPS,
}


class _RequestHandler(BaseHTTPRequestHandler):
    """One connection; HTTP/1.1 keep-alive, one thread per connection."""

    protocol_version = "HTTP/1.1"
    server_version = "TandemWebHDFS/1.0"
    sys_version = ""
    timeout = IDLE_TIMEOUT_S
    disable_nagle_algorithm = True
    server: _HttpServer

    def do_GET(self) -> None:
        self._serve("GET")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        LOG.debug("%s %s", self.server.node.role, format % args)

    def _serve(self, method: str) -> None:
        started = time.perf_counter()
        response, body = self._handle(method)
        if body is None or (not body.finished and not body.drain(DRAIN_LIMIT)):
            self.close_connection = True  # whatever is left of the body would be read as a request
        if self.server.request_log is not None:  # before the answer: whoever has it finds the line
            target = urlsplit(self.path)
            op = next((v for k, v in parse_qsl(target.query) if k.lower() == "op"), "")
            self.server.request_log.request(
                self.server.node.role,
                method,
                op.upper(),
                response.status,
                target.path,
                time.perf_counter() - started,
            )
        self._send(response)
        LOG.debug(
            "%s %s %s -> %d in %.1f ms",
            self.server.node.role,
            method,
            self.path,
            response.status,
            (time.perf_counter() - started) * 1000,
        )

    def _handle(self, method: str) -> tuple[Response, BodyReader | None]:
        body: BodyReader | None = None
        try:
            body = BodyReader(self.rfile, self.headers)
            parts, params, repeated = parse_target(self.path)
            op = params.get("op", "").upper()
            request = Request(method, op, parts, params, body, self.server.node, repeated)
            granted = self._authenticate(request)
            if isinstance(granted, Response):
                return granted, body
            try:
                response = self._dispatch(request)
            except HdfsException as exc:
                response = error_response(exc)
            # the filter's headers (the AP-REP, the cookie) go with every answer, errors too
            response.headers += granted
            return response, body
        except HdfsException as exc:
            return error_response(exc), body
        except NotWebHdfs:
            return Response(404, b"Not a WebHDFS path\n", "text/plain"), body
        except (ConnectionError, TimeoutError) as exc:
            LOG.debug("connection lost while serving %s %s: %s", method, self.path, exc)
            self.close_connection = True
            return Response(400, b"", "text/plain"), None
        except Exception as exc:
            LOG.exception("%s %s failed", method, self.path)
            return error_response(ServerRuntimeError(f"{type(exc).__name__}: {exc}")), body

    def _authenticate(self, request: Request) -> Response | list[tuple[str, str]]:
        """Under Kerberos, who the request runs as (set on it) and the headers its answer carries;
        or the filter's refusal. Without Kerberos, nothing to check."""
        auth = self.server.node.kerberos
        if auth is None:
            return []
        if self.server.node.role == "datanode":
            request.authenticated = auth.token_user(request.params.get("delegation"))
            return []
        try:
            caller = auth.authenticate(self.headers)
        except Refusal as refused:
            page = f"<html><body><h2>HTTP ERROR {refused.status}</h2><p>{refused.message}</p></body></html>"
            return Response(refused.status, page.encode(), "text/html;charset=iso-8859-1", refused.headers)
        try:
            request.authenticated = auth.effective_user(caller, request.params.get("doas"))
        except HdfsException as exc:  # the filter let it through: its answer still proves the server
            refusal = error_response(exc)
            refusal.headers += caller.headers
            return refusal
        return list(caller.headers)

    def _dispatch(self, request: Request) -> Response:
        handler = self.server.ops.get((request.method, request.op))
        if handler is not None:
            return handler(request)
        if request.op in KNOWN_OPS.get(request.method, set()):
            raise UnsupportedOperation(
                f"{request.op} is not supported by {self.server.node.role} of this server"
            )
        kind = {"GET": "GetOpParam", "PUT": "PutOpParam", "POST": "PostOpParam", "DELETE": "DeleteOpParam"}
        raise IllegalArgument(
            f'Invalid value for webhdfs parameter "op": No enum constant '
            f"org.apache.hadoop.hdfs.web.resources.{kind[request.method]}.Op.{request.op}"
        )

    def _send(self, response: Response) -> None:
        try:
            phrase = http.HTTPStatus(response.status).phrase
        except ValueError:
            phrase = "Unknown"
        length = response.stream.count if response.stream is not None else len(response.body)
        lines = [
            f"HTTP/1.1 {response.status} {phrase}",
            f"Date: {self.date_time_string()}",
            f"Server: {self.server_version}",
            "Cache-Control: no-cache",
            f"Content-Length: {length}",
        ]
        if response.content_type:
            lines.append(f"Content-Type: {response.content_type}")
        lines += [f"{name}: {value}" for name, value in response.headers]
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            if response.stream is None:
                self.wfile.write(head + response.body)
            else:
                self.wfile.write(head)
                self._send_stream(response.stream)
        except OSError as exc:
            LOG.debug("client went away: %s", exc)
            self.close_connection = True
        finally:
            if response.stream is not None:
                response.stream.close()

    def _send_stream(self, handle: ReadHandle) -> None:
        if handle.count == 0:
            return
        with os.fdopen(handle.fd, "rb", buffering=0, closefd=False) as source:
            sent = self.connection.sendfile(source, handle.offset, handle.count)
        if sent != handle.count:
            self.close_connection = True  # the client was promised more bytes than could be sent


class _HttpServer(ThreadingHTTPServer):
    """A threaded HTTP server that can close its live connections and join their threads."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        node: Node,
        ops: dict[tuple[str, str], Handler],
        request_log: RequestLog | None = None,
    ) -> None:
        self.node = node
        self.ops = ops
        self.request_log = request_log
        self._live: dict[socket.socket, threading.Thread] = {}
        self._live_lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn) that can stall; skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        if self.request_log is not None:
            self.request_log.connection(self.node.role)
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            daemon=True,
            name=f"webhdfs-{self.node.role}-{client_address[1]}",
        )
        with self._live_lock:
            self._live[request] = thread
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            LOG.debug("connection from %s ended with an error", client_address, exc_info=True)
        finally:
            self.shutdown_request(request)
            with self._live_lock:
                self._live.pop(request, None)

    def close_live_connections(self, timeout: float) -> None:
        with self._live_lock:
            live = dict(self._live)
        for conn in live:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread in live.values():
            thread.join(max(0.0, deadline - time.monotonic()))


class WebHdfsServer:
    """An embedded one-node HDFS over ``root``, reachable by any WebHDFS client.

    ``start()`` returns once both listeners accept connections (``port`` and ``data_port`` then
    hold the bound ports, ``url`` the NameNode URL) and raises EmbeddedError if a port is taken or
    another server already serves ``root``; ``stop()`` is idempotent. A new server over the same
    ``root`` sees the same files, metadata and snapshots. Usable as a context manager.

    ``superuser`` (default: the process user) owns ``/`` and sees every snapshottable directory;
    ``replication`` and ``block_size`` are the defaults for new files; ``request_log``, when
    given, gets a line per request and per connection (benchmarks count calls with it).
    Permissions and ACLs are kept and returned but not enforced (``dfs.permissions.enabled=false``),
    except for extended attributes (see :mod:`tandem_dev.embedded.xattrs`).
    """

    def __init__(
        self,
        root: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        data_port: int = 0,
        superuser: str | None = None,
        replication: int = 1,
        block_size: int = 128 * 1024 * 1024,
        kerberos: Spnego | None = None,
        request_log: RequestLog | None = None,
    ) -> None:
        self.root = Path(root)
        self.kerberos = kerberos
        self.request_log = request_log
        self.host = host
        self.port = port
        self.data_port = data_port
        self.superuser = superuser
        self.replication = replication
        self.block_size = block_size
        self._namespace: Namespace | None = None
        self._servers: list[_HttpServer] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def namespace(self) -> Namespace:
        """The running namespace, for in-process callers (tests, bulk loading in benchmarks)."""
        if self._namespace is None:
            raise EmbeddedError("the WebHDFS server is not running; call start() first")
        return self._namespace

    def start(self) -> None:
        """Open the namespace and both listeners; raises EmbeddedError if a port is taken."""
        with self._lock:
            if self._namespace is not None:
                return
            try:
                namespace = Namespace(
                    self.root,
                    superuser=self.superuser,
                    replication=self.replication,
                    block_size=self.block_size,
                )
            except OSError as exc:
                raise EmbeddedError(f"cannot open the HDFS root {self.root}: {exc}") from exc
            try:
                self._bind(namespace)
            except BaseException:
                self._close_servers()
                namespace.close()
                raise
            self._namespace = namespace
            for server in self._servers:
                thread = threading.Thread(
                    target=server.serve_forever,
                    kwargs={"poll_interval": 0.2},
                    daemon=True,
                    name=f"webhdfs-{server.node.role}",
                )
                thread.start()
                self._threads.append(thread)
            LOG.info("WebHDFS on %s (datanode %s:%d) over %s", self.url, self.host, self.data_port, self.root)

    def _bind(self, namespace: Namespace) -> None:
        namenode_node = Node("namenode", namespace, self.host, kerberos=self.kerberos)
        datanode_node = Node("datanode", namespace, self.host, kerberos=self.kerberos)
        for node, port, ops in (
            (namenode_node, self.port, NAMENODE_OPS),
            (datanode_node, self.data_port, DATANODE_OPS),
        ):
            try:
                self._servers.append(_HttpServer((self.host, port), node, ops, self.request_log))
            except OSError as exc:
                raise EmbeddedError(
                    f"cannot listen on {self.host}:{port} for the WebHDFS {node.role}: "
                    f"{exc.strerror or exc}; "
                    "stop whatever holds that port or pass port 0 to pick a free one"
                ) from exc
        self.port = int(self._servers[0].server_address[1])
        self.data_port = int(self._servers[1].server_address[1])
        for node in (namenode_node, datanode_node):
            node.namenode_port, node.datanode_port = self.port, self.data_port

    def stop(self) -> None:
        """Close listeners and connections, join their threads, close the namespace; idempotent."""
        with self._lock:
            for server, thread in zip(self._servers, self._threads, strict=False):
                if thread.is_alive():
                    server.shutdown()
                thread.join(5)
            self._close_servers()
            self._threads.clear()
            if self._namespace is not None:
                self._namespace.close()
                self._namespace = None

    def _close_servers(self) -> None:
        for server in self._servers:
            server.server_close()
            server.close_live_connections(timeout=5.0)
        self._servers.clear()

    def __enter__(self) -> WebHdfsServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
