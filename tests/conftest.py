"""Shared fixtures: the embedded clusters, once per test process (xdist worker)."""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tandem_dev.embedded import manager
from tandem_dev.embedded.manager import RunningClusters
from tandem_dev.s3 import SeaweedS3

_HOME_KEY = pytest.StashKey[Path]()


@pytest.fixture(scope="session")
def embedded(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[RunningClusters]:
    """The embedded clusters (primary, standby, primary2) with their own ZooKeepers, up for the
    whole session.

    Shared by every test of the worker: never stop, kill or expire them here. Fault-injection
    tests start their own with ``manager.up(home=tmp_path / "home")`` and ``manager.down``.
    """
    home = tmp_path_factory.mktemp("tandem-home")
    request.config.stash[_HOME_KEY] = home
    try:
        topology = manager.up(home=home)
    except Exception:
        print(manager.log_tails(home))
        raise
    yield topology
    manager.down(home)


@pytest.fixture
def airflow_conns(embedded: RunningClusters, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """AIRFLOW_CONN_* variables pointing Airflow hooks at the embedded clusters."""
    env = manager.connection_env(embedded)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """A real S3 server (SeaweedFS on loopback, credentials required), up for the whole session.

    Shared by every test of the worker: never stop it here; tests that stop servers start their
    own ``SeaweedS3(tmp_path)``. Each test gets a bucket of its own from ``s3_bucket``.
    """
    with SeaweedS3(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: SeaweedS3) -> Iterator[str]:
    """A fresh, uniquely named, empty bucket on ``s3_server``; removed with its objects afterwards."""
    name = s3_server.make_bucket(f"tandem-test-{uuid.uuid4().hex[:16]}")
    yield name
    s3_server.remove_bucket(name)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # a failing test that used the embedded clusters or the S3 server shows what they logged
    report = yield
    home = item.config.stash.get(_HOME_KEY, None)
    if report.failed and home is not None and "embedded" in getattr(item, "fixturenames", ()):
        report.sections.append(("embedded cluster logs", manager.log_tails(home)))
    server = getattr(item, "funcargs", {}).get("s3_server")
    if report.failed and isinstance(server, SeaweedS3):
        report.sections.append(("S3 server log", server.log_tail()))
    return report
