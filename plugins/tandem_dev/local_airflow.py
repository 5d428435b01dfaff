"""A local Airflow for the demo and the end-to-end tests: real Airflow, SQLite metadata DB.

Backup DAGs run through ``airflow dags test`` (the scheduler's own task runner, in process),
with the project's DAG folder and include/ directory. Nothing here is needed in production,
where Tandem runs inside an existing Airflow deployment.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from tandem.airflow_cli import AirflowCommand, DagTestResult, airflow_bin

log = logging.getLogger(__name__)

__all__ = ["DagTestResult", "LocalAirflow", "airflow_bin"]


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
