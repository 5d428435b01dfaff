"""The operators' page with 500 businesses, in one run on the embedded clusters.

    .venv/bin/python bench/ui.py [--json] [--businesses N]

Generates N policies (copies of billing with their own paths) on the embedded pair, half of
them with a restore point on the standby, and measures:

- ``read_s``: one full reading of the clusters for the page (ZooKeeper of both clusters, the
  newest manifest of every business on both clusters, the gateway plans), as the first request
  after the api-server starts takes it;
- ``page_ms`` / ``api_ms``: serving the overview page and ``/api/businesses`` from that reading
  (every request after the first, until the reading is refreshed in the background), median of
  20, through the app with Airflow's auth manager checking a real token;
- ``page_over_api``: the HTML page's cost over the JSON's, side by side.

Targets: ``page_ms`` under 200 (a page a person waits for), ``read_s`` under 10 for 500
businesses. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--businesses", type=int, default=500)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tandem-bench-ui-"))
    os.environ.update(
        {
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "ops:admin",
            "AIRFLOW__API_AUTH__JWT_SECRET": "bench-" + "s" * 64,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{work}/airflow.db",
        }
    )
    import yaml
    from airflow import settings
    from airflow.api_fastapi import app as api_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.models import import_all_models
    from airflow.models.base import Base
    from fastapi.testclient import TestClient
    from hdfs import InsecureClient

    from tandem import catalog
    from tandem.hdfs.client import Hdfs
    from tandem.policy import load_topology
    from tandem.runtime import Clusters
    from tandem.ui.app import create_app
    from tandem.ui.collect import Collector, Sources
    from tandem_dev.embedded import manager

    settings.configure_orm()
    import_all_models()
    Base.metadata.create_all(settings.engine)
    auth = api_app.init_auth_manager()
    token = auth.generate_jwt(SimpleAuthManagerUser(username="ops", role="admin"))
    home = work / "home"
    try:
        _say("starting the embedded clusters...")
        topology = manager.up(home)
        os.environ.update(manager.connection_env(topology))
        include = work / "include"
        (include / "policies").mkdir(parents=True)
        shutil.copy(ROOT / "include" / "clusters.yaml", include / "clusters.yaml")
        billing = yaml.safe_load((ROOT / "include" / "policies" / "billing.yaml").read_text())
        standby = Hdfs(InsecureClient(topology["standby"].webhdfs_url, user="hdfs"))
        now = datetime.now(UTC).replace(microsecond=0)
        _say(f"writing {args.businesses} policies, half of them with a restore point...")
        for i in range(args.businesses):
            name = f"biz{i:04d}"
            doc = {
                **billing,
                "business": name,
                "protection_group": [{"hdfs": f"/data/{name}"}],
                "tenant_dirs": [],
            }
            (include / "policies" / f"{name}.yaml").write_text(yaml.safe_dump(doc))
            if i % 2 == 0:
                instant = now - timedelta(minutes=i % 180)
                point = instant.strftime("%Y-%m-%dT%H:%M:%SZ")
                manifest = catalog.Manifest(
                    business=name,
                    point=point,
                    pair="main",
                    source="primary",
                    target="standby",
                    snapshot_name="s",
                    mode="full",
                    datasets=[],
                    snapshot_times={},
                    skew_ms=1,
                    files_copied=1,
                    bytes_copied=1,
                    duration_s=1.0,
                    verified=True,
                )
                standby.write(catalog.manifest_path(name, instant), manifest.model_dump_json().encode())
        collector = Collector(
            Sources(include, Clusters(load_topology(include / "clusters.yaml")), lambda ids: {}), ttl=3600.0
        )
        started = time.monotonic()
        snap = collector.snapshot()
        read_s = time.monotonic() - started
        assert len(snap.businesses) == args.businesses, len(snap.businesses)
        client = TestClient(create_app(collector))
        headers = {"Authorization": f"Bearer {token}"}

        def median_ms(route: str) -> float:
            times = []
            for _ in range(20):
                began = time.perf_counter()
                got = client.get(route, headers=headers)
                times.append((time.perf_counter() - began) * 1000)
                assert got.status_code == 200, got.text[:300]
            return statistics.median(times)

        page_ms, api_ms = median_ms("/ui/"), median_ms("/api/businesses")
        result = {
            "businesses": args.businesses,
            "read_s": round(read_s, 2),
            "page_ms": round(page_ms, 1),
            "api_ms": round(api_ms, 1),
            "page_over_api": round(page_ms / api_ms, 2),
        }
    finally:
        manager.down(home)
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['businesses']} businesses: a full reading of the clusters {result['read_s']} s; "
            f"the page {result['page_ms']} ms, /api/businesses {result['api_ms']} ms (median of 20)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
