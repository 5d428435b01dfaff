"""The provider's ``WebHDFSHook``, with Kerberos done as Tandem's promise needs it.

Under ``[core] security = kerberos`` the stock hook (apache-airflow-providers-apache-hdfs 4.14)
builds the ``hdfs`` package's ``KerberosClient`` with mutual authentication OPTIONAL, so a
NameNode that answers without proving its identity (no AP-REP in ``WWW-Authenticate``) is
accepted, and it drops the proxy user, so nothing is done on behalf of the connection's login.
:class:`MutualWebHDFSHook` keeps everything else of the hook (HA NameNode lists, TLS, the
connection's extras) and builds the client with mutual authentication REQUIRED and ``doas`` set
to the hook's proxy user or the connection's login. Security mode is read when a client is
built, not when the provider's module was imported.

Connection extras it understands besides the provider's: ``kerberos_hostname_override`` (the
host of the ``HTTP/<host>`` service principal, when the URL's host is not it) and
``kerberos_principal`` (the client principal to use, when the ticket cache holds several).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.apache.hdfs.hooks.webhdfs import WebHDFSHook

from tandem.security import kerberos_enabled


class MutualWebHDFSHook(WebHDFSHook):
    """``WebHDFSHook`` whose Kerberos client requires the server to authenticate itself."""

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
