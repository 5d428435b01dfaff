"""The main job as a user runs it: `tandem demo --json`, then `tandem restore-points`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("airflow"), pytest.mark.timeout(900)]

PROJECT = Path(__file__).resolve().parents[2]
TANDEM = str(Path(sys.executable).parent / "tandem")


def tandem(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "TANDEM_"))}
    return subprocess.run(
        [TANDEM, *args, "--home", str(home)],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=800,
    )


def test_demo_backs_up_billing_twice_and_verifies_the_newest_point(tmp_path):
    home = tmp_path / "home"
    try:
        demo = tandem("demo", "--json", home=home)
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
        result = json.loads(demo.stdout)
        assert set(result) == {
            "business",
            "restore_points",
            "total_bytes",
            "consistency_violations",
            "verified",
            "clusters",
        }
        assert result["business"] == "billing"
        assert [p["mode"] for p in result["restore_points"]] == ["full", "incremental"]
        full, incremental = result["restore_points"]
        assert set(full) == {"point", "mode", "files_copied", "bytes_copied", "duration_s", "skew_ms"}
        assert (
            incremental["files_copied"] == 4
        )  # a customers file, a bills file (new), one modified, settlements
        assert 0 < incremental["bytes_copied"] < full["bytes_copied"]
        assert result["verified"] is True and result["consistency_violations"] == 0
        assert set(result["clusters"]) == {"primary", "standby"}

        listed = tandem("restore-points", "billing", "--json", home=home)
        assert listed.returncode == 0, listed.stderr
        points = json.loads(listed.stdout)
        assert [p["point"] for p in points] == [full["point"], incremental["point"]]
        assert points[1]["base_point"] == full["point"]
        assert {d["component"] for d in points[1]["datasets"]} == {"hdfs", "hive", "sparksql"}
    finally:
        tandem("down", home=home)
