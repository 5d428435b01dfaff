"""``airflow_settings.yaml`` (the Astro CLI format) into Airflow's metadata DB: ``tandem settings apply``.

Airflow itself never reads this file (the Astro CLI does), so plain Airflow deployments apply
it with this module. The file is parsed whole into frozen values first; errors name the file,
the field (``airflow.connections[2].conn_port``) and the reason, and nothing is written unless
the whole file is valid. Writing goes through Airflow's own models and session, in one
transaction, into the DB of the current ``AIRFLOW_HOME``.

Embedded clusters: the connections of ``include/clusters.yaml`` that point at loopback are
re-pointed at the ports ``tandem up`` actually bound, whenever those clusters run.
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from tandem.errors import ConfigError, ConfigErrors, TandemError

T = TypeVar("T")

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

DEFAULT_FILE = "airflow_settings.yaml"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", ""})

_CONNECTION_KEYS = {
    "conn_id",
    "conn_type",
    "conn_host",
    "conn_schema",
    "conn_login",
    "conn_password",
    "conn_port",
    "conn_uri",
    "conn_extra",
    "conn_description",
}
_POOL_KEYS = {"pool_name", "pool_slot", "pool_description", "pool_include_deferred"}
_VARIABLE_KEYS = {"variable_name", "variable_value", "variable_description"}


class AirflowDbNotReady(TandemError):
    """The Airflow metadata DB of the current AIRFLOW_HOME is missing or not migrated."""


@dataclass(frozen=True)
class ConnectionSetting:
    """One Airflow connection. ``extra`` is JSON text; with ``uri`` the other fields are unset."""

    conn_id: str
    conn_type: str | None = None
    host: str | None = None
    port: int | None = None
    login: str | None = None
    password: str | None = None
    schema: str | None = None
    extra: str | None = None
    description: str | None = None
    uri: str | None = None


@dataclass(frozen=True)
class PoolSetting:
    name: str
    slots: int
    description: str = ""
    include_deferred: bool = False


@dataclass(frozen=True)
class VariableSetting:
    key: str
    value: str
    description: str | None = None


@dataclass(frozen=True)
class AirflowSettings:
    """The parsed file."""

    path: Path
    connections: tuple[ConnectionSetting, ...] = ()
    pools: tuple[PoolSetting, ...] = ()
    variables: tuple[VariableSetting, ...] = ()


@dataclass(frozen=True)
class ApplyReport:
    """What :func:`apply_settings` wrote, and which connections it re-pointed at the ports that
    clusters started here publish (tandem.environment)."""

    connections: tuple[str, ...]
    pools: tuple[str, ...]
    variables: tuple[str, ...]
    overridden: tuple[str, ...] = ()
    database: str = ""

    def summary(self) -> str:
        text = (
            f"applied {len(self.connections)} connections, {len(self.pools)} pools and "
            f"{len(self.variables)} variables to {self.database}"
        )
        if self.overridden:
            text += f"; embedded cluster ports used for {', '.join(self.overridden)}"
        return text


# --------------------------------------------------------------------------- parsing


class _Entry:
    """Typed access to one list item, raising ConfigError naming the field."""

    def __init__(self, file: str, where: str, raw: object, allowed: set[str]) -> None:
        if not isinstance(raw, dict):
            raise ConfigError(file, where, "must be a mapping of keys such as " + ", ".join(sorted(allowed)))
        unknown = sorted(set(map(str, raw)) - allowed)
        if unknown:
            raise ConfigError(
                file, f"{where}.{unknown[0]}", f"unknown key; expected one of {', '.join(sorted(allowed))}"
            )
        self.file, self.where, self.raw = file, where, raw

    def fail(self, key: str, reason: str) -> ConfigError:
        return ConfigError(self.file, f"{self.where}.{key}", reason)

    def text(self, key: str, *, required: bool = False) -> str | None:
        value = self.raw.get(key)
        if value is None:
            if required:
                raise self.fail(key, "is required")
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.fail(key, f"must be a string, not {type(value).__name__}")
        text = str(value)
        if required and not text.strip():
            raise self.fail(key, "must not be empty")
        return text

    def integer(self, key: str, low: int, high: int | None = None) -> int | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"must be an integer, not {value!r}")
        if value < low or (high is not None and value > high):
            raise self.fail(key, f"must be between {low} and {high}" if high else f"must be at least {low}")
        return value


def _parse_connection(entry: _Entry) -> ConnectionSetting:
    conn_id = entry.text("conn_id", required=True)
    assert conn_id is not None
    extra_raw = entry.raw.get("conn_extra")
    extra: str | None
    if extra_raw is None or isinstance(extra_raw, dict):
        extra = json.dumps(extra_raw) if extra_raw else None
    elif isinstance(extra_raw, str):
        try:
            if not isinstance(json.loads(extra_raw), dict):
                raise ValueError("not an object")
        except ValueError:
            raise entry.fail("conn_extra", "must be a mapping or a JSON object string") from None
        extra = extra_raw
    else:
        raise entry.fail("conn_extra", "must be a mapping or a JSON object string")
    uri = entry.text("conn_uri")
    fields = (
        "conn_type",
        "conn_host",
        "conn_port",
        "conn_login",
        "conn_password",
        "conn_schema",
        "conn_extra",
    )
    if uri is not None:
        mixed = [key for key in fields if entry.raw.get(key) is not None]
        if mixed:
            raise entry.fail("conn_uri", f"give either conn_uri or {', '.join(mixed)}, not both")
        scheme = uri.split("://", 1)[0] if "://" in uri else ""
        if not scheme:
            raise entry.fail("conn_uri", "must look like <type>://[login[:password]@]host[:port][/schema]")
        if "_" in scheme:
            # URI schemes cannot hold '_'; Airflow maps '-' back to '_' (hive-metastore -> hive_metastore)
            raise entry.fail("conn_uri", f"write the type as {scheme.replace('_', '-')}://, not {scheme}://")
        return ConnectionSetting(conn_id, uri=uri, description=entry.text("conn_description"))
    return ConnectionSetting(
        conn_id=conn_id,
        conn_type=entry.text("conn_type", required=True),
        host=entry.text("conn_host"),
        port=entry.integer("conn_port", 1, 65535),
        login=entry.text("conn_login"),
        password=entry.text("conn_password"),
        schema=entry.text("conn_schema"),
        extra=extra,
        description=entry.text("conn_description"),
    )


def _parse_pool(entry: _Entry) -> PoolSetting:
    name = entry.text("pool_name", required=True)
    slots = entry.integer("pool_slot", -1)
    if slots is None:
        raise entry.fail("pool_slot", "is required (-1 means unlimited)")
    deferred = entry.raw.get("pool_include_deferred", False)
    if not isinstance(deferred, bool):
        raise entry.fail("pool_include_deferred", "must be true or false")
    assert name is not None
    return PoolSetting(name, slots, entry.text("pool_description") or "", deferred)


def _parse_variable(entry: _Entry) -> VariableSetting:
    key = entry.text("variable_name", required=True)
    assert key is not None
    if "variable_value" not in entry.raw:
        raise entry.fail("variable_value", "is required")
    value = entry.raw["variable_value"]
    # Airflow stores text: structured values become JSON, which Variable.get(deserialize_json=True) reads
    text = value if isinstance(value, str) else json.dumps(value)
    return VariableSetting(key, text, entry.text("variable_description"))


def _section(file: str, airflow: Mapping[str, Any], name: str) -> list[object]:
    items = airflow.get(name)
    if items is None:
        return []
    if not isinstance(items, list):
        raise ConfigError(file, f"airflow.{name}", "must be a list")
    return items


def _unique(file: str, section: str, key: str, names: Sequence[str]) -> None:
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            raise ConfigError(file, f"airflow.{section}[{index}].{key}", f"{name!r} is defined twice")
        seen.add(name)


def load_settings(path: Path) -> AirflowSettings:
    """Parse an Astro ``airflow_settings.yaml``. Pure apart from reading the file.

    Raises :class:`ConfigError` (file, field, reason): every entry's first problem at once
    (:class:`ConfigErrors`), or the file's own (not YAML, no ``airflow:`` mapping).
    """
    file = str(path)
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(file, "(file)", "does not exist") from None
    except (OSError, yaml.YAMLError) as exc:
        said = " ".join(str(exc).split())  # PyYAML's message spans lines
        raise ConfigError(file, "(file)", f"cannot be read as YAML: {said}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("airflow"), dict):
        raise ConfigError(file, "airflow", "missing: the file must hold an 'airflow:' mapping")
    airflow: Mapping[str, Any] = doc["airflow"]
    unknown = sorted(set(map(str, airflow)) - {"connections", "pools", "variables"})
    if unknown:
        raise ConfigError(
            file, f"airflow.{unknown[0]}", "unknown section; expected connections, pools, variables"
        )
    errors: list[ConfigError] = []

    def parsed(section: str, keys: set[str], parse: Callable[[_Entry], T]) -> tuple[T, ...]:
        out = []
        try:
            items = _section(file, airflow, section)
        except ConfigError as exc:
            errors.append(exc)
            return ()
        for i, raw in enumerate(items):
            try:
                out.append(parse(_Entry(file, f"airflow.{section}[{i}]", raw, keys)))
            except ConfigError as exc:
                errors.append(exc)  # every entry is looked at: all problems are said at once
        return tuple(out)

    connections = parsed("connections", _CONNECTION_KEYS, _parse_connection)
    pools = parsed("pools", _POOL_KEYS, _parse_pool)
    variables = parsed("variables", _VARIABLE_KEYS, _parse_variable)
    for section, key, names in (
        ("connections", "conn_id", [c.conn_id for c in connections]),
        ("pools", "pool_name", [p.name for p in pools]),
        ("variables", "variable_name", [v.key for v in variables]),
    ):
        try:
            _unique(file, section, key, names)
        except ConfigError as exc:
            errors.append(exc)
    if errors:
        raise errors[0] if len(errors) == 1 else ConfigErrors(errors)
    return AirflowSettings(Path(path), connections, pools, variables)


def with_overrides(
    settings: AirflowSettings, overrides: Mapping[str, Mapping[str, Any]]
) -> tuple[AirflowSettings, tuple[str, ...]]:
    """Replace fields of the named connections (``conn_id -> {"host": ..., "port": ...}``).

    Only connections that point at loopback are changed: one re-pointed at a real cluster keeps
    what its file says. Returns the new settings and the ids that were changed.
    """
    changed: list[str] = []
    connections = []
    for conn in settings.connections:
        fields = overrides.get(conn.conn_id)
        if fields and conn.uri is None and (conn.host or "") in LOOPBACK_HOSTS:
            conn = replace(conn, **{k: v for k, v in fields.items() if k in ("host", "port", "login")})
            changed.append(conn.conn_id)
        connections.append(conn)
    return replace(settings, connections=tuple(connections)), tuple(changed)


def environment_overrides(settings: AirflowSettings) -> dict[str, dict[str, Any]]:
    """Host and port of each connection of ``settings`` that an ``AIRFLOW_CONN_<ID>`` variable
    (Airflow's JSON form) defines in this environment: clusters started here publish theirs so."""
    out: dict[str, dict[str, Any]] = {}
    for conn in settings.connections:
        raw = os.environ.get(f"AIRFLOW_CONN_{conn.conn_id.upper()}", "")
        if not raw.startswith("{"):
            continue
        try:
            fields = json.loads(raw)
        except ValueError:
            continue
        if isinstance(fields, dict) and fields.get("host") and fields.get("port"):
            out[conn.conn_id] = {"host": fields["host"], "port": int(fields["port"])}
    return out


# --------------------------------------------------------------------------- the Airflow DB


def _airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser()


def metadata_db_present() -> bool:
    """Whether an Airflow metadata DB may exist for the current AIRFLOW_HOME, without creating one.

    Cheap and side-effect free (Airflow is not imported: importing it creates AIRFLOW_HOME and a
    config file). A SQLite DB must exist as a file; for other databases True means "ask Airflow".
    """
    home = _airflow_home()
    if not home.is_dir():
        return False
    url = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
    cfg = home / "airflow.cfg"
    if url is None and cfg.is_file():
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            parser.read(cfg, encoding="utf-8")
            url = parser.get("database", "sql_alchemy_conn", fallback=None)
        except configparser.Error:
            url = None
    url = (url or f"sqlite:///{home / 'airflow.db'}").replace("{AIRFLOW_HOME}", str(home))
    if url.startswith("sqlite:"):
        db = Path(url.split("///", 1)[-1].split("?", 1)[0]) if "///" in url else None
        return db is not None and db.is_file() and db.stat().st_size > 0
    return True


def _check_db(session: Session) -> str:
    from sqlalchemy import inspect

    bind = session.get_bind()
    where = bind.engine.url.render_as_string(hide_password=True)
    tables = inspect(bind).get_table_names()
    missing = [t for t in ("connection", "slot_pool", "variable") if t not in tables]
    if missing:
        raise AirflowDbNotReady(
            f"the Airflow metadata DB {where} (AIRFLOW_HOME={_airflow_home()}) is not initialised: "
            "run `airflow db migrate` first"
        )
    return where


def _upsert_connection(session: Session, conn: ConnectionSetting) -> None:
    from airflow.models import Connection
    from sqlalchemy import select

    if conn.uri is not None:
        wanted = Connection(conn_id=conn.conn_id, uri=conn.uri, description=conn.description)
    else:
        wanted = Connection(
            conn_id=conn.conn_id,
            conn_type=conn.conn_type,
            description=conn.description,
            host=conn.host,
            login=conn.login,
            password=conn.password,
            schema=conn.schema,
            port=conn.port,
            extra=conn.extra,
        )
    existing = session.scalar(select(Connection).where(Connection.conn_id == conn.conn_id))
    if existing is None:
        session.add(wanted)
        return
    for attr in ("conn_type", "description", "host", "login", "schema", "port"):
        setattr(existing, attr, getattr(wanted, attr))
    # password and extra are encrypted through their property setters
    existing.password = wanted.password
    existing.extra = wanted.extra


def apply_settings(path: Path, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> ApplyReport:
    """Upsert the file's connections, pools and variables into the current Airflow metadata DB.

    ``overrides`` replaces fields of loopback connections (see :func:`with_overrides`).
    Idempotent (upserts; nothing is deleted) and atomic: one transaction, and nothing is written
    if the file is invalid (:class:`ConfigError`) or the DB is not migrated (:class:`AirflowDbNotReady`).
    Safe to retry.
    """
    settings = load_settings(path)
    settings, overridden = with_overrides(settings, overrides or {})
    from airflow.models import Pool, Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        where = _check_db(session)
        for conn in settings.connections:
            _upsert_connection(session, conn)
        for pool in settings.pools:
            Pool.create_or_update_pool(
                pool.name, pool.slots, pool.description, pool.include_deferred, session=session
            )
        for var in settings.variables:
            Variable.set(var.key, var.value, description=var.description, session=session)
    return ApplyReport(
        connections=tuple(c.conn_id for c in settings.connections),
        pools=tuple(p.name for p in settings.pools),
        variables=tuple(v.key for v in settings.variables),
        overridden=overridden,
        database=where,
    )


def point_connections(conns: Mapping[str, Mapping[str, Any]], file: Path) -> str | None:
    """Point an existing Airflow DB's connections ``conns`` (id -> Airflow connection fields) at
    their hosts and ports: after clusters started on ports of their own. Skipped (None) when no
    metadata DB exists for AIRFLOW_HOME. Only these connections are written (as the settings
    ``file`` declares them when it does), never pools or variables. Idempotent.
    """
    if not metadata_db_present():
        return None
    declared = {c.conn_id: c for c in load_settings(file).connections} if file.is_file() else {}
    wanted = [
        declared.get(cid)
        or ConnectionSetting(
            cid, conn_type=f["conn_type"], host=f["host"], port=f["port"], login=f.get("login")
        )
        for cid, f in conns.items()
    ]
    settings, changed = with_overrides(
        AirflowSettings(file, tuple(wanted)),
        {cid: {"host": f["host"], "port": f["port"]} for cid, f in conns.items()},
    )
    from airflow.utils.session import create_session

    try:
        with create_session() as session:
            where = _check_db(session)
            for conn in settings.connections:
                if conn.conn_id in changed:
                    _upsert_connection(session, conn)
    except AirflowDbNotReady:
        return None
    return f"Airflow connections {', '.join(changed)} now point at the embedded clusters ({where})"


# --------------------------------------------------------------------------- CLI


def _default_file() -> Path:
    from tandem.environment import project_root

    here = Path.cwd() / DEFAULT_FILE
    return here if here.is_file() else project_root() / DEFAULT_FILE


def run_settings(args: argparse.Namespace) -> int:
    """``tandem settings apply [FILE]``: exit 0 when applied, 1 on an invalid file or DB."""
    from tandem import environment

    environment.use(None, strict=False)
    path: Path = args.file or _default_file()
    report = apply_settings(path, environment_overrides(load_settings(path)))
    if args.json:
        print(
            json.dumps(
                {
                    "file": str(path),
                    "database": report.database,
                    "connections": list(report.connections),
                    "pools": list(report.pools),
                    "variables": list(report.variables),
                    "embedded_ports": list(report.overridden),
                }
            )
        )
    else:
        print(report.summary())
    return 0
