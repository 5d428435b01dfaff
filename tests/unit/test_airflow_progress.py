"""What `tandem backup` shows while `airflow dags test` runs: each task's start and Tandem's own
log lines, nothing of Airflow's machinery (lines as Airflow 3.3's `dags test` prints them)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tandem.airflow_cli import progress_of

LINES = [
    "2026-12-02T16:55:20.081441Z [info     ] [DAG TEST] starting task_id=snapshot.take map_index=-1 "
    "[airflow.sdk.definitions.dag] loc=dag.py:1501",
    "2026-12-02T16:55:25.671360Z [info     ] Task started                   "
    "[airflow.api_fastapi.execution_api.routes.task_instances] correlation_id=01a2 hostname=vm",
    "2026-12-02T16:55:25.845222Z [info     ] Fetching status for '/'.       [hdfs.client] loc=client.py:320",
    "2026-12-02T16:55:26.091874Z [info     ] full copy /data/x: 3/12 files, 0.1/0.4 MB, 2.0 MB/s "
    "[tandem.copy.webhdfs] loc=webhdfs.py:270",
    "2026-12-02T16:55:27.000000Z [warning  ] quarantined /data/x/a -> /.tandem/quarantine/a "
    "[tandem.backup.sync] loc=sync.py:131",
    "2026-12-02T16:55:28.138017Z [info     ] [DAG TEST] end task task_id=apply_retention map_index=-1 "
    "[airflow.sdk.definitions.dag] loc=dag.py:1563",
]


def test_progress_is_each_tasks_start_and_tandems_own_lines() -> None:
    assert [said for line in LINES if (said := progress_of(line)) is not None] == [
        "task snapshot.take",
        "full copy /data/x: 3/12 files, 0.1/0.4 MB, 2.0 MB/s",
        "warning: quarantined /data/x/a -> /.tandem/quarantine/a",
    ]


HANGING_AIRFLOW = (
    "#!/bin/sh\n"
    "exec python3 -c \"import subprocess, time; subprocess.Popen(['sleep', '60']); "
    "print('started', flush=True); time.sleep(600)\"\n"
)


def test_a_run_past_its_timeout_is_stopped_whatever_holds_its_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task's own child (a distcp) holding the output open once kept the read, and the
    command, going past the timeout: the run is stopped at its timeout and says so, whatever
    holds its output (found by an adversarial read)."""
    from tandem import airflow_cli

    fake = tmp_path / "airflow"
    fake.write_text(HANGING_AIRFLOW)
    fake.chmod(0o755)
    monkeypatch.setattr(airflow_cli, "airflow_bin", lambda: fake)
    began = time.monotonic()
    result = airflow_cli.AirflowCommand().dags_test("d", datetime.now(UTC), timeout=2)
    assert time.monotonic() - began < 30
    assert result.state == "failed" and "did not end within 2 s" in result.output
