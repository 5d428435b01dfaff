"""The operators' page as Airflow's api-server serves it: every route behind Airflow's own auth
manager (the real SimpleAuthManager, tokens it signed), reading the embedded clusters through
their Airflow connections. A business with restore points and one without, a pair whose
standby does not exist (shown as such, never a 500), the DAG tab of a DAG that is not Tandem's.
"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from tandem import catalog
from tandem.hdfs.client import Hdfs
from tandem.policy import load_topology
from tandem.runtime import Clusters
from tandem.ui.app import create_app
from tandem.ui.collect import Collector, Sources
from tandem.ui.model import Run
from tandem_dev.embedded.manager import RunningClusters

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("ui_app")]

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.now(UTC).replace(microsecond=0)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Airflow's SimpleAuthManager with two users, on a database of the module's own."""
    home = tmp_path_factory.mktemp("airflow")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "ops:admin,watcher:viewer",
            "AIRFLOW__API_AUTH__JWT_SECRET": "tandem-test-" + "s" * 64,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        }.items():
            patch.setenv(key, value)
        from airflow import settings
        from airflow.api_fastapi import app as api_app
        from airflow.models import import_all_models
        from airflow.models.base import Base

        settings.configure_orm()
        import_all_models()
        Base.metadata.create_all(settings.engine)
        api_app._AuthManagerState.instance = None
        manager = api_app.init_auth_manager()
        yield manager
        api_app._AuthManagerState.instance = None
        settings.dispose_orm()


def _token(auth: Any, name: str, role: str) -> str:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return str(auth.generate_jwt(SimpleAuthManagerUser(username=name, role=role)))


@pytest.fixture(scope="module")
def include(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two businesses on the embedded pair, one on a pair whose standby is nowhere."""
    include = tmp_path_factory.mktemp("include")
    topology = yaml.safe_load((ROOT / "include" / "clusters.yaml").read_text())
    topology["clusters"]["dark"] = {
        "nameservice": "hdfs://dark",
        "webhdfs_conn_id": "webhdfs_dark",
        "metastore_conn_id": "metastore_dark",
        "zookeeper_conn_id": "zookeeper_dark",
    }
    topology["pairs"]["shadow"] = {"primary": "primary2", "standby": "dark"}
    (include / "clusters.yaml").write_text(yaml.safe_dump(topology))
    (include / "policies").mkdir()
    billing = yaml.safe_load((ROOT / "include" / "policies" / "billing.yaml").read_text())
    for name, pair in (("uiwith", "main"), ("uiwithout", "main"), ("uighost", "shadow")):
        doc = {
            **billing,
            "business": name,
            "pair": pair,
            "protection_group": [{"hdfs": f"/data/{name}/files"}],
            "tenant_dirs": [],
        }
        (include / "policies" / f"{name}.yaml").write_text(yaml.safe_dump(doc))
    (include / "gateway").mkdir()
    shutil.copy(ROOT / "include" / "gateway" / "events.yaml", include / "gateway" / "events.yaml")
    return include


@pytest.fixture(scope="module")
def manifests(embedded: RunningClusters) -> list[str]:
    """Two restore points of uiwith on the standby, the newest 90 minutes old (period 1 h)."""
    standby = Hdfs(__import__("hdfs").InsecureClient(embedded["standby"].webhdfs_url, user="hdfs"))
    points = []
    for age in (timedelta(minutes=150), timedelta(minutes=90)):
        instant = NOW - age
        point = instant.strftime("%Y-%m-%dT%H:%M:%SZ")
        manifest = catalog.Manifest(
            business="uiwith",
            point=point,
            pair="main",
            source="primary",
            target="standby",
            snapshot_name=f"tandem-{point}",
            mode="full" if not points else "incremental",
            datasets=[],
            snapshot_times={},
            skew_ms=3,
            files_copied=7,
            bytes_copied=12345,
            duration_s=2.0,
            verified=True,
        )
        standby.write(catalog.manifest_path("uiwith", instant), manifest.model_dump_json().encode())
        points.append(point)
    return points


@pytest.fixture
def client(
    auth: Any,
    include: Path,
    manifests: list[str],
    airflow_conns: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> TestClient:
    port = _closed_port()
    for kind in ("webhdfs", "zookeeper", "metastore"):
        fields = {
            "conn_type": {"webhdfs": "webhdfs", "zookeeper": "generic", "metastore": "hive_metastore"}[kind]
        }
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{kind.upper()}_DARK", json.dumps({**fields, "host": "127.0.0.1", "port": port})
        )
    runs = {
        "tandem_backup__uiwith": (
            Run("scheduled__x", "success", NOW - timedelta(minutes=91), NOW - timedelta(minutes=90)),
            NOW + timedelta(minutes=10),
        )
    }
    collector = Collector(
        Sources(include, Clusters(load_topology(include / "clusters.yaml")), lambda ids: runs),
        ttl=3600.0,  # one reading per test (each test has its own app): no refresh in the background
        clock=lambda: NOW,  # the readings' now: ages are exact, however late the test runs
    )
    return TestClient(create_app(collector))


def _as(auth: Any, who: str) -> dict[str, str]:
    role = {"ops": "admin", "watcher": "viewer"}[who]
    return {"Authorization": f"Bearer {_token(auth, who, role)}"}


ROUTES = [
    "/api/businesses",
    "/api/pairs",
    "/api/gateways",
    "/api/businesses/uiwith/points",
    "/ui/",
    "/ui/business/uiwith",
    "/api/businesses/uiwith/plan",
    "/ui/business/uiwith/plan",
    "/ui/dag/x",
]


@pytest.mark.parametrize("route", ROUTES)
def test_nothing_is_served_without_a_user(client: TestClient, route: str) -> None:
    assert client.get(route).status_code == 401
    # a token Airflow did not sign is refused as Airflow's own routes refuse it
    assert client.get(route, headers={"Authorization": "Bearer forged.token.here"}).status_code == 403


def test_no_open_docs(client: TestClient, auth: Any) -> None:
    for route in ("/docs", "/openapi.json", "/redoc"):
        assert client.get(route, headers=_as(auth, "ops")).status_code == 404


def test_businesses_with_and_without_points_and_their_compliance(
    client: TestClient, auth: Any, manifests: list[str]
) -> None:
    got = client.get("/api/businesses", headers=_as(auth, "watcher"))
    assert got.status_code == 200
    rows = {r["business"]: r for r in got.json()}
    assert set(rows) == {"uiwith", "uiwithout", "uighost"}
    with_ = rows["uiwith"]
    assert with_["newest_point"] == manifests[-1]
    assert with_["rpo_s"] == 90 * 60 and with_["period_s"] == 3600
    assert with_["compliance"] == "exceeded"  # 1.5 periods old
    assert with_["last_run_state"] == "success" and with_["last_run_duration_s"] == 60.0
    assert with_["bytes_copied"] == 12345 and with_["verified"] is True
    assert rows["uiwithout"]["newest_point"] is None and rows["uiwithout"]["compliance"] == "no point yet"
    assert rows["uiwithout"]["last_run_state"] is None
    assert got.headers["X-Tandem-Read-At"] == NOW.isoformat()
    # a standby that does not exist is shown as such, row by row
    ghost = rows["uighost"]
    assert ghost["problems"] and any(p.startswith("dark:") for p in ghost["problems"])


def test_pairs_and_gateways(client: TestClient, auth: Any) -> None:
    pairs = {p["pair"]: p for p in client.get("/api/pairs", headers=_as(auth, "watcher")).json()}
    main = {c["name"]: c for c in pairs["main"]["clusters"]}
    assert main["primary"]["role"] == "active" and main["standby"]["role"] == "standby"
    assert main["primary"]["liveness"] == "alive" and pairs["main"]["backups"] == "primary -> standby"
    dark = {c["name"]: c for c in pairs["shadow"]["clusters"]}
    assert dark["dark"]["liveness"] == "unreachable" and "unreachable" in pairs["shadow"]["backups"]
    plans = client.get("/api/gateways", headers=_as(auth, "watcher")).json()
    assert [g["plan"] for g in plans] == ["events"] and plans[0]["mode"] == "sync"


def test_the_page_shows_states_points_and_actions_for_those_who_may(
    client: TestClient, auth: Any, manifests: list[str]
) -> None:
    page = client.get("/ui/", headers=_as(auth, "watcher"))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert manifests[-1] in html and '<span class="state exceeded">exceeded</span>' in html
    assert '<span class="state no-point-yet">no point yet</span>' in html and ">unreachable</span>" in html
    detail = client.get("/ui/business/uiwith", headers=_as(auth, "ops")).text
    assert all(p in detail for p in manifests) and 'id="may-run"' in detail and "12.1 KiB" in detail
    assert 'id="may-run"' not in client.get("/ui/business/uiwith", headers=_as(auth, "watcher")).text
    # Airflow's UI session (its _token cookie) is a user too
    cookie = TestClient(client.app, cookies={"_token": _token(auth, "watcher", "viewer")})
    assert cookie.get("/api/businesses").status_code == 200
    assert client.get("/ui/business/nobody", headers=_as(auth, "ops")).status_code == 404
    points = client.get("/api/businesses/uiwith/points", headers=_as(auth, "watcher")).json()
    assert [p["point"] for p in points] == manifests[::-1]


def test_the_plan_preview_reads_the_clusters_and_says_why_a_run_would_not_start(
    client: TestClient, auth: Any, include: Path, manifests: list[str]
) -> None:
    watcher = _as(auth, "watcher")
    missing = client.get("/api/businesses/uiwith/plan", headers=watcher)
    assert missing.status_code == 502
    assert "hdfs dataset /data/uiwith/files does not exist on the source cluster" in missing.json()["detail"]
    Clusters(load_topology(include / "clusters.yaml")).hdfs("primary").write(
        "/data/uiwith/files/a.bin", b"x" * 100
    )
    body = client.get("/api/businesses/uiwith/plan", headers=watcher).json()
    assert (body["source"], body["target"], body["blocked"]) == ("primary", "standby", None)
    assert (body["files_to_copy"], body["bytes_to_copy"], body["mode"]) == (1, 100, "full")
    # the newest point is a manifest without snapshots: the copy says so
    assert body["base_point"] == manifests[-1]
    assert body["copies"][0]["reason"].startswith("source /data/uiwith/files has no snapshot")
    page = client.get("/ui/business/uiwith/plan", headers=watcher).text
    assert "next backup of uiwith (tandem_backup__uiwith)" in page and "nothing was changed" in page
    assert 'id="plan-link" href="uiwith/plan"' in client.get("/ui/business/uiwith", headers=watcher).text
    # a pair whose standby does not exist: the run would not start, and the page says why
    ghost = client.get("/api/businesses/uighost/plan", headers=watcher).json()
    assert ghost["source"] is None and ghost["blocked"]
    assert 'id="blocked"' in client.get("/ui/business/uighost/plan", headers=watcher).text
    assert client.get("/api/businesses/nobody/plan", headers=watcher).status_code == 404


def test_the_dag_tab_says_when_a_dag_is_not_tandems(client: TestClient, auth: Any) -> None:
    other = client.get("/ui/dag/example_etl", headers=_as(auth, "watcher")).text
    assert "example_etl is not a Tandem DAG" in other
    ours = client.get("/ui/dag/tandem_backup__uiwith", headers=_as(auth, "watcher")).text
    assert "not a Tandem DAG" not in ours and '<span class="state exceeded">exceeded</span>' in ours
    restore = client.get("/ui/dag/tandem_restore", headers=_as(auth, "watcher")).text
    assert "is Tandem's restore DAG" in restore


def test_triggering_a_backup_needs_the_run_permission(client: TestClient, auth: Any) -> None:
    refused = client.post("/api/businesses/uiwith/runs", json={}, headers=_as(auth, "watcher"))
    assert refused.status_code == 403 and "permission" in refused.json()["detail"]
    assert client.post("/api/businesses/uiwith/runs", json={}).status_code == 401
    # allowed: Airflow itself answers (this database has no serialized DAG: 404, not a crash)
    allowed = client.post("/api/businesses/uiwith/runs", json={"full": True}, headers=_as(auth, "ops"))
    assert allowed.status_code == 404 and "not known to Airflow" in allowed.json()["detail"]
    # a misspelled field never queues a run of the other kind
    typo = client.post("/api/businesses/uiwith/runs", json={"fulll": True}, headers=_as(auth, "ops"))
    assert typo.status_code == 422, typo.text
    # nor does a value that is not a JSON boolean ("yes" is no answer to "full?")
    vague = client.post("/api/businesses/uiwith/runs", json={"full": "yes"}, headers=_as(auth, "ops"))
    assert vague.status_code == 422, vague.text


def test_the_page_is_registered_with_airflow() -> None:
    from tandem.plugin import TandemPlugin

    prefixes = [a["url_prefix"] for a in TandemPlugin.fastapi_apps]
    assert prefixes == ["/tandem"]
    views = {v["destination"]: v for v in TandemPlugin.external_views}
    assert views["nav"]["href"] == "tandem/ui/" and views["dag"]["href"] == "tandem/ui/dag/{DAG_ID}"


def test_a_part_that_fails_is_unknown_not_a_failed_page(
    include: Path, auth: Any, airflow_conns: dict[str, str], tmp_path: Path
) -> None:
    """A broken policy file and Airflow's runs that cannot be read are said on the page; the rest
    is shown; an error never names what it could not reach."""
    broken = tmp_path / "include"
    shutil.copytree(include, broken)
    (broken / "policies" / "uiwithout.yaml").write_text("business: uiwithout\npair: [unclosed\n")

    def runs(ids: Any) -> Any:
        raise ConnectionError("db.internal:5432 refused user airflow")

    collector = Collector(
        Sources(broken, Clusters(load_topology(broken / "clusters.yaml")), runs), ttl=3600.0
    )
    client = TestClient(create_app(collector))
    rows = client.get("/api/businesses", headers=_as(auth, "watcher"))
    assert rows.status_code == 200 and rows.headers["X-Tandem-Read-Errors"] == "2"
    assert {r["business"] for r in rows.json()} == {"uiwith", "uighost"}
    html = client.get("/ui/", headers=_as(auth, "watcher")).text
    assert "uiwithout.yaml" in html and "Airflow&#39;s runs could not be read (ConnectionError)" in html
    assert "db.internal" not in html
