"""Kerberos on WebHDFS with a real MIT KDC: the embedded NameNode speaks SPNEGO as Hadoop's
``hadoop-auth`` does, and Tandem's client insists the server proves who it is.

- the server: anonymous and ``user.name``-spoofed requests get 401 Negotiate; a Kerberos client
  runs as its principal's short name and gets the acceptor's AP-REP and a signed cookie; ``doas``
  only for proxy users; the 307 to the DataNode carries a delegation token the DataNode checks;
- Tandem's client (``Hdfs.from_conn_id`` under ``[core] security = kerberos``): mutual
  authentication REQUIRED and the connection's login passed on as ``doas``; a NameNode answering
  without an AP-REP is refused with an error naming the connection and the service;
- HA NameNode lists (``nn1,nn2``): a NameNode that cannot prove itself is skipped, with a warning
  naming it, for the next one that does, and never written to; when none does, the error names
  every one;
- characterization: the provider's stock ``WebHDFSHook`` accepts that impostor (OPTIONAL), so an
  upgrade that fixes it is noticed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tandem.errors import ServerIdentityError
from tandem.hdfs.client import Hdfs
from tandem_dev.embedded.spnego import Spnego
from tandem_dev.embedded.webhdfs import WebHdfsServer
from tests.integration.conftest import Realm

pytestmark = [
    pytest.mark.integration,
    pytest.mark.xdist_group("kerberos"),
]

SERVICE = "HTTP/127.0.0.1"


@pytest.fixture
def server(realm: Realm, tmp_path: Path) -> Iterator[WebHdfsServer]:
    auth = Spnego(realm.keytab(SERVICE), realm.realm, proxy_users={"tandem"})
    with WebHdfsServer(tmp_path / "hdfs", superuser="hdfs", kerberos=auth) as running:
        yield running


def kerberos_session(mutual: int) -> requests.Session:
    from requests_kerberos import HTTPKerberosAuth

    session = requests.Session()
    # errors keep their body (requests-kerberos blanks an unproven error answer by default)
    session.auth = HTTPKerberosAuth(mutual_authentication=mutual, sanitize_mutual_error_response=False)
    return session


def as_principal(keytab: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Act as the keytab's principal from here on (a ticket cache of its own)."""
    monkeypatch.setenv("KRB5_CLIENT_KTNAME", str(keytab))
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{tmp_path / (keytab.stem + '.ccache')}")


def test_anonymous_and_spoofed_requests_are_challenged(server: WebHdfsServer) -> None:
    for params in ({"op": "GETFILESTATUS"}, {"op": "GETFILESTATUS", "user.name": "hdfs"}):
        answer = requests.get(f"{server.url}/webhdfs/v1/", params=params, timeout=10)
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"] == "Negotiate"
    # a forged cookie is no way in either
    forged = {"hadoop.auth": '"u=hdfs&p=hdfs@TANDEM.TEST&t=kerberos&e=99999999999999&s=AAAA"'}
    answer = requests.get(
        f"{server.url}/webhdfs/v1/", params={"op": "GETFILESTATUS"}, cookies=forged, timeout=10
    )
    assert answer.status_code == 401


def test_a_kerberos_client_runs_as_its_principal_and_the_server_proves_itself(
    server: WebHdfsServer, realm: Realm
) -> None:
    from requests_kerberos import REQUIRED

    session = kerberos_session(REQUIRED)
    url = f"{server.url}/webhdfs/v1/tmp/mine"
    made = session.put(url, params={"op": "MKDIRS", "user.name": "hdfs"}, timeout=10)
    assert made.status_code == 200 and made.json() == {"boolean": True}
    assert session.auth.auth_done  # type: ignore[union-attr]  # the AP-REP verified
    assert "hadoop.auth" in session.cookies
    status = session.get(url, params={"op": "GETFILESTATUS"}, timeout=10).json()["FileStatus"]
    assert status["owner"] == "tandem"  # user.name=hdfs was ignored
    # CREATE through the DataNode: the redirect carries a delegation token
    first = session.put(f"{url}/f", params={"op": "CREATE"}, allow_redirects=False, timeout=10)
    assert first.status_code == 307 and "delegation=" in first.headers["Location"]
    written = session.put(first.headers["Location"], data=b"kerberized", timeout=10)
    assert written.status_code == 201
    assert session.get(f"{url}/f", params={"op": "OPEN"}, timeout=10).content == b"kerberized"
    assert session.get(f"{url}/f", params={"op": "GETFILESTATUS"}, timeout=10).json()["FileStatus"][
        "owner"
    ] == ("tandem")
    assert realm.kdc.issued("tandem@TANDEM.TEST", f"{SERVICE}@TANDEM.TEST")


def test_the_datanode_wants_the_namenodes_token(server: WebHdfsServer) -> None:
    from requests_kerberos import REQUIRED

    session = kerberos_session(REQUIRED)
    first = session.put(
        f"{server.url}/webhdfs/v1/tmp/g", params={"op": "CREATE"}, allow_redirects=False, timeout=10
    )
    location = first.headers["Location"]
    bare = location.split("&delegation=")[0] if "&delegation=" in location else location
    without = requests.put(bare, data=b"x", timeout=10)
    assert without.status_code == 403 and without.json()["RemoteException"]["exception"] == "InvalidToken"
    forged = requests.put(
        bare + "&delegation=dT1oZGZzJmU9OTk5OTk5OTk5OTk5OTkmcz1BQUFB", data=b"x", timeout=10
    )
    assert forged.status_code == 403 and forged.json()["RemoteException"]["exception"] == "InvalidToken"


def test_only_proxy_users_may_act_for_others(
    server: WebHdfsServer, realm: Realm, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from requests_kerberos import REQUIRED

    url = f"{server.url}/webhdfs/v1/tmp/bobs"
    as_tandem = kerberos_session(REQUIRED)
    assert as_tandem.put(url, params={"op": "MKDIRS", "doas": "bob"}, timeout=10).status_code == 200
    assert (
        as_tandem.get(url, params={"op": "GETFILESTATUS"}, timeout=10).json()["FileStatus"]["owner"] == "bob"
    )
    as_principal(realm.keytab("alice"), monkeypatch, tmp_path)
    as_alice = kerberos_session(REQUIRED)
    refused = as_alice.put(f"{url}/x", params={"op": "MKDIRS", "doas": "bob"}, timeout=10)
    assert refused.status_code == 403
    body = refused.json()["RemoteException"]
    assert body["exception"] == "SecurityException"
    assert "User: alice is not allowed to impersonate bob" in body["message"]
    # acting as oneself needs no permission
    assert (
        as_alice.put(f"{url}-alice", params={"op": "MKDIRS", "doas": "alice"}, timeout=10).status_code == 200
    )


def test_a_server_without_the_services_key_is_refused(realm: Realm, tmp_path: Path) -> None:
    from requests_kerberos import REQUIRED

    wrong = Spnego(realm.keytab("HTTP/elsewhere"), realm.realm)
    with WebHdfsServer(tmp_path / "hdfs", kerberos=wrong) as running:
        answer = kerberos_session(REQUIRED).get(
            f"{running.url}/webhdfs/v1/", params={"op": "GETFILESTATUS"}, timeout=10
        )
    assert answer.status_code == 403


# -- Tandem's client -----------------------------------------------------------------------------------
def _connection(
    monkeypatch: pytest.MonkeyPatch, conn_id: str, port: int, login: str | None, host: str = "127.0.0.1"
) -> None:
    fields: dict[str, Any] = {"conn_type": "webhdfs", "host": host, "port": port}
    if login:
        fields["login"] = login
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))
    monkeypatch.setenv("AIRFLOW__CORE__SECURITY", "kerberos")


def test_tandems_client_requires_mutual_authentication_and_passes_the_user_on(
    server: WebHdfsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _connection(monkeypatch, "webhdfs_kerberized", server.port, "etl")
    hdfs = Hdfs.from_conn_id("webhdfs_kerberized")
    hdfs.write("/tmp/etl/file", b"x")
    status = hdfs.status("/tmp/etl/file")
    assert status is not None and status.owner == "etl"  # tandem, a proxy user, acted as the login
    assert hdfs.snapshottable_dirs() == ()  # the extended operations share the authenticated session
    _connection(monkeypatch, "webhdfs_kerberized_self", server.port, None)
    assert Hdfs.from_conn_id("webhdfs_kerberized_self").status("/tmp/etl") is not None


def test_tandems_client_refuses_a_namenode_that_cannot_prove_itself(
    webhdfs_impostor: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    _connection(monkeypatch, "webhdfs_impostor", webhdfs_impostor, "etl")
    with pytest.raises(ServerIdentityError) as refused:
        Hdfs.from_conn_id("webhdfs_impostor")
    message = str(refused.value)
    assert (
        "webhdfs_impostor" in message and f"HTTP/127.0.0.1 at http://127.0.0.1:{webhdfs_impostor}" in message
    )


def test_the_stock_hook_accepts_the_impostor(webhdfs_impostor: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Characterization of apache-airflow-providers-apache-hdfs: under Kerberos its client uses
    OPTIONAL mutual authentication and drops the proxy user. If this starts failing, the provider
    fixed it and Tandem's hook subclass can go."""
    from airflow.providers.apache.hdfs.hooks.webhdfs import WebHDFSHook
    from hdfs.ext.kerberos import KerberosClient

    _connection(monkeypatch, "webhdfs_impostor_stock", webhdfs_impostor, "etl")
    hook = WebHDFSHook(webhdfs_conn_id="webhdfs_impostor_stock")
    monkeypatch.setattr("airflow.providers.apache.hdfs.hooks.webhdfs._kerberos_security_mode", True)
    monkeypatch.setattr(
        "airflow.providers.apache.hdfs.hooks.webhdfs.KerberosClient", KerberosClient, raising=False
    )
    client = hook.get_conn()
    assert client.status("/")["type"] == "DIRECTORY"  # accepted without any proof
    assert client._session.auth.auth_done is False
    assert getattr(client, "_proxy", None) is None  # the login is not passed on


def test_an_error_answer_still_proves_the_server(server: WebHdfsServer) -> None:
    """The filter's AP-REP goes with every answer, a RemoteException too (as Hadoop's
    AuthenticationFilter adds it before the servlet runs): a first request that fails still
    authenticates the server."""
    from requests_kerberos import REQUIRED

    session = kerberos_session(REQUIRED)
    missing = session.get(f"{server.url}/webhdfs/v1/nowhere", params={"op": "GETFILESTATUS"}, timeout=10)
    assert (
        missing.status_code == 404
        and missing.json()["RemoteException"]["exception"] == "FileNotFoundException"
    )
    assert missing.headers["WWW-Authenticate"].startswith("Negotiate ")
    assert session.auth.auth_done  # type: ignore[union-attr]


def test_a_webhdfs_uri_target_authenticates_and_requires_the_server_to_prove_itself(
    server: WebHdfsServer,
    webhdfs_impostor: int,
    webhdfs_failing_impostor: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The gateway's ``webhdfs://`` targets (fsspec's driver) under Kerberos: SPNEGO with mutual
    authentication REQUIRED, acting as the connection's login; an impostor is never written to."""
    from tandem.gateway.plan import Target as TargetSpec
    from tandem.gateway.sides import SideDown
    from tandem.gateway.targets import connect_target
    from tandem.policy import load_topology

    topology = load_topology(Path(__file__).resolve().parents[2] / "include" / "clusters.yaml")
    _connection(monkeypatch, "webhdfs_target_kerberized", server.port, "etl")
    spec = TargetSpec(
        uri=f"webhdfs://127.0.0.1:{server.port}/backups", conn_id="webhdfs_target_kerberized", root="/r"
    )
    target = connect_target(spec, topology)()
    target.write_with_meta("/r/a.json", b"{}", {"written-ms": "1"})
    status = server.namespace.status(("backups", "r", "a.json"))
    assert status.owner == "etl" and status.length == 2
    _connection(monkeypatch, "webhdfs_target_impostor", webhdfs_impostor, "etl")
    fake = TargetSpec(
        uri=f"webhdfs://127.0.0.1:{webhdfs_impostor}/backups", conn_id="webhdfs_target_impostor", root="/r"
    )
    with pytest.raises(SideDown, match="did not prove it is the Kerberos service"):
        connect_target(fake, topology)().status("/r")
    # one that answers every call with an error proves nothing either: it is down, not empty
    _connection(monkeypatch, "webhdfs_target_failing", webhdfs_failing_impostor, "etl")
    failing = TargetSpec(
        uri=f"webhdfs://127.0.0.1:{webhdfs_failing_impostor}/backups",
        conn_id="webhdfs_target_failing",
        root="/r",
    )
    with pytest.raises(SideDown, match="did not prove it is the Kerberos service"):
        connect_target(failing, topology)().status("/r")


def test_the_gateway_acts_for_the_application_user_not_the_connections_login(
    server: WebHdfsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under Kerberos the connection's client carries doas=<login> on every request; a gateway
    side acting for an application user must send that user instead (or cluster permissions would
    be checked for the login and files owned by it)."""
    from tandem.gateway.sides import Side

    _connection(monkeypatch, "webhdfs_gateway_side", server.port, "etl")
    side = Side("primary", lambda: Hdfs.from_conn_id("webhdfs_gateway_side"))
    side.as_user("alice").write("/tmp/apps/by-alice", b"hello")
    side.store.write("/tmp/apps/by-tandem", b"record")
    assert server.namespace.status(("tmp", "apps", "by-alice")).owner == "alice"
    assert server.namespace.status(("tmp", "apps", "by-tandem")).owner == "etl"


# -- HA: several NameNodes, one of them an impostor ------------------------------------------------
@pytest.mark.parametrize("impostor", ["webhdfs_impostor", "webhdfs_failing_impostor"])
def test_an_ha_list_skips_a_namenode_that_cannot_prove_itself(
    impostor: str,
    realm: Realm,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    port: int = request.getfixturevalue(impostor)
    auth = Spnego(realm.keytab("HTTP/127.0.0.2"), realm.realm, proxy_users={"tandem"})
    with WebHdfsServer(tmp_path / "hdfs2", host="127.0.0.2", port=port, kerberos=auth) as genuine:
        _connection(monkeypatch, "webhdfs_ha", port, "etl", host="127.0.0.1,127.0.0.2")
        with caplog.at_level("WARNING", logger="tandem.hdfs.hook"):
            hdfs = Hdfs.from_conn_id("webhdfs_ha")
        assert hdfs.url == f"http://127.0.0.2:{port}"
        hdfs.write("/tmp/etl/ha", b"to the genuine one")
        assert genuine.namespace.status(("tmp", "etl", "ha")).owner == "etl"
    warned = [r.getMessage() for r in caplog.records if "failed mutual authentication" in r.getMessage()]
    assert len(warned) == 1
    assert f"http://127.0.0.1:{port}" in warned[0] and "HTTP/127.0.0.1" in warned[0]


def test_an_ha_list_where_no_namenode_proves_itself_names_every_one(
    webhdfs_impostor: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.integration.conftest import _FailingImpostor, _serve

    # the second impostor on 127.0.0.2 at the same port: a list of two, neither with a keytab
    second = _serve(_FailingImpostor, "127.0.0.2", webhdfs_impostor)
    next(second)
    try:
        _connection(monkeypatch, "webhdfs_ha_none", webhdfs_impostor, "etl", host="127.0.0.1,127.0.0.2")
        with pytest.raises(ServerIdentityError) as refused:
            Hdfs.from_conn_id("webhdfs_ha_none")
    finally:
        next(second, None)
    message = str(refused.value)
    assert "webhdfs_ha_none" in message
    for host in ("127.0.0.1", "127.0.0.2"):
        assert f"HTTP/{host} at http://{host}:{webhdfs_impostor}" in message
