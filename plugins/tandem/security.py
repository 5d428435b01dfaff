"""Kerberos as Tandem needs it: every server proves who it is before Tandem trusts it.

Airflow's ``[core] security = kerberos`` turns Kerberos on (read when a client is built, not when a
provider's module was imported). The stock clients do not all check the server:

- WebHDFS: :class:`tandem.hdfs.hook.MutualWebHDFSHook` (mutual authentication REQUIRED, ``doas``);
- ZooKeeper: :func:`zookeeper_client` authenticates with SASL GSSAPI (service ``zookeeper``, the
  host the client dials); kazoo insists the exchange completes, but reports CONNECTED before it
  runs, so only the first operation tells (:func:`zookeeper_refusal`). Every znode it creates then
  carries :func:`tandem_acl`: only Tandem's principal may change it, anyone may read it. In an
  ensemble (``h1:p,h2:p``) a server that fails the exchange is skipped for the next one
  (:func:`sasl_kazoo_client`); kazoo alone would give up on the first;
- the metastore: ``HiveMetastoreHook`` builds ``thrift_sasl``'s client transport, which stops at
  the server's COMPLETE without checking that the GSSAPI exchange finished, so a metastore with no
  keytab that answers COMPLETE at once is accepted.
  :class:`tandem.hive_hook.MutualHiveMetastoreHook` builds the same transport and refuses to use
  it unless the exchange completed (the server's AP-REP checked, the protection agreed);

and refusals become :class:`~tandem.errors.ServerIdentityError`, naming the connection and the
service. This module imports nothing of Airflow until asked.
"""

from __future__ import annotations

from typing import Any


def kerberos_enabled() -> bool:
    """Is Airflow configured for Kerberos (``[core] security = kerberos``), now?"""
    from airflow.configuration import conf

    return str(conf.get("core", "security", fallback="")).lower() == "kerberos"


ZOOKEEPER_SERVICE = "zookeeper"


def tandem_acl() -> list[Any]:
    """The ACL of the znodes Tandem creates under Kerberos: everything for the identities the
    creating session authenticated as, read for anyone (applications read roles through
    ``ActiveClusterClient``, some with no Kerberos of their own).

    The ``auth`` scheme lets ZooKeeper write the identity in as its SASLAuthenticationProvider
    names it (``sasl:tandem@REALM`` by default; the short name or no host where the servers set
    ``kerberos.removeRealmFromPrincipal``/``removeHostFromPrincipal``), so Tandem never guesses the
    server's naming. Every Tandem process must therefore authenticate as one name (one principal,
    or host-specific ones with the servers removing the host)."""
    from kazoo.security import CREATOR_ALL_ACL, READ_ACL_UNSAFE

    return [*CREATOR_ALL_ACL, *READ_ACL_UNSAFE]


def zookeeper_client(hosts: str, *, kerberos: bool | None = None, **options: Any) -> Any:
    """A ``KazooClient`` for ``hosts``; with ``kerberos`` (None: as Airflow is configured, which
    imports Airflow) it authenticates with SASL GSSAPI and creates znodes with :func:`tandem_acl`
    (without, they stay open to all, ``OPEN_ACL_UNSAFE``, as a ZooKeeper without SASL can check
    no identity)."""
    from kazoo.client import KazooClient

    if kerberos if kerberos is not None else kerberos_enabled():
        options.setdefault("default_acl", tandem_acl())
        return sasl_kazoo_client(hosts, **options)
    return KazooClient(hosts=hosts, **options)


def sasl_kazoo_client(hosts: str, **options: Any) -> Any:
    """A ``KazooClient`` authenticating with SASL GSSAPI to service ``zookeeper/<host>``, which
    reports CONNECTED only once a server proved itself and skips one that cannot for the next of
    ``hosts`` (:mod:`tandem.zookeeper_sasl`)."""
    from tandem.zookeeper_sasl import SaslKazooClient

    return SaslKazooClient(hosts, ZOOKEEPER_SERVICE, **options)


def zookeeper_refusal(exc: BaseException, hosts: str, zk: Any = None, settle_s: float = 5.0) -> str | None:
    """Why a ZooKeeper operation failed, when it is Kerberos: the server did not authenticate or
    would not accept us; None for any other failure.

    Tandem's clients (:mod:`tandem.zookeeper_sasl`) raise AuthFailedError from ``start()`` when no
    server proved itself. A client that was connected and reconnects to servers that all fail
    the exchange ends AUTH_FAILED, and a request queued meanwhile may end in ConnectionLoss
    (kazoo's own client, too, may end CLOSED). So with ``zk`` and Kerberos on, a
    ConnectionLoss waits up to ``settle_s`` for the client to settle: ended (refused) or
    reconnecting (a lost link, not a refusal: kazoo never ends by itself for that)."""
    import time

    from kazoo.exceptions import AuthFailedError, ConnectionLoss, SASLException
    from kazoo.protocol.states import KeeperState

    if not kerberos_enabled():
        return None  # not Kerberos: whatever failed, it is not the server's identity
    refused = isinstance(exc, AuthFailedError | SASLException)
    if not refused and zk is not None and isinstance(exc, ConnectionLoss):
        deadline = time.monotonic() + settle_s
        while not refused and time.monotonic() < deadline:
            state = zk.client_state
            refused = state in (KeeperState.AUTH_FAILED, KeeperState.CLOSED)
            if state == KeeperState.CONNECTING:  # reconnecting: the link was lost
                break
            time.sleep(0.05)  # still CONNECTED: the connection thread has not reported yet
    if not refused:
        return None
    servers = [h.strip() for h in hosts.split("/")[0].split(",") if h.strip()]
    services = [f"{ZOOKEEPER_SERVICE}/{h.rsplit(':', 1)[0]}" for h in servers]
    if len(servers) == 1:
        return (
            f"ZooKeeper {hosts} did not complete Kerberos authentication as service {services[0]} "
            f"({type(exc).__name__}): refusing it"
        )
    named = ", ".join(f"{service} at {server}" for service, server in zip(services, servers, strict=True))
    return (
        f"ZooKeeper {hosts}: none of its servers completed Kerberos authentication as its service "
        f"({named}; {type(exc).__name__}): refusing them"
    )
