"""The layers of STYLE.md §1, checked on folders, recursively.

    ops  <-  pipelines.config  <-  pipelines.runtime  <-  the stages  <-  pipelines.cli
    cluster is a leaf; only pipelines.cli imports it.

Every module of pipelines/ belongs to a known layer: a new folder or file outside them
fails `test_every_pipelines_module_has_a_layer` until it is given one here.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# the first name under pipelines/ -> its layer; a module may import its own layer and below
PIPELINES_LAYERS = {
    "__init__": 0,
    "config": 1,
    "runtime": 2,
    "segments": 3,
    "extract": 3,
    "train": 3,
    "render": 3,
    "evaluate": 3,
    "faces_report": 3,
    "export": 3,
    "verify": 3,
    "demo": 3,
    "cli": 4,
}
CLI_LAYER = PIPELINES_LAYERS["cli"]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> set[str]:
    """Dotted names a file imports, relative imports resolved against its package."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names |= {f"{module}.{alias.name}" for alias in node.names}
    return names


def package_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def pipelines_layer(module: str) -> int | None:
    """The layer of a `pipelines...` module, None when it is in no known layer."""
    parts = module.split(".")
    return PIPELINES_LAYERS.get(parts[1] if len(parts) > 1 else "__init__")


def test_every_pipelines_module_has_a_layer():
    unknown = [
        str(path.relative_to(ROOT))
        for path in package_files("pipelines")
        if pipelines_layer(module_name(path)) is None
    ]
    assert not unknown, f"modules outside every known layer (add them to the map): {unknown}"


def test_pipelines_imports_only_its_layer_and_below():
    for path in package_files("pipelines"):
        own = pipelines_layer(module_name(path))
        for name in imported_modules(path):
            if name.split(".")[0] != "pipelines" or name == "pipelines":
                continue
            layer = pipelines_layer(name)
            assert layer is not None, f"{path.relative_to(ROOT)} imports {name}: no such layer"
            assert layer <= own, f"{path.relative_to(ROOT)} (layer {own}) imports {name} ({layer})"


def test_ops_modules_import_without_ray():
    modules = [module_name(p) for p in package_files("ops") if p.name != "__init__.py"]
    assert len(modules) > 20  # the glob found the package
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
        above = {
            m for m in imported_modules(path) if m.split(".")[0] in ("pipelines", "cluster", "ray")
        }
        assert not above, f"{path.relative_to(ROOT)} imports {above}"


def test_cluster_is_a_leaf():
    for path in package_files("cluster"):
        inner = {m for m in imported_modules(path) if m.split(".")[0] in ("ops", "pipelines")}
        assert not inner, f"{path.relative_to(ROOT)} imports {inner}"


def test_only_the_cli_imports_cluster():
    for path in package_files("pipelines"):
        uses = {m for m in imported_modules(path) if m.split(".")[0] == "cluster"}
        layer = pipelines_layer(module_name(path))
        assert not uses or layer == CLI_LAYER, f"{path.relative_to(ROOT)} imports {uses}"


def test_layer_check_sees_nested_modules():
    """The recursive walk reaches the stage packages, so a nested module cannot escape."""
    found = {module_name(p) for p in package_files("pipelines")}
    assert {"pipelines.render.actor", "pipelines.cli.app", "pipelines.config.flags"} <= found
