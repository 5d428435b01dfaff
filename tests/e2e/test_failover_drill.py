"""`tandem drill --json` end to end: embedded clusters, a real `airflow standalone`, the REST API."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tandem_dev.embedded import manager

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.xdist_group("airflow"),
    pytest.mark.timeout(1200),
]

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture
def drill_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("drill-home")
    yield home
    manager.down(home)


def drill(home: Path, *options: str) -> tuple[dict[str, object], subprocess.CompletedProcess[str]]:
    done = subprocess.run(
        [sys.executable, "-m", "tandem.cli", "drill", "--json", "--home", str(home), *options],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=1100,
        check=False,
    )
    assert done.stdout.strip(), f"no output (exit {done.returncode}):\n{done.stderr[-6000:]}"
    return json.loads(done.stdout), done


def test_drill_fails_over_without_losing_writes_and_fails_back_when_run_again(drill_home: Path) -> None:
    result, done = drill(drill_home)
    met = result["targets_met"]
    assert isinstance(met, dict)
    assert met["no acknowledged write lost after the switch"] and met["no switch during the split brain"]
    # Detection and switch times are goals the drill measures and reports (its exit code says
    # whether they were met); on a loaded CI machine they measure the machine, so they are not
    # asserted here. bench/ and the drill's own output carry those figures.
    timing_missed = [goal for goal, ok in met.items() if not ok and " under " in goal]
    assert done.returncode == (1 if timing_missed else 0), json.dumps(result, indent=2) + done.stderr[-4000:]
    assert result["detect_s"] > 0 and result["switch_s"] >= 0  # type: ignore[operator]
    assert result["writes_lost_after_switch"] == 0
    assert result["writes_acknowledged_after_switch"] > 0  # type: ignore[operator]
    assert result["split_brain_switched"] is False
    # the watch asked for the decision (one run per incident) and the answer promoted
    assert str(result["promotion_asked_by_run"]).startswith("incident__failed:primary:")
    assert result["roles"] == {"primary": "standby", "standby": "active"}
    reverse = result["reverse_restore_point"]
    assert isinstance(reverse, dict) and (reverse["source"], reverse["target"]) == ("standby", "primary")
    reasons = result["reasons"]
    assert isinstance(reasons, dict)
    assert reasons["detection"].startswith("primary, the active cluster, is unreachable")
    assert reasons["switch"].endswith("standby is active and alive: switching to standby")
    assert reasons["split_brain"].startswith("split brain: both primary (active, alive")
    assert {"rpo_s", "writes_acknowledged"} <= set(result)
    # the api-server serves Tandem's page behind its own auth: the first point is there
    page = result["page"]
    assert isinstance(page, dict) and page["anonymous_status"] == 401 and page["html_lists_business"]
    assert page["business"]["newest_point"] is not None and page["business"]["compliance"] == "met"
    assert page["business"]["last_run_state"] == "success"

    # the same drill the other way round: the standby fails and the primary takes over again
    again, done = drill(drill_home)
    assert again["writes_lost_after_switch"] == 0, json.dumps(again, indent=2) + done.stderr[-4000:]
    assert again["roles"] == {"primary": "active", "standby": "standby"}
    reverse = again["reverse_restore_point"]
    assert isinstance(reverse, dict) and (reverse["source"], reverse["target"]) == ("primary", "standby")


def test_drill_runs_kerberized(drill_home: Path) -> None:
    """The same failover with every server demanding Kerberos (`tandem drill --kerberos`): the
    watch in the triggerer, the HITL promotion, the application client and the backups all
    authenticate as Tandem and require each server to prove itself."""
    result, done = drill(drill_home, "--kerberos")
    assert result["writes_lost_after_switch"] == 0 and result["split_brain_switched"] is False
    assert str(result["promotion_asked_by_run"]).startswith("incident__failed:primary:")
    assert result["roles"] == {"primary": "standby", "standby": "active"}
    issued = (drill_home / "kerberos" / "kdc.log").read_text(errors="replace")
    for service in ("HTTP/127.0.0.1", "zookeeper/127.0.0.1"):  # the drill's business is HDFS only
        assert f"tandem@TANDEM.TEST for {service}@TANDEM.TEST" in issued, done.stderr[-3000:]
