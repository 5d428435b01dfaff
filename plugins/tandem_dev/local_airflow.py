"""A local Airflow for the demo, the drill and the end-to-end tests: real Airflow, SQLite metadata DB.

Two ways to run it, both with the project's DAG folder and include/ directory:
:class:`LocalAirflow` runs backup DAGs through ``airflow dags test`` (the scheduler's own task
runner, in process); :class:`AirflowServer` runs ``airflow standalone`` (scheduler, triggerer,
API server) and drives it through the REST API v2, as the drill and ``tandem ui`` do. Nothing
here is needed in production, where Tandem runs inside an existing Airflow deployment.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tandem.airflow_cli import AirflowCommand, DagTestResult, airflow_bin
from tandem.errors import TandemError

log = logging.getLogger(__name__)

__all__ = ["PARKED", "AirflowServer", "DagTestResult", "LocalAirflow", "airflow_bin"]


@dataclass(frozen=True)
class LocalAirflow(AirflowCommand):
    """An AIRFLOW_HOME with a migrated SQLite database, pointed at the project's DAGs."""

    home: Path
    project: Path
    conn_env: tuple[tuple[str, str], ...] = ()
    extra_env: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        return f"AIRFLOW_HOME {self.home}"

    def env(self) -> dict[str, str]:
        return {**os.environ, **self.overrides()}

    def overrides(self) -> dict[str, str]:
        """What this Airflow sets on top of the process's environment."""
        env: dict[str, str] = {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.project / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
            "AIRFLOW__API__HOST": "127.0.0.1",
            # the run's final state is read from its INFO log
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "TANDEM_INCLUDE": str(self.project / "include"),
            "PATH": f"{airflow_bin().parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "DO_NOT_TRACK": "1",
            "SCARF_NO_ANALYTICS": "1",
        }
        return {**env, **dict(self.conn_env), **dict(self.extra_env)}

    def ensure_db(self) -> None:
        """``airflow db migrate`` once per home (about 20 s); later calls return at once."""
        marker = self.home / ".tandem-migrated"
        if marker.exists():
            return
        self.home.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        self.run(["db", "migrate"], timeout=600)
        marker.write_text("ok\n")
        log.info("airflow db migrate: %.1f s", time.monotonic() - started)


# --------------------------------------------------------------------------- airflow standalone


# a task waiting for a person: AWAITING_INPUT in Airflow 3.3 (HITL), DEFERRED before
PARKED = ("awaiting_input", "deferred")


class AirflowServer:
    """``airflow standalone`` in its own process group, driven through the REST API v2."""

    def __init__(self, home: Path, env: Mapping[str, str], port: int) -> None:
        self.home = home
        self.env = dict(env)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = home / "standalone.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._token: str | None = None

    def start(self) -> None:
        from tandem_dev.local_airflow import airflow_bin

        self.home.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            # its own session: stopping standalone does not stop its children, the group does
            self._proc = subprocess.Popen(
                [str(airflow_bin()), "standalone"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the whole process group, SIGKILL what is left after ``timeout``. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
            # the group may outlive its leader: wait for the rest of it too
            deadline = time.monotonic() + wait
            while _group_alive(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not _group_alive(proc.pid):
                return

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self, timeout: float = 300.0) -> None:
        """Until the API answers, scheduler, triggerer and DAG processor are healthy, and we have a token."""

        deadline = time.monotonic() + timeout
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise TandemError(f"airflow standalone exited {self._proc.returncode}:\n{self.log_tail()}")
            try:
                health = requests.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
                parts = ("scheduler", "triggerer", "dag_processor")
                if all((health.get(p) or {}).get("status") == "healthy" for p in parts) and self._login():
                    return
            except (requests.RequestException, ValueError):
                pass
            if time.monotonic() > deadline:
                raise TandemError(f"Airflow was not ready within {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(1.0)

    def password(self) -> str | None:
        """The admin's password that ``airflow standalone`` generated (None before it did)."""
        passwords = self.home / "simple_auth_manager_passwords.json.generated"
        if not passwords.exists():
            return None
        return str(json.loads(passwords.read_text())["admin"])

    def _login(self) -> bool:

        password = self.password()
        if password is None:
            return False
        answer = requests.post(
            f"{self.url}/auth/token", json={"username": "admin", "password": password}, timeout=10
        )
        if answer.status_code not in (200, 201):
            return False
        self._token = str(answer.json()["access_token"])
        return True

    def api(self, method: str, path: str, body: dict[str, Any] | None = None, attempts: int = 5) -> Any:
        """One REST call; raises TandemError with Airflow's answer on an error status.

        A 5xx is retried: with SQLite, the scheduler, triggerer and API server contend for one
        database file and a write can fail with "database is locked" (rolled back, so a retry is
        safe; runs are created with their own id, so a retried POST cannot create two).
        """

        for attempt in range(1, attempts + 1):
            answer = requests.request(
                method,
                f"{self.url}/api/v2{path}",
                json=body,
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=30,
            )
            if answer.status_code < 500 or attempt == attempts:
                break
            time.sleep(0.5 * attempt)
        if answer.status_code >= 400:
            raise TandemError(f"{method} {path}: HTTP {answer.status_code}: {answer.text[:500]}")
        return answer.json() if answer.content else None

    def page(self, path: str, authenticated: bool = True) -> tuple[int, Any]:
        """A GET of Tandem's plugin app (``/tandem/...``) as served by this api-server."""

        headers = {"Authorization": f"Bearer {self._token}"} if authenticated else {}
        answer = requests.get(f"{self.url}/tandem{path}", headers=headers, timeout=60)
        return answer.status_code, answer.json() if "json" in answer.headers.get(
            "content-type", ""
        ) else answer.text

    def wait_dag(self, dag_id: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.api("GET", f"/dags/{dag_id}")
                return
            except TandemError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        """POST a run with ``conf`` (what an operator does from the UI or a script); its run id."""
        run_id = f"drill__{time.time_ns()}"
        body = {"dag_run_id": run_id, "logical_date": None, "conf": conf}
        try:
            self.api("POST", f"/dags/{dag_id}/dagRuns", body)
        except TandemError as exc:
            if "HTTP 409" not in str(exc):  # a retried POST whose first attempt did create the run
                raise
        return run_id

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 300.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run: dict[str, Any] = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in ("success", "failed"):
                return run
            if time.monotonic() > deadline:
                raise TandemError(f"{dag_id} run {run_id} still {run['state']} after {timeout:.0f} s")
            time.sleep(0.5)

    def deferred_watch(self, dag_id: str) -> bool:
        """Whether the newest run of a watch DAG has its ``watch`` task deferred (armed)."""
        runs = self.api("GET", f"/dags/{dag_id}/dagRuns?order_by=-run_after&limit=1")["dag_runs"]
        if not runs:
            return False
        ti = self.api("GET", f"/dags/{dag_id}/dagRuns/{runs[0]['dag_run_id']}/taskInstances/watch")
        return bool(ti["state"] == "deferred")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
