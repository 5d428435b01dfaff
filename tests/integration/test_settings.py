"""airflow_settings.yaml: parsing with reasons, and applying into a real Airflow SQLite DB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tandem.errors import ConfigError
from tandem.settings import ConnectionSetting, load_settings, with_overrides
from tandem_dev.embedded import manager
from tandem_dev.embedded.manager import RunningClusters

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# every test that writes into an Airflow DB runs on one xdist worker, so `db migrate` runs once
AIRFLOW_DB = pytest.mark.xdist_group("airflow_db")


def write(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "airflow_settings.yaml"
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc), encoding="utf-8")
    return path


def conn(**fields: object) -> dict[str, object]:
    return {"conn_id": "c1", "conn_type": "webhdfs", "conn_host": "127.0.0.1", "conn_port": 9870, **fields}


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("doc", "field", "reason"),
    [
        ("airflow: [unclosed", "(file)", "cannot be read as YAML"),
        ("", "airflow", "missing"),
        ({"connections": []}, "airflow", "missing"),
        ({"airflow": {"conections": []}}, "airflow.conections", "unknown section"),
        ({"airflow": {"connections": {"conn_id": "x"}}}, "airflow.connections", "must be a list"),
        ({"airflow": {"connections": ["webhdfs"]}}, "airflow.connections[0]", "must be a mapping"),
        (
            {"airflow": {"connections": [conn(conn_prot=1)]}},
            "airflow.connections[0].conn_prot",
            "unknown key",
        ),
        ({"airflow": {"connections": [conn(conn_id=None)]}}, "airflow.connections[0].conn_id", "is required"),
        (
            {"airflow": {"connections": [conn(conn_id=" ")]}},
            "airflow.connections[0].conn_id",
            "must not be empty",
        ),
        (
            {"airflow": {"connections": [conn(conn_type=None)]}},
            "airflow.connections[0].conn_type",
            "is required",
        ),
        (
            {"airflow": {"connections": [conn(conn_port=70000)]}},
            "airflow.connections[0].conn_port",
            "must be between",
        ),
        (
            {"airflow": {"connections": [conn(conn_port="http")]}},
            "airflow.connections[0].conn_port",
            "must be an int",
        ),
        (
            {"airflow": {"connections": [conn(conn_host=["a"])]}},
            "airflow.connections[0].conn_host",
            "must be a str",
        ),
        (
            {"airflow": {"connections": [conn(conn_extra="[1]")]}},
            "airflow.connections[0].conn_extra",
            "must be a map",
        ),
        (
            {"airflow": {"connections": [conn(conn_uri="webhdfs://h:1")]}},
            "airflow.connections[0].conn_uri",
            "give either conn_uri or conn_type, conn_host, conn_port, not both",
        ),
        (
            {"airflow": {"connections": [{"conn_id": "u", "conn_uri": "hive_metastore://h:1"}]}},
            "airflow.connections[0].conn_uri",
            "write the type as hive-metastore://",
        ),
        (
            {"airflow": {"connections": [{"conn_id": "u", "conn_uri": "just-a-host"}]}},
            "airflow.connections[0].conn_uri",
            "must look like",
        ),
        (
            {"airflow": {"connections": [conn(), conn(conn_port=1)]}},
            "airflow.connections[1].conn_id",
            "'c1' is defined twice",
        ),
        ({"airflow": {"pools": [{"pool_name": "p"}]}}, "airflow.pools[0].pool_slot", "is required"),
        (
            {"airflow": {"pools": [{"pool_name": "p", "pool_slot": -2}]}},
            "airflow.pools[0].pool_slot",
            "must be at",
        ),
        (
            {"airflow": {"pools": [{"pool_name": "p", "pool_slot": True}]}},
            "airflow.pools[0].pool_slot",
            "must be an",
        ),
        (
            {"airflow": {"variables": [{"variable_name": "v"}]}},
            "airflow.variables[0].variable_value",
            "is required",
        ),
    ],
)
def test_invalid_files_name_file_field_and_reason(
    tmp_path: Path, doc: object, field: str, reason: str
) -> None:
    path = write(tmp_path, doc)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert (caught.value.file, caught.value.field) == (str(path), field)
    assert caught.value.reason.startswith(reason), caught.value.reason


def test_every_entrys_problem_is_said_at_once(tmp_path: Path) -> None:
    """As ``tandem policy validate`` does: one run names all that is wrong, a line each."""
    path = write(
        tmp_path,
        {
            "airflow": {
                "connections": [{"conn_type": "webhdfs", "conn_port": "abc"}, conn()],
                "pools": [{"pool_name": "p", "pool_slot": -5}],
            }
        },
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert str(caught.value).splitlines() == [
        f"{path}: airflow.connections[0].conn_id: is required",
        f"{path}: airflow.pools[0].pool_slot: must be at least -1",
    ]


def test_yaml_that_does_not_parse_is_said_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("airflow: {connections: [\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert caught.value.field == "(file)" and "\n" not in str(caught.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")


def test_astro_values_are_normalised(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "airflow": {
                "connections": [
                    conn(conn_port="9870", conn_extra={"use_ssl": False}),
                    {"conn_id": "u", "conn_uri": "webhdfs://hdfs@nn1:9870"},
                ],
                "pools": [{"pool_name": "p", "pool_slot": 4}],
                "variables": [
                    {"variable_name": "n", "variable_value": 3},
                    {"variable_name": "d", "variable_value": {"a": [1, 2]}},
                ],
            }
        },
    )
    settings = load_settings(path)
    assert settings.connections[0] == ConnectionSetting(
        "c1", "webhdfs", "127.0.0.1", 9870, extra='{"use_ssl": false}'
    )
    assert settings.connections[1].uri == "webhdfs://hdfs@nn1:9870"
    assert settings.pools[0].slots == 4
    assert [v.value for v in settings.variables] == ["3", '{"a": [1, 2]}']


def test_project_settings_define_the_embedded_connections_and_the_copy_pool() -> None:
    settings = load_settings(ROOT / "airflow_settings.yaml")
    ids = manager.cluster_conn_ids(ROOT / "include" / "clusters.yaml")
    by_id = {c.conn_id: c for c in settings.connections}
    types = {"webhdfs": "webhdfs", "metastore": "hive_metastore", "zookeeper": "zookeeper"}
    assert set(ids) == {"primary", "standby", "primary2"}
    for cluster in ids:
        for kind, conn_type in types.items():
            defined = by_id[ids[cluster][kind]]
            assert defined.conn_type == conn_type
            assert defined.host == "127.0.0.1" and defined.port
    assert by_id[ids["primary"]["webhdfs"]].login == "hdfs"
    assert {p.name: p.slots for p in settings.pools} == {"tandem_copy": 4}


def test_overrides_touch_only_loopback_connections(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "airflow": {
                "connections": [
                    conn(conn_id="local"),
                    conn(conn_id="real", conn_host="nn1.example,nn2.example"),
                ]
            }
        },
    )
    new, changed = with_overrides(load_settings(path), {"local": {"port": 1234}, "real": {"port": 1234}})
    assert changed == ("local",)
    assert [c.port for c in new.connections] == [1234, 9870]


# --------------------------------------------------------------------------- applying to Airflow


def airflow_env(airflow_home: Path, tandem_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env.update(
        AIRFLOW_HOME=str(airflow_home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        TANDEM_HOME=str(tandem_home),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


def run(args: list[str], env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=240)


_READ_BACK = """
import json
from airflow.models import Connection, Pool, Variable
from airflow.utils.session import create_session
from sqlalchemy import select
with create_session() as s:
    conns = {c.conn_id: {"conn_type": c.conn_type, "host": c.host, "port": c.port, "login": c.login,
                         "password": c.password, "extra": c.extra} for c in s.scalars(select(Connection))}
    pools = {p.pool: {"slots": p.slots, "description": p.description} for p in s.scalars(select(Pool))}
    variables = {v.key: v.val for v in s.scalars(select(Variable))}
print(json.dumps({"connections": conns, "pools": pools, "variables": variables}))
"""


def read_back(env: dict[str, str]) -> dict[str, Any]:
    """What Airflow itself reads from its DB (passwords, extras and variables are encrypted)."""
    done = run([sys.executable, "-c", _READ_BACK], env)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture(scope="session")
def migrated_airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("airflow-home")
    done = run([str(BIN / "airflow"), "db", "migrate"], airflow_env(home, home / "no-tandem"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    yield home


def test_apply_without_a_migrated_db_says_to_migrate(tmp_path: Path) -> None:
    env = airflow_env(tmp_path / "airflow", tmp_path / "no-tandem")
    done = run([str(BIN / "tandem"), "settings", "apply"], env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "run `airflow db migrate` first" in done.stderr


def test_invalid_file_is_reported_by_the_command(tmp_path: Path) -> None:
    path = write(tmp_path, {"airflow": {"pools": [{"pool_name": "p", "pool_slot": "many"}]}})
    env = airflow_env(tmp_path / "airflow", tmp_path / "no-tandem")
    done = run([str(BIN / "tandem"), "settings", "apply", str(path)], env)
    assert done.returncode == 1
    assert f"{path}: airflow.pools[0].pool_slot: must be an integer" in done.stderr


@pytest.mark.slow
@AIRFLOW_DB
def test_apply_upserts_connections_pools_and_variables(migrated_airflow_home: Path, tmp_path: Path) -> None:
    env = airflow_env(migrated_airflow_home, tmp_path / "no-tandem")
    doc = {
        "airflow": {
            "connections": [
                conn(
                    conn_id="t_webhdfs",
                    conn_login="hdfs",
                    conn_password="s3cret",
                    conn_extra={"use_ssl": False},
                ),
                {"conn_id": "t_uri", "conn_uri": "hive-metastore://metastore.example:9083"},
            ],
            "pools": [{"pool_name": "t_copy", "pool_slot": 4, "pool_description": "copies"}],
            "variables": [{"variable_name": "t_var", "variable_value": {"k": 1}}],
        }
    }
    path = write(tmp_path, doc)
    done = run([str(BIN / "tandem"), "settings", "apply", str(path), "--json"], env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["connections"] == ["t_webhdfs", "t_uri"] and report["embedded_ports"] == []
    assert report["database"].startswith("sqlite:///") and str(migrated_airflow_home) in report["database"]

    seen = read_back(env)
    assert seen["connections"]["t_webhdfs"] == {
        "conn_type": "webhdfs", "host": "127.0.0.1", "port": 9870, "login": "hdfs",
        "password": "s3cret", "extra": '{"use_ssl": false}',
    }  # fmt: skip
    assert seen["connections"]["t_uri"]["host"] == "metastore.example"
    assert seen["connections"]["t_uri"]["conn_type"] == "hive_metastore"
    assert seen["pools"]["t_copy"] == {"slots": 4, "description": "copies"}
    assert json.loads(seen["variables"]["t_var"]) == {"k": 1}

    # applying again with changes updates in place: no duplicates, new values win
    doc["airflow"]["connections"][0]["conn_port"] = 9871  # type: ignore[index]
    doc["airflow"]["pools"][0]["pool_slot"] = 2  # type: ignore[index]
    done = run([str(BIN / "tandem"), "settings", "apply", str(write(tmp_path, doc))], env)
    assert done.returncode == 0, done.stderr
    assert "applied 2 connections, 1 pools and 1 variables" in done.stdout
    seen = read_back(env)
    assert seen["connections"]["t_webhdfs"]["port"] == 9871
    assert seen["pools"]["t_copy"]["slots"] == 2


@pytest.mark.integration
@pytest.mark.slow
@AIRFLOW_DB
def test_apply_uses_the_running_embedded_ports(
    migrated_airflow_home: Path, embedded: RunningClusters, tmp_path: Path
) -> None:
    env = airflow_env(migrated_airflow_home, embedded.home)
    done = run([str(BIN / "tandem"), "settings", "apply", "--json"], env)
    assert done.returncode == 0, done.stderr
    ids = manager.cluster_conn_ids(ROOT / "include" / "clusters.yaml")
    assert sorted(json.loads(done.stdout)["embedded_ports"]) == sorted(
        i for c in ids.values() for i in c.values()
    )
    seen = read_back(env)["connections"]
    for cluster in embedded.clusters:
        assert seen[ids[cluster.name]["webhdfs"]]["port"] == cluster.webhdfs_port
        assert seen[ids[cluster.name]["metastore"]]["port"] == cluster.metastore_port
        assert seen[ids[cluster.name]["zookeeper"]]["port"] == cluster.zookeeper_port


@pytest.mark.integration
@pytest.mark.slow
@AIRFLOW_DB
def test_up_points_an_existing_airflow_db_at_the_embedded_ports(
    migrated_airflow_home: Path, tmp_path: Path
) -> None:
    home = tmp_path / "tandem"
    env = airflow_env(migrated_airflow_home, home)
    done = run([str(BIN / "tandem"), "up", "--json", "--home", str(home)], env)
    try:
        assert done.returncode == 0, done.stderr + manager.log_tails(home)
        # stdout stays the exact JSON document; the note goes to stderr
        clusters = json.loads(done.stdout)["clusters"]
        assert "now point at the embedded clusters" in done.stderr
        seen = read_back(env)["connections"]
        assert seen["webhdfs_primary"]["port"] == int(clusters["primary"]["webhdfs"].rsplit(":", 1)[1])
        assert seen["zookeeper_standby"]["port"] == int(clusters["standby"]["zookeeper"].rsplit(":", 1)[1])
    finally:
        run([str(BIN / "tandem"), "down", "--home", str(home)], env)
