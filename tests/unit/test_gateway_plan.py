"""Gateway plans and routing: pure."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from tandem.gateway.plan import check_plan_file, load_plans
from tandem.gateway.routing import BucketMap, bucket_of, data_id, is_temporary
from tandem.policy import load_topology, parse_size

PROJECT = Path(__file__).resolve().parents[2]
TOPOLOGY = load_topology(PROJECT / "include" / "clusters.yaml")

GOOD = {
    "plan": "events",
    "primaries": ["primary", "primary2"],
    "routing": {"hash": "md5", "buckets": 1000},
    "target": {"cluster": "standby", "root": "/backup/events"},
    "mode": "sync",
    "async": {"interval": "1m"},
    "large_write_advice": "2GiB",
}


def _write(tmp_path: Path, name: str, doc: object) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_the_project_plan_and_the_issue_example_are_valid(tmp_path: Path) -> None:
    plans = load_plans(PROJECT / "include" / "gateway", TOPOLOGY)
    assert not plans.errors and "events" in plans.plans
    plan, errors = check_plan_file(_write(tmp_path, "events", GOOD), TOPOLOGY)
    assert errors == () and plan is not None
    assert plan.write_roots == ("/events",)
    assert plan.large_write_advice == 2 << 30
    assert plan.async_interval.total_seconds() == 60


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"primaries": ["primary", "nowhere"]}, "primaries", "'nowhere' is not defined"),
        ({"target": {"cluster": "primary", "root": "/b"}}, "target.cluster", "also a primary"),
        ({"target": {"cluster": "standby", "root": "backup"}}, "target.root", "relative"),
        ({"mode": "eventually"}, "mode", "sync"),
        ({"routing": {"hash": "md5", "buckets": 1}}, "routing.buckets", "cannot spread"),
        ({"large_write_advice": "lots"}, "large_write_advice", "not a size"),
        ({"roots": ["/.tandem/x"]}, "roots", "overlaps /.tandem"),
        ({"roots": ["/a", "/a/b"]}, "roots", "overlap"),
        ({"access": [{"user": "web", "paths": ["/elsewhere"]}]}, "access[0].paths", "outside"),
        ({"surprise": 1}, "surprise", "unknown key"),
        ({"plan": "other"}, "plan", "file is named"),
        ({"target": {"root": "/b"}}, "target", "either a cluster"),
        (
            {"target": {"cluster": "standby", "uri": "file:///nas", "root": "/b"}},
            "target",
            "either a cluster",
        ),
        ({"target": {"uri": "nas/backup", "root": "/b"}}, "target.uri", "no protocol"),
        ({"target": {"uri": "zz9://x", "root": "/b"}}, "target.uri", "no filesystem is registered"),
        ({"target": {"cluster": "standby", "conn_id": "x", "root": "/b"}}, "target.conn_id", "only a uri"),
        ({"target": {"uri": "s3://b", "root": "/b", "capacity": "big"}}, "target.capacity", "not a size"),
        ({"private_data": {"words": ["x"]}}, "private_data.key_conn_id", "required"),
        (
            {"private_data": {"patterns": ["(unclosed"], "key_conn_id": "k"}},
            "private_data",
            "neither a built-in",
        ),
        ({"private_data": {"key_conn_id": "k", "chunk": "8B"}}, "private_data", "between 16 bytes"),
        ({"space": {"evict": "older_than_max_age"}}, "space", "needs max_age"),
        ({"space": {"evict": "newest"}}, "space.evict", "oldest"),
    ],
)
def test_each_error_names_the_file_the_field_and_the_reason(
    tmp_path: Path, change: dict[str, object], field: str, words: str
) -> None:
    path = _write(tmp_path, "events", {**GOOD, **change})
    plan, errors = check_plan_file(path, TOPOLOGY)
    assert plan is None
    assert any(e.file == str(path) and e.field == field and words in e.reason for e in errors), errors


def test_targets_private_data_and_space_rules_parse() -> None:
    from tandem.gateway.plan import GatewayPlan

    plan = GatewayPlan.model_validate(
        {
            **GOOD,
            "target": {
                "uri": "s3://bkt/prefix",
                "conn_id": "tandem_s3",
                "root": "/events",
                "capacity": "10GiB",
            },
            "private_data": {"words": ["salary"], "patterns": ["email", "EMP-[0-9]+"], "key_conn_id": "key"},
            "space": {"max_age": "30d", "evict": "oldest"},
        }
    )
    assert (plan.target.protocol, plan.target.label, plan.target.capacity) == ("s3", "s3-bkt", 10 << 30)
    assert plan.private_data is not None and plan.private_data.chunk == 1 << 20 and plan.private_data.images
    assert plan.space is not None and plan.space.max_age is not None and plan.space.max_age.days == 30
    assert GatewayPlan.model_validate(GOOD).target.label == "standby"


def test_one_bad_plan_never_stops_the_others(tmp_path: Path) -> None:
    _write(tmp_path, "events", GOOD)
    _write(tmp_path, "broken", {**GOOD, "plan": "broken", "mode": "sometimes"})
    (tmp_path / "garbage.yaml").write_text("plan: [unclosed")
    found = load_plans(tmp_path, TOPOLOGY)
    assert set(found.plans) == {"events"}
    assert {p.name for p in found.errors} == {"broken.yaml", "garbage.yaml"}


def test_sizes() -> None:
    assert parse_size("2GiB") == 2 << 30
    assert parse_size("500MB") == 500_000_000
    with pytest.raises(ValueError):
        parse_size("2 gigs")


@pytest.mark.parametrize(
    ("path", "final"),
    [
        ("/e/a.json.temp-1733000000123", "/e/a.json"),  # hdfs.upload
        ("/e/a.json._COPYING_", "/e/a.json"),  # hadoop fs -put
        ("/e/a.json.tmp", "/e/a.json"),
        ("/e/.tmp.0123abcd", "/e"),  # fsspec cp_file: the directory
        ("/e/a.json", "/e/a.json"),
    ],
)
def test_temporary_names_route_like_their_final_name(path: str, final: str) -> None:
    assert data_id(path) == final
    assert is_temporary(path) == (path != final)


def test_routing_is_deterministic_and_even() -> None:
    routes = BucketMap.even("events", ["primary", "primary2"], 1000, "md5")
    again = BucketMap.from_json(routes.to_json())
    ids = [f"/events/day={d}/click-{i}.json" for d in range(10) for i in range(500)]
    spread = Counter(routes.route(i) for i in ids)
    assert [again.route(i) for i in ids] == [routes.route(i) for i in ids]
    assert all(0.45 < n / len(ids) < 0.55 for n in spread.values()), spread
    assert routes.route("/events/x.temp-12") == routes.route("/events/x")
    assert routes.route("/anything", explicit_id="order-42") == routes.primary_of("order-42")
    assert bucket_of("order-42", 1000) == bucket_of("order-42", 1000)


def test_a_stored_map_that_would_move_data_is_refused() -> None:
    stored = BucketMap.even("events", ["primary", "primary2"], 1000, "md5")
    assert stored.differences(BucketMap.even("events", ["primary", "primary2"], 1000, "md5")) is None
    grown = BucketMap.even("events", ["primary", "primary2", "primary3"], 1000, "md5")
    assert "would change primary" in (stored.differences(grown) or "")
    assert "buckets" in (stored.differences(BucketMap.even("events", ["primary"], 500, "md5")) or "")


def test_two_plans_never_share_a_target_root(tmp_path: Path) -> None:
    def plan(name: str, target: dict[str, object]) -> dict[str, object]:
        return {**GOOD, "plan": name, "roots": [f"/{name}"], "target": target}

    _write(tmp_path, "a", plan("a", {"cluster": "standby", "root": "/backup"}))
    _write(tmp_path, "b", plan("b", {"cluster": "standby", "root": "/backup/b"}))  # inside a's
    _write(tmp_path, "c", plan("c", {"cluster": "standby", "root": "/backup-c"}))  # beside it
    _write(tmp_path, "d", plan("d", {"uri": "file:///nas", "root": "/backup"}))  # another store
    # inside d's root through its URI's path: /nas/backup/e
    _write(tmp_path, "e", plan("e", {"uri": "file:///nas/backup", "root": "/e"}))
    _write(tmp_path, "f", plan("f", {"uri": "file:///nas/backup-f", "root": "/f"}))  # beside it
    found = load_plans(tmp_path, TOPOLOGY)
    assert sorted(found.plans) == ["c", "f"]
    reasons = {p.stem: e[0] for p, e in found.errors.items()}
    assert set(reasons) == {"a", "b", "d", "e"} and all(e.field == "target.root" for e in reasons.values())
    assert "plan b's target root /backup/b" in reasons["a"].reason
    assert "plan e's target root /e" in reasons["d"].reason


def test_a_target_root_is_never_tandems_own_records(tmp_path: Path) -> None:
    _, errors = check_plan_file(
        _write(tmp_path, "events", {**GOOD, "target": {"cluster": "standby", "root": "/.tandem/x"}}), TOPOLOGY
    )
    assert [(e.field, "overlaps /.tandem" in e.reason) for e in errors] == [("target.root", True)]


def test_a_target_root_never_holds_a_business_dataset(tmp_path: Path) -> None:
    """Eviction there could delete what a restore point needs."""
    from tandem.policy import load_policies

    policies = load_policies(PROJECT / "include" / "policies", TOPOLOGY).policies
    billing = next(p for p in policies if p.business == "billing")
    inside = billing.hdfs_paths[0]
    for root in (inside, inside.rsplit("/", 1)[0]):
        doc = {**GOOD, "target": {"cluster": "standby", "root": root}}
        _, errors = check_plan_file(_write(tmp_path, "events", doc), TOPOLOGY, policies)
        assert [e.field for e in errors] == ["target.root"] and "business billing" in errors[0].reason
    plan, errors = check_plan_file(_write(tmp_path, "events", GOOD), TOPOLOGY, policies)
    assert plan is not None and errors == ()


def test_a_webhdfs_uri_that_is_a_business_cluster_is_held_to_the_same_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``webhdfs://`` URI naming the standby's NameNode (by another host name) is the standby:
    a root over a business dataset there is refused when the plan is opened, before any call."""
    import json
    import shutil

    from tandem.errors import ConfigError
    from tandem.gateway.context import cluster_behind, open_plan
    from tandem.gateway.plan import load_plan

    include = tmp_path / "include"
    shutil.copytree(PROJECT / "include", include)
    for name, port in (("standby", 50_071), ("primary", 50_070), ("primary2", 50_072)):
        conn = {"conn_type": "webhdfs", "host": "localhost", "port": port, "login": "hdfs"}
        monkeypatch.setenv(f"AIRFLOW_CONN_WEBHDFS_{name.upper()}", json.dumps(conn))
    doc = {**GOOD, "target": {"uri": "webhdfs://127.0.0.1:50071/data", "conn_id": "c", "root": "/billing"}}
    _write(include / "gateway", "events", doc)
    plan = load_plan(include, "events")
    assert cluster_behind(plan.target, TOPOLOGY) == "standby"
    with pytest.raises(ConfigError) as refused:
        open_plan(include, "events")
    assert "target.uri" in str(refused.value) and "business billing" in str(refused.value)
    elsewhere = {**doc, "target": {**doc["target"], "uri": "webhdfs://127.0.0.1:50099/data"}}
    _write(include / "gateway", "events", elsewhere)
    assert cluster_behind(load_plan(include, "events").target, TOPOLOGY) is None
