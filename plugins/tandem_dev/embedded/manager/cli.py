"""``tandem up``, ``tandem servers`` and ``tandem down``: the commands over
:mod:`tandem_dev.embedded.manager`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tandem.errors import TandemError
from tandem_dev.embedded.manager import bring_up, down, status
from tandem_dev.embedded.manager.connections import sync_embedded_connections
from tandem_dev.embedded.manager.endpoints import RunningClusters
from tandem_dev.embedded.manager.state import log_dir, resolve_home


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def run_up(args: argparse.Namespace) -> int:
    result = bring_up(args.home, kerberos=bool(getattr(args, "kerberos", False)))
    topology = result.topology
    note = _sync_airflow(topology)
    if args.json:
        print(json.dumps(topology.to_json()))
    else:
        what = "already running" if result.already_running else f"started in {result.seconds:.1f} s"
        print(f"embedded clusters {what} (home {topology.home})")
        rows = [["cluster", "webhdfs", "metastore", "zookeeper"]]
        rows += [[c.name, c.webhdfs_url, c.metastore_uri, c.zookeeper_hosts] for c in topology.clusters]
        print(_table(rows))
    if note:
        print(note, file=sys.stderr if args.json else sys.stdout)
    return 0


def _sync_airflow(topology: RunningClusters) -> str | None:
    """Point the Airflow DB's embedded connections at the actual ports, if such a DB exists."""
    try:
        return sync_embedded_connections(topology)
    except TandemError as exc:
        return f"warning: Airflow connections not updated: {exc}"


def run_servers(args: argparse.Namespace) -> int:
    """``tandem servers``: each embedded server and whether it answers. Exit 0 when every one
    does, 1 otherwise (so scripts can test it). ``tandem status`` reports the pairs."""
    report = status(args.home)
    if args.json:
        print(json.dumps(report))
        return 0 if report["running"] else 1
    if not report["clusters"]:
        print(f"no embedded clusters in {report['home']}: run `tandem up`")
        return 1
    print(f"embedded clusters {'running' if report['running'] else 'NOT running'} (home {report['home']})")
    rows = [["cluster", "role", "epoch", "alive", "webhdfs", "metastore", "zookeeper"]]
    for name, c in report["clusters"].items():

        def cell(kind: str, c: dict[str, Any] = c) -> str:
            return f"{c[kind]} {'ok' if c['answers'][kind] else 'DOWN'}"

        alive = "-" if c["alive"] is None else ("yes" if c["alive"] else "no")
        rows.append(
            [
                name,
                str(c["role"] or "-"),
                str("-" if c["epoch"] is None else c["epoch"]),
                alive,
                cell("webhdfs"),
                cell("metastore"),
                cell("zookeeper"),
            ]
        )
    print(_table(rows))
    if not report["running"]:
        home = report["home"]
        print(f"run `tandem up --home {home}` to start them; server logs are in {log_dir(Path(home))}")
    return 0 if report["running"] else 1


def run_down(args: argparse.Namespace) -> int:
    home = resolve_home(args.home)
    stopped = down(home)
    if args.json:
        print(json.dumps({"home": str(home), "stopped": stopped}))
    elif stopped:
        print("\n".join(stopped))
        print(f"data kept in {home}")
    else:
        print(f"nothing to stop in {home}")
    # processes left alone make this a partial success: say so to scripts
    return 1 if any(line.startswith("left ") for line in stopped) else 0
