"""The provider's ``WebHDFSHook``, with Kerberos done as Tandem's promise needs it.

Under ``[core] security = kerberos`` the stock hook (apache-airflow-providers-apache-hdfs 4.14)
builds the ``hdfs`` package's ``KerberosClient`` with mutual authentication OPTIONAL, so a
NameNode that answers without proving its identity (no AP-REP in ``WWW-Authenticate``) is
accepted, and it drops the proxy user, so nothing is done on behalf of the connection's login.
:class:`MutualWebHDFSHook` keeps everything else of the hook (HA NameNode lists, TLS, the
connection's extras) and builds the client with mutual authentication REQUIRED and ``doas`` set
to the hook's proxy user or the connection's login. Security mode is read when a client is
built, not when the provider's module was imported.

With several NameNodes (HA, ``host`` = ``nn1,nn2``) the provider's hook uses the first that
answers; under Kerberos :meth:`MutualWebHDFSHook._find_valid_server` also skips one that cannot
prove its identity (logged as failing mutual authentication: its probe is a GETFILESTATUS of
``/``, no data) and uses the next that does; only when none does it raises
:class:`~tandem.errors.ServerIdentityError` naming every one.

Connection extras it understands besides the provider's: ``kerberos_hostname_override`` (the
host of the ``HTTP/<host>`` service principal, when the URL's host is not it) and
``kerberos_principal`` (the client principal to use, when the ticket cache holds several).
"""

from __future__ import annotations

import logging
import socket
from typing import Any, cast

from airflow.providers.apache.hdfs.hooks.webhdfs import WebHDFSHook

from tandem.errors import ServerIdentityError
from tandem.security import kerberos_enabled

log = logging.getLogger(__name__)


def _reachable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(10)
        try:
            return probe.connect_ex((host, port)) == 0
        except OSError:  # a name that does not resolve
            return False


def _probe(client: Any) -> tuple[str, str]:
    """GETFILESTATUS of ``/`` (which always exists) with a Kerberos client: ``proven`` (the
    server's AP-REP verified), ``unproven`` (an answer without one: the server is not who it
    claims), or ``unusable`` (nothing says it is an impostor, but it cannot be used); with what
    the server answered."""
    from hdfs import HdfsError
    from requests.exceptions import ConnectionError as RequestsConnectionError
    from requests_kerberos.exceptions import MutualAuthenticationError

    answers: list[int] = []
    client._session.hooks["response"].append(lambda answer, *_a, **_k: answers.append(answer.status_code))
    try:
        client.status("/")
    except MutualAuthenticationError:
        return "unproven", "a success answer without a valid mutual-authentication token"
    except HdfsError as exc:
        if client._session.auth.auth_done:
            return "unusable", str(exc)  # proven, but not usable (a standby NameNode)
        if answers and answers[-1] == 401:  # our side: no ticket, or the server would not take it
            return "unusable", "did not accept Tandem's Kerberos authentication (401: is there a ticket?)"
        return "unproven", f"an error answer without a mutual-authentication token: {exc}"
    except RequestsConnectionError as exc:
        return "unusable", str(exc)
    finally:
        client._session.hooks["response"].pop()
    if client._session.auth.auth_done:
        return "proven", ""
    return "unproven", "no mutual-authentication token"


class MutualWebHDFSHook(WebHDFSHook):
    """``WebHDFSHook`` whose Kerberos client requires the server to authenticate itself."""

    def _find_valid_server(self) -> Any:
        """The client of the first NameNode that answers and, under Kerberos, proves it is its
        service (its AP-REP verified on the probe's answer); None when none answers. Raises
        :class:`ServerIdentityError` naming every NameNode that failed to prove itself when no
        NameNode both answered and proved itself."""
        if not kerberos_enabled():
            return super()._find_valid_server()
        conn = self.get_connection(self.webhdfs_conn_id)
        port = int(conn.port or 0)
        extra = conn.extra_dejson
        refused: list[str] = []
        for namenode in (h.strip() for h in str(conn.host or "").split(",") if h.strip()):
            if not _reachable(namenode, port):
                log.warning(
                    "WebHDFS NameNode %s:%s of connection %s: unreachable", namenode, port, conn.conn_id
                )
                continue
            # as the provider passes them: a missing schema or login stays None
            client = self._get_client(
                namenode, port, cast(str, conn.login), conn.password, cast(str, conn.schema), extra
            )
            verdict, detail = _probe(client)
            if verdict == "proven":
                log.info("WebHDFS of connection %s: using NameNode %s", conn.conn_id, namenode)
                return client
            if verdict != "unproven":
                log.warning("WebHDFS NameNode %s of connection %s: %s", client.url, conn.conn_id, detail)
                continue
            service = f"HTTP/{extra.get('kerberos_hostname_override') or namenode}"
            log.warning(
                "WebHDFS NameNode %s of connection %s failed mutual authentication: it did not prove it "
                "is the Kerberos service %s (%s); skipping it",
                client.url,
                conn.conn_id,
                service,
                detail,
            )
            refused.append(f"{service} at {client.url} ({detail})")
        if refused:
            raise ServerIdentityError(
                f"WebHDFS of connection {conn.conn_id}: no NameNode proved it is its Kerberos service: "
                f"{', '.join(refused)}; refusing to use them"
            )
        return None

    def _get_client(
        self,
        namenode: str,
        port: int,
        login: str,
        password: str | None,
        schema: str,
        extra_dejson: dict[str, Any],
    ) -> Any:
        client = super()._get_client(namenode, port, login, password, schema, extra_dejson)
        if not kerberos_enabled():
            return client
        from hdfs.ext.kerberos import KerberosClient

        options: dict[str, Any] = {}
        if extra_dejson.get("kerberos_hostname_override"):
            options["hostname_override"] = str(extra_dejson["kerberos_hostname_override"])
        if extra_dejson.get("kerberos_principal"):
            options["principal"] = str(extra_dejson["kerberos_principal"])
        # an error answer keeps its body (Hadoop's RemoteException) instead of being blanked
        options["sanitize_mutual_error_response"] = False
        proxy = self.proxy_user or login or None
        # the same session (TLS, headers, cookies from the extras); its auth is replaced
        return KerberosClient(
            client.url, mutual_auth="REQUIRED", session=client._session, proxy=proxy, **options
        )
