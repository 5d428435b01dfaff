"""A local Airflow for the demo and the end-to-end tests: real Airflow, SQLite metadata DB.

Backup DAGs run through ``airflow dags test`` (the scheduler's own task runner, in process),
with the project's DAG folder and include/ directory. Nothing here is needed in production,
where Tandem runs inside an existing Airflow deployment.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tandem.errors import TandemError

log = logging.getLogger(__name__)

_STATE = re.compile(r"state=(?P<state>success|failed)", re.IGNORECASE)


def airflow_bin() -> Path:
    """The ``airflow`` script of the running interpreter's environment."""
    return Path(sys.executable).parent / "airflow"


@dataclass(frozen=True)
class LocalAirflow:
    """An AIRFLOW_HOME with a migrated SQLite database, pointed at the project's DAGs."""

    home: Path
    project: Path
    conn_env: tuple[tuple[str, str], ...] = ()
    extra_env: tuple[tuple[str, str], ...] = ()

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.project / "dags"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
                "AIRFLOW__API__HOST": "127.0.0.1",
                # the run's final state is read from its INFO log
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "TANDEM_INCLUDE": str(self.project / "include"),
                "PATH": f"{airflow_bin().parent}{os.pathsep}{env.get('PATH', '')}",
                "DO_NOT_TRACK": "1",
                "SCARF_NO_ANALYTICS": "1",
            }
        )
        env.update(dict(self.conn_env))
        env.update(dict(self.extra_env))
        return env

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

    def run(self, args: list[str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """Run an ``airflow`` sub-command; raises TandemError with its output on failure."""
        result = subprocess.run(
            [str(airflow_bin()), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            tail = (result.stdout + result.stderr)[-4000:]
            raise TandemError(f"airflow {' '.join(args)} exited {result.returncode}:\n{tail}")
        return result

    def dags_test(
        self, dag_id: str, logical_date: datetime, conf: dict[str, object] | None = None
    ) -> DagTestResult:
        """Run a whole DAG run through ``airflow dags test``; returns its final state and log."""
        args = ["dags", "test", dag_id, logical_date.isoformat()]
        if conf:
            args += ["-c", json.dumps(conf)]
        started = time.monotonic()
        result = subprocess.run(
            [str(airflow_bin()), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        output = result.stdout + result.stderr
        states = _STATE.findall(output)
        state = states[-1].lower() if states else "unknown"
        if result.returncode != 0 and state == "success":
            state = "failed"
        return DagTestResult(dag_id, logical_date, state, output, round(time.monotonic() - started, 2))


@dataclass(frozen=True)
class DagTestResult:
    dag_id: str
    logical_date: datetime
    state: str
    output: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.state == "success"

    def failure_reason(self) -> str:
        """The last error lines of the run's log, for a readable failure message."""
        lines = [ln for ln in self.output.splitlines() if "Error" in ln or "error" in ln or "Traceback" in ln]
        return "\n".join(lines[-8:]) or self.output[-2000:]
