"""The gateway part of ``tandem demo``: a few hundred writes through a gateway of plan
``events`` (include/gateway/events.yaml), their spread over the two primaries, a standby
outage during which writes are acknowledged as pending, and the replay DAG putting the standby
back, checked byte for byte."""

from __future__ import annotations

import json
import posixpath
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from tandem.errors import TandemError
from tandem.hdfs.client import Hdfs

PLAN = "events"
ROOT = "/events"
STANDBY_ROOT = "/backup/events"


def _tandem(args: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "tandem.cli", *args], env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise TandemError(f"tandem {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


@contextmanager
def serving(home: str, env: dict[str, str], plan: str = PLAN) -> Iterator[str]:
    """``tandem gateway serve PLAN`` in a child process (replay left to the caller); yields its URL."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tandem.cli",
            "gateway",
            "serve",
            plan,
            "--home",
            home,
            "--json",
            "--no-worker",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # Airflow's own log lines may come first
            if line.startswith("{"):
                yield str(json.loads(line)["url"])
                return
        raise TandemError(f"the gateway of plan {plan} exited before it answered")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _write_batch(url: str, token: str, prefix: str, count: int) -> list[tuple[str, bytes, str, str]]:
    session = requests.Session()

    def one(i: int) -> tuple[str, bytes, str, str]:
        path = f"{ROOT}/{prefix}/click-{i:04d}.json"
        body = json.dumps({"click": i, "batch": prefix, "page": f"/p/{i % 17}"}).encode() * 8
        r = session.put(
            f"{url}/webhdfs/v1{path}",
            params={"op": "CREATE", "data": "true", "overwrite": "true", "delegation": token},
            data=body,
            timeout=60,
        )
        if r.status_code != 201:
            raise TandemError(f"gateway refused {path}: {r.status_code} {r.text[:200]}")
        return path, body, r.headers["X-Tandem-Primary"], r.headers["X-Tandem-Backup"]

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(count)))


def run_gateway_demo(home: Path, airflow: Any, standby: Hdfs, say: Callable[[str], None]) -> dict[str, Any]:
    """Returns what the demo prints as JSON; ``standby`` is checked byte for byte at the end."""
    from tandem_dev.embedded import manager

    env = airflow.env()
    token = _tandem(["gateway", "token", PLAN, "--user", "web", "--home", str(home)], env).strip()
    say(f"Write gateway: plan {PLAN}, token issued for user web (only its hash is kept, in Airflow)")
    with serving(str(home), env) as url:
        say(f"  serving WebHDFS at {url}/webhdfs/v1 (any WebHDFS client; hdfs.TokenClient, fsspec token=)")
        started = time.monotonic()
        written = _write_batch(url, token, "batch-1", 300)
        seconds = time.monotonic() - started
        spread = {p: sum(1 for w in written if w[2] == p) for p in ("primary", "primary2")}
        say(
            f"  300 sync writes in {seconds:.1f} s, {sum(w[3] == 'done' for w in written)} backed up at once;"
            " "
            f"spread: {spread}"
        )
        down_at = manager.kill_cluster(home, "standby")
        say("  standby killed (SIGKILL); writing 60 more...")
        during = _write_batch(url, token, "batch-2", 60)
        pending = sum(1 for w in during if w[3] == "pending")
        status = json.loads(_tandem(["gateway", "status", PLAN, "--home", str(home), "--json"], env))
        say(
            f"  {pending} of 60 acknowledged as pending (marked on their primary); plan degraded: "
            f"{status['degraded']}"
        )
        manager.restart_cluster(home, "standby")
        say(f"  standby back after {time.time() - down_at:.1f} s; running tandem_gateway_replay__{PLAN}...")
    at = datetime.now(UTC).replace(microsecond=0)
    outcome = airflow.dags_test(f"tandem_gateway_replay__{PLAN}", at)
    if not outcome.ok:
        raise TandemError(f"tandem_gateway_replay__{PLAN} {outcome.state}:\n{outcome.failure_reason()}")
    mismatched = [
        path
        for path, body, _p, _b in written + during
        if standby.read_bytes(posixpath.normpath(STANDBY_ROOT + path)) != body
    ]
    status = json.loads(_tandem(["gateway", "status", PLAN, "--home", str(home), "--json"], env))
    say(
        f"  replayed in {outcome.seconds:.0f} s; standby holds all {len(written) + len(during)} files "
        f"byte for byte: "
        f"{not mismatched}; plan degraded: {status['degraded']}"
    )
    return {
        "plan": PLAN,
        "writes": len(written) + len(during),
        "spread": spread,
        "pending_during_outage": pending,
        "standby_mismatched": len(mismatched),
        "degraded_after_replay": status["degraded"],
    }
