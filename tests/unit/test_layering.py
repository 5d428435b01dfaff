"""The product never imports the harness: a CI check (ruff's TID251 says the same in `make lint`)."""

from __future__ import annotations

import ast
from pathlib import Path

PRODUCT = Path(__file__).resolve().parents[2] / "plugins" / "tandem"


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_product_module_imports_the_harness():
    offenders = {
        str(path.relative_to(PRODUCT)): sorted(
            m for m in imported_modules(path) if m.split(".")[0] == "tandem_dev"
        )
        for path in PRODUCT.rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_check_sees_an_import(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from tandem_dev.embedded import manager\n")
    assert "tandem_dev.embedded" in imported_modules(probe)
