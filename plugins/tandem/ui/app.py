"""The operators' page, served by the Airflow api-server as a plugin app under ``/tandem``.

Airflow does not protect plugin routes, so every route here asks Airflow's own auth manager:
a request without a user gets 401; reading needs permission to read DAGs, triggering a backup
needs permission to create that DAG's runs (403 otherwise). No ``/docs`` or OpenAPI schema is
exposed. Building the app reads nothing: the first request does (:mod:`.collect`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, ConfigDict

from tandem.ui.collect import Collector, Sources, points_of
from tandem.ui.model import STATES, format_age

TEMPLATES = Path(__file__).parent / "templates"


async def _authenticated(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(HTTPBearer(auto_error=False))],
) -> Any:
    """The caller, resolved by Airflow from a Bearer token or else the UI's ``_token`` cookie
    (401 without either, 403 for a token Airflow did not sign), as Airflow's own routes do."""
    from airflow.api_fastapi.core_api.security import get_user

    return await get_user(request=request, _oauth_token=None, bearer_credentials=bearer)


def _may(user: Any, method: str, dag_id: str | None = None) -> bool:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    entity = DagAccessEntity.RUN if method == "POST" else None
    return bool(
        get_auth_manager().is_authorized_dag(
            method=method,  # type: ignore[arg-type]
            access_entity=entity,
            details=DagDetails(id=dag_id),
            user=user,
        )
    )


def _reader(user: Annotated[Any, Depends(_authenticated)]) -> Any:
    if not _may(user, "GET"):
        raise HTTPException(403, "reading Tandem's page needs permission to read DAGs")
    return user


Reader = Annotated[Any, Depends(_reader)]


class RunRequest(BaseModel):
    """A backup now: incremental from the newest point, or ``full``. Unknown fields and a
    ``full`` that is not a JSON boolean are refused (422): a misspelled field or a ``"yes"`` must
    not queue a run the caller did not ask for."""

    model_config = ConfigDict(extra="forbid", strict=True)

    full: bool = False


def _size(count: int | None) -> str:
    from tandem.policy.types import format_size

    return "-" if count is None else format_size(count)


class _Reading:
    """The collector, built on the first request (reading nothing before), and the templates."""

    def __init__(self, collector: Collector | None) -> None:
        self._collector = collector
        self.env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
        self.env.filters["age"] = format_age
        self.env.filters["size"] = _size

    @property
    def collector(self) -> Collector:
        if self._collector is None:
            self._collector = _default_collector()
        return self._collector

    def page(self, name: str, **values: Any) -> HTMLResponse:
        return HTMLResponse(self.env.get_template(name).render(states=STATES, **values))

    def preview(self, business: str) -> Any:
        """What the next backup would do (tandem.backup.preview), read now; changes nothing."""
        from tandem.backup.preview import preview
        from tandem.backup.run import Run
        from tandem.points import load_business

        _row(self.collector, business)  # 404 for an unknown business
        policy, topology = load_business(business, self.collector.sources.include)
        instant = _now().replace(microsecond=0)
        return preview(Run(policy, topology, instant), self.collector.sources.clusters)

    def points(self, business: str) -> tuple[Any, list[Any], list[str]]:
        row = _row(self.collector, business)
        clusters = self.collector.sources.clusters
        pair = clusters.topology.pair(row.pair)
        found, problems = points_of(clusters, (pair.primary, pair.standby), business)
        return row, found, problems


def create_app(collector: Collector | None = None) -> FastAPI:
    """The plugin app; ``collector`` reads the clusters (built on the first request when None)."""
    app = FastAPI(title="Tandem", openapi_url=None, docs_url=None, redoc_url=None)
    reading = _Reading(collector)
    _api(app, reading)
    _pages(app, reading)
    return app


def _api(app: FastAPI, reading: _Reading) -> None:
    def rows(kind: str) -> JSONResponse:
        snap = reading.collector.snapshot()
        found = [row.to_json() for row in getattr(snap, kind)]
        # how old the reading is and whether parts of it failed, for monitors (the body stays a list)
        headers = {"X-Tandem-Read-At": snap.taken.isoformat(), "X-Tandem-Read-Errors": str(len(snap.errors))}
        return JSONResponse(found, headers=headers)

    @app.get("/api/businesses")
    def businesses(user: Reader) -> JSONResponse:
        return rows("businesses")

    @app.get("/api/pairs")
    def pairs(user: Reader) -> JSONResponse:
        return rows("pairs")

    @app.get("/api/gateways")
    def gateways(user: Reader) -> JSONResponse:
        return rows("gateways")

    @app.get("/api/businesses/{business}/points")
    def points(business: str, user: Reader) -> list[dict[str, Any]]:
        found = reading.points(business)[1]
        return [p.__dict__ for p in found]

    @app.get("/api/businesses/{business}/plan")
    def plan(business: str, user: Reader) -> dict[str, Any]:
        found: dict[str, Any] = _readable(lambda: reading.preview(business).to_json())
        return found

    @app.post("/api/businesses/{business}/runs", status_code=201)
    def run(business: str, body: RunRequest, user: Annotated[Any, Depends(_authenticated)]) -> dict[str, Any]:
        dag_id = f"tandem_backup__{business}"
        if not _may(user, "POST", dag_id):
            raise HTTPException(403, f"triggering {dag_id} needs permission to create its runs")
        return _trigger(dag_id, body, user)


def _pages(app: FastAPI, reading: _Reading) -> None:
    @app.get("/ui/", response_class=HTMLResponse)
    def overview(user: Reader) -> HTMLResponse:
        snap = reading.collector.snapshot()
        age = (_now() - snap.taken).total_seconds()
        return reading.page("overview.html", snap=snap, counts=snap.counts(), age=age)

    @app.get("/ui/business/{business}", response_class=HTMLResponse)
    def business_page(business: str, user: Reader) -> HTMLResponse:
        row, found, problems = reading.points(business)
        return reading.page(
            "business.html",
            row=row,
            points=found,
            problems=problems,
            may_run=_may(user, "POST", row.dag_id),
            promote_dag=f"tandem_promote__{row.pair}",
        )

    @app.get("/ui/business/{business}/plan", response_class=HTMLResponse)
    def plan_page(business: str, user: Reader) -> HTMLResponse:
        found = _readable(lambda: reading.preview(business))
        return reading.page("plan.html", business=business, preview=found, lines=found.lines())

    @app.get("/ui/dag/{dag_id}", response_class=HTMLResponse)
    def dag_tab(dag_id: str, user: Reader) -> HTMLResponse:
        rows = {r.dag_id: r for r in reading.collector.snapshot().businesses}
        kinds = {
            "tandem_restore": "restore",
            "tandem_promote__": "promotion",
            "tandem_failover_watch__": "failover watch",
            "tandem_gateway_replay__": "gateway replay",
        }
        kind = next((k for prefix, k in kinds.items() if dag_id.startswith(prefix)), None)
        return reading.page("dag.html", dag_id=dag_id, row=rows.get(dag_id), tandem_kind=kind)


def _row(collector: Collector, business: str) -> Any:
    for row in collector.snapshot().businesses:
        if row.business == business:
            return row
    raise HTTPException(404, f"no business {business!r} among the policies")


def _readable(read: Callable[[], Any]) -> Any:
    """``read()``; what cannot be read is a 502, not a 500: Tandem's own reason (a dataset that
    does not exist...), or for a connection only its kind (as the page never names what it could
    not reach)."""
    from tandem.errors import TandemError

    try:
        return read()
    except TandemError as exc:
        raise HTTPException(502, f"cannot preview: {exc}") from exc
    except OSError as exc:
        raise HTTPException(
            502, f"cannot preview: the clusters could not be read ({type(exc).__name__})"
        ) from exc


def _now() -> datetime:
    return datetime.now(UTC)


def _trigger(dag_id: str, body: RunRequest, user: Any) -> dict[str, Any]:
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.exceptions import DagNotFound, DagRunAlreadyExists, ParamValidationError
    from airflow.utils.types import DagRunTriggeredByType

    conf = {"full": True} if body.full else {}
    try:
        created = trigger_dag(
            dag_id,
            triggered_by=DagRunTriggeredByType.REST_API,
            triggering_user_name=user.get_name(),
            conf=conf,
            logical_date=None,
        )
    except DagNotFound as exc:
        raise HTTPException(404, f"{dag_id} is not known to Airflow yet") from exc
    except DagRunAlreadyExists as exc:
        raise HTTPException(409, f"a run of {dag_id} with this id exists already") from exc
    except (ParamValidationError, ValueError) as exc:
        raise HTTPException(400, f"{dag_id} refused the run: {exc}") from exc
    if created is None:
        raise HTTPException(409, f"{dag_id} could not be triggered")
    return {"dag_id": dag_id, "run_id": created.run_id, "conf": conf}


@functools.cache
def _default_collector() -> Collector:
    from tandem.environment import include_dir
    from tandem.policy import load_topology
    from tandem.runtime import Clusters

    include = include_dir()
    return Collector(Sources(include, Clusters(load_topology(include / "clusters.yaml"))))
