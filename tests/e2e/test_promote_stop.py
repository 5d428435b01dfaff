"""``tandem promote --stop-backups`` against a real Airflow metadata database: a backup task
marked failed from outside (what ``stop`` does, like "Mark failed" in the UI) still counts as in
flight while its process lives, so promotion never lands a cluster a task still writes into.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tandem_dev.local_airflow import LocalAirflow

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("airflow"), pytest.mark.timeout(600)]

DAG_ID = "tandem_backup__stopped"

# a run and its copy task as Airflow records them while a worker on this host runs the task
_RECORD = textwrap.dedent(
    """
    import json, sys, uuid
    from datetime import datetime, timezone
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.net import get_hostname
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState
    dag_id, pid = sys.argv[1], int(sys.argv[2])
    now = datetime.now(timezone.utc)
    with create_session() as session:
        run = DagRun(dag_id=dag_id, run_id="manual__stop", run_type="manual", state=DagRunState.RUNNING,
                     start_date=now)
        session.add(run)
        session.flush()
        session.execute(TaskInstance.__table__.insert().values(
            id=uuid.uuid4(), dag_id=dag_id, task_id="copy_hdfs", run_id="manual__stop",
            map_index=-1, state=TaskInstanceState.RUNNING, pool="default_pool", pid=pid,
            hostname=get_hostname(), start_date=now, last_heartbeat_at=now, try_number=1))
    print(json.dumps("ok"))
    """
)


def test_a_task_marked_failed_counts_as_in_flight_until_its_process_ends(local_airflow: LocalAirflow):
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        recorded = subprocess.run(
            [sys.executable, "-c", _RECORD, DAG_ID, str(worker.pid)],
            env=local_airflow.env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert recorded.returncode == 0, recorded.stderr[-3000:]
        assert json.loads(recorded.stdout.strip().splitlines()[-1]) == "ok"

        assert local_airflow.in_flight([DAG_ID, "tandem_backup__other"]) == [DAG_ID]
        assert local_airflow.stop([DAG_ID]) == [f"{DAG_ID}/manual__stop"]
        # the run and its task say failed now, but the task's process still runs
        assert local_airflow.in_flight([DAG_ID]) == [DAG_ID]
    finally:
        worker.kill()
        worker.wait()
    assert local_airflow.in_flight([DAG_ID]) == []
