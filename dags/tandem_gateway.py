"""Airflow DAG file: one replay DAG per write-gateway plan in include/gateway.

Thin on purpose: the factory lives in tandem.dags.gateway. TANDEM_INCLUDE overrides where the
plans and clusters.yaml are read from (default: the project's include/ beside this folder).
"""

import os
from pathlib import Path

from airflow.sdk import get_parsing_context

from tandem.dags.gateway import load_gateway_dags

_include = Path(os.environ.get("TANDEM_INCLUDE", Path(__file__).resolve().parent.parent / "include"))
globals().update(load_gateway_dags(_include, only_dag_id=get_parsing_context().dag_id))
