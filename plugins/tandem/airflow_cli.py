"""The ``airflow`` command of an environment, as ``tandem backup`` and ``tandem promote`` use it.

``dags_test`` runs a whole DAG run through ``airflow dags test`` (Airflow's own task runner, in
one process, against the metadata DB); ``in_flight`` and ``stop`` read and mark the runs of
given DAGs in that DB. Each call is a subprocess with the environment's configuration
(``AIRFLOW_HOME``, connections), so nothing here depends on how this process imported Airflow.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tandem.errors import TandemError

READ_AFTER_EXIT_S = 5.0
_STATE = re.compile(r"state=(?P<state>success|failed)", re.IGNORECASE)
# what `airflow dags test` says that a person following a run wants to see: each task's start,
# and Tandem's own log lines (its steps' progress and summaries), without Airflow's machinery
_TASK_START = re.compile(r"\[DAG TEST\] starting task_id=(?P<task>\S+)")
_TANDEM_LINE = re.compile(r"^\S+ \[(?P<level>\w+)\s*\] (?P<message>.*?)\s+\[tandem(?:\.[\w.]+)?\](?: |$)")


def progress_of(line: str) -> str | None:
    """The progress a line of ``airflow dags test`` output carries, or None."""
    started = _TASK_START.search(line)
    if started:
        return f"task {started['task']}"
    said = _TANDEM_LINE.match(line)
    if said:
        level = said["level"].lower()
        return said["message"] if level == "info" else f"{level}: {said['message']}"
    return None


def airflow_bin() -> Path:
    """The ``airflow`` script of the running interpreter's environment."""
    return Path(sys.executable).parent / "airflow"


class AirflowCommand:
    """The configured Airflow of this environment; subclasses change :meth:`env`."""

    def describe(self) -> str:
        return f"AIRFLOW_HOME {os.environ.get('AIRFLOW_HOME', '~/airflow')}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "INFO"  # the run's final state is read from its log
        return env

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

    def in_flight(self, dag_ids: Sequence[str]) -> list[str]:
        """The DAGs of ``dag_ids`` with a queued or running run, from this Airflow's metadata
        database (one short-lived interpreter with this Airflow's configuration)."""
        return self._metadata_script(_IN_FLIGHT, dag_ids, "cannot read Airflow's runs")

    def stop(self, dag_ids: Sequence[str]) -> list[str]:
        """Mark the queued or running runs of ``dag_ids`` failed (and their unfinished tasks),
        as "Mark failed" in the UI does; returns the run ids. A task still running is told by
        Airflow at its next heartbeat and ends; until then :meth:`in_flight` still counts it (no
        end date, its process alive or heartbeating)."""
        return self._metadata_script(_STOP, dag_ids, "cannot stop Airflow's runs")

    def _metadata_script(self, script: str, dag_ids: Sequence[str], failure: str) -> list[str]:
        """Run ``script`` (which prints a JSON list last) with this Airflow's configuration."""
        if not dag_ids:
            return []
        result = subprocess.run(
            [sys.executable, "-c", script, *dag_ids],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise TandemError(f"{failure}:\n{result.stderr[-2000:]}")
        return sorted(json.loads(result.stdout.strip().splitlines()[-1]))

    def dags_test(
        self,
        dag_id: str,
        logical_date: datetime,
        conf: dict[str, object] | None = None,
        progress: Callable[[str], None] | None = None,
        timeout: float = 1800,
    ) -> DagTestResult:
        """Run a whole DAG run through ``airflow dags test``; returns its final state and log.
        ``progress`` is told each task's start and Tandem's log lines as the run goes."""
        args = ["dags", "test", dag_id, logical_date.isoformat()]
        if conf:
            args += ["-c", json.dumps(conf)]
        started = time.monotonic()
        lines: list[str] = []
        # the child stays in this process group: a person stopping `tandem backup` (Ctrl-C, a
        # kill of its group) stops the run with it. The output is read beside the wait, so a
        # task's own child holding the pipe (a distcp) cannot keep the command past its timeout.
        child = subprocess.Popen(
            [str(airflow_bin()), *args],
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )

        def read() -> None:
            assert child.stdout is not None
            for line in child.stdout:
                lines.append(line)
                said = progress_of(line) if progress is not None else None
                if said is not None and progress is not None:
                    progress(said)

        reader = threading.Thread(target=read, name="tandem-dags-test-output", daemon=True)
        reader.start()
        try:
            returncode = child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            returncode = child.wait()
        except BaseException:
            child.kill()
            raise
        reader.join(READ_AFTER_EXIT_S)  # what is left in the pipe; a grandchild may hold it open
        timed_out = returncode < 0 and time.monotonic() - started >= timeout
        if timed_out:
            lines.append(f"\ntandem: the run did not end within {timeout:.0f} s and was stopped: Error\n")
        output = "".join(lines)
        states = _STATE.findall(output)
        state = states[-1].lower() if states else "unknown"
        if (returncode != 0 and state == "success") or timed_out:
            state = "failed"
        return DagTestResult(dag_id, logical_date, state, output, round(time.monotonic() - started, 2))


# A run counts as in flight while a task of it runs: on this host, its process must be alive; on
# another, its heartbeat must be recent. A run between two tasks counts while its last task ended
# recently. So a run whose process was killed (a zombie Airflow has not reaped yet, or a killed
# `airflow dags test`, which no scheduler ever reaps) does not block a promotion forever.
_IN_FLIGHT = """
import json, os, sys
from datetime import datetime, timedelta, timezone
from airflow.configuration import conf
from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance
from airflow.utils.net import get_hostname
from airflow.utils.session import create_session
from airflow.utils.state import DagRunState, TaskInstanceState
timeout = timedelta(seconds=conf.getint("scheduler", "task_instance_heartbeat_timeout", fallback=300))
now, here = datetime.now(timezone.utc), get_hostname()

def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

def recent(when):
    return when is not None and now - (when if when.tzinfo else when.replace(tzinfo=timezone.utc)) < timeout

def lives(ti):
    return alive(ti.pid) if ti.hostname == here and ti.pid else recent(ti.last_heartbeat_at)

busy = set()
with create_session() as session:
    # a task marked failed from outside while it ran (stop) has no end yet: its process may
    # still be writing until Airflow tells it at its next heartbeat, whatever its run's state
    stopped = session.query(TaskInstance).filter(TaskInstance.dag_id.in_(sys.argv[1:])).filter(
        TaskInstance.state == TaskInstanceState.FAILED, TaskInstance.end_date.is_(None),
        TaskInstance.start_date.isnot(None)).all()
    busy.update(ti.dag_id for ti in stopped if lives(ti))
    runs = session.query(DagRun).filter(DagRun.dag_id.in_(sys.argv[1:])).filter(
        DagRun.state.in_([DagRunState.RUNNING, DagRunState.QUEUED])).all()
    for run in runs:
        tis = session.query(TaskInstance).filter(
            TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id).all()
        running = [ti for ti in tis if ti.state == TaskInstanceState.RUNNING]
        if running:
            live = any(lives(ti) for ti in running)
        else:
            ended = [ti.end_date for ti in tis if ti.end_date is not None]
            live = run.state == DagRunState.QUEUED or recent(max(ended) if ended else run.start_date)
        if live:
            busy.add(run.dag_id)
print(json.dumps(sorted(busy)))
"""


_STOP = """
import json, sys
from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance
from airflow.utils.session import create_session
from airflow.utils.state import DagRunState, TaskInstanceState
live = [DagRunState.RUNNING, DagRunState.QUEUED]
unfinished = [None, *[s for s in TaskInstanceState if s not in (
    TaskInstanceState.SUCCESS, TaskInstanceState.FAILED, TaskInstanceState.SKIPPED,
    TaskInstanceState.UPSTREAM_FAILED, TaskInstanceState.REMOVED)]]
stopped = []
with create_session() as session:
    runs = session.query(DagRun).filter(DagRun.dag_id.in_(sys.argv[1:])).filter(DagRun.state.in_(live)).all()
    for run in runs:
        for ti in session.query(TaskInstance).filter(
                TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id).all():
            if ti.state in unfinished:
                ti.state = TaskInstanceState.FAILED
        run.state = DagRunState.FAILED
        stopped.append(f"{run.dag_id}/{run.run_id}")
print(json.dumps(stopped))
"""


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
