"""What the `tandem` command answers on bad input before it needs any cluster: an exit code a
CI gate or a script can trust, and JSON where --json asks for it (found by an adversarial read)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tandem.cli import main

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture
def include(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    where = tmp_path / "include"
    shutil.copytree(PROJECT / "include", where)
    monkeypatch.setenv("TANDEM_INCLUDE", str(where))
    return where


def test_restore_points_of_an_unknown_business_is_an_error(
    include: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["restore-points", "nosuch"]) == 1
    assert "no business 'nosuch'" in capsys.readouterr().err


@pytest.mark.parametrize("clusters", ["clusters: [oops\n", None])
def test_gateway_validate_fails_without_a_readable_topology(
    include: Path, clusters: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    if clusters is None:
        (include / "clusters.yaml").unlink()
    else:
        (include / "clusters.yaml").write_text(clusters)
    assert main(["gateway", "validate", "--json"]) == 1
    out = capsys.readouterr()
    assert str(include / "clusters.yaml") in json.loads(out.out)["errors"]
    assert "clusters.yaml" in out.err


def test_gateway_validate_passes_the_projects_plans(
    include: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["gateway", "validate", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"plans": ["events"], "errors": {}}


def test_a_new_master_key_with_json_is_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gateway", "key", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["key"]) > 40


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["gateway", "serve"], "`tandem gateway serve` needs a plan name"),
        (["gateway", "token", "events"], "`tandem gateway token` needs --user NAME"),
    ],
)
def test_a_command_missing_what_it_needs_is_a_usage_error(
    include: Path, capsys: pytest.CaptureFixture[str], argv: list[str], said: str
) -> None:
    """Exit 2, as argparse's own usage errors: a script tells bad usage from a failure."""
    assert main(argv) == 2
    assert said in capsys.readouterr().err
