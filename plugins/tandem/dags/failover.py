# TaskFlow calls pass XComArgs where the decorated functions declare the values they resolve to.
# mypy: disable-error-code="arg-type"
"""Pair -> the two failover DAGs: ``tandem_failover_watch__<pair>`` and ``tandem_promote__<pair>``.

Parsing builds DAG objects only: no cluster, network or metadata-database call happens here.

``tandem_failover_watch__<pair>`` (continuous, one run at a time): ``watch`` defers until the
pair's situation changes (:class:`~tandem.failover.watch.PairWatchSensor`); ``alert`` tells
people when the change is a failure (task log, the configured callback, e-mail) and says
exactly how to promote; ``record`` stores the new situation as the next run's baseline (an
Airflow Variable) and emits an Asset event; when the active cluster failed, ``incident`` and
``ask_promotion`` trigger ``tandem_promote__<pair>`` with run id ``incident__<key>`` (one per
incident: a repeated alert never queues a second). The next run starts at once: the watch
re-arms.

``tandem_promote__<pair>``: ``situation`` reads the pair and its businesses' newest points;
``route`` sends a run with a typed ``confirmation`` (the Trigger form, a script) straight to
``promote``, and any other run (the watch's) to ``approval``, a human-in-the-loop question
(Airflow's Required Actions page or ``PATCH .../hitlDetails``): promote one cluster, its name
typed again, or do not promote. It has no default, so a timeout never promotes. ``promote``
runs :func:`tandem.failover.landing.promote_on_points` and fails with the reason when the
promotion is refused.

Alert channels are read when the task runs: ``TANDEM_ALERT_CALLBACK`` (``module:function``,
called with the alert document), ``TANDEM_ALERT_EMAIL`` (comma-separated recipients, sent
through the SMTP provider with connection ``TANDEM_ALERT_SMTP_CONN_ID``, default
``smtp_default``), or the same three as arguments of :func:`load_failover_dags`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, Asset, Param, get_current_context, task

from tandem.failover.watch import PairWatchSensor

if TYPE_CHECKING:
    from tandem.policy import PairConfig, Topology

START = datetime(2026, 1, 1, tzinfo=UTC)


def watch_dag_id(pair: str) -> str:
    return f"tandem_failover_watch__{pair}"


PROMOTE = "Promote"
DO_NOT_PROMOTE = "Do not promote"
HITL_TIMEOUT = timedelta(hours=12)


def incident_run_id(key: str) -> str:
    """``tandem_promote__<pair>``'s run id for the incident whose health key is ``key``."""
    return "incident__" + re.sub(r"[^A-Za-z0-9_.~:+-]", "_", key)


def promote_dag_id(pair: str) -> str:
    return f"tandem_promote__{pair}"


def failover_asset(pair: str) -> Asset:
    """The Asset each recorded change of a pair's situation updates (its extra is the event)."""
    return Asset(name=f"tandem_failover_{pair}", uri=f"tandem-failover://{pair}")


@dataclass(frozen=True)
class AlertChannels:
    """Where alerts go besides the task log; None fields fall back to the environment."""

    callback: str | Callable[[dict[str, Any]], None] | None = None
    email: str | None = None
    smtp_conn_id: str | None = None

    def resolved(self) -> AlertChannels:
        """Fill unset channels from ``TANDEM_ALERT_*`` (read at run time, never at parse time)."""
        return AlertChannels(
            self.callback or os.environ.get("TANDEM_ALERT_CALLBACK") or None,
            self.email or os.environ.get("TANDEM_ALERT_EMAIL") or None,
            self.smtp_conn_id or os.environ.get("TANDEM_ALERT_SMTP_CONN_ID") or "smtp_default",
        )


def build_alert(event: dict[str, Any], pair: str, members: tuple[str, str]) -> dict[str, Any]:
    """The alert document for a watch event: subject, text (with how to promote), the event. Pure."""
    from tandem.failover.arbiter import ClusterView, PairHealth, advice

    health = PairHealth.from_json(event["health"])
    by_name = {v["name"]: ClusterView.from_json(v) for v in event.get("views", [])}
    views = (by_name[members[0]], by_name[members[1]])
    what = advice(health, views, pair, promote_dag_id(pair))
    state = "; ".join(v.describe() for v in views)
    subject = f"[tandem] pair {pair}: {health.reason}"
    text = (
        f"{health.reason}.\nDetected at {event.get('detected_at')}. Clusters: {state}.\n"
        f"Applications using tandem.client.ActiveClusterClient stay where they are until a cluster "
        f"is promoted, then switch by themselves.\n{what}"
    )
    return {"pair": pair, "alert": health.alert, "subject": subject, "text": text, "event": event}


def _watch_doc(pair: str, spec: PairConfig) -> str:
    return (
        f"### Failover watch of pair `{pair}` ({spec.primary} / {spec.standby})\n\n"
        "Waits (deferred, in the triggerer) until the active cluster dies, becomes unreachable or "
        "stops saying active, a split brain begins, or roles change after a promotion; then alerts "
        f"with the exact way to promote (DAG `{promote_dag_id(pair)}`), records the new situation "
        "and re-arms. Channels: `TANDEM_ALERT_CALLBACK`, `TANDEM_ALERT_EMAIL`."
    )


def _promote_doc(pair: str, spec: PairConfig) -> str:
    return (
        f"### Promote a cluster of pair `{pair}` ({spec.primary} / {spec.standby})\n\n"
        "A human decision. The failover watch starts a run that asks it on the Required Actions "
        "page (promote a cluster, its name typed again, or do not promote; no default, so a timeout "
        "never promotes). Or trigger it: set `cluster` to the cluster that must become active and "
        "type its name again in `confirmation`. Every business of the pair is first checked on that cluster "
        "against its newest restore point and restored where it differs (beyond-point data goes to "
        "the quarantine); refused while backups of the pair run unless `stop_backups` is set, "
        "and when a business with no point there is partly on the cluster unless `allow_no_point` is. "
        "The other cluster is set to standby first if it can be reached; "
        "every write is a compare-and-set, so two promotions at once cannot both win. Refused, "
        "with the reason, for a dead or unreachable cluster or a wrong confirmation. Applications "
        "using `ActiveClusterClient` switch within seconds; backups then run the other way."
    )


def build_watch_dag(pair: str, spec: PairConfig, topology: Topology, channels: AlertChannels) -> DAG:
    """The continuous watch DAG of one pair (pure construction; cheap)."""
    members = (spec.primary, spec.standby)
    conn_ids = {name: topology.cluster(name).zookeeper_conn_id for name in members}
    dag = DAG(
        dag_id=watch_dag_id(pair),
        description=f"Alert when pair {pair} needs a failover decision",
        schedule="@continuous",
        start_date=START,
        catchup=False,
        max_active_runs=1,
        doc_md=_watch_doc(pair, spec),
        tags=["tandem", "failover", pair],
        default_args={"retries": 0},
    )
    with dag:
        watched = PairWatchSensor(task_id="watch", pair=pair, zookeeper_conn_ids=conn_ids)

        @task(task_id="alert")
        def alert(event: dict[str, Any]) -> dict[str, Any]:
            from tandem.failover.watch import FailoverNotifier

            if not event.get("changed"):
                return {"pair": pair, "alert": False, "subject": "no change; re-arming", "text": ""}
            document = build_alert(event, pair, members)
            if document["alert"]:
                use = channels.resolved()
                email = [a.strip() for a in use.email.split(",")] if use.email else None
                FailoverNotifier(
                    document,
                    callback=use.callback,
                    email=email,
                    smtp_conn_id=use.smtp_conn_id or "smtp_default",
                )(get_current_context())
            else:
                print(f"pair {pair}: {event['health']['reason']} (no alert)")
            return document

        @task(task_id="record", outlets=[failover_asset(pair)])
        def record(event: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
            import json

            from airflow.sdk import Variable

            from tandem.failover.watch import baseline_variable

            if not event.get("changed"):
                return {}
            health = event["health"]
            entry = {
                "key": health["key"],
                "watched": health["watched"],
                "kind": health["kind"],
                "reason": health["reason"],
                "detected_at": event.get("detected_at"),
                "alerted": bool(document.get("alert")),
            }
            Variable.set(baseline_variable(pair), json.dumps(entry))
            get_current_context()["outlet_events"][failover_asset(pair)].extra = entry
            return entry

        @task(task_id="incident")
        def incident(event: dict[str, Any]) -> str:
            """The run id of the promotion decision an incident asks for (one per incident, so a
            repeated alert never queues two); skipped when no decision is needed."""
            from airflow.sdk.exceptions import AirflowSkipException

            health = event.get("health") or {}
            if not event.get("changed") or health.get("kind") != "primary_failed":
                raise AirflowSkipException("no failover decision to ask for")
            return incident_run_id(str(health["key"]))

        event = watched.output
        asked = incident(event)
        record(event, alert(event)) >> asked
        asked >> TriggerDagRunOperator(
            task_id="ask_promotion",
            trigger_dag_id=promote_dag_id(pair),
            trigger_run_id="{{ ti.xcom_pull(task_ids='incident') }}",
            conf={},
            logical_date=None,
            skip_when_already_exists=True,
        )
    return dag


def build_promote_dag(pair: str, spec: PairConfig, topology: Topology, include_dir: Path) -> DAG:
    """The manual promotion DAG of one pair (pure construction; cheap)."""
    members = (spec.primary, spec.standby)
    conn_ids = {name: topology.cluster(name).zookeeper_conn_id for name in members}
    dag = DAG(
        dag_id=promote_dag_id(pair),
        description=f"Promote a cluster of pair {pair} (typed confirmation)",
        schedule=None,
        start_date=START,
        catchup=False,
        max_active_runs=1,
        doc_md=_promote_doc(pair, spec),
        tags=["tandem", "failover", pair],
        default_args={"retries": 0},
        params={
            "cluster": Param(
                spec.standby,
                type="string",
                enum=list(members),
                title="Cluster to promote",
                description="the cluster that must become active",
            ),
            "confirmation": Param(
                "",
                type="string",
                title="Confirmation",
                description="type the name of the cluster to promote again, exactly",
            ),
            "stop_backups": Param(
                False,
                type="boolean",
                title="Stop running backups",
                description="fence the active cluster first so running backups stop, then wait for them",
            ),
            "allow_no_point": Param(
                False,
                type="boolean",
                title="Allow a business without a point",
                description="promote even when a business with no restore point on the cluster is partly "
                "there (a first backup that never published): it is served as it stands",
            ),
        },
    )
    with dag:

        @task(task_id="situation")
        def situation() -> str:
            """The pair and its businesses' newest points, for the human deciding."""
            from tandem.runtime import Clusters
            from tandem.status import format_pairs, pairs_report

            try:
                report = pairs_report(Clusters(topology), include_dir)
                lines = format_pairs({pair: report[pair]})
            except Exception as exc:  # the decision is asked even when the situation is unknown
                lines = [f"the situation could not be read: {type(exc).__name__}"]
            return "\n".join(f"- {line.strip()}" for line in lines)

        @task.branch(task_id="route")
        def route() -> str:
            """A run with a typed confirmation (a script, the Trigger form) promotes at once; one
            without (the watch's incident run) asks a human first."""
            return "promote" if str(get_current_context()["params"].get("confirmation") or "") else "approval"

        approval = HITLOperator(
            task_id="approval",
            subject=f"Pair {pair}: promote a cluster?",
            body=(
                "The failover watch found the active cluster failed.\n\n"
                "{{ ti.xcom_pull(task_ids='situation') }}"
                "\n\nChoose the cluster to promote and type its name again, or do not promote. "
                "Nothing is promoted without an answer."
            ),
            options=[*(f"{PROMOTE} {name}" for name in members), DO_NOT_PROMOTE],
            params={
                "confirmation": Param(
                    "", type="string", title="Confirmation", description="the promoted cluster's name, again"
                )
            },
            defaults=None,  # never a default: a timeout must not promote
            response_timeout=HITL_TIMEOUT,
            retries=0,  # a retry would ask again; an unanswered question fails the run instead
        )

        @task(task_id="promote", trigger_rule="none_failed_min_one_success")
        def promote_task() -> dict[str, Any]:
            from airflow.sdk.exceptions import AirflowSkipException

            from tandem.failover.landing import promote_on_points
            from tandem.failover.promote import PromotionRefused
            from tandem.runtime import Clusters, connection_hosts

            context = get_current_context()
            params, ti = context["params"], context["ti"]
            cluster, confirmation = str(params["cluster"]), str(params.get("confirmation") or "")
            answer = ti.xcom_pull(task_ids="approval")
            if answer:
                chosen = answer["chosen_options"][0]
                who = answer.get("responded_by_user") or "someone"
                if chosen == DO_NOT_PROMOTE:
                    raise AirflowSkipException(f"{who} decided not to promote")
                cluster = chosen.removeprefix(f"{PROMOTE} ")
                confirmation = str((answer.get("params_input") or {}).get("confirmation") or "")
                print(f"{who} chose: {chosen}")

            def in_flight(dag_ids: Any) -> list[str]:
                states = ["running", "queued"]
                return [d for d in dag_ids if ti.get_dr_count(dag_id=d, states=states)]

            hosts = {name: connection_hosts(conn_ids[name]) for name in members}
            result, landed = promote_on_points(
                cluster,
                confirmation,
                pair,
                topology,
                include_dir,
                Clusters(topology),
                hosts,
                in_flight,
                stop_backups=bool(params.get("stop_backups", False)),
                allow_no_point=bool(params.get("allow_no_point", False)),
            )
            for b in landed:
                print(f"{b.business}: {b.point or 'no point'}: {b.note} {b.changes or ''}")
            print(f"promotion of {result.cluster}: {result.outcome}: {result.reason}")
            if not result.ok:
                raise PromotionRefused(result.reason)
            return {**result.to_json(), "businesses": [b.to_json() for b in landed]}

        chosen = route()
        situation() >> chosen
        done = promote_task()
        chosen >> approval >> done
        chosen >> done
    return dag


def load_failover_dags(
    include_dir: Path,
    only_dag_id: str | None = None,
    channels: AlertChannels | None = None,
) -> dict[str, DAG]:
    """Both failover DAGs of every pair in ``include_dir/clusters.yaml``, keyed by dag id.

    A bad ``clusters.yaml`` raises (an import error naming the file, field and reason).
    ``only_dag_id`` (Airflow's parsing context when a worker runs one task) skips the others.
    """
    from tandem.policy import load_topology

    topology = load_topology(include_dir / "clusters.yaml")
    dags: dict[str, DAG] = {}
    for pair, spec in sorted(topology.pairs.items()):
        if only_dag_id in (None, watch_dag_id(pair)):
            dags[watch_dag_id(pair)] = build_watch_dag(pair, spec, topology, channels or AlertChannels())
        if only_dag_id in (None, promote_dag_id(pair)):
            dags[promote_dag_id(pair)] = build_promote_dag(pair, spec, topology, include_dir)
    return dags
