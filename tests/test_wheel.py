"""A wheel of rayswap installs and runs without the checkout (no `pip install -e`).

The wheel is built from a copy of the tracked files, installed into a fresh virtual
environment whose only other packages are this environment's dependencies (a .pth file
points at them; the editable install of the checkout is not among them), and run from a
folder outside the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = [
    "pipelines.cli",
    "pipelines.config",
    "pipelines.runtime.ray_setup",
    "pipelines.extract.driver",
    "pipelines.train.driver",
    "pipelines.render.driver",
    "pipelines.evaluate.driver",
    "pipelines.faces_report.driver",
    "pipelines.segments",
    "pipelines.verify",
    "pipelines.demo",
    "pipelines.export",
    "cluster.submit",
]


def run(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["COLUMNS"] = "100"
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{args}: {result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def tracked_copy(dest: Path) -> Path:
    """The checkout's tracked files (what a clean clone holds), copied to `dest`."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.fail("the wheel test builds from the git checkout's tracked files")
    source = tracked_copy(tmp_path_factory.mktemp("source"))
    dist = tmp_path_factory.mktemp("dist")
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
    run([*pip, "-q", "-w", str(dist), str(source)], cwd=source)
    (found,) = dist.glob("rayswap-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv holding the wheel; returns its bin folder."""
    env = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", "--without-pip", str(env)], cwd=env)
    python = env / "bin" / "python"
    site = Path(
        run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            cwd=env,
        ).stdout.strip()
    )
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q"]
    run([*pip, "--no-deps", "--no-index", str(wheel)], cwd=env)
    return env / "bin"


def test_wheel_carries_every_module_and_the_cluster_files(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in ("ops", "pipelines", "cluster", "benchmarks"):
        for path in (ROOT / package).rglob("*.py"):
            assert str(path.relative_to(ROOT)) in names, f"{path.relative_to(ROOT)} not in wheel"
    for path in (ROOT / "cluster").rglob("*"):
        if path.suffix in (".yaml", ".sh"):
            assert str(path.relative_to(ROOT)) in names, f"{path.relative_to(ROOT)} not in wheel"


def test_installed_wheel_runs_outside_the_checkout(installed, tmp_path):
    rayswap = str(installed / "rayswap")
    top = run([rayswap, "--help"], cwd=tmp_path).stdout
    assert "extract" in top and "render" in top
    assert "--out" in run([rayswap, "extract", "--help"], cwd=tmp_path).stdout
    code = (
        "import importlib, pathlib, sys\n"
        f"for name in {STAGES!r}:\n"
        "    module = importlib.import_module(name)\n"
        f"    assert {str(ROOT)!r} not in str(pathlib.Path(module.__file__).resolve()), name\n"
        "import cluster\n"
        "kuberay = pathlib.Path(cluster.__file__).parent / 'kuberay' / 'rayjob-train.yaml'\n"
        "assert kuberay.is_file(), kuberay\n"
        "print('imported', len(sys.modules))\n"
    )
    assert "imported" in run([str(installed / "python"), "-c", code], cwd=tmp_path).stdout
