"""The ZooKeeper clients Tandem builds: open ACLs without Kerberos, Tandem-only writes with it."""

from __future__ import annotations

from kazoo.security import ACL, Id, Permissions

from tandem.security import zookeeper_client


def test_plain_clients_create_open_znodes() -> None:
    zk = zookeeper_client("127.0.0.1:1", kerberos=False)
    assert zk.default_acl is None  # kazoo's OPEN_ACL_UNSAFE
    assert zk._connection.sasl_options is None


def test_kerberos_clients_create_znodes_only_their_principal_may_change() -> None:
    zk = zookeeper_client("127.0.0.1:1", kerberos=True)
    assert zk._connection.sasl_options == {"mechanism": "GSSAPI", "service": "zookeeper"}
    assert zk.default_acl == [
        ACL(Permissions.ALL, Id("auth", "")),  # the server writes in the session's SASL identity
        ACL(Permissions.READ, Id("world", "anyone")),
    ]
