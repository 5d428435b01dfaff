"""The provider's ``HiveMetastoreHook``, refusing a Kerberized metastore that cannot prove itself.

See :mod:`tandem.security`: under Kerberos with GSSAPI, ``thrift_sasl``'s client transport stops at
the server's COMPLETE without checking that the exchange finished; the transport built here
refuses to be used unless it did (the server's AP-REP checked, the protection agreed).

With several metastores in the connection's ``host`` (``h1,h2``) the provider's hook takes the
first that accepts a TCP connection; under Kerberos this one runs the SASL exchange with each in
turn (nothing else is sent) and takes the first that proves itself, logging the others as failing
mutual authentication; only when none does it raises :class:`ServerIdentityError` naming every one.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from typing import Any

from airflow.providers.apache.hive.hooks.hive import HiveMetastoreHook

from tandem.errors import MetastoreError, ServerIdentityError
from tandem.security import kerberos_enabled

log = logging.getLogger(__name__)


def verified_transport(factory: Any, service: str, socket_: Any, where: str) -> Any:
    """``thrift_sasl``'s client transport that insists the SASL exchange completed."""
    from thrift_sasl import TSaslClientTransport

    class VerifiedSaslClientTransport(TSaslClientTransport):  # type: ignore[misc]
        def open(self) -> None:
            super().open()
            if not getattr(self.sasl, "complete", False):
                self.close()
                raise ServerIdentityError(
                    f"{where}: the server said COMPLETE before the GSSAPI exchange finished, so it did not "
                    f"prove it is the Kerberos service {service}; refusing to use it"
                )

    return VerifiedSaslClientTransport(factory, "GSSAPI", socket_)


def _gss_errors() -> tuple[type[BaseException], ...]:
    """The GSSAPI library's own errors (a host whose principal the KDC does not know, say): a
    host that cannot be authenticated is skipped like one that does not prove itself."""
    try:
        import kerberos
    except ImportError:
        return ()
    return (kerberos.GSSError,)


class MutualHiveMetastoreHook(HiveMetastoreHook):
    """``HiveMetastoreHook`` whose GSSAPI transport requires the metastore to authenticate itself."""

    def get_metastore_client(self) -> Any:
        conn = self.conn
        mechanism = conn.extra_dejson.get("auth_mechanism", "GSSAPI")
        if not kerberos_enabled() or mechanism != "GSSAPI":
            return super().get_metastore_client()
        import hmsclient
        from thrift.protocol import TBinaryProtocol

        hosts = [h.strip() for h in str(conn.host or "").split(",") if h.strip()]
        service = conn.extra_dejson.get("kerberos_service_name", "hive")
        # one metastore: the provider's reachability check; its identity is checked on open
        host = self._find_valid_host() if len(hosts) <= 1 else self._proven_host(hosts, service)
        if not host:
            raise MetastoreError(
                f"no metastore of connection {conn.conn_id} answers ({conn.host}:{conn.port})"
            )
        transport = self._transport(host, service)
        return hmsclient.HMSClient(iprot=TBinaryProtocol.TBinaryProtocol(transport))

    def _transport(self, host: str, service: str) -> Any:
        """The GSSAPI transport to the metastore at ``host`` (not opened). Its service principal
        is ``<service>/<host>``, or ``<service>/<kerberos_hostname_override>`` when the
        connection's extra names the host the principal has (an address in ``host``, a name
        mapping to another realm)."""
        from pyhive.hive import get_installed_sasl
        from thrift.transport import TSocket

        port = self.conn.port
        named = str(self.conn.extra_dejson.get("kerberos_hostname_override") or host)
        return verified_transport(
            lambda: get_installed_sasl(host=named, sasl_auth="GSSAPI", service=service),
            f"{service}/{named}",
            TSocket.TSocket(host, port),
            f"metastore of connection {self.conn.conn_id} at thrift://{host}:{port}",
        )

    def _proven_host(self, hosts: list[str], service: str) -> str | None:
        """The first of ``hosts`` that answers and proves it is ``service``/host: a SASL exchange
        with each in turn, closed at once (nothing else is sent). None when none answers; raises
        :class:`ServerIdentityError` naming those that answered without proving themselves."""
        from thrift.transport.TTransport import TTransportException

        port = int(self.conn.port or 0)
        refused: list[str] = []
        for host in hosts:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.settimeout(10)
                if probe.connect_ex((host, port)) != 0:
                    log.warning(
                        "metastore %s:%s of connection %s: unreachable", host, port, self.conn.conn_id
                    )
                    continue
            transport = self._transport(host, service)
            principal = f"{service}/{self.conn.extra_dejson.get('kerberos_hostname_override') or host}"
            try:
                transport.open()
            except ServerIdentityError:
                log.warning(
                    "metastore thrift://%s:%s of connection %s failed mutual authentication: it did not "
                    "prove it is the Kerberos service %s; skipping it",
                    host,
                    port,
                    self.conn.conn_id,
                    principal,
                )
                refused.append(f"{principal} at thrift://{host}:{port}")
                continue
            except (
                TTransportException,
                OSError,
                EOFError,
                *_gss_errors(),
            ) as exc:  # a failed exchange proves nothing
                with contextlib.suppress(Exception):
                    transport.close()
                log.warning("metastore %s:%s of connection %s: %s", host, port, self.conn.conn_id, exc)
                refused.append(f"{principal} at thrift://{host}:{port} ({exc})")
                continue
            transport.close()
            return host
        if refused:
            raise ServerIdentityError(
                f"metastore of connection {self.conn.conn_id}: no metastore proved it is its Kerberos "
                f"service: {', '.join(refused)}; refusing to use them"
            )
        return None
