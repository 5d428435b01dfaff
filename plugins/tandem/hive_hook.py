"""The provider's ``HiveMetastoreHook``, refusing a Kerberized metastore that cannot prove itself.

See :mod:`tandem.security`: under Kerberos with GSSAPI, ``thrift_sasl``'s client transport stops at
the server's COMPLETE without checking that the exchange finished; the transport built here
refuses to be used unless it did (the server's AP-REP checked, the protection agreed).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.apache.hive.hooks.hive import HiveMetastoreHook

from tandem.errors import MetastoreError, ServerIdentityError
from tandem.security import kerberos_enabled


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


class MutualHiveMetastoreHook(HiveMetastoreHook):
    """``HiveMetastoreHook`` whose GSSAPI transport requires the metastore to authenticate itself."""

    def get_metastore_client(self) -> Any:
        conn = self.conn
        mechanism = conn.extra_dejson.get("auth_mechanism", "GSSAPI")
        if not kerberos_enabled() or mechanism != "GSSAPI":
            return super().get_metastore_client()
        import hmsclient
        from pyhive.hive import get_installed_sasl
        from thrift.protocol import TBinaryProtocol
        from thrift.transport import TSocket

        host = self._find_valid_host()
        if not host:
            raise MetastoreError(
                f"no metastore of connection {conn.conn_id} answers ({conn.host}:{conn.port})"
            )
        service = conn.extra_dejson.get("kerberos_service_name", "hive")
        transport = verified_transport(
            lambda: get_installed_sasl(host=host, sasl_auth="GSSAPI", service=service),
            f"{service}/{host}",
            TSocket.TSocket(host, conn.port),
            f"metastore of connection {conn.conn_id} at thrift://{host}:{conn.port}",
        )
        return hmsclient.HMSClient(iprot=TBinaryProtocol.TBinaryProtocol(transport))
