"""The ``tandem`` command: a thin argparse shell over the package.

Each sub-command lives next to the code it drives and is imported only when used, so
``tandem --help`` stays fast. Every command exits 0 on success, 1 on a reported failure and
2 on bad usage; ``--json`` switches to machine-readable output on stdout.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from tandem.errors import TandemError

# sub-command -> "module:function"; the function takes the parsed namespace and returns the exit code
_HANDLERS = {
    "up": "tandem.embedded.manager:run_up",
    "down": "tandem.embedded.manager:run_down",
    "status": "tandem.embedded.manager:run_status",
    "settings": "tandem.settings:run_settings",
    "policy": "tandem.policy:run_policy",
    "demo": "tandem.demo:run_demo",
    "restore-points": "tandem.catalog:run_restore_points",
    "agent": "tandem.failover.agent:run_agent",
    "drill": "tandem.drill:run_drill",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tandem", description="Per-business disaster recovery for Hadoop.")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.add_argument("--json", action="store_true", help="machine-readable output")
        return p

    for name, help_ in (
        ("up", "start the embedded primary and standby clusters"),
        ("down", "stop the embedded clusters (data is kept)"),
        ("status", "show the embedded clusters and whether each server answers"),
    ):
        add(name, help_).add_argument("--home", type=Path, default=None, help="embedded clusters' home")

    settings = add("settings", "Airflow connections, pools and variables")
    settings.add_argument("action", choices=["apply"])
    settings.add_argument("file", nargs="?", type=Path, default=None, help="default: ./airflow_settings.yaml")

    policy = add("policy", "business policies")
    policy.add_argument("action", choices=["validate"])
    policy.add_argument("dir", nargs="?", type=Path, default=None, help="default: include/policies")
    policy.add_argument("--strict", action="store_true", help="also fail on warnings")

    demo = add("demo", "the main job: back the billing business up twice and verify it")
    demo.add_argument("--home", type=Path, default=None)

    points = add("restore-points", "list a business's published restore points")
    points.add_argument("business")
    points.add_argument("--home", type=Path, default=None)
    agent = add("agent", "keep /tandem/alive in a cluster's ZooKeeper while the cluster is healthy")
    agent.add_argument("--cluster", required=True, help="cluster name from include/clusters.yaml")
    agent.add_argument("--home", type=Path, default=None, help="embedded clusters' home (embedded only)")

    drill = add("drill", "rehearse a failover on the embedded clusters")
    drill.add_argument("--home", type=Path, default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Airflow's hooks log each connection probe at INFO on stdout, which --json output cannot
    # carry; Airflow reads the level once, at import, so it is set before any handler runs.
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    module_name, func_name = _HANDLERS[args.command].split(":")
    handler = getattr(importlib.import_module(module_name), func_name)
    try:
        code: int = handler(args)
    except TandemError as exc:
        print(f"tandem {args.command}: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
