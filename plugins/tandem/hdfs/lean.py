"""A lighter road for the few WebHDFS calls on the write gateway's hot path.

Why: each write through the gateway costs about nine WebHDFS calls (mark, two two-step CREATEs,
metadata, two RENAMEs, the mark dropped), and through ``requests`` each call spends about
0.3 ms of CPU in the session's machinery (request preparation, settings merging, cookies,
hooks, response building) on top of the 0.2 ms urllib3 needs for the HTTP itself. A
gateway is one Python process, so that CPU is its throughput.

:class:`Lean` sends those calls through the **same session's urllib3 pools** (the same
keep-alive connections and pool sizes), with the same parameters (the client's ``user.name``,
``delegation`` or ``doas`` from the session and the client) and the same timeouts, and turns
answers into the same results: a RemoteException becomes :class:`~tandem.errors.RemoteHdfsError`
with its Java name; a connection that fails becomes ``requests.ConnectionError`` (a timeout
``requests.Timeout``), so callers' "is the side down" checks hold. It is used only where
nothing of ``requests`` matters: plain ``http``, no session authentication (no SPNEGO, no basic
auth), one NameNode URL (no HA rotation to do). :meth:`Lean.of` returns None otherwise and the
``hdfs`` client is used as before.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

import requests
import urllib3
from urllib3.exceptions import HTTPError, TimeoutError

from tandem.errors import RemoteHdfsError

PREFIX = "/webhdfs/v1"
Body = bytes | Iterable[bytes] | None


def _text(value: object) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


class Lean:
    """WebHDFS calls over the urllib3 pools of a ``hdfs`` client's session (see the module)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._session: requests.Session = client._session
        self._base = client.url.rstrip("/")
        timeout = client._timeout
        if isinstance(timeout, tuple):
            self._timeout = urllib3.Timeout(connect=timeout[0], read=timeout[1])
        else:
            self._timeout = urllib3.Timeout(total=timeout)

    @classmethod
    def of(cls, client: Any) -> Lean | None:
        """A lean road for ``client``, or None where its session's features are needed."""
        session = getattr(client, "_session", None)
        url = str(getattr(client, "url", ""))
        if session is None or session.auth is not None or ";" in url or not url.startswith("http://"):
            return None
        return cls(client)

    def _params(self, op: str, params: Mapping[str, object]) -> str:
        session_params: Any = self._session.params or {}  # the hdfs clients keep a dict here
        merged: dict[str, object] = {**dict(session_params), "op": op}
        proxy = getattr(self._client, "_proxy", None)
        if proxy is not None:
            merged["doas"] = proxy
        merged.update(params)
        return urlencode([(k, _text(v)) for k, v in merged.items() if v is not None])

    def _send(self, method: str, url: str, body: Body = None) -> urllib3.BaseHTTPResponse:
        adapter = self._session.get_adapter(url)
        pool = adapter.poolmanager.connection_from_url(url)  # type: ignore[attr-defined]
        headers = {**self._session.headers, "content-type": "application/octet-stream"}
        chunked = body is not None and not isinstance(body, bytes)
        try:
            response: urllib3.BaseHTTPResponse = pool.urlopen(
                method,
                url,
                body=body,
                headers=headers,
                retries=False,
                redirect=False,
                timeout=self._timeout,
                chunked=chunked,
            )
        except TimeoutError as exc:
            raise requests.Timeout(f"{method} {url}: {exc}") from exc
        except HTTPError as exc:
            raise requests.ConnectionError(f"{method} {url}: {exc}") from exc
        if response.status >= 400:
            raise _error(response)
        return response

    def call(self, method: str, path: str, op: str, **params: object) -> Any:
        """One WebHDFS call without a body; its JSON answer (None when it has none)."""
        url = f"{self._base}{PREFIX}{quote(path, '/= ')}?{self._params(op, params)}"
        response = self._send(method, url)
        data = response.data
        return json.loads(data) if data else None

    def create_location(self, path: str, *, append: bool = False, **params: object) -> str | None:
        """The NameNode's half of a CREATE (or APPEND): where the DataNode takes the bytes. It
        changes nothing (the file appears with the DataNode's half), so it may be asked ahead of
        the data. None from a server that takes the data in one step (HttpFS with data=true)."""
        method, op = ("POST", "APPEND") if append else ("PUT", "CREATE")
        url = f"{self._base}{PREFIX}{quote(path, '/= ')}?{self._params(op, params)}"
        location: str | None = self._send(method, url).headers.get("location")
        return location

    def send_data(self, location: str, data: Body, *, append: bool = False) -> None:
        """The DataNode's half: ``bytes`` with their length, anything else chunked as it comes."""
        self._send("POST" if append else "PUT", location, b"" if data is None else data)

    def write(self, path: str, data: Body, *, append: bool = False, **params: object) -> None:
        """CREATE (or APPEND) in its two steps: the NameNode's 307, then the body to the DataNode."""
        location = self.create_location(path, append=append, **params)
        if location:
            self.send_data(location, data, append=append)


def _error(response: urllib3.BaseHTTPResponse) -> RemoteHdfsError:
    """As the ``hdfs`` package reads an error answer (hdfs.client._to_error)."""
    status = response.status
    if status == 401:
        return RemoteHdfsError("Authentication failure. Check your credentials.", status=status)
    try:
        remote = json.loads(response.data)["RemoteException"]
        return RemoteHdfsError(str(remote["message"]), exception=remote.get("exception"), status=status)
    except (ValueError, KeyError, TypeError):
        text = response.data.decode("utf-8", "replace")
        return RemoteHdfsError(text or f"HTTP {status}", status=status)
