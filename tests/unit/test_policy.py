"""Policy and topology parsing: every error names its file, its field and a reason."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from tandem.errors import ConfigError
from tandem.policy import (
    FILE_FIELD,
    InvalidConfig,
    Policy,
    Topology,
    check_policy_file,
    check_topology_file,
    format_duration,
    load_policies,
    load_policy,
    load_topology,
    parse_duration,
    run_policy,
)

REPO = Path(__file__).resolve().parents[2]

CLUSTERS = """\
clusters:
  primary:
    {nameservice: "hdfs://primary", webhdfs_conn_id: webhdfs_primary,
     metastore_conn_id: metastore_primary, zookeeper_conn_id: zookeeper_primary}
  standby:
    {nameservice: "hdfs://standby", webhdfs_conn_id: webhdfs_standby,
     metastore_conn_id: metastore_standby, zookeeper_conn_id: zookeeper_standby}
pairs:
  main: {primary: primary, standby: standby}
"""


def _good(business: str = "billing") -> dict[str, Any]:
    return {
        "business": business,
        "description": "Bill details and the customer list must agree.",
        "pair": "main",
        "schedule": {"start": "2026-11-20T13:00:00Z", "every": "1h"},
        "protection_group": [
            {"hdfs": "/data/billing/details"},
            {"hive": "billing.customers"},
            {"sparksql": "billing_mart.settlements"},
        ],
        "copy": {"mode": "pull", "engine": "webhdfs", "parallelism": 8},
        "consistency": {"max_skew": "1s", "max_clock_skew": "2s"},
        "retention": {"keep_last": 24, "max_age": "7d"},
        "user_data": True,
    }


@pytest.fixture
def topology(tmp_path: Path) -> Topology:
    path = tmp_path / "clusters.yaml"
    path.write_text(CLUSTERS)
    return load_topology(path)


def _write(directory: Path, name: str, data: dict[str, Any] | str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def _errors(
    tmp_path: Path, topology: Topology, data: dict[str, Any] | str, name: str = "billing.yaml"
) -> list[ConfigError]:
    policy, errors = check_policy_file(_write(tmp_path / "policies", name, data), topology)
    assert policy is None
    return list(errors)


def _fields(errors: list[ConfigError]) -> dict[str, str]:
    return {e.field: e.reason for e in errors}


# --------------------------------------------------------------------------------------------
# Durations


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500ms", timedelta(milliseconds=500)),
        ("1s", timedelta(seconds=1)),
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("1h", timedelta(hours=1)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("1h30m", timedelta(minutes=90)),
        (" 1d12h ", timedelta(hours=36)),
    ],
)
def test_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("1hour", "is not a duration: write a number and a unit"),
        ("90", "is not a duration: write a number and a unit"),
        ("", "is not a duration"),
        ("1.5h", "is not a duration"),
        ("-1s", "is not a duration"),
        ("30m1h", "give each unit once, largest first"),
        ("1h1h", "give each unit once, largest first"),
    ],
)
def test_bad_durations_say_why(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(days=7), "7d"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(milliseconds=500), "500ms"),
        (timedelta(hours=25), "1d1h"),
        (timedelta(0), "0s"),
        (-timedelta(seconds=5), "-5s"),
    ],
)
def test_durations_format_back(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    if value > timedelta(0):
        assert parse_duration(text) == value


# --------------------------------------------------------------------------------------------
# A good policy


def test_good_policy_loads_with_parsed_values(tmp_path: Path, topology: Topology) -> None:
    policy = load_policy(_write(tmp_path, "billing.yaml", _good()), topology)
    assert policy.business == "billing"
    assert policy.dag_id == "tandem_backup__billing"
    assert policy.schedule.start == datetime(2026, 11, 20, 13, tzinfo=UTC)
    assert policy.schedule.every == timedelta(hours=1)
    assert [(d.component, d.name) for d in policy.protection_group] == [
        ("hdfs", "/data/billing/details"),
        ("hive", "billing.customers"),
        ("sparksql", "billing_mart.settlements"),
    ]
    assert policy.copy_options.parallelism == 8
    assert policy.consistency.max_skew == timedelta(seconds=1)
    assert policy.retention.max_age == timedelta(days=7)
    assert policy.tenant_dirs == ()


def test_defaults_fill_what_the_file_leaves_out(tmp_path: Path, topology: Topology) -> None:
    data = {k: v for k, v in _good().items() if k in ("business", "pair", "schedule", "protection_group")}
    policy = load_policy(_write(tmp_path, "billing.yaml", data), topology)
    assert policy.copy_options.mode == "pull"
    assert policy.copy_options.engine == "webhdfs"
    assert 1 <= policy.copy_options.parallelism <= 64
    assert policy.retention.keep_last >= 1
    assert policy.user_data is True
    assert policy.tenant_dirs == ()


def test_paths_and_tables_are_normalised(tmp_path: Path, topology: Topology) -> None:
    data = _good()
    data["protection_group"] = [{"hdfs": "//data//billing/./details/"}, {"hive": "Billing.Customers"}]
    data["tenant_dirs"] = ["/data/billing/"]
    policy = load_policy(_write(tmp_path, "billing.yaml", data), topology)
    assert policy.hdfs_paths == ("/data/billing/details",)
    assert policy.datasets("hive")[0].name == "billing.customers"
    assert policy.tenant_dirs == ("/data/billing",)


def test_unquoted_yaml_timestamp_is_accepted(tmp_path: Path, topology: Topology) -> None:
    text = yaml.safe_dump(_good()).replace("'2026-11-20T13:00:00Z'", "2026-11-20T13:00:00Z")
    assert "start: 2026-11-20T13:00:00Z" in text
    policy = load_policy(_write(tmp_path, "billing.yaml", text), topology)
    assert policy.schedule.start == datetime(2026, 11, 20, 13, tzinfo=UTC)


def test_effective_yaml_shows_defaults_and_reads_back(tmp_path: Path, topology: Topology) -> None:
    data = _good()
    del data["retention"]
    policy = load_policy(_write(tmp_path, "billing.yaml", data), topology)
    text = policy.effective_yaml()
    effective = yaml.safe_load(text)
    assert effective["retention"] == {"keep_last": 24, "max_age": "7d"}
    assert effective["schedule"] == {"start": "2026-11-20T13:00:00Z", "every": "1h"}
    assert effective["copy"]["engine"] == "webhdfs"
    assert effective["protection_group"][1] == {"hive": "billing.customers"}
    again = load_policy(_write(tmp_path / "again", "billing.yaml", text), topology)
    assert again == policy


def test_policy_is_immutable(tmp_path: Path, topology: Topology) -> None:
    policy = load_policy(_write(tmp_path, "billing.yaml", _good()), topology)
    with pytest.raises(ValidationError, match="frozen"):
        policy.business = "other"


def test_policy_built_in_code_is_checked_too() -> None:
    data = _good()
    data["protection_group"] = [{"hdfs": "/data/a"}, {"hdfs": "/data/a/b"}]
    with pytest.raises(ValueError, match=r"protection_group\[1\]\.hdfs: /data/a/b overlaps"):
        Policy.model_validate(data)


def test_the_shipped_billing_policy_is_valid() -> None:
    topology = load_topology(REPO / "include" / "clusters.yaml")
    policy = load_policy(REPO / "include" / "policies" / "billing.yaml", topology)
    assert policy.pair == "main"
    assert policy.tenant_dirs == ("/data/billing",)
    assert [(d.component, d.name) for d in policy.protection_group] == [
        ("hdfs", "/data/billing/details"),
        ("hive", "billing.customers"),
        ("sparksql", "billing_mart.settlements"),
    ]
    assert policy.copy_options.parallelism == 8
    assert policy.retention.keep_last == 24


# --------------------------------------------------------------------------------------------
# Errors: file, field, reason


def _with(path: str, value: Any) -> dict[str, Any]:
    """The good policy with one dotted key replaced (``[i]`` indexes a list)."""
    data = _good()
    holder: Any = data
    parts = path.replace("[", ".[").split(".")
    for part in parts[:-1]:
        holder = holder[int(part[1:-1])] if part.startswith("[") else holder.setdefault(part, {})
    last = parts[-1]
    if last.startswith("["):
        holder[int(last[1:-1])] = value
    else:
        holder[last] = value
    return data


@pytest.mark.parametrize(
    ("key", "value", "field", "reason"),
    [
        ("colour", "red", "colour", "unknown key; allowed keys: business, description, pair, schedule"),
        (
            "copy.speed",
            3,
            "copy.speed",
            "unknown key; allowed keys: mode, engine, parallelism, bandwidth_mb, maps, max_bandwidth",
        ),
        ("protection_group[1]", {"hive": "a.b", "owner": "x"}, "protection_group[1].owner", "unknown key"),
        ("schedule.every", "1hour", "schedule.every", "'1hour' is not a duration"),
        ("schedule.every", 3600, "schedule.every", "a duration needs a unit"),
        ("schedule.every", "1500ms", "schedule.every", "is not whole seconds"),
        ("consistency.max_skew", "0s", "consistency.max_skew", "0s must be longer than zero"),
        ("retention.max_age", "a week", "retention.max_age", "is not a duration"),
        ("retention.keep_last", 0, "retention.keep_last", "greater than or equal to 1"),
        ("copy.parallelism", 65, "copy.parallelism", "less than or equal to 64"),
        ("copy.mode", "sideways", "copy.mode", "'pull' or 'push'"),
        ("copy.engine", "rsync", "copy.engine", "'webhdfs' or 'distcp'"),
        ("copy.maps", 20, "copy.maps", "maps applies to engine distcp only, this policy copies with webhdfs"),
        ("copy.max_bandwidth", "fast", "copy.max_bandwidth", "'fast' is not a rate like 100MB/s"),
        ("copy.max_bandwidth", 100, "copy.max_bandwidth", "write it with a unit, like 100MB/s"),
        (
            "pair",
            "backup",
            "pair",
            "pair 'backup' is not defined in the cluster topology; defined pairs: main",
        ),
        ("business", "Billing", "business", "'Billing' is not a business name"),
        ("business", "invoices", "business", "business 'invoices' must match the file name 'billing'"),
        (
            "protection_group[1]",
            {"hive": "customers"},
            "protection_group[1].hive",
            "table name 'customers' has no database: write it as <database>.<table>",
        ),
        (
            "protection_group[2]",
            {"sparksql": "settlements"},
            "protection_group[2].sparksql",
            "has no database",
        ),
        (
            "protection_group[1]",
            {"hive": "billing.cust-omers"},
            "protection_group[1].hive",
            "is not <database>.<table>",
        ),
        (
            "protection_group[0]",
            {"hdfs": "data/billing"},
            "protection_group[0].hdfs",
            "relative HDFS path 'data/billing': write it from the root",
        ),
        (
            "protection_group[0]",
            {"hdfs": "hdfs://primary/data"},
            "protection_group[0].hdfs",
            "names a filesystem",
        ),
        ("protection_group[0]", {"hdfs": "/data/../etc"}, "protection_group[0].hdfs", "contains '..'"),
        (
            "protection_group[0]",
            {"hdfs": "/"},
            "protection_group[0].hdfs",
            "the filesystem root cannot be protected",
        ),
        (
            "protection_group[0]",
            {"hdfs": "/data/.snapshot/s1"},
            "protection_group[0].hdfs",
            "points into a .snapshot directory",
        ),
        ("protection_group[0]", {"hdfs": "/a", "hive": "a.b"}, "protection_group[0]", "exactly one dataset"),
        ("protection_group[0]", {}, "protection_group[0]", "exactly one dataset"),
        ("protection_group", [], "protection_group", "at least 1 item"),
        ("tenant_dirs", ["billing"], "tenant_dirs[0]", "relative HDFS path 'billing'"),
        ("schedule.start", "2026-11-20T13:00:00", "schedule.start", "has no time zone: end it with Z"),
        ("schedule.start", "2026-11-20T14:00:00+01:00", "schedule.start", "is not in UTC"),
        ("schedule.start", "next monday", "schedule.start", "'next monday' is not an ISO-8601 instant"),
        ("schedule.start", "2026-11-20T13:00:00.5Z", "schedule.start", "has a fraction of a second"),
        ("user_data", "perhaps", "user_data", "valid boolean"),
    ],
)
def test_each_error_names_file_field_and_reason(
    tmp_path: Path, topology: Topology, key: str, value: Any, field: str, reason: str
) -> None:
    errors = _errors(tmp_path, topology, _with(key, value))
    assert [e.field for e in errors] == [field]
    error = errors[0]
    assert error.file == str(tmp_path / "policies" / "billing.yaml")
    assert reason in error.reason
    assert str(error) == f"{error.file}: {field}: {error.reason}"


@pytest.mark.parametrize(
    "key", ["business", "pair", "schedule", "protection_group", "schedule.start", "schedule.every"]
)
def test_missing_required_keys(tmp_path: Path, topology: Topology, key: str) -> None:
    data = _good()
    if "." in key:
        del data["schedule"][key.split(".")[1]]
    else:
        del data[key]
    assert _fields(_errors(tmp_path, topology, data)) == {key: "required, but missing"}


def test_unquoted_date_without_time_is_refused(tmp_path: Path, topology: Topology) -> None:
    text = yaml.safe_dump(_good()).replace("'2026-11-20T13:00:00Z'", "2026-11-20")
    assert _fields(_errors(tmp_path, topology, text)) == {
        "schedule.start": "2026-11-20 is a date without a time: write an instant such as 2026-11-20T13:00:00Z"
    }


@pytest.mark.parametrize(
    ("group", "field", "reason"),
    [
        (
            [{"hdfs": "/data/a"}, {"hdfs": "/data/a/"}],
            "protection_group[1].hdfs",
            "/data/a is listed twice: also protection_group[0]",
        ),
        (
            [{"hive": "db.t"}, {"hive": "DB.T"}],
            "protection_group[1].hive",
            "db.t is listed twice: also protection_group[0]",
        ),
        (
            [{"hive": "db.t"}, {"sparksql": "db.t"}],
            "protection_group[1].sparksql",
            "db.t is listed twice: also protection_group[0]",
        ),
        (
            [{"hdfs": "/data/a"}, {"hdfs": "/data/a/b/c"}],
            "protection_group[1].hdfs",
            "/data/a/b/c overlaps protection_group[0] (/data/a): /data/a/b/c is inside /data/a and would be "
            "copied twice; protect /data/a only",
        ),
        (
            [{"hdfs": "/data/a/b"}, {"hdfs": "//data/a"}],
            "protection_group[1].hdfs",
            "/data/a overlaps protection_group[0] (/data/a/b): /data/a/b is inside /data/a and would be "
            "copied twice; protect /data/a only",
        ),
    ],
)
def test_repeats_and_overlaps(
    tmp_path: Path, topology: Topology, group: list[dict[str, str]], field: str, reason: str
) -> None:
    assert _fields(_errors(tmp_path, topology, _with("protection_group", group))) == {field: reason}


def test_sibling_paths_with_a_common_prefix_do_not_overlap(tmp_path: Path, topology: Topology) -> None:
    data = _with("protection_group", [{"hdfs": "/data/bill"}, {"hdfs": "/data/billing"}])
    assert load_policy(_write(tmp_path, "billing.yaml", data), topology).hdfs_paths == (
        "/data/bill",
        "/data/billing",
    )


def test_tenant_dir_listed_twice(tmp_path: Path, topology: Topology) -> None:
    errors = _errors(tmp_path, topology, _with("tenant_dirs", ["/data/billing", "/data/billing/"]))
    assert _fields(errors) == {"tenant_dirs[1]": "/data/billing is listed twice: also tenant_dirs[0]"}


def test_all_errors_of_a_file_are_gathered(tmp_path: Path, topology: Topology) -> None:
    data = _good()
    data["pair"] = "nope"
    data["schedule"]["every"] = "hourly"
    data["protection_group"] = [
        {"hdfs": "relative/path"},
        {"hdfs": "/data/x"},
        {"hdfs": "/data/x/y"},
        {"hive": "no_database"},
        {"hive": "db.t"},
        {"sparksql": "db.t"},
    ]
    data["copy"]["parallelism"] = 0
    data["copy"]["bandwidth_mb"] = 10
    data["extra"] = 1
    fields = _fields(_errors(tmp_path, topology, data))
    assert set(fields) == {
        "pair",
        "schedule.every",
        "protection_group[0].hdfs",
        "protection_group[2].hdfs",
        "protection_group[3].hive",
        "protection_group[5].sparksql",
        "copy.parallelism",
        "copy.bandwidth_mb",
        "extra",
    }


def test_distcp_options_are_accepted_with_distcp(tmp_path: Path, topology: Topology) -> None:
    data = _with("copy", {"engine": "distcp", "bandwidth_mb": 100, "maps": 20})
    policy = load_policy(_write(tmp_path, "billing.yaml", data), topology)
    assert (policy.copy_options.bandwidth_mb, policy.copy_options.maps) == (100, 20)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("business: [unclosed\n", "not valid YAML: "),
        ("a: 1\na: 2\n", "not valid YAML: duplicate key 'a' (line 2, column 1)"),
        ("", "must be a mapping of keys to values, it is empty"),
        ("- just\n- a list\n", "must be a mapping of keys to values, it is a list"),
    ],
)
def test_unreadable_files(tmp_path: Path, topology: Topology, text: str, reason: str) -> None:
    errors = _errors(tmp_path, topology, text)
    assert [e.field for e in errors] == [FILE_FIELD]
    assert reason in errors[0].reason


def test_load_policy_raises_all_errors_at_once(tmp_path: Path, topology: Topology) -> None:
    data = _good()
    data["pair"] = "nope"
    data["copy"]["mode"] = "sideways"
    with pytest.raises(InvalidConfig) as caught:
        load_policy(_write(tmp_path, "billing.yaml", data), topology)
    assert {e.field for e in caught.value.errors} == {"pair", "copy.mode"}
    assert isinstance(caught.value, ConfigError)
    assert "pair" in str(caught.value) and "copy.mode" in str(caught.value)


def test_without_a_topology_the_pair_is_not_checked(tmp_path: Path) -> None:
    policy, errors = check_policy_file(_write(tmp_path, "billing.yaml", _with("pair", "anything")), None)
    assert errors == () and policy is not None


# --------------------------------------------------------------------------------------------
# A directory of policies


def test_a_bad_file_is_isolated_from_good_ones(tmp_path: Path, topology: Topology) -> None:
    directory = tmp_path / "policies"
    _write(directory, "billing.yaml", _good())
    _write(directory, "crm.yaml", _with("business", "crm") | {"protection_group": [{"hdfs": "/data/crm"}]})
    bad = _write(directory, "broken.yaml", _with("business", "broken") | {"pair": "nope"})
    _write(directory, "notes.txt", "not a policy")
    _write(directory, ".hidden.yaml", "::")
    loaded = load_policies(directory, topology)
    assert loaded.names == ("billing", "crm")
    assert set(loaded.errors) == {bad}
    assert [(e.file, e.field) for e in loaded.errors[bad]] == [(str(bad), "pair")]
    assert loaded.policy("crm").hdfs_paths == ("/data/crm",)
    with pytest.raises(KeyError):
        loaded.policy("broken")


def test_a_business_defined_twice_is_refused_in_both_files(tmp_path: Path, topology: Topology) -> None:
    directory = tmp_path / "policies"
    first = _write(directory, "billing.yaml", _good())
    second = _write(directory, "billing.yml", _good())
    loaded = load_policies(directory, topology)
    assert loaded.policies == ()
    assert loaded.errors[first][0].reason == f"business 'billing' is also defined in {second}"
    assert loaded.errors[second][0].reason == f"business 'billing' is also defined in {first}"


def test_missing_directory_is_an_error(tmp_path: Path, topology: Topology) -> None:
    with pytest.raises(ConfigError, match="policy directory not found"):
        load_policies(tmp_path / "nowhere", topology)


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        (
            {"schedule": {"start": "2026-11-20T13:00:00Z", "every": "1m"}},
            "schedule.every",
            "runs every 1m: more often than every 5m",
        ),
        (
            {"retention": {"keep_last": 24, "max_age": "12h"}},
            "retention.max_age",
            "max_age 12h keeps at most 13 points at one every 1h, fewer than keep_last 24",
        ),
        ({"description": ""}, "description", "no description"),
    ],
)
def test_warnings(
    tmp_path: Path, topology: Topology, change: dict[str, Any], field: str, reason: str
) -> None:
    directory = tmp_path / "policies"
    path = _write(directory, "billing.yaml", _good() | change)
    loaded = load_policies(directory, topology)
    assert loaded.names == ("billing",)
    assert [(w.field, reason in w.reason) for w in loaded.warnings[path]] == [(field, True)]


def test_a_dataset_shared_by_two_businesses_is_a_warning(tmp_path: Path, topology: Topology) -> None:
    directory = tmp_path / "policies"
    billing = _write(directory, "billing.yaml", _good())
    crm = _write(
        directory, "crm.yaml", _with("business", "crm") | {"protection_group": [{"hdfs": "/data/billing"}]}
    )
    loaded = load_policies(directory, topology)
    assert [(w.field, w.reason) for w in loaded.warnings[billing]] == [
        (
            "protection_group[0].hdfs",
            "/data/billing/details is also protected by business 'crm': it will be copied by both and may be "
            "restored to two different instants",
        )
    ]
    assert [w.field for w in loaded.warnings[crm]] == ["protection_group[0].hdfs"]


def test_overlaps_are_found_by_index_among_many_businesses(tmp_path: Path, topology: Topology) -> None:
    directory = tmp_path / "policies"
    for n in range(200):  # unrelated businesses, some with paths that share a prefix string only
        _write(
            directory,
            f"b{n}.yaml",
            _with("business", f"b{n}") | {"protection_group": [{"hdfs": f"/data/b{n}"}, {"hive": f"b{n}.t"}]},
        )
    table = _write(directory, "t.yaml", _with("business", "t") | {"protection_group": [{"hive": "b7.t"}]})
    deep = _write(
        directory, "deep.yaml", _with("business", "deep") | {"protection_group": [{"hdfs": "/data/b1/x/y"}]}
    )
    loaded = load_policies(directory, topology)
    assert [w.reason.split(":")[0] for w in loaded.warnings[table]] == [
        "b7.t is also protected by business 'b7'"
    ]
    assert [w.reason.split(":")[0] for w in loaded.warnings[deep]] == [
        "/data/b1/x/y is also protected by business 'b1'"
    ]
    assert [w.reason.split(":")[0] for w in loaded.warnings[directory / "b1.yaml"]] == [
        "/data/b1 is also protected by business 'deep'"
    ]
    assert directory / "b10.yaml" not in loaded.warnings  # /data/b10 is not inside /data/b1


# --------------------------------------------------------------------------------------------
# Topology


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        (
            CLUSTERS.replace(
                "main: {primary: primary, standby: standby}", "main: {primary: primary, standby: dr}"
            ),
            "pairs.main.standby",
            "cluster 'dr' is not defined; defined: primary, standby",
        ),
        (
            CLUSTERS.replace(
                "main: {primary: primary, standby: standby}", "main: {primary: primary, standby: primary}"
            ),
            "pairs.main.standby",
            "a pair needs two different clusters, both are 'primary'",
        ),
        (
            CLUSTERS.replace('nameservice: "hdfs://standby"', 'nameservice: "standby"'),
            "clusters.standby.nameservice",
            "is not a nameservice: write hdfs://<nameservice>",
        ),
        (
            CLUSTERS.replace("zookeeper_conn_id: zookeeper_standby", "zk: zookeeper_standby"),
            "clusters.standby.zk",
            "unknown key; allowed keys: nameservice, webhdfs_conn_id, metastore_conn_id, zookeeper_conn_id",
        ),
        (CLUSTERS.replace("main: {primary", "Main Pair: {primary"), "pairs.Main Pair", "is not a name"),
        ("clusters: {}\n", "pairs", "required, but missing"),
    ],
)
def test_topology_errors(tmp_path: Path, text: str, field: str, reason: str) -> None:
    path = tmp_path / "clusters.yaml"
    path.write_text(text)
    topology, errors = check_topology_file(path)
    assert topology is None
    assert field in {e.field for e in errors}
    assert reason in next(e.reason for e in errors if e.field == field)


def test_pair_errors_are_found_even_when_a_cluster_is_broken(tmp_path: Path) -> None:
    text = CLUSTERS.replace('nameservice: "hdfs://standby"', "nameservice: 7").replace(
        "standby: standby}", "standby: dr}"
    )
    path = tmp_path / "clusters.yaml"
    path.write_text(text)
    _, errors = check_topology_file(path)
    assert {e.field for e in errors} == {"clusters.standby.nameservice", "pairs.main.standby"}


def test_topology_is_read_only(topology: Topology) -> None:
    assert topology.pair("main").standby == "standby"
    assert topology.cluster("primary").webhdfs_conn_id == "webhdfs_primary"
    with pytest.raises(TypeError):
        topology.clusters["x"] = topology.cluster("primary")  # type: ignore[index]


# --------------------------------------------------------------------------------------------
# `tandem policy validate`


def _project(tmp_path: Path, files: dict[str, dict[str, Any] | str]) -> Path:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    _write(tmp_path / "include", "clusters.yaml", CLUSTERS)
    for name, data in files.items():
        _write(tmp_path / "include" / "policies", name, data)
    return tmp_path


def _run(monkeypatch: pytest.MonkeyPatch, cwd: Path, **options: Any) -> tuple[int, str]:
    monkeypatch.chdir(cwd)
    lines: list[str] = []
    args = argparse.Namespace(action="validate", dir=None, strict=False, json=False)
    for key, value in options.items():
        setattr(args, key, value)
    code = run_policy(args, out=lines.append)
    return code, "\n".join(lines)


def test_validate_is_clean_on_good_policies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _project(tmp_path, {"billing.yaml": _good()})
    code, text = _run(monkeypatch, root / "include")  # found upward from a subdirectory
    assert code == 0
    assert text == "1 valid policy (billing), 0 errors, 0 warnings"


def test_validate_prints_every_error_and_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _project(tmp_path, {"billing.yaml": _good(), "crm.yaml": _with("business", "crm") | {"pair": "x"}})
    code, text = _run(monkeypatch, root)
    assert code == 1
    assert text.splitlines() == [
        "include/policies/crm.yaml: pair: pair 'x' is not defined in the cluster topology; "
        "defined pairs: main",
        "1 valid policy (billing), 1 error, 0 warnings",
    ]


def test_a_group_whose_only_dataset_is_refused_gets_that_one_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not also pydantic's follow-on "tuple should have at least 1 item" for the emptied group."""
    root = _project(tmp_path, {"billing.yaml": _good() | {"protection_group": [{"hdfs": "data/relative"}]}})
    code, text = _run(monkeypatch, root)
    assert code == 1
    assert text.splitlines() == [
        "include/policies/billing.yaml: protection_group[0].hdfs: relative HDFS path 'data/relative': "
        "write it from the root, such as /data/relative",
        "0 valid policies (none), 1 error, 0 warnings",
    ]


def test_tandems_own_directory_cannot_be_protected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = {"protection_group": [{"hdfs": "/.tandem/restore-points"}]}
    root = _project(tmp_path, {"billing.yaml": _good() | catalog})
    code, text = _run(monkeypatch, root)
    assert code == 1
    assert "protection_group[0].hdfs: /.tandem/restore-points is inside /.tandem" in text


def test_validate_strict_fails_on_warnings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _project(tmp_path, {"billing.yaml": _good() | {"description": ""}})
    assert _run(monkeypatch, root)[0] == 0
    code, text = _run(monkeypatch, root, strict=True)
    assert code == 1
    assert "include/policies/billing.yaml: description: no description" in text


def test_validate_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _project(tmp_path, {"billing.yaml": _good() | {"description": ""}, "bad.yaml": "- x\n"})
    code, text = _run(monkeypatch, root, json=True)
    assert code == 1
    assert json.loads(text) == {
        "policies": ["billing"],
        "errors": [
            {
                "file": "include/policies/bad.yaml",
                "field": FILE_FIELD,
                "reason": "must be a mapping of keys to values, it is a list",
            }
        ],
        "warnings": [
            {
                "file": "include/policies/billing.yaml",
                "field": "description",
                "reason": "no description: say why these datasets must agree; "
                "it heads the DAG's documentation",
            }
        ],
    }


def test_validate_an_explicit_directory_uses_the_clusters_file_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "elsewhere"
    _write(other, "clusters.yaml", CLUSTERS.replace("main:", "dr:"))
    _write(other / "policies", "billing.yaml", _good() | {"pair": "dr"})
    code, text = _run(monkeypatch, tmp_path, dir=other / "policies")
    assert (code, text) == (0, "1 valid policy (billing), 0 errors, 0 warnings")


def test_validate_reports_a_broken_topology_and_still_checks_policies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _project(tmp_path, {"billing.yaml": _good() | {"copy": {"mode": "x"}}})
    (root / "include" / "clusters.yaml").unlink()
    code, text = _run(monkeypatch, root)
    assert code == 1
    assert "include/clusters.yaml: <file>: file not found" in text
    assert "include/policies/billing.yaml: copy.mode:" in text


def test_validate_a_missing_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _project(tmp_path, {})
    code, text = _run(monkeypatch, root, dir=Path("nope"))
    assert code == 1
    assert "nope: <file>: policy directory not found" in text


def test_cli_dispatches_to_run_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tandem.cli import main

    root = _project(tmp_path, {"billing.yaml": _good()})
    monkeypatch.chdir(root)
    assert main(["policy", "validate", "--strict", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["policies"] == ["billing"]


def test_validate_warns_of_a_pairs_pool_the_settings_do_not_define(tmp_path: Path) -> None:
    """Airflow never schedules a task in a pool that does not exist: a pair naming one would
    leave its businesses silently without backups (found by an adversarial read)."""
    from tandem.policy import validate_directory

    project = Path(__file__).resolve().parents[2]
    include = tmp_path / "include"
    (include / "policies").mkdir(parents=True)
    (include / "policies" / "billing.yaml").write_text(
        (project / "include/policies/billing.yaml").read_text()
    )
    clusters = yaml.safe_load((project / "include/clusters.yaml").read_text())
    settings = tmp_path / "airflow_settings.yaml"
    settings.write_text(
        yaml.safe_dump({"airflow": {"pools": [{"pool_name": "tandem_copy", "pool_slot": 4}]}})
    )
    for pool, warned in (("tandem_copy", False), ("default_pool", False), ("tandem_kopy", True)):
        clusters["pairs"]["main"]["pool"] = pool
        (include / "clusters.yaml").write_text(yaml.safe_dump(clusters))
        report = validate_directory(include / "policies", include / "clusters.yaml", settings)
        said = [str(w) for w in report.warnings if w.field == "pairs.main.pool"]
        assert bool(said) is warned, said
    assert "pool 'tandem_kopy' is not defined in" in said[0] and report.exit_code(strict=True) == 1
