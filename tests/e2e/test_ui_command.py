"""`tandem ui --json` as a new user runs it: Airflow on the embedded clusters, the Disaster
recovery page behind Airflow's login, and Ctrl-C stopping it."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]

PROJECT = Path(__file__).resolve().parents[2]
TANDEM = str(Path(sys.executable).parent / "tandem")


def test_tandem_ui_serves_the_page_behind_the_login_until_interrupted(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "TANDEM_"))}
    log = (tmp_path / "ui.err").open("w")
    proc = subprocess.Popen(
        [TANDEM, "ui", "--json", "--home", str(home)],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(ln) for ln in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
        line = lines.get(timeout=400)
        info = json.loads(line)
        assert set(info) == {"url", "username", "password"} and info["url"].endswith("/plugin/tandem")
        base = info["url"].rsplit("/plugin/tandem", 1)[0]
        assert requests.get(f"{base}/tandem/api/businesses", timeout=30).status_code == 401
        token = requests.post(
            f"{base}/auth/token",
            json={"username": info["username"], "password": info["password"]},
            timeout=30,
        ).json()["access_token"]
        got = requests.get(
            f"{base}/tandem/api/businesses", headers={"Authorization": f"Bearer {token}"}, timeout=60
        )
        assert got.status_code == 200, got.text[:500]
        assert "billing" in {row["business"] for row in got.json()}
        page = requests.get(f"{base}/tandem/ui/", headers={"Authorization": f"Bearer {token}"}, timeout=60)
        assert page.status_code == 200 and '<a href="business/billing">billing</a>' in page.text
        _in_the_browser(base, token)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
        subprocess.run(
            [TANDEM, "down", "--home", str(home)], cwd=PROJECT, env=env, capture_output=True, timeout=120
        )


ARTIFACTS = PROJECT / "test-artifacts"


def _in_the_browser(base: str, token: str) -> None:
    """Debian's chromium, driven by Playwright with the system browser (never `playwright
    install`): signed in with Airflow's own session cookie, the nav page shows Tandem's page in
    its frame, billing's row included; the screenshot is kept as an artifact."""
    from playwright.sync_api import sync_playwright

    chromium = "/usr/bin/chromium"
    assert Path(chromium).exists(), "Debian's chromium is missing: `make test` installs it"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            context.add_cookies([{"name": "_token", "value": token, "url": base}])
            tab = context.new_page()
            tab.goto(f"{base}/plugin/tandem")
            frame = tab.frame_locator("iframe[title='Disaster recovery']")
            frame.locator("#businesses").get_by_text("billing", exact=True).wait_for(timeout=60_000)
            counts = " ".join(frame.locator("#counts").inner_text().split())
            # a fresh home: billing has no restore point yet, and the header counts it so
            assert "met 0" in counts and "no point yet 1" in counts, counts
            tab.screenshot(path=str(ARTIFACTS / "disaster-recovery-page.png"), full_page=True)
            # the DAG tab of a DAG that is not a backup DAG says so
            tab.goto(f"{base}/tandem/ui/dag/example_etl")
            assert "is not a Tandem DAG" in tab.inner_text("#verdict")
        finally:
            browser.close()
