"""The metastore over SASL GSSAPI with a real MIT KDC: the embedded metastore accepts Kerberos as
Hive's Thrift server does, and Tandem's client refuses a metastore that cannot prove itself.

- Tandem's ``Metastore.from_conn_id`` under ``[core] security = kerberos`` reads the Kerberized
  metastore; the server logged Tandem's principal and the KDC issued the service ticket;
- a client without SASL gets nothing from the Kerberized server;
- an impostor with no keytab that answers COMPLETE right after the client's AP-REQ is refused
  with an error naming the connection and the service;
- several metastores in the connection (``h1,h2``): one that cannot prove itself is skipped, with a
  warning naming it, for the next one that does; when none does, the error names every one;
- characterization: the provider's stock ``HiveMetastoreHook`` opens that impostor's transport
  without complaint (``thrift_sasl`` stops at COMPLETE), so an upgrade that fixes it is noticed.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tandem.errors import ServerIdentityError
from tandem.metastore import Metastore
from tandem_dev.embedded.metastore import MetastoreServer
from tests.integration.conftest import Realm

pytestmark = [
    pytest.mark.integration,
    pytest.mark.xdist_group("kerberos"),
]

SERVICE = "hive/127.0.0.1"


@pytest.fixture
def server(realm: Realm, tmp_path: Path) -> Iterator[MetastoreServer]:
    with MetastoreServer(tmp_path / "metastore.db", kerberos_keytab=realm.keytab(SERVICE)) as running:
        yield running


def connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, port: int, host: str = "127.0.0.1") -> None:
    body = {
        "conn_type": "hive_metastore",
        "host": host,
        "port": port,
        "extra": {"auth_mechanism": "GSSAPI", "kerberos_service_name": "hive"},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(body))
    monkeypatch.setenv("AIRFLOW__CORE__SECURITY", "kerberos")


def test_tandem_reads_a_kerberized_metastore_as_its_principal(
    server: MetastoreServer, realm: Realm, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection(monkeypatch, "metastore_kerberized", server.port)
    metastore = Metastore.from_conn_id("metastore_kerberized")
    with metastore.session() as client:
        assert "default" in client.get_all_databases()
    assert "tandem@TANDEM.TEST" in server.authenticated
    assert realm.kdc.issued("tandem@TANDEM.TEST", f"{SERVICE}@TANDEM.TEST")


def test_a_client_without_sasl_gets_nothing(server: MetastoreServer) -> None:
    import hmsclient
    from thrift.transport.TTransport import TTransportException

    client = hmsclient.HMSClient(host="127.0.0.1", port=server.port)
    with pytest.raises((TTransportException, EOFError, OSError)), client as opened:
        opened.get_all_databases()
    assert server.authenticated == []


class _Impostor:
    """A "metastore" with no keytab: it reads START and the AP-REQ, then says COMPLETE."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.listener = socket.create_server((host, port))
        self.port = int(self.listener.getsockname()[1])
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                try:
                    for _ in range(2):  # START "GSSAPI", OK <AP-REQ>
                        _, length = struct.unpack(">BI", conn.recv(5, socket.MSG_WAITALL))
                        conn.recv(length, socket.MSG_WAITALL)
                    conn.sendall(struct.pack(">BI", 5, 0))
                    conn.recv(1024)
                except (OSError, struct.error):
                    pass

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def impostor(realm: Realm) -> Iterator[_Impostor]:
    # the service exists in the realm (the client gets its ticket); only its key is missing here.
    # Without this the test passed only after a test that had started the real server.
    realm.keytab(SERVICE)
    fake = _Impostor()
    yield fake
    fake.close()


def test_tandem_refuses_a_metastore_that_cannot_prove_itself(
    impostor: _Impostor, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection(monkeypatch, "metastore_impostor", impostor.port)
    metastore = Metastore.from_conn_id("metastore_impostor")
    with pytest.raises(ServerIdentityError) as refused, metastore.session() as client:
        client.get_all_databases()
    message = str(refused.value)
    assert "metastore_impostor" in message and "Kerberos service hive/127.0.0.1" in message


def test_the_stock_hook_opens_the_impostors_transport(
    impostor: _Impostor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Characterization of apache-airflow-providers-apache-hive: ``thrift_sasl`` ends the
    exchange at the server's COMPLETE without checking it finished. If this starts failing, the
    provider (or thrift_sasl) fixed it and Tandem's hook subclass can go."""
    from airflow.providers.apache.hive.hooks.hive import HiveMetastoreHook

    connection(monkeypatch, "metastore_impostor_stock", impostor.port)
    transport = HiveMetastoreHook(metastore_conn_id="metastore_impostor_stock").metastore._oprot.trans
    transport.open()  # accepted: no error although the server proved nothing
    assert transport.sasl.complete is False
    transport.close()


def test_several_metastores_skip_one_that_cannot_prove_itself(
    impostor: _Impostor,
    realm: Realm,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    keytab = realm.keytab("hive/127.0.0.2")
    with MetastoreServer(
        tmp_path / "m2.db", host="127.0.0.2", port=impostor.port, kerberos_keytab=keytab
    ) as genuine:
        connection(monkeypatch, "metastore_ha", impostor.port, host="127.0.0.1,127.0.0.2")
        with caplog.at_level("WARNING", logger="tandem.hive_hook"):
            metastore = Metastore.from_conn_id("metastore_ha")
            with metastore.session() as client:
                assert "default" in client.get_all_databases()
        assert genuine.authenticated == ["tandem@TANDEM.TEST"] * len(genuine.authenticated)
        assert len(genuine.authenticated) == 2  # the probe's exchange, then the session's
    warned = [r.getMessage() for r in caplog.records if "failed mutual authentication" in r.getMessage()]
    assert len(warned) == 1 and f"thrift://127.0.0.1:{impostor.port}" in warned[0]


def test_several_metastores_none_proving_itself_are_all_named(
    impostor: _Impostor, monkeypatch: pytest.MonkeyPatch
) -> None:
    second = _Impostor("127.0.0.2", impostor.port)
    try:
        connection(monkeypatch, "metastore_ha_none", impostor.port, host="127.0.0.1,127.0.0.2")
        with pytest.raises(ServerIdentityError) as refused:
            Metastore.from_conn_id("metastore_ha_none")
    finally:
        second.close()
    message = str(refused.value)
    assert "metastore_ha_none" in message
    for host in ("127.0.0.1", "127.0.0.2"):
        assert f"hive/{host} at thrift://{host}:{impostor.port}" in message
