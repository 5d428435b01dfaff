"""The routing map a plan's gateways share, stored with the plan's records on every side.

Gateway processes of one plan start at once (``tandem gateway serve --processes N``, several
hosts behind a balancer): they all settle on one stored map, never read one half written, and a
process whose plan file would route differently is refused with the reason, whoever stored first.

Each test has a plan of its own on the session's embedded clusters.
"""

from __future__ import annotations

import json
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tandem.errors import TandemError
from tandem.gateway.context import ROUTING_FILE, PlanContext, RoutingConflict, open_plan
from tandem.gateway.marks import TEMP_PREFIX
from tandem.gateway.routing import BucketMap
from tests.integration.gateway_support import GatewayPlan, write_plan

pytestmark = [pytest.mark.integration]

OPENERS = 8


def _plan(base: Path, name: str, buckets: int = 1000) -> GatewayPlan:
    return write_plan(base, base / "home", name, buckets=buckets)


def _open_at_once(plans: list[GatewayPlan]) -> list[PlanContext | BaseException]:
    """open_plan of every plan, all released at one instant."""
    start = threading.Barrier(len(plans))

    def one(plan: GatewayPlan) -> PlanContext | BaseException:
        start.wait()
        try:
            return open_plan(plan.include, plan.name)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(len(plans)) as pool:
        return list(pool.map(one, plans))


def _stored(ctx: PlanContext) -> dict[str, BucketMap]:
    """The map on every side, read back; and no temporary copy of it left beside it."""
    maps = {}
    for side in ctx.all_sides():
        journal = ctx.plan.journal
        maps[side.name] = BucketMap.from_json(json.loads(side.store.read_bytes(f"{journal}/{ROUTING_FILE}")))
        left = [s.path_suffix for s in side.store.list(journal) if s.path_suffix.startswith(TEMP_PREFIX)]
        assert left == [], f"{side.name}: {left}"
    return maps


def test_gateways_opening_a_new_plan_at_once_all_serve_one_stored_map(
    airflow_conns: dict[str, str], tmp_path: Path
) -> None:
    plan = _plan(tmp_path, f"gwmap{secrets.token_hex(4)}")
    opened = _open_at_once([plan] * OPENERS)
    failed = [repr(o) for o in opened if isinstance(o, BaseException)]
    assert failed == []
    contexts = [o for o in opened if isinstance(o, PlanContext)]
    stored = _stored(contexts[0])
    assert set(stored) == {"primary", "primary2", "standby"}
    wanted = BucketMap.even(plan.name, list(plan.primaries), plan.buckets, "md5")
    for found in [*stored.values(), *(c.routes for c in contexts)]:
        assert found.differences(wanted) is None and found.to_json() == wanted.to_json()


def test_of_two_plan_files_starting_at_once_only_the_first_to_store_its_map_serves(
    airflow_conns: dict[str, str], tmp_path: Path
) -> None:
    name = f"gwmap{secrets.token_hex(4)}"
    plans = [_plan(tmp_path / "a", name, 1000), _plan(tmp_path / "b", name, 500)] * (OPENERS // 2)
    opened = list(zip(plans, _open_at_once(plans), strict=True))
    served = [(p, o) for p, o in opened if isinstance(o, PlanContext)]
    refused = [(p, o) for p, o in opened if isinstance(o, BaseException)]
    assert served, [repr(o) for _, o in refused]
    stored = _stored(served[0][1])
    (buckets,) = {m.buckets for m in stored.values()}  # one map on every side
    # every process whose plan routes as stored serves; every other one is refused with the reason
    assert {p.buckets for p, _ in served} == {buckets}
    assert all(c.routes.buckets == buckets for _, c in served)
    assert {p.buckets for p, _ in refused} == {1000, 500} - {buckets}
    assert len(refused) == OPENERS // 2
    for _, exc in refused:
        assert isinstance(exc, RoutingConflict) and "buckets" in str(exc), repr(exc)


def test_a_stored_map_the_plan_no_longer_matches_stops_the_gateway_with_the_reason(
    airflow_conns: dict[str, str], tmp_path: Path
) -> None:
    name = f"gwmap{secrets.token_hex(4)}"
    open_plan(_plan(tmp_path / "a", name, 1000).include, name)
    grown = _plan(tmp_path / "b", name, 500)
    with pytest.raises(RoutingConflict, match=rf"{ROUTING_FILE} differs from the plan: .*buckets"):
        open_plan(grown.include, name)


def test_a_routing_file_that_is_not_a_map_is_named_not_overwritten(
    airflow_conns: dict[str, str], tmp_path: Path
) -> None:
    plan = _plan(tmp_path, f"gwmap{secrets.token_hex(4)}")
    ctx = open_plan(plan.include, plan.name)
    primary = ctx.primaries["primary2"]
    where = f"{ctx.plan.journal}/{ROUTING_FILE}"
    primary.store.write(where, b'{"buckets": ', overwrite=True)
    with pytest.raises(TandemError, match=rf"primary2:{where} is not a routing map \(12 bytes"):
        open_plan(plan.include, plan.name)
    assert primary.store.read_bytes(where) == b'{"buckets": '
