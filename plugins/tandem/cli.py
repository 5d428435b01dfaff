"""The ``tandem`` command: a thin argparse shell over the package.

Each sub-command lives next to the code it drives and is imported only when used, so
``tandem --help`` stays fast. Every command exits 0 on success, 1 on a reported failure and
2 on bad usage; ``--json`` switches to machine-readable output on stdout.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path

from tandem.errors import TandemError, UsageError

# sub-command -> "module:function"; the function takes the parsed namespace and returns the exit code
_HANDLERS = {
    "status": "tandem.status:run_status",
    "settings": "tandem.settings:run_settings",
    "policy": "tandem.policy:run_policy",
    "restore-points": "tandem.catalog:run_restore_points",
    "agent": "tandem.failover.agent:run_agent",
    "verify": "tandem.verify:run_verify",
    "restore": "tandem.restore:run_restore",
    "backup": "tandem.backup:run_backup",
    "plan": "tandem.backup.preview:run_plan",
    "promote": "tandem.failover.landing:run_promote",
    "gateway": "tandem.gateway.command:run_gateway",
}
# commands whose progress (the tandem loggers at INFO) goes to stderr while they work
_PROGRESS = {"verify", "restore", "backup", "promote"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tandem", description="Per-business disaster recovery for Hadoop.")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.add_argument("--json", action="store_true", help="machine-readable output")
        return p

    add(
        "status", "each pair's roles, liveness and newest restore points, from the Airflow connections"
    ).add_argument("--home", type=Path, default=None, help="use the clusters of this home's environment file")

    settings = add("settings", "Airflow connections, pools and variables")
    settings.add_argument("action", choices=["apply"])
    settings.add_argument("file", nargs="?", type=Path, default=None, help="default: ./airflow_settings.yaml")

    policy = add("policy", "business policies")
    policy.add_argument("action", choices=["validate"])
    policy.add_argument("dir", nargs="?", type=Path, default=None, help="default: include/policies")
    policy.add_argument("--strict", action="store_true", help="also fail on warnings")

    points = add("restore-points", "list a business's published restore points")
    points.add_argument("business")
    points.add_argument("--home", type=Path, default=None)
    agent = add("agent", "keep /tandem/alive in a cluster's ZooKeeper while the cluster is healthy")
    agent.add_argument("--cluster", required=True, help="cluster name from include/clusters.yaml")
    agent.add_argument("--home", type=Path, default=None, help="embedded clusters' home (embedded only)")

    def point_command(name: str, help_: str) -> argparse.ArgumentParser:
        p = add(name, help_)
        p.add_argument("business")
        p.add_argument("--point", default=None, help="the point's instant (default: the newest published)")
        p.add_argument("--cluster", default=None, help="default: the cluster that receives backups now")
        p.add_argument("--home", type=Path, default=None, help="embedded clusters' home")
        return p

    verify = point_command("verify", "check that a cluster holds a restore point exactly")
    verify.add_argument("--live", action="store_true", help="check the live data instead of the snapshot")
    restore = point_command("restore", "bring a business on a cluster back to a restore point")
    restore.add_argument("--dry-run", action="store_true", help="list what would change; change nothing")
    restore.add_argument("--yes", action="store_true", help="go ahead without asking")

    backup = add("backup", "run one backup of a business now, through Airflow (as `airflow dags test`)")
    backup.add_argument("business")
    backup.add_argument("--full", action="store_true", help="copy every dataset in full")
    backup.add_argument("--home", type=Path, default=None, help="embedded clusters' home")

    preview = add("plan", "what the next backup of a business would do; changes nothing")
    preview.add_argument("business")
    preview.add_argument("--full", action="store_true", help="preview a full copy of every dataset")
    preview.add_argument("--home", type=Path, default=None, help="embedded clusters' home")

    promote = add("promote", "make a cluster active, after landing every business of its pair on a point")
    promote.add_argument("cluster")
    promote.add_argument("--confirm", required=True, help="the cluster's name again, exactly")
    promote.add_argument(
        "--stop-backups", action="store_true", help="fence first so running backups stop, then wait for them"
    )
    promote.add_argument(
        "--allow-no-point",
        action="store_true",
        help="promote even when a business without a restore point there is partly on the cluster",
    )
    promote.add_argument("--home", type=Path, default=None, help="embedded clusters' home")
    from tandem.gateway.command import add_arguments as add_gateway

    add_gateway(add)
    # commands of installed extensions (the harness: up, down, servers, demo, drill)
    for entry in entry_points(group="tandem.commands"):
        _HANDLERS.update(entry.load()(add))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Airflow's hooks log each connection probe at INFO on stdout, which --json output cannot
    # carry; Airflow reads the level once, at import, so it is set before any handler runs.
    # `status` reports unreachable clusters itself, one line each: the hooks' warnings would repeat it
    # `--json` output is one document on stdout: Airflow's warnings (also on stdout) would break it
    level = "ERROR" if args.command == "status" or getattr(args, "json", False) else "WARNING"
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", level)
    if args.command == "gateway":
        # a gateway's stdout carries its --json line and nothing else
        os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "ERROR"
    # a cluster that does not answer is reported by the command itself; the clients' own
    # warnings (kazoo's reconnects, the WebHDFS hook's probes) would go to stdout before it
    for noisy in ("kazoo", "airflow.providers.apache.hdfs.hooks.webhdfs"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    if args.command in _PROGRESS:
        handler_ = logging.StreamHandler(sys.stderr)
        handler_.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger = logging.getLogger("tandem")
        logger.addHandler(handler_)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    module_name, func_name = _HANDLERS[args.command].split(":")
    handler = getattr(importlib.import_module(module_name), func_name)
    try:
        code: int = handler(args)
    except TandemError as exc:
        print(f"tandem {args.command}: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    return code


if __name__ == "__main__":
    sys.exit(main())
