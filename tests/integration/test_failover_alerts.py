"""The failover notifier's channels: task log, callback and e-mail through a real SMTP exchange."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tandem.dags.failover import build_alert
from tandem.failover.arbiter import ClusterView, assess_pair
from tandem.failover.watch import FailoverNotifier, resolve_callback

pytestmark = pytest.mark.integration


class _SmtpHandler(socketserver.StreamRequestHandler):
    """Just enough of RFC 5321 to accept one message: what the SMTP provider's hook speaks."""

    def handle(self) -> None:
        server: Any = self.server
        self.wfile.write(b"220 localhost ESMTP test\r\n")
        data_mode, lines = False, []
        for raw in self.rfile:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if data_mode:
                if line == ".":
                    server.messages.append("\n".join(lines))
                    data_mode, lines = False, []
                    self.wfile.write(b"250 OK queued\r\n")
                else:
                    lines.append(line[1:] if line.startswith("..") else line)
                continue
            verb = line.split(" ", 1)[0].upper()
            if verb == "EHLO":
                self.wfile.write(b"250-localhost\r\n250 8BITMIME\r\n")
            elif verb == "DATA":
                data_mode = True
                self.wfile.write(b"354 go ahead\r\n")
            elif verb == "QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:  # HELO, MAIL FROM, RCPT TO, RSET, NOOP
                self.wfile.write(b"250 OK\r\n")


@pytest.fixture
def smtp_server() -> Iterator[Any]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SmtpHandler)
    server.messages = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def alert() -> dict[str, Any]:
    views = (
        ClusterView.unreachable("primary", "connection refused"),
        ClusterView("standby", "standby", "alive", 3),
    )
    health = assess_pair(*views, "primary")
    event = {
        "changed": True,
        "pair": "main",
        "health": health.to_json(),
        "views": [v.to_json() for v in views],
        "detected_at": "2026-11-21T10:00:00.000Z",
    }
    return build_alert(event, "main", ("primary", "standby"))


def test_alert_document_says_what_happened_and_how_to_promote() -> None:
    document = alert()
    assert document["alert"] is True
    assert document["subject"] == (
        "[tandem] pair main: primary, the active cluster, is unreachable (connection refused)"
    )
    assert "Detected at 2026-11-21T10:00:00.000Z" in document["text"]
    assert "confirmation = standby" in document["text"]
    json.dumps(document)  # it travels through XCom


def test_every_channel_gets_the_alert(smtp_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    port = smtp_server.server_address[1]
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_TANDEM_TEST",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": port,
                "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "tandem@example.com"},
            }
        ),
    )
    received: list[dict[str, Any]] = []
    document = alert()
    notifier = FailoverNotifier(
        document, callback=received.append, email=["ops@example.com"], smtp_conn_id="smtp_tandem_test"
    )
    notifier.notify({})  # type: ignore[arg-type]
    assert notifier.sent == ["log", "callback", "email"]
    assert received == [document]
    [message] = smtp_server.messages
    assert "ops@example.com" in message
    assert "primary, the active cluster, is unreachable" in message


def test_a_failing_channel_does_not_stop_the_others_and_is_reported() -> None:
    received: list[dict[str, Any]] = []

    def broken(_alert: dict[str, Any]) -> None:
        raise ConnectionError("pager service down")

    notifier = FailoverNotifier(alert(), callback=broken)
    with pytest.raises(RuntimeError, match="alert sent to log but failed for callback: pager service down"):
        notifier.notify({})  # type: ignore[arg-type]
    notifier = FailoverNotifier(
        alert(), callback=received.append, email="ops@example.com", smtp_conn_id="nope"
    )
    with pytest.raises(RuntimeError, match="alert sent to log, callback but failed for email"):
        notifier.notify({})  # type: ignore[arg-type]
    assert len(received) == 1


def test_callbacks_are_named_module_colon_function() -> None:
    assert resolve_callback("json:dumps") is json.dumps
    assert resolve_callback(None) is None
    with pytest.raises(ValueError, match="must be written module:function"):
        resolve_callback("json.dumps")
    with pytest.raises(ValueError, match="is not callable"):
        resolve_callback("socket:AF_INET")
