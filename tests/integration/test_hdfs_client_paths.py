"""Tandem's WebHDFS client (tandem.hdfs.client.Hdfs) against the embedded WebHDFS server:

- a path names what it says: a file called ``#LATEST`` is that file (the ``hdfs`` package
  would expand it to the newest entry of its directory, and a write or delete would hit
  another file);
- ``status`` is None only when the NameNode says the path does not exist: a refusal
  (AccessControlException, injected at the client's transport: the embedded server does not
  check traversal permissions) is raised, never taken for absence, so replay, which deletes
  what is absent, keeps the backup.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import requests
from hdfs import InsecureClient
from requests.adapters import HTTPAdapter

from tandem.errors import RemoteHdfsError
from tandem.gateway import replay
from tandem.gateway.context import open_plan
from tandem.gateway.service import Gateway
from tandem.hdfs.client import Hdfs
from tandem_dev.embedded.webhdfs import WebHdfsServer
from tests.integration.gateway_support import write_plan

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebHdfsServer]:
    with WebHdfsServer(tmp_path_factory.mktemp("webhdfs") / "root", superuser="hdfs") as srv:
        yield srv


@pytest.fixture
def base(server: WebHdfsServer) -> str:
    path = f"/t/{uuid.uuid4().hex[:12]}"
    InsecureClient(server.url, user="hdfs").makedirs(path, permission="777")
    return path


@pytest.mark.parametrize("name", ["#LATEST", "#LATEST{2}", "x#LATEST"])
def test_a_file_named_like_the_hdfs_packages_latest_marker_is_that_file(
    server: WebHdfsServer, base: str, name: str
) -> None:
    hdfs = Hdfs(InsecureClient(server.url, user="alice"))
    hdfs.write(f"{base}/older", b"older")
    time.sleep(0.002)  # distinct modification times: "latest" would mean "newer"
    hdfs.write(f"{base}/newer", b"newer")
    hdfs.write(f"{base}/{name}", b"marker")  # a new file, not an overwrite of "newer"
    assert hdfs.read_bytes(f"{base}/{name}") == b"marker"
    assert hdfs.read_bytes(f"{base}/newer") == b"newer"
    assert hdfs.status(f"{base}/{name}").length == len(b"marker")  # type: ignore[union-attr]
    assert hdfs.delete(f"{base}/{name}") is True
    assert sorted(s.path_suffix for s in hdfs.list(base)) == ["newer", "older"]


class Refusing(HTTPAdapter):
    """Fault injection at the client's transport: the requests ``refuse`` picks (by op and path)
    are answered as a NameNode refuses a path the caller may not traverse (403,
    AccessControlException); every other request reaches the server."""

    def __init__(self, refuse: Callable[[str, str], bool], exception: str = "AccessControlException") -> None:
        super().__init__()
        self.refuse, self.exception = refuse, exception
        self.refused: list[str] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        parts = urlsplit(request.url or "")
        op = {k.lower(): v for k, v in parse_qs(parts.query).items()}.get("op", [""])[0].upper()
        path = unquote(parts.path).removeprefix("/webhdfs/v1")
        if not self.refuse(op, path):
            return super().send(request, **kwargs)
        self.refused.append(path)
        answer = requests.Response()
        answer.status_code = 403
        answer.headers["Content-Type"] = "application/json"
        answer._content = json.dumps(
            {
                "RemoteException": {
                    "exception": self.exception,
                    "javaClassName": f"org.apache.hadoop.security.{self.exception}",
                    "message": f'Permission denied: user=hdfs, access=EXECUTE, inode="{path}"',
                }
            }
        ).encode()
        answer.url, answer.request = request.url, request
        return answer


def test_a_refused_status_is_an_error_not_absence(server: WebHdfsServer, base: str) -> None:
    hdfs = Hdfs(InsecureClient(server.url, user="alice"))
    hdfs.write(f"{base}/private/file", b"alice's")
    refusing = Refusing(lambda op, path: op == "GETFILESTATUS" and "/private" in path)
    hdfs._client._session.mount(server.url, refusing)
    with pytest.raises(RemoteHdfsError) as refused:
        hdfs.status(f"{base}/private/file")
    assert refused.value.exception == "AccessControlException" and refusing.refused
    assert hdfs.status(f"{base}/absent") is None
    # a path below a file cannot exist: HDFS says so with ParentNotDirectoryException
    hdfs._client._session.mount(
        server.url, Refusing(lambda op, path: "/file/" in path, "ParentNotDirectoryException")
    )
    assert hdfs.status(f"{base}/private/file/child") is None


def test_replay_keeps_the_backup_when_the_primary_refuses_to_say(
    airflow_conns: dict[str, str], tmp_path: Path
) -> None:
    """A pending backup whose primary refuses the status of its path (the gateway's login may not
    traverse an application's directory): replay reports it and keeps the standby's copy and
    the mark, instead of deleting the backup of a file that is still there."""
    plan = write_plan(tmp_path, tmp_path / "home", f"gwrefuse{uuid.uuid4().hex[:6]}", primaries=("primary",))
    ctx = open_plan(plan.include, plan.name)
    primary, standby = ctx.primaries["primary"].store, ctx.standby.store
    path = f"/{plan.name}/private/ledger.bin"
    primary.write(path, b"ledger", overwrite=True)
    standby.write(ctx.standby.local(path), b"ledger", overwrite=True)
    refusing = Refusing(lambda op, p: op == "GETFILESTATUS" and p == path)
    primary._client._session.mount(primary.url, refusing)
    try:
        with pytest.raises(RemoteHdfsError):
            replay.backup_path(ctx, path, None, replay.ReplayReport(), "refused")
    finally:
        primary._client._session.adapters.pop(primary.url)
    assert refusing.refused
    assert standby.read_bytes(ctx.standby.local(path)) == b"ledger"


def test_the_gateway_lists_and_sums_as_the_tokens_user(airflow_conns: dict[str, str], tmp_path: Path) -> None:
    """What a user may list is the NameNode's to decide, as that user: the gateway's own login,
    refused here for every listing, is never the one asking."""
    plan = write_plan(tmp_path, tmp_path / "home", f"gwasuser{uuid.uuid4().hex[:6]}", primaries=("primary",))
    ctx = open_plan(plan.include, plan.name)
    gateway = Gateway(ctx, worker=False)
    try:
        path = f"/{plan.name}/data/f"
        session = gateway.begin_write(path, "web", overwrite=True, permission=None)
        session.start(b"web's data")
        assert session.finish().backup == "done"
        login = ctx.primaries["primary"].store
        listings = {"LISTSTATUS", "LISTSTATUS_BATCH", "GETCONTENTSUMMARY"}
        refusing = Refusing(lambda op, p: op in listings and p.startswith(f"/{plan.name}/"))
        login._client._session.mount(login.url, refusing)
        try:
            assert [s.path_suffix for s in gateway.list(f"/{plan.name}/data", "web")] == ["f"]
            assert gateway.content_summary(f"/{plan.name}/data", "web")["length"] == len(b"web's data")
            assert gateway.status(path, "web").owner == "web"
        finally:
            login._client._session.adapters.pop(login.url)
        assert refusing.refused == []
    finally:
        gateway.close()
