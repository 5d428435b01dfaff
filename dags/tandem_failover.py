"""Airflow DAG file: the failover watch and promotion DAGs of every pair in include/clusters.yaml.

Thin on purpose: the factory lives in tandem.dags.failover. TANDEM_INCLUDE overrides where
clusters.yaml is read from (default: the project's include/ beside this folder).
"""

import os
from pathlib import Path

from airflow.sdk import get_parsing_context

from tandem.dags.failover import load_failover_dags

_include = Path(os.environ.get("TANDEM_INCLUDE", Path(__file__).resolve().parent.parent / "include"))
globals().update(load_failover_dags(_include, only_dag_id=get_parsing_context().dag_id))
