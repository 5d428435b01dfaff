"""Stand-ins for configuration files that do not validate (policies, gateway plans).

Airflow records a DAG that fails validation as an import error of the file that defined it
while keeping that file's other DAGs, so bad files show up in Airflow's UI and REST API as a
readable import error (file, field, reason for each) and never stop the good files' DAGs.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import DAG


class ConfigFilesInvalid(ValueError):
    """Raised at DAG validation for invalid configuration files (see :class:`ConfigErrorsDag`)."""


class ConfigErrorsDag(DAG):
    """Stands for the files that do not validate: its validation fails with their errors."""

    def validate(self) -> None:
        raise ConfigFilesInvalid(self.description or "invalid configuration files")


def errors_dag(dag_id: str, what: str, lines: list[str]) -> DAG:
    """The stand-in ``dag_id`` for ``what`` (e.g. "invalid policy files"), one error a line."""
    return ConfigErrorsDag(
        dag_id=dag_id,
        description=f"{what}:\n" + "\n".join(lines),
        schedule=None,
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
    )
