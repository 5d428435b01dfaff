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
            "check",
            "verified",
            "clusters",
            "kerberos",
            "gateway",
        }
        assert result["kerberos"] is None
        assert result["business"] == "billing"
        assert [p["mode"] for p in result["restore_points"]] == ["full", "incremental"]
        full, incremental = result["restore_points"]
        assert set(full) == {"point", "mode", "files_copied", "bytes_copied", "duration_s", "skew_ms"}
        assert (
            incremental["files_copied"] == 4
        )  # a customers file, a bills file (new), one modified, settlements
        assert 0 < incremental["bytes_copied"] < full["bytes_copied"]
        assert result["verified"] is True and result["consistency_violations"] == 0
        check = result["check"]  # the text summary's figures, as JSON
        assert check["files_checked"] > 0 and check["files_mismatched"] == 0 and check["partitions"] > 0
        assert set(result["clusters"]) == {"primary", "standby", "primary2"}
        gateway = result["gateway"]
        # writes through the gateway spread over both primaries; the outage's writes were
        # acknowledged as pending and the replay DAG put the standby back byte for byte
        assert gateway["writes"] == 360 and all(n > 100 for n in gateway["spread"].values())
        assert gateway["pending_during_outage"] == 60
        assert gateway["standby_mismatched"] == 0 and gateway["degraded_after_replay"] is False
        # the same gateway to a NAS directory that evicts its oldest backups and to a real S3
        # server, private files sealed on both
        nas, s3 = gateway["targets"]["nas"], gateway["targets"]["s3"]
        assert nas["evictions"] > 0 and len(nas["kept"]) < nas["written"]
        assert "profile-03.txt" in nas["sealed"] and "photo-09.png" in nas["sealed"] and nas["decrypted_ok"]
        assert all(not n.startswith("profile-01") for n in nas["sealed"])
        assert s3["objects"] == s3["stamped"] == 12 and s3["sealed"] == 5

        listed = tandem("restore-points", "billing", "--json", home=home)
        assert listed.returncode == 0, listed.stderr
        points = json.loads(listed.stdout)
        assert [p["point"] for p in points] == [full["point"], incremental["point"]]
        assert points[1]["base_point"] == full["point"]
        assert {d["component"] for d in points[1]["datasets"]} == {"hdfs", "hive", "sparksql"}
    finally:
        tandem("down", home=home)


def test_the_demo_runs_kerberized_end_to_end(tmp_path):
    """`tandem demo --kerberos`: every server of the three clusters demands Kerberos from the
    home's own KDC; the backups (through Airflow), the gateway with its outage and replay, and
    the verification all pass as Tandem's principal; `tandem down` stops the KDC too."""
    import requests

    home = tmp_path / "home"
    try:
        demo = tandem("demo", "--kerberos", "--json", home=home)
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
        result = json.loads(demo.stdout)
        assert result["verified"] is True and result["kerberos"]["realm"] == "TANDEM.TEST"
        assert [p["mode"] for p in result["restore_points"]] == ["full", "incremental"]
        assert result["gateway"]["standby_mismatched"] == 0
        issued = (home / "kerberos" / "kdc.log").read_text(errors="replace")
        for service in ("HTTP/127.0.0.1", "hive/127.0.0.1", "zookeeper/127.0.0.1"):
            assert f"tandem@TANDEM.TEST for {service}@TANDEM.TEST" in issued
        cluster_log = (home / "logs" / "standby-cluster.log").read_text(errors="replace")
        assert "tandem@TANDEM.TEST authenticated (SASL GSSAPI)" in cluster_log
        zookeeper_log = (home / "logs" / "standby-zookeeper.log").read_text(errors="replace")
        assert "authenticationID=tandem@TANDEM.TEST" in zookeeper_log
        # nobody gets in without Kerberos, whatever user.name says
        url = result["clusters"]["standby"]["webhdfs"]
        anonymous = requests.get(
            f"{url}/webhdfs/v1/", params={"op": "LISTSTATUS", "user.name": "hdfs"}, timeout=10
        )
        assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == "Negotiate"
        status = tandem("status", home=home)
        assert status.returncode == 0 and "billing:" in status.stdout, status.stdout + status.stderr
    finally:
        tandem("down", home=home)
    kdcs = subprocess.run(["pgrep", "-f", f"{home}/kerberos"], capture_output=True, text=True, check=False)
    assert kdcs.stdout.strip() == "", "the KDC outlived `tandem down`"


def test_a_killed_backup_is_detected_restored_and_promotion_lands_on_the_point(tmp_path):
    """The issue's acceptance: after `tandem demo`, a backup SIGKILLed mid-copy is seen by
    `verify --live`, undone by `restore`, and `promote` after another kill lands by itself."""
    import signal
    import time

    from tandem.hdfs.client import Hdfs
    from tandem_dev.embedded import manager

    home = tmp_path / "home"
    try:
        demo = tandem("demo", "--json", home=home)
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
        running = manager.running_topology(home)
        assert running is not None
        env = manager.connection_env(running)
        os.environ.update(env)
        try:
            src, dst = Hdfs.from_conn_id("webhdfs_primary"), Hdfs.from_conn_id("webhdfs_standby")
        finally:
            for key in env:
                os.environ.pop(key, None)

        def kill_a_backup_mid_copy(batch: str) -> None:
            for i in range(120):
                src.write(f"/data/billing/details/{batch}/f-{i:03d}", os.urandom(20_000))
            child = subprocess.Popen(
                [TANDEM, "backup", "billing", "--home", str(home)],
                cwd=PROJECT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and child.poll() is None:
                copied = dst.status(f"/data/billing/details/{batch}")
                if copied is not None and copied.children_num >= 10:
                    break
                time.sleep(0.05)
            assert child.poll() is None, "the backup ended before it could be killed"
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()

        kill_a_backup_mid_copy("bulk-1")
        found = tandem("verify", "billing", "--live", "--cluster", "standby", home=home)
        assert found.returncode == 1, found.stdout + found.stderr
        assert "/data/billing/details/bulk-1: directory with" in found.stdout

        restored = tandem("restore", "billing", "--cluster", "standby", "--yes", home=home)
        assert restored.returncode == 0, restored.stdout + restored.stderr
        assert "verified: standby is at the point" in restored.stdout
        again = tandem("verify", "billing", "--live", "--cluster", "standby", home=home)
        assert again.returncode == 0, again.stdout + again.stderr

        kill_a_backup_mid_copy("bulk-2")
        promoted = tandem("promote", "standby", "--confirm", "standby", "--json", home=home)
        assert promoted.returncode == 0, promoted.stdout + promoted.stderr
        result = json.loads(promoted.stdout)
        assert result["outcome"] == "promoted"
        [billing] = result["businesses"]
        assert (
            billing["restored"] and billing["point"] == json.loads(demo.stdout)["restore_points"][-1]["point"]
        )
        at_point = tandem("verify", "billing", "--live", "--cluster", "standby", "--json", home=home)
        assert at_point.returncode == 0 and json.loads(at_point.stdout)["ok"]
        status = tandem("status", "--json", home=home)
        assert '"active"' in status.stdout
    finally:
        tandem("down", home=home)
