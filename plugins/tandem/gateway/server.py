"""The gateway's HTTP face: the WebHDFS REST API as HttpFS speaks it, on its own port.

Unmodified WebHDFS clients (the ``hdfs`` package, fsspec's ``webhdfs``, curl) point at
``http://<gateway>/webhdfs/v1``. CREATE and APPEND answer 307 to the gateway's own data step
(``data=true``; ``noredirect=true`` gets 200 with the Location); the data step streams the body
to the sides (:mod:`.writes`). Every request needs a token (``delegation=`` or a Bearer
header): anonymous or unknown ones get 401 and change nothing. Errors are RemoteException
JSON with Hadoop's status codes. Every write answers ``X-Tandem-Backup: done|pending`` and
``X-Tandem-Primary``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from tandem.errors import RemoteHdfsError
from tandem.gateway.service import Gateway
from tandem.gateway.sides import SideDown, is_unreachable
from tandem.gateway.tokens import TokenStore
from tandem.gateway.writes import Unavailable, WriteSession
from tandem.hdfs.client import Hdfs
from tandem.hdfs.types import FileStatus

log = logging.getLogger(__name__)

BUFFER = 1 << 20
LS_LIMIT = 1000
ID_HEADER = "x-tandem-data-id"
# the data step's key to the NameNode halves asked at the redirect (Gateway.prepare_create)
PREPARED = "tandem.prepared"
PREFIX = "/webhdfs/v1"
WEBHDFS_METHODS = frozenset({"GET", "PUT", "POST", "DELETE"})

# parameters the gateway reads itself, never passed on to a cluster
_OWN_PARAMS = frozenset({"op", "delegation", "user.name", "doas", "noredirect", "data", PREPARED})

_JAVA = {
    "FileNotFoundException": ("java.io.FileNotFoundException", 404),
    "AccessControlException": ("org.apache.hadoop.security.AccessControlException", 403),
    "FileAlreadyExistsException": ("org.apache.hadoop.fs.FileAlreadyExistsException", 403),
    "ParentNotDirectoryException": ("org.apache.hadoop.fs.ParentNotDirectoryException", 403),
    "PathIsNotEmptyDirectoryException": ("org.apache.hadoop.fs.PathIsNotEmptyDirectoryException", 403),
    "PathIsNotDirectoryException": ("org.apache.hadoop.fs.PathIsNotDirectoryException", 403),
    "IllegalArgumentException": ("java.lang.IllegalArgumentException", 400),
    "UnsupportedOperationException": ("java.lang.UnsupportedOperationException", 400),
    "InvalidPathException": ("org.apache.hadoop.fs.InvalidPathException", 400),
    "SecurityException": ("java.lang.SecurityException", 401),
    "RetriableException": ("org.apache.hadoop.ipc.RetriableException", 503),
    "IOException": ("java.io.IOException", 403),
    "EOFException": ("java.io.EOFException", 403),
    "RuntimeException": ("java.lang.RuntimeException", 500),
    "HadoopIllegalArgumentException": ("org.apache.hadoop.HadoopIllegalArgumentException", 400),
    "StandbyException": ("org.apache.hadoop.ipc.StandbyException", 403),
    "SafeModeException": ("org.apache.hadoop.hdfs.server.namenode.SafeModeException", 403),
    "SnapshotException": ("org.apache.hadoop.hdfs.protocol.SnapshotException", 403),
    "DSQuotaExceededException": ("org.apache.hadoop.hdfs.protocol.DSQuotaExceededException", 403),
    "NSQuotaExceededException": ("org.apache.hadoop.hdfs.protocol.NSQuotaExceededException", 403),
    "PathComponentTooLongException": (
        "org.apache.hadoop.hdfs.protocol.FSLimitException$PathComponentTooLongException",
        403,
    ),
}


def remote_error(exception: str, message: str, status: int | None = None) -> JSONResponse:
    java, code = _JAVA.get(exception, (f"org.apache.hadoop.hdfs.protocol.{exception}", 403))
    body = {"RemoteException": {"exception": exception, "javaClassName": java, "message": message}}
    return JSONResponse(body, status_code=status or code)


def _boolean(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    if value.lower() not in ("true", "false"):
        raise RemoteHdfsError(f"Invalid value for boolean: {value}", exception="IllegalArgumentException")
    return value.lower() == "true"


def _length(request: Request) -> int | None:
    """The body's size when the client says it (Content-Length); None for a chunked body."""
    value = request.headers.get("content-length")
    return int(value) if value and value.isdigit() else None


def _int(params: Any, key: str) -> int | None:
    value = params.get(key)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise RemoteHdfsError(
            f"Invalid value for {key}: {value}", exception="IllegalArgumentException"
        ) from None


def clean_path(raw: str) -> str:
    """The absolute path of a request; ``..`` and ``.`` components are refused, not resolved."""
    path = "/" + raw.lstrip("/")
    parts = [p for p in path.split("/") if p]
    if any(p in ("..", ".") for p in parts) or any(":" in p for p in parts):
        raise RemoteHdfsError(f"Invalid path name {path}", exception="InvalidPathException")
    return "/" + "/".join(parts)


def _status_json(st: FileStatus, suffix: str | None = None) -> dict[str, Any]:
    doc = st.to_json()
    if suffix is not None:
        doc["pathSuffix"] = suffix
    return doc


class _Handler:
    def __init__(self, gateway: Gateway, tokens: TokenStore) -> None:
        self.gw = gateway
        self.tokens = tokens

    def _user(self, request: Request) -> str | None:
        token = request.query_params.get("delegation")
        header = request.headers.get("authorization", "")
        if not token and header.lower().startswith("bearer "):
            token = header[7:].strip()
        return self.tokens.user_of(token)

    @staticmethod
    def _data_url(request: Request) -> str:
        query = [
            (k, v) for k, v in request.query_params.multi_items() if k not in ("noredirect", "data", PREPARED)
        ]
        query.append(("data", "true"))
        # percent-encoded as a NameNode's Location is: a header carries no other characters
        return f"{request.url.scheme}://{request.url.netloc}{quote(request.url.path)}?{urlencode(query)}"

    async def __call__(self, request: Request, raw_path: str) -> Response:
        try:
            # the store re-reads its hashes every few seconds: only then is a thread worth it
            fresh = self.tokens.fresh()
            user = self._user(request) if fresh else await asyncio.to_thread(self._user, request)
        except Exception as exc:
            log.exception("token store unreadable")
            return remote_error("IOException", f"cannot check the token: {exc}", 503)
        if user is None:
            return remote_error(
                "SecurityException",
                "Authentication required: present a gateway token "
                "(delegation=<token> or Authorization: Bearer <token>)",
                401,
            )
        try:
            path = clean_path(raw_path)
            op = (request.query_params.get("op") or "").upper()
            return await self._dispatch(request, request.method, op, path, user)
        except RemoteHdfsError as exc:
            # a cluster's refusal keeps the cluster's own status (say, 400 for a bad argument)
            status = exc.status if exc.status != 401 else None  # the gateway's login, not the client's
            return remote_error(exc.exception or "IOException", str(exc).split(": ", 1)[-1], status)
        except (Unavailable, SideDown) as exc:
            return remote_error("RetriableException", str(exc), 503)
        except Exception as exc:
            if is_unreachable(exc):
                return remote_error("RetriableException", f"a cluster did not answer: {exc}", 503)
            log.exception("%s %s failed", request.method, raw_path)
            return remote_error("RuntimeException", f"{type(exc).__name__}: {exc}", 500)

    async def _dispatch(self, request: Request, method: str, op: str, path: str, user: str) -> Response:
        q = request.query_params
        gw = self.gw
        if (method == "PUT" and op == "CREATE") or (method == "POST" and op == "APPEND"):
            if not _boolean(q.get("data"), False):
                url = self._data_url(request)
                if op == "CREATE":
                    key = gw.prepare_create(
                        path,
                        user,
                        overwrite=_boolean(q.get("overwrite"), False),
                        permission=q.get("permission"),
                        explicit_id=request.headers.get(ID_HEADER),
                    )
                    if key:
                        url += f"&{PREPARED}={key}"
                if _boolean(q.get("noredirect"), False):
                    return JSONResponse({"Location": url})
                return Response(status_code=307, headers={"Location": url})
            return await self._write(request, path, user, append=op == "APPEND")
        if method == "GET":
            return await self._read(request, op, path, user)
        if method == "PUT" and op == "MKDIRS":
            ok = await asyncio.to_thread(gw.mkdirs, path, user, q.get("permission"))
            return JSONResponse({"boolean": ok})
        if method == "DELETE" and op == "DELETE":
            recursive = _boolean(q.get("recursive"), False)
            return JSONResponse({"boolean": await asyncio.to_thread(gw.delete, path, user, recursive)})
        if method == "PUT" and op == "RENAME":
            return JSONResponse({"boolean": await self._rename(path, q.get("destination"), user)})
        if method == "PUT" and op in ("SETOWNER", "SETPERMISSION", "SETTIMES", "SETREPLICATION"):
            return await self._set_attribute(op, path, user, q)
        raise RemoteHdfsError(
            f"{method} op={op or '(none)'} is not served by the Tandem gateway",
            exception="UnsupportedOperationException",
        )

    async def _rename(self, path: str, dst: str | None, user: str) -> bool:
        if not dst:
            raise RemoteHdfsError("RENAME needs a destination", exception="IllegalArgumentException")
        if not dst.startswith("/"):
            raise RemoteHdfsError(
                f"Invalid parameter value: destination = {dst} is not an absolute path",
                exception="IllegalArgumentException",
            )
        return await asyncio.to_thread(self.gw.rename, path, clean_path(dst), user)

    async def _set_attribute(self, op: str, path: str, user: str, q: Any) -> Response:
        if op == "SETREPLICATION":
            replication = _int(q, "replication")
            if replication is None or replication < 1:
                raise RemoteHdfsError(
                    f"Invalid value for replication: {q.get('replication')}",
                    exception="IllegalArgumentException",
                )
            done = await asyncio.to_thread(self.gw.set_replication, path, user, replication)
            return JSONResponse({"boolean": done})
        await asyncio.to_thread(self.gw.set_attributes, path, user, op.lower(), self._attribute_call(op, q))
        return Response(status_code=200)

    @staticmethod
    def _attribute_call(op: str, q: Any) -> Any:
        if op == "SETOWNER":
            owner, group = q.get("owner"), q.get("group")
            if not owner and not group:  # as the NameNode refuses it, before anything is asked
                raise RemoteHdfsError("Both owner and group are empty.", exception="IllegalArgumentException")
            return lambda client, p: client.set_owner(p, owner, group)
        if op == "SETPERMISSION":
            permission = q.get("permission") or "755"
            return lambda client, p: client.set_permission(p, permission)
        mtime, atime = _int(q, "modificationtime"), _int(q, "accesstime")
        return lambda client, p: client.set_times(p, mtime if mtime is not None else -1, atime)

    async def _write(self, request: Request, path: str, user: str, append: bool) -> Response:
        q = request.query_params
        overwrite = _boolean(q.get("overwrite"), False)
        session: WriteSession = await asyncio.to_thread(
            self.gw.begin_write,
            path,
            user,
            overwrite=overwrite,
            permission=q.get("permission"),
            append=append,
            explicit_id=request.headers.get(ID_HEADER),
            size=_length(request),
            prepared_key=q.get(PREPARED),
        )
        # chunks gathered to about BUFFER bytes and joined once, so each byte is copied once here; a
        # body shorter than that goes to the sides whole (one request each, no streaming threads)
        gathered: list[bytes] = []
        size = 0
        streaming = False
        try:
            async for chunk in request.stream():
                gathered.append(chunk)
                size += len(chunk)
                if size >= BUFFER:
                    if not streaming:
                        session.start()
                        streaming = True
                    await self._pass_on(session, b"".join(gathered))
                    gathered, size = [], 0
            if not streaming:
                session.start(b"".join(gathered))
            elif gathered:
                await self._pass_on(session, b"".join(gathered))
        except BaseException:
            await asyncio.to_thread(session.abort)
            raise
        try:
            result = await asyncio.to_thread(session.finish)
        except BaseException:
            self.gw.count(session.primary.name, None)
            raise
        self.gw.count(result.primary, result.backup)
        headers = {"X-Tandem-Backup": result.backup, "X-Tandem-Primary": result.primary}
        if result.advice:
            headers["X-Tandem-Advice"] = result.advice
        if append:
            return Response(status_code=200, headers=headers)
        location = f"{request.url.scheme}://{request.url.netloc}/webhdfs/v1{quote(path)}"
        return JSONResponse(
            {"Location": location}, status_code=201, headers={**headers, "Location": location}
        )

    @staticmethod
    async def _pass_on(session: WriteSession, data: bytes) -> None:
        """To every side's queue; only a full queue costs a hop to a thread."""
        if not session.offer(data):
            await asyncio.to_thread(session.feed_blocked, data)

    async def _read(self, request: Request, op: str, path: str, user: str) -> Response:
        gw = self.gw
        q = request.query_params
        if op == "OPEN":
            if _boolean(q.get("noredirect"), False) and not _boolean(q.get("data"), False):
                return JSONResponse({"Location": self._data_url(request)})  # as HttpFS answers it
            offset = _int(q, "offset") or 0
            stream = await asyncio.to_thread(gw.open, path, user, offset, _int(q, "length"))
            return StreamingResponse(stream, media_type="application/octet-stream")
        if op == "GETFILESTATUS":
            st = await asyncio.to_thread(gw.status, path, user)
            return JSONResponse({"FileStatus": _status_json(st, "")})
        if op == "LISTSTATUS":
            entries = await asyncio.to_thread(gw.list, path, user)
            return JSONResponse({"FileStatuses": {"FileStatus": [_status_json(s) for s in entries]}})
        if op == "LISTSTATUS_BATCH":
            after = q.get("startAfter") or q.get("startafter") or None
            entries, remaining = await asyncio.to_thread(gw.list_page, path, user, after, LS_LIMIT)
            listing = {"FileStatuses": {"FileStatus": [_status_json(s) for s in entries]}}
            return JSONResponse(
                {"DirectoryListing": {"partialListing": listing, "remainingEntries": remaining}}
            )
        if op == "GETCONTENTSUMMARY":
            return JSONResponse({"ContentSummary": await asyncio.to_thread(gw.content_summary, path, user)})
        if op == "GETFILECHECKSUM":
            checksum = await asyncio.to_thread(gw.checksum, path, user)
            return JSONResponse({"FileChecksum": dataclasses.asdict(checksum)})
        if op == "GETHOMEDIRECTORY":
            return JSONResponse({"Path": f"/user/{user}"})
        if op in Hdfs.READ_OPS:
            params: dict[str, list[str]] = {}  # a repeated one (GETXATTRS' xattr.name) keeps every value
            for key, value in q.multi_items():
                if key.lower() not in _OWN_PARAMS:
                    params.setdefault(key, []).append(value)
            answer = await asyncio.to_thread(gw.pass_through, path, user, op, params)
            return JSONResponse(answer) if answer is not None else Response(status_code=200)
        raise RemoteHdfsError(
            f"GET op={op or '(none)'} is not served by the Tandem gateway",
            exception="UnsupportedOperationException",
        )


class GatewayApp:
    """The ASGI app: WebHDFS requests go straight to the handler, everything else (``/tandem/status``,
    other methods, other paths) through FastAPI. FastAPI's routing, middleware stack and parameter
    solving cost more than the gateway's own work on a small write, and WebHDFS needs none of them."""

    def __init__(self, handler: _Handler, fallback: FastAPI) -> None:
        self.handler = handler
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in WEBHDFS_METHODS:
            path: str = scope["path"]
            if path == PREFIX or path.startswith(PREFIX + "/"):
                request = Request(scope, receive)
                try:
                    response = await self.handler(request, path[len(PREFIX) + 1 :] or "/")
                except Exception as exc:  # the handler answers its own errors; this is a bug
                    log.exception("%s %s failed", scope["method"], path)
                    response = remote_error("RuntimeException", f"{type(exc).__name__}: {exc}", 500)
                await response(scope, receive, send)
                return
        await self.fallback(scope, receive, send)


def create_app(gateway: Gateway, tokens: TokenStore) -> GatewayApp:
    """The ASGI app: ``/webhdfs/v1/<path>`` and ``/tandem/status`` (JSON, token required)."""
    app = FastAPI(
        title=f"Tandem gateway: {gateway.plan.plan}", docs_url=None, redoc_url=None, openapi_url=None
    )
    handler = _Handler(gateway, tokens)

    @app.api_route("/webhdfs/v1", methods=["GET", "PUT", "POST", "DELETE"])
    async def root(request: Request) -> Response:
        return await handler(request, "/")

    @app.api_route("/webhdfs/v1/{raw_path:path}", methods=["GET", "PUT", "POST", "DELETE"])
    async def webhdfs(raw_path: str, request: Request) -> Response:
        return await handler(request, raw_path)

    @app.get("/tandem/status")
    async def status(request: Request) -> Response:
        if await asyncio.to_thread(handler._user, request) is None:
            return remote_error("SecurityException", "Authentication required", 401)
        report = await asyncio.to_thread(gateway.status_report)
        return Response(json.dumps(report), media_type="application/json")

    return GatewayApp(handler, app)
