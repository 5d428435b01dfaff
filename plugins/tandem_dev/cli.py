"""The harness's commands, joined to ``tandem`` through the ``tandem.commands`` entry point."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

AddCommand = Callable[[str, str], argparse.ArgumentParser]


def register(add: AddCommand) -> dict[str, str]:
    """Add ``up``, ``down``, ``servers``, ``demo``, ``drill`` and ``ui``; returns their handlers."""
    for name, help_ in (
        ("up", "start the embedded clusters: primary, standby and primary2"),
        ("down", "stop the embedded clusters (data is kept)"),
        ("servers", "the embedded clusters' servers and whether each answers"),
        ("demo", "the main job: back the billing business up twice and verify it"),
        ("drill", "rehearse a failover on the embedded clusters"),
        ("ui", "the Airflow UI on the embedded clusters, with the Disaster recovery page"),
    ):
        parser = add(name, help_)
        parser.add_argument("--home", type=Path, default=None, help="embedded clusters' home")
        if name in ("up", "demo", "drill"):
            parser.add_argument(
                "--kerberos",
                action="store_true",
                help="every server demands Kerberos from a realm of the home's own (a real MIT KDC)",
            )
    return {
        "up": "tandem_dev.embedded.manager.cli:run_up",
        "down": "tandem_dev.embedded.manager.cli:run_down",
        "servers": "tandem_dev.embedded.manager.cli:run_servers",
        "demo": "tandem_dev.demo:run_demo",
        "drill": "tandem_dev.drill:run_drill",
        "ui": "tandem_dev.ui_server:run_ui",
    }
