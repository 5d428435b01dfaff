"""Airflow DAG file: one backup DAG per business policy in include/policies, and tandem_restore.

Thin on purpose: the factory lives in tandem.dags.backup. TANDEM_INCLUDE overrides where the
policies and clusters.yaml are read from (default: the project's include/ beside this folder).
"""

import os
from pathlib import Path

from airflow.sdk import get_parsing_context

from tandem.dags.backup import load_backup_dags

_include = Path(os.environ.get("TANDEM_INCLUDE", Path(__file__).resolve().parent.parent / "include"))
globals().update(load_backup_dags(_include, only_dag_id=get_parsing_context().dag_id))
