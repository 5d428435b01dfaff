"""``tandem policy validate [DIR] [--strict] [--json]``: every error and warning of every policy."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tandem.errors import ConfigError
from tandem.policy.loader import ConfigWarning, check_topology_file, load_policies

# --------------------------------------------------------------------------------------------
# `tandem policy validate`


def _display(path: Path) -> Path:
    """Relative to the working directory when inside it, so messages stay short."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def clusters_file_for(policy_dir: Path, root: Path) -> Path:
    """``clusters.yaml`` beside the policy directory (``include/``), else the project's."""
    beside = policy_dir.parent / "clusters.yaml"
    return beside if beside.is_file() else root / "include" / "clusters.yaml"


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of ``tandem policy validate``: what loaded, what is wrong, what is doubtful."""

    policies: tuple[str, ...]
    errors: tuple[ConfigError, ...]
    warnings: tuple[ConfigWarning, ...]

    def exit_code(self, strict: bool) -> int:
        return 1 if self.errors or (strict and self.warnings) else 0

    def as_json(self) -> str:
        def row(item: ConfigError | ConfigWarning) -> dict[str, str]:
            return {"file": item.file, "field": item.field, "reason": item.reason}

        return json.dumps(
            {
                "policies": list(self.policies),
                "errors": [row(e) for e in self.errors],
                "warnings": [row(w) for w in self.warnings],
            },
            indent=2,
        )

    def as_text(self) -> str:
        lines = [str(e) for e in self.errors] + [f"{w} (warning)" for w in self.warnings]
        lines.append(
            f"{len(self.policies)} valid {'policy' if len(self.policies) == 1 else 'policies'}"
            f" ({', '.join(self.policies) or 'none'}), "
            f"{len(self.errors)} error{'' if len(self.errors) == 1 else 's'}, "
            f"{len(self.warnings)} warning{'' if len(self.warnings) == 1 else 's'}"
        )
        return "\n".join(lines)


def validate_directory(
    policy_dir: Path, clusters_file: Path, settings_file: Path | None = None
) -> ValidationReport:
    """Validate the topology and every policy; a broken topology still lets policies be checked.
    ``settings_file`` (the project's ``airflow_settings.yaml``, when there is one): the pools the
    pairs name should be defined there."""
    topology, topology_errors = check_topology_file(clusters_file)
    try:
        loaded = load_policies(policy_dir, topology)
    except ConfigError as exc:
        return ValidationReport((), (*topology_errors, exc), ())
    warnings = (*loaded.all_warnings(), *_pool_warnings(topology, clusters_file, settings_file))
    return ValidationReport(loaded.names, (*topology_errors, *loaded.all_errors()), warnings)


def _pool_warnings(topology: Any, clusters_file: Path, settings_file: Path | None) -> list[ConfigWarning]:
    """A pair's pool that the settings file does not define: Airflow never schedules a task in a
    pool that does not exist, so the pair's copies would wait for good, the businesses silently
    not backed up."""
    if topology is None or settings_file is None or not settings_file.is_file():
        return []
    from tandem.settings import load_settings

    try:
        pools = {p.name for p in load_settings(settings_file).pools}
    except ConfigError:
        return []  # `tandem settings apply` says what is wrong with it
    return [
        ConfigWarning(
            str(clusters_file),
            f"pairs.{name}.pool",
            f"pool {pair.pool!r} is not defined in {settings_file}: Airflow never schedules a task in a "
            "pool that does not exist, so the pair's copies would never run (define it there, then "
            "tandem settings apply)",
        )
        for name, pair in sorted(topology.pairs.items())
        if pair.pool and pair.pool not in pools | {"default_pool"}  # Airflow's own always exists
    ]


def run_policy(args: Any, out: Callable[[str], None] | None = None) -> int:
    """``tandem policy validate [DIR] [--strict] [--json]``: 0 when clean, 1 otherwise."""
    write = out or (lambda text: print(text, file=sys.stdout))
    if args.action != "validate":
        write(f"unknown policy action {args.action!r}")
        return 2
    from tandem.environment import project_root

    root = project_root(Path(os.getcwd()))
    policy_dir = _display(args.dir if args.dir is not None else root / "include" / "policies")
    report = validate_directory(
        policy_dir, _display(clusters_file_for(policy_dir, root)), root / "airflow_settings.yaml"
    )
    write(report.as_json() if args.json else report.as_text())
    return report.exit_code(bool(args.strict))
