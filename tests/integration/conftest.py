"""Fixtures shared by the failover integration tests: a real ZooKeeper per test module, and
a pair of clusters recorded in it (each under its own chroot)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tandem_dev.embedded.zookeeper import ZooKeeperServer
from tests.integration.test_failover_support import ZkPair, zk_pair


@pytest.fixture(scope="module")
def zk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperServer]:
    server = ZooKeeperServer(tmp_path_factory.mktemp("zk"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def pair(zk_server: ZooKeeperServer, request: pytest.FixtureRequest) -> Iterator[ZkPair]:
    with zk_pair(zk_server, request) as made:
        yield made
