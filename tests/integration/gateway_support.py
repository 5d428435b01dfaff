"""Helpers for the write gateway's integration tests: a plan and include directory per test
module, a ``tandem gateway serve`` subprocess (read its JSON line, SIGKILL it at the end), the
``status``/``replay`` commands, and direct superuser clients to check what the clusters hold.

The gateway is driven only as a user drives it: its command line, and WebHDFS clients pointed
at its URL.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hdfs import InsecureClient

from tandem.gateway.routing import BucketMap

ROOT = Path(__file__).resolve().parents[2]
TANDEM = [sys.executable, "-m", "tandem.cli"]
START_TIMEOUT_S = 60.0
COMMAND_TIMEOUT_S = 120.0


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def payload(name: str, size: int) -> bytes:
    """Deterministic, name-dependent bytes (so a copy of the wrong file never matches)."""
    return random.Random(hashlib.sha256(name.encode()).digest()).randbytes(size)


@dataclass
class GatewayPlan:
    """A plan written into an include directory of its own, with one token for user ``web``."""

    name: str
    include: Path
    home: Path
    primaries: tuple[str, ...]
    standby: str
    target_root: str
    roots: tuple[str, ...]
    buckets: int
    token: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def routes(self) -> BucketMap:
        return BucketMap.even(self.name, self.primaries, self.buckets, "md5")

    def primary_of(self, path: str) -> str:
        return self.routes.route(path)

    def standby_path(self, path: str) -> str:
        return self.target_root.rstrip("/") + path

    def names_on(self, directory: str, primary: str, count: int, stem: str = "f") -> list[str]:
        """``count`` paths under ``directory`` that the plan routes to ``primary``."""
        found: list[str] = []
        i = 0
        while len(found) < count:
            path = f"{directory}/{stem}{i:04d}.bin"
            if self.primary_of(path) == primary:
                found.append(path)
            i += 1
        return found


def write_plan(
    base: Path,
    home: Path,
    name: str,
    *,
    mode: str = "sync",
    interval: str = "1s",
    primaries: tuple[str, ...] = ("primary", "primary2"),
    standby: str = "standby",
    buckets: int = 1000,
    token: str | None = None,
    extra: dict[str, Any] | None = None,
) -> GatewayPlan:
    """``base/include`` with the project's clusters.yaml and ``gateway/<name>.yaml``, and the
    environment a gateway command needs (its token's hash in AIRFLOW_VAR_...)."""
    include = base / "include"
    (include / "gateway").mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "include" / "clusters.yaml", include / "clusters.yaml")
    target_root = f"/backup/{name}"
    doc: dict[str, Any] = {
        "plan": name,
        "roots": [f"/{name}"],
        "primaries": list(primaries),
        "routing": {"hash": "md5", "buckets": buckets},
        "target": {"cluster": standby, "root": target_root},
        "mode": mode,
    }
    if mode == "async":
        doc["async"] = {"interval": interval}
    doc.update(extra or {})
    (include / "gateway" / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    token = token or f"tok-{name}-{os.urandom(8).hex()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "TANDEM_"))}
    env.update(
        {
            "TANDEM_INCLUDE": str(include),
            f"AIRFLOW_VAR_TANDEM_GATEWAY_TOKENS__{name.upper()}": json.dumps(
                {sha256(token.encode()): {"user": "web"}}
            ),
            # no Airflow of the developer's: the home's environment file names the one to use
            "AIRFLOW_HOME": str(base / "no-airflow-here"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return GatewayPlan(
        name, include, home, tuple(primaries), standby, target_root, (f"/{name}",), buckets, token, env
    )


@dataclass
class Gateway:
    """A running ``tandem gateway serve`` process."""

    process: subprocess.Popen[str]
    url: str
    webhdfs: str
    stderr_path: Path

    def kill(self) -> None:
        """SIGKILL, as a crash would; waits until the process is gone."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def log(self) -> str:
        try:
            return self.stderr_path.read_text()[-6000:]
        except OSError:
            return ""


def _read_line(stream: Any, out: queue.Queue[str | None]) -> None:
    try:
        out.put(stream.readline())
    except Exception:
        out.put(None)


@contextlib.contextmanager
def gateway(plan: GatewayPlan, *options: str, log_dir: Path | None = None) -> Iterator[Gateway]:
    """``tandem gateway serve PLAN --home HOME --json``; yields once its JSON line is read
    (within START_TIMEOUT_S), SIGKILLs it at the end."""
    log_dir = log_dir or plan.include.parent
    log_dir.mkdir(parents=True, exist_ok=True)
    stderr_path = log_dir / f"gateway-{plan.name}-{time.monotonic_ns()}.log"
    with stderr_path.open("w") as err:
        process = subprocess.Popen(
            [*TANDEM, "gateway", "serve", plan.name, "--home", str(plan.home), "--json", *options],
            env=plan.env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    running = Gateway(process, "", "", stderr_path)
    try:
        assert process.stdout is not None
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_read_line, args=(process.stdout, lines), daemon=True).start()
        try:
            line = lines.get(timeout=START_TIMEOUT_S)
        except queue.Empty:
            raise AssertionError(f"gateway printed nothing in {START_TIMEOUT_S}s:\n{running.log()}") from None
        if not line:
            process.wait(timeout=10)
            raise AssertionError(f"gateway exited ({process.returncode}) before answering:\n{running.log()}")
        info = json.loads(line)
        assert info["plan"] == plan.name, info
        running.url, running.webhdfs = info["url"], info["webhdfs"]
        yield running
    finally:
        running.kill()
        if process.stdout is not None:
            process.stdout.close()


def command(plan: GatewayPlan, action: str, *options: str) -> dict[str, Any]:
    """``tandem gateway <action> PLAN --home HOME --json``, its JSON output (exit code checked
    by the caller through ``returncode`` in the result)."""
    done = subprocess.run(
        [*TANDEM, "gateway", action, plan.name, "--home", str(plan.home), "--json", *options],
        env=plan.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    assert lines, (
        f"`tandem gateway {action}` printed no JSON (rc {done.returncode}):\n{done.stdout}\n{done.stderr}"
    )
    doc: dict[str, Any] = json.loads(lines[-1])
    doc["returncode"] = done.returncode
    doc["stderr"] = done.stderr[-3000:]
    return doc


def status(plan: GatewayPlan) -> dict[str, Any]:
    return command(plan, "status")


def served_status(gw: Gateway, plan: GatewayPlan) -> dict[str, Any]:
    """The running gateway's own status document (``/tandem/status``): the same sides as
    ``tandem gateway status``, without starting a process."""
    import requests

    got = requests.get(f"{gw.url}/tandem/status", params={"delegation": plan.token}, timeout=30)
    got.raise_for_status()
    doc: dict[str, Any] = got.json()
    return doc


def replay(plan: GatewayPlan, *options: str) -> dict[str, Any]:
    return command(plan, "replay", *options)


def wait_for(what: str, condition: Callable[[], Any], timeout: float = 30.0, every: float = 0.1) -> Any:
    """Poll ``condition`` until it returns something truthy; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = condition()
        except Exception as exc:  # a cluster still starting, say
            last = exc
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(every)


def superusers(urls: dict[str, str]) -> dict[str, InsecureClient]:
    """Direct clients (user hdfs) to each cluster, bypassing the gateway."""
    return {name: InsecureClient(url, user="hdfs", timeout=30) for name, url in urls.items()}


def read_or_none(client: InsecureClient, path: str) -> bytes | None:
    if client.status(path, strict=False) is None:
        return None
    with client.read(path) as reader:
        data: bytes = reader.read()
    return data


def create(
    webhdfs: str,
    token: str,
    path: str,
    data: Any,
    *,
    overwrite: bool = False,
    session: Any = None,
    timeout: float = 60.0,
) -> Any:
    """A CREATE as curl does it: the 307 step, then the body to its Location. Returns the
    data step's response (``requests.Response``); raises what requests raises."""
    import requests

    http = session or requests
    query = f"op=CREATE&delegation={token}&overwrite={'true' if overwrite else 'false'}"
    step = http.put(f"{webhdfs}{path}?{query}", allow_redirects=False, timeout=timeout)
    if step.status_code != 307:
        return step
    return http.put(step.headers["Location"], data=data, timeout=timeout)
