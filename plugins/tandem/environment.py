"""Which clusters a ``tandem`` command talks to: Airflow connections, and nothing else.

A command reaches clusters through the Airflow connections named in ``clusters.yaml``, as a
task does. Clusters that are not in the Airflow deployment (the embedded ones of ``tandem up``,
a test environment) publish theirs in an *environment file*, ``<home>/environment.json``: a
JSON object of environment variables (``AIRFLOW_CONN_<ID>`` in Airflow's JSON form, and the
``AIRFLOW_HOME`` of the Airflow that serves them), written when they start and removed when
they stop. A command uses one when told to (``--home DIR``, or ``TANDEM_HOME``), or, for the
clusters started from the current project (``<project>/.tandem``), by default, and then says so
on stderr: a command never reads such clusters silently.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from tandem.errors import ConfigError

FILE = "environment.json"
DEFAULT_HOME = ".tandem"

_ANNOUNCED: set[Path] = set()


def project_root(start: Path | None = None) -> Path:
    """The nearest directory at or above ``start`` (default: the working directory) holding
    pyproject.toml; ``start`` itself if none."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "pyproject.toml").is_file():
            return candidate
    return here


def include_dir() -> Path:
    """``TANDEM_INCLUDE``, or the include/ directory of the project around the working directory."""
    configured = os.environ.get("TANDEM_INCLUDE")
    return Path(configured) if configured else project_root() / "include"


def environment_file(home: Path | None, strict: bool = True) -> tuple[Path | None, bool]:
    """The environment file to use and whether it was asked for (``--home``, ``TANDEM_HOME``).

    ConfigError when an asked-for home has none (its clusters are not running), unless not
    ``strict`` (then there is none to use)."""
    asked = (
        home
        if home is not None
        else (Path(os.environ["TANDEM_HOME"]) if os.environ.get("TANDEM_HOME") else None)
    )
    if asked is not None:
        file = asked.expanduser().absolute() / FILE
        if not file.is_file():
            if not strict:
                return None, True
            raise ConfigError(str(file), "file", "no clusters run in this home (start them with `tandem up`)")
        return file, True
    default = project_root() / DEFAULT_HOME / FILE
    return (default, False) if default.is_file() else (None, False)


def use(home: Path | None = None, *, with_airflow: bool = False, strict: bool = True) -> Path | None:
    """Put the chosen environment file's connections (``AIRFLOW_CONN_*``, and for Kerberized
    clusters ``KRB5*`` and Airflow's security settings) into this process's environment, where
    they win over Airflow's own, and with ``with_airflow`` its Airflow (``AIRFLOW_HOME``...) too,
    for commands that run DAGs. Returns the file."""
    file, asked = environment_file(home, strict)
    if file is None:
        return None
    try:
        variables = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(str(file), "file", f"unreadable environment file: {exc}") from exc
    if not isinstance(variables, dict):
        raise ConfigError(str(file), "file", "an environment file is a JSON object of variables")
    os.environ.update({str(k): str(v) for k, v in variables.items() if with_airflow or _for_clients(str(k))})
    if not asked and file not in _ANNOUNCED:
        _ANNOUNCED.add(file)
        print(
            f"tandem: using the clusters of {file.parent} (--home or TANDEM_HOME to choose)", file=sys.stderr
        )
    return file


def _for_clients(key: str) -> bool:
    """What every client of the clusters needs: the connections, and with Kerberos the realm,
    the keytab, the ticket cache and Airflow's security mode."""
    return (
        key.startswith(("AIRFLOW_CONN_", "KRB5", "AIRFLOW__KERBEROS__")) or key == "AIRFLOW__CORE__SECURITY"
    )


def write(home: Path, variables: dict[str, str]) -> Path:
    """Publish ``variables`` as ``home``'s environment file (atomically: temporary name, rename)."""
    file = home / FILE
    tmp = home / f".{FILE}.tmp"
    tmp.write_text(json.dumps(variables, indent=2, sort_keys=True))
    tmp.replace(file)
    return file


def remove(home: Path) -> None:
    (home / FILE).unlink(missing_ok=True)
