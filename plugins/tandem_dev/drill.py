"""``tandem drill``: rehearse a failover on the embedded clusters.

The drill runs the whole story with real parts: the embedded clusters, a real Airflow
(``airflow standalone``: scheduler, triggerer, API server), the failover DAGs and an
application writing through :class:`~tandem.client.ActiveClusterClient`:

1. a restore point of the ``drill`` business is published (active -> standby);
2. the application writes a file every 100 ms; the active cluster then fails whole (its
   cluster process and its ZooKeeper are killed);
3. the watch DAG alerts (``detect_s``: failure -> the trigger's verdict);
4. the standby is promoted through the REST API with the typed confirmation; the application
   follows by itself (``switch_s``: promotion written -> client switched);
5. the old primary comes back still saying active: a split brain, during which the application
   must not move (``split_brain_switched``); promoting the new primary again fences it;
6. the backup runs the other way (``reverse_restore_point``) and every write acknowledged after
   the switch is checked on the new primary (``writes_lost_after_switch``).

The clusters stay up afterwards in their new roles; running the drill again fails back.

"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tandem.errors import TandemError
from tandem.failover.arbiter import ClusterView
from tandem_dev.application import Writer, lost_writes
from tandem_dev.local_airflow import PARKED, AirflowServer

if TYPE_CHECKING:
    from tandem.client import ActiveClusterClient
    from tandem_dev.embedded.manager import RunningClusters

BUSINESS = "drill"
LEDGER = "/data/drill/ledger"
WATCH_DAG = "tandem_failover_watch__main"
PROMOTE_DAG = "tandem_promote__main"
BACKUP_DAG = f"tandem_backup__{BUSINESS}"
ALERTS_ENV = "TANDEM_DRILL_ALERTS"


def read_views(
    topology: RunningClusters, names: tuple[str, str], timeout: float = 3.0
) -> tuple[ClusterView, ClusterView]:
    """Both clusters' views, read once from their ZooKeepers (in parallel). Read-only."""
    from concurrent.futures import ThreadPoolExecutor

    from tandem.runtime import observe

    with ThreadPoolExecutor(max_workers=2) as pool:
        first, second = pool.map(lambda n: observe(n, topology[n].zookeeper_hosts, timeout).view(), names)
    return first, second


# --------------------------------------------------------------------------- the drill's alerts


def record_alert(alert: dict[str, Any]) -> None:
    """Alert callback of the drill's Airflow (``TANDEM_ALERT_CALLBACK=tandem_dev.drill:record_alert``)."""
    line = json.dumps({**alert, "received_at": time.time()})
    with open(os.environ[ALERTS_ENV], "a", encoding="utf-8") as sink:
        sink.write(line + "\n")


def read_alerts(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# --------------------------------------------------------------------------- the steps


def _policy_yaml() -> str:
    import yaml

    return yaml.safe_dump(
        {
            "business": BUSINESS,
            "description": "The failover drill's ledger, written by `tandem drill`.",
            "pair": "main",
            # far in the future: the drill triggers its backups itself, the scheduler never does
            "schedule": {"start": "2099-01-01T00:00:00Z", "every": "1h"},
            "protection_group": [{"hdfs": LEDGER}],
            "copy": {"mode": "pull", "engine": "webhdfs", "parallelism": 4},
            "consistency": {"max_skew": "1s", "max_clock_skew": "5s"},
            "retention": {"keep_last": 10, "max_age": "30d"},
            "user_data": False,
        },
        sort_keys=False,
    )


@dataclass
class Drill:
    """State shared by the drill's steps."""

    home: Path
    project: Path
    say: Callable[[str], None]
    topology: RunningClusters | None = None
    airflow: AirflowServer | None = None
    alerts_path: Path | None = None
    kerberos: bool = False  # every server demands Kerberos from the home's realm

    @property
    def work(self) -> Path:
        return self.home / "drill"

    def prepare_include(self) -> Path:
        include = self.work / "include"
        (include / "policies").mkdir(parents=True, exist_ok=True)
        shutil.copy(self.project / "include" / "clusters.yaml", include / "clusters.yaml")
        (include / "policies" / f"{BUSINESS}.yaml").write_text(_policy_yaml())
        return include

    def start_airflow(self, include: Path) -> AirflowServer:
        from tandem_dev.embedded import manager, zookeeper
        from tandem_dev.local_airflow import LocalAirflow

        assert self.topology is not None
        airflow_home = self.work / "airflow"
        shutil.rmtree(airflow_home, ignore_errors=True)
        self.alerts_path = self.work / "alerts.jsonl"
        self.alerts_path.unlink(missing_ok=True)
        port = zookeeper.free_port()
        conns = tuple(sorted(manager.connection_env(self.topology).items()))
        env = LocalAirflow(airflow_home, self.project, conns).env()
        if self.topology.kerberos:
            from tandem_dev.kerberos import HomeRealm

            env.update(HomeRealm(self.topology.home).env())
        env.update(
            {
                "TANDEM_INCLUDE": str(include),
                "TANDEM_TASK_RETRIES": "0",
                "TANDEM_HOME": str(self.home),
                "TANDEM_ALERT_CALLBACK": "tandem_dev.drill:record_alert",
                ALERTS_ENV: str(self.alerts_path),
                "AIRFLOW__API__PORT": str(port),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
                # INFO: approve_promotion waits for the scheduler's "TaskInstance Finished" line
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            }
        )
        server = AirflowServer(airflow_home, env, port)
        self.airflow = server
        server.start()
        began = time.monotonic()
        server.wait_ready()
        for dag_id in (WATCH_DAG, PROMOTE_DAG, BACKUP_DAG):
            server.wait_dag(dag_id)
            server.unpause(dag_id)
        self.say(f"Airflow ready in {time.monotonic() - began:.0f} s on {server.url} (log {server.log_path})")
        return server

    def backup(self, label: str) -> dict[str, Any]:
        """Trigger the drill business's backup through the REST API; the published manifest."""
        from tandem import catalog
        from tandem_dev.embedded.access import embedded_access

        assert self.airflow is not None and self.topology is not None
        run_id = self.airflow.trigger(BACKUP_DAG, {})
        run = self.airflow.wait_run(BACKUP_DAG, run_id, timeout=600)
        if run["state"] != "success":
            raise TandemError(f"{label} backup run {run_id} {run['state']} (log {self.airflow.log_path})")
        points = []
        for name in self.topology.names:
            newest = catalog.latest(embedded_access(self.topology, name).hdfs(), BUSINESS)
            if newest is not None:
                points.append(newest)
        manifest = max(points, key=lambda m: m.instant)
        self.say(f"{label} backup published {manifest.point} ({manifest.source} -> {manifest.target})")
        return manifest.model_dump(mode="json")

    def promote(self, cluster: str) -> float:
        """Promote through the REST API with the typed confirmation; when the role was written."""
        assert self.airflow is not None
        run_id = self.airflow.trigger(PROMOTE_DAG, {"cluster": cluster, "confirmation": cluster})
        run = self.airflow.wait_run(PROMOTE_DAG, run_id, timeout=300)
        if run["state"] != "success":
            raise TandemError(f"promotion of {cluster} {run['state']} (log {self.airflow.log_path})")
        return self.record_mtime(cluster)

    def approve_promotion(self, cluster: str, timeout: float = 180.0) -> tuple[float, str]:
        """Answer the promotion decision the watch asked for, as an operator does from the Required
        Actions page (here through ``PATCH .../hitlDetails``): promote ``cluster``, its name typed
        again. When the role was written, and the run that asked."""
        assert self.airflow is not None
        deadline = time.monotonic() + timeout
        while True:
            waiting = self.airflow.api(
                "GET", f"/dags/{PROMOTE_DAG}/dagRuns/~/hitlDetails?response_received=false"
            )["hitl_details"]
            if waiting:
                break
            if time.monotonic() > deadline:
                raise TandemError(f"no promotion decision was asked within {timeout:.0f} s")
            time.sleep(0.5)
        asked = waiting[0]["task_instance"]
        run_id, task_id = asked["dag_run_id"], asked["task_id"]
        self._wait_parked(run_id, task_id, deadline)
        self.airflow.api(
            "PATCH",
            f"/dags/{PROMOTE_DAG}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails",
            {"chosen_options": [f"Promote {cluster}"], "params_input": {"confirmation": cluster}},
        )
        run = self.airflow.wait_run(PROMOTE_DAG, run_id, timeout=300)
        if run["state"] != "success":
            raise TandemError(f"approved promotion of {cluster} {run['state']} (log {self.airflow.log_path})")
        return self.record_mtime(cluster), run_id

    def _wait_parked(self, run_id: str, task_id: str, deadline: float) -> None:
        """Until the approval task is parked awaiting input and the scheduler has processed the
        executor's report of its worker's exit (its "TaskInstance Finished ... state=awaiting_input"
        line).

        Airflow 3.3.2 fails a parked task that resumes before the scheduler has seen its worker's
        exit ("executor reported success, but the task instance is queued", the race of
        apache/airflow#71580). A person answers minutes later; the drill answers within a second,
        so it first waits for what the scheduler has seen.
        """
        assert self.airflow is not None
        path = f"/dags/{PROMOTE_DAG}/dagRuns/{run_id}/taskInstances/{task_id}"
        seen = re.compile(
            rf"TaskInstance Finished: dag_id={PROMOTE_DAG}, task_id={re.escape(task_id)}, "
            rf"run_id={re.escape(run_id)}, .*?, state=(deferred|awaiting_input),"
        )
        offset, tail, reported = 0, "", False
        while True:
            state = self.airflow.api("GET", path).get("state")
            with self.airflow.log_path.open("rb") as log:
                log.seek(offset)
                chunk = log.read()
            offset += len(chunk)
            tail = tail[-2000:] + chunk.decode(errors="replace")
            reported = reported or seen.search(tail) is not None
            if state in PARKED and reported:
                return
            if state not in (*PARKED, "running", "queued", "scheduled", None):
                raise TandemError(f"the promotion decision's task is {state} (log {self.airflow.log_path})")
            if time.monotonic() > deadline:
                raise TandemError(
                    f"the promotion decision's task did not park awaiting input (it is {state}; "
                    f"log {self.airflow.log_path})"
                )
            time.sleep(0.5)

    def record_mtime(self, cluster: str) -> float:
        """When ``/tandem/cluster`` of ``cluster`` was last written (ZooKeeper's clock, seconds)."""
        from tandem.failover.state import CLUSTER_PATH
        from tandem.security import zookeeper_client

        assert self.topology is not None
        zk = zookeeper_client(self.topology[cluster].zookeeper_hosts, kerberos=self.topology.kerberos)
        zk.start(timeout=10)
        try:
            return float(zk.exists(CLUSTER_PATH).mtime) / 1000.0
        finally:
            zk.stop()
            zk.close()

    def wait_alert(self, kind: str, after: int, timeout: float = 120.0) -> dict[str, Any]:
        """The first alert of ``kind`` among those received after the first ``after``."""
        assert self.alerts_path is not None
        deadline = time.monotonic() + timeout
        while True:
            for alert in read_alerts(self.alerts_path)[after:]:
                if alert["event"]["health"]["kind"] == kind:
                    return alert
            if time.monotonic() > deadline:
                log = self.airflow.log_tail() if self.airflow else ""
                raise TandemError(f"no {kind} alert within {timeout:.0f} s:\n{log}")
            time.sleep(0.2)

    def wait_armed(self, timeout: float = 180.0) -> None:
        assert self.airflow is not None
        deadline = time.monotonic() + timeout
        while not self.airflow.deferred_watch(WATCH_DAG):
            if time.monotonic() > deadline:
                raise TandemError(f"the watch DAG was not armed within {timeout:.0f} s")
            time.sleep(0.5)


def _parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _roles(topology: RunningClusters) -> tuple[str, str]:
    """(active, standby) names, or TandemError if the pair is not in a drillable state."""
    views = read_views(topology, ("primary", "standby"))
    active = [v for v in views if v.role == "active" and v.alive]
    standby = [v for v in views if v.role == "standby" and v.alive]
    if len(active) != 1 or len(standby) != 1:
        said = "; ".join(v.describe() for v in views)
        raise TandemError(f"the drill needs one active and one standby cluster, both alive: {said}")
    return active[0].name, standby[0].name


def run_steps(drill: Drill) -> dict[str, Any]:
    """The drill itself; see the module docstring. Returns the result document."""
    from tandem_dev.embedded import manager
    from tandem_dev.embedded.access import active_client, embedded_access

    began = time.monotonic()
    drill.say("Starting the embedded clusters...")
    topology = drill.topology = manager.bring_up(drill.home, kerberos=drill.kerberos).topology
    if topology.kerberos:  # this process reads and writes the clusters as Tandem, too
        from tandem_dev.kerberos import HomeRealm

        os.environ.update(HomeRealm(topology.home).env())
    old, new = _roles(topology)
    include = drill.prepare_include()
    embedded_access(topology, old).hdfs().write(f"{LEDGER}/seed.json", b'{"seed": true}', overwrite=True)
    drill.say("Starting Airflow (standalone: scheduler, triggerer, API server; about a minute)...")
    drill.start_airflow(include)
    first = drill.backup("first")
    page = _operators_page(drill)
    drill.say(
        f"Disaster recovery page: {BUSINESS}'s newest point {page['business']['newest_point']}, "
        f"{page['business']['compliance']}"
    )
    drill.wait_armed()
    drill.say(f"Watch armed; the application writes through ActiveClusterClient (now on {old}).")
    with active_client(topology, unreachable_after=2.0) as clients:
        writer = Writer(clients, LEDGER)
        writer.start()
        try:
            result = _failover(drill, clients, writer, old, new, first)
        finally:
            writer.stop()
        switched_after = result.pop("_switched_at")
        after_switch = [a for a in writer.on(new) if a.at >= switched_after]
        reverse = drill.backup("reverse")
        lost = lost_writes(clients, new, after_switch)
    roles = {v.name: v.role for v in read_views(topology, ("primary", "standby"))}
    result.update(
        {
            "writes_acknowledged": len(writer.acks),
            "writes_acknowledged_after_switch": len(after_switch),
            "writes_lost_after_switch": lost,
            "writes_failed_during_outage": writer.failures,
            "reverse_restore_point": {k: reverse[k] for k in ("point", "source", "target", "mode")},
            "roles": roles,
            "page": page,
            "seconds": round(time.monotonic() - began, 1),
        }
    )
    return result


def _operators_page(drill: Drill) -> dict[str, Any]:
    """What the api-server's Disaster recovery page says after the first backup."""
    assert drill.airflow is not None
    anonymous, _ = drill.airflow.page("/api/businesses", authenticated=False)
    status, rows = drill.airflow.page("/api/businesses")
    if status != 200:
        raise TandemError(f"the Disaster recovery page answered {status}: {str(rows)[:300]}")
    html_status, html = drill.airflow.page("/ui/")
    return {
        "anonymous_status": anonymous,
        "business": next(r for r in rows if r["business"] == BUSINESS),
        "html_lists_business": html_status == 200 and f">{BUSINESS}<" in str(html),
    }


def _failover(
    drill: Drill,
    clients: ActiveClusterClient,
    writer: Writer,
    old: str,
    new: str,
    first: dict[str, Any],
) -> dict[str, Any]:
    from tandem_dev.embedded import manager

    assert drill.alerts_path is not None
    time.sleep(2.0)  # some writes land on the old primary after its last restore point
    drill.say(f"{old} fails: its cluster process and its ZooKeeper are killed.")
    failed_at = manager.kill_cluster(drill.home, old)
    alert = drill.wait_alert("primary_failed", 0)
    detect_s = _parse_time(alert["event"]["detected_at"]) - failed_at
    drill.say(f"Alert after {alert['received_at'] - failed_at:.1f} s: {alert['subject']}")
    promoted_at, asked_run = drill.approve_promotion(new)
    drill.say(f"The watch asked for a decision (run {asked_run}); approved: promote {new}.")
    if not clients.wait_for(new, 30):
        raise TandemError(f"the application did not switch to {new}: {clients.decision}")
    switch = clients.switches[-1]
    switch_s = switch.at.timestamp() - promoted_at
    drill.say(f"Promoted {new}; the application switched {switch_s:.2f} s later: {switch.reason}")
    time.sleep(2.0)  # writes continue on the new primary
    seen = len(read_alerts(drill.alerts_path))
    switches_before = len(clients.switches)
    drill.say(f"{old} comes back, still saying active (it could not be fenced): split brain.")
    manager.restart_cluster(drill.home, old)
    split = drill.wait_alert("split_brain", seen)
    time.sleep(3.0)  # the application must not move while both say active
    split_brain_switched = len(clients.switches) != switches_before or clients.target != new
    drill.say(f"Split brain alerted ({split['subject']}); application moved: {split_brain_switched}")
    drill.promote(new)  # promoting the new primary again fences the old one
    rpo_s = failed_at - max(_parse_time(t) for t in first["snapshot_times"].values())
    at_risk = [a for a in writer.on(old) if a.at > _parse_time(first["point"])]
    return {
        "detect_s": round(detect_s, 2),
        "alert_s": round(alert["received_at"] - failed_at, 2),
        "switch_s": round(switch_s, 2),
        "rpo_s": round(rpo_s, 2),
        "writes_at_risk_on_old_primary": len(at_risk),
        "split_brain_switched": split_brain_switched,
        "promotion_asked_by_run": asked_run,
        "reasons": {
            "detection": alert["event"]["health"]["reason"],
            "switch": switch.reason,
            "split_brain": split["event"]["health"]["reason"],
        },
        "_switched_at": switch.at.timestamp(),
    }


def run_drill(args: argparse.Namespace) -> int:
    """``tandem drill [--json] [--home]``: exit 0 when every target is met, 1 otherwise."""
    from tandem.environment import project_root
    from tandem_dev.embedded.manager import resolve_home

    quiet = bool(args.json)
    # kazoo logs every refused reconnection to the failed cluster; the drill says what happens
    logging.getLogger("kazoo").setLevel(logging.ERROR)
    logging.getLogger("tandem.client").setLevel(logging.ERROR if quiet else logging.WARNING)

    def say(text: str) -> None:
        if not quiet:
            print(text, flush=True)

    drill = Drill(
        resolve_home(args.home),
        project_root(Path.cwd()),
        say,
        kerberos=bool(getattr(args, "kerberos", False)),
    )
    try:
        result = run_steps(drill)
    finally:
        if drill.airflow is not None:
            drill.airflow.stop()
    met = targets_met(result)
    result["targets_met"] = met
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(summary(result))
    return 0 if all(met.values()) else 1


def targets_met(result: Mapping[str, Any]) -> dict[str, bool]:
    """The drill's targets, each true or false. Pure."""
    return {
        "detection under 5 s": result["detect_s"] < 5.0,
        "clients switched under 3 s after promotion": result["switch_s"] < 3.0,
        "no acknowledged write lost after the switch": result["writes_lost_after_switch"] == 0,
        "no switch during the split brain": not result["split_brain_switched"],
    }


def summary(result: Mapping[str, Any]) -> str:
    """The drill's result for a human: one line per figure, then the targets."""
    lines = [
        f"Failover drill ({result['seconds']:.0f} s): roles now {result['roles']}",
        f"  detected {result['detect_s']:.2f} s after the failure "
        f"(alert delivered after {result['alert_s']:.1f} s)",
        f"  clients switched {result['switch_s']:.2f} s after the promotion",
        f"  writes acknowledged {result['writes_acknowledged']}, after the switch "
        f"{result['writes_acknowledged_after_switch']}, "
        f"lost after the switch {result['writes_lost_after_switch']}",
        f"  RPO {result['rpo_s']:.1f} s: {result['writes_at_risk_on_old_primary']} writes on the old primary "
        "after its last restore point",
        f"  split brain: clients moved = {result['split_brain_switched']}",
        f"  reverse restore point {result['reverse_restore_point']['point']} "
        f"({result['reverse_restore_point']['source']} -> {result['reverse_restore_point']['target']})",
    ]
    lines += [f"  [{'ok' if ok else 'MISSED'}] {target}" for target, ok in result["targets_met"].items()]
    return "\n".join(lines)
