"""The layers of STYLE.md §1: ops <- pipelines <- pipelines/cli*.py; cluster/ is a leaf."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    """Top-level names of the modules a file imports (absolute imports only)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def package_files(package: str) -> list[Path]:
    return sorted((ROOT / package).glob("*.py"))


def test_ops_modules_import_without_ray():
    modules = [f"ops.{p.stem}" for p in package_files("ops") if p.stem != "__init__"]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "top = {m.split('.')[0] for m in sys.modules}\n"
        "bad = sorted(top & {'ray', 'pipelines', 'cluster'})\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_ops_imports_nothing_above_it():
    for path in package_files("ops"):
        above = {m for m in imported_modules(path) if m.split(".")[0] in ("pipelines", "cluster")}
        assert not above, f"{path.name} imports {above}"


def test_cluster_is_a_leaf():
    for path in package_files("cluster"):
        inner = {m for m in imported_modules(path) if m.split(".")[0] in ("ops", "pipelines")}
        assert not inner, f"cluster/{path.name} imports {inner}"


def test_only_the_cli_modules_import_cluster():
    for path in package_files("pipelines"):
        uses = {m for m in imported_modules(path) if m.split(".")[0] == "cluster"}
        assert not uses or path.name.startswith("cli"), f"pipelines/{path.name} imports {uses}"
