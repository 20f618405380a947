"""The GPU machine's benchmarks run end to end in their tiny CPU modes, so they never rot."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import shared_video

ROOT = Path(__file__).resolve().parents[1]


def run_tiny(names: list[str], out: Path, *extra: str) -> subprocess.CompletedProcess:
    """`python -m benchmarks NAME... --tiny --out OUT [EXTRA]` with this machine's own
    local Ray."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", *names, "--tiny", "--out", str(out), *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=500,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory) -> tuple[Path, str]:
    """The GPU check, the node benchmark and the quality benchmark in their tiny modes, one
    after the other in one process on one default-size local Ray (as
    `python -m benchmarks gpu node quality` runs)."""
    shared_video("person_a__mead_M030_front_happy.mp4")
    shared_video("person_d__liveportrait_d18.mp4")
    shared_video("person_c__mead_W011_front_angry.mp4")  # pretrained on, with person_d
    out = tmp_path_factory.mktemp("tiny")
    return out, run_tiny(["gpu", "node", "quality"], out).stdout


@pytest.mark.data
def test_gpu_check_tiny_mode_measures_and_learns(tiny_runs):
    out, stdout = tiny_runs
    results = json.loads((out / "gpu.json").read_text())
    assert results["raw_64"]["images_per_s"] > 0 and 0 < results["raw_64"]["mfu"] < 1
    assert results["extract_seconds"] > 0
    pipeline = results["pipeline"]
    assert pipeline["images_per_s"] > 0 and 0 <= pipeline["data_wait_fraction"] < 1
    assert results["workers"] == 2  # two ranks on every CPU of this machine: it finished
    assert results["pipeline_over_raw"] == pytest.approx(
        pipeline["images_per_s"] / (2 * results["raw_64"]["images_per_s"])
    )
    assert pipeline["learning"]["finite"] and pipeline["learning"]["passed"]
    assert (out / "preview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "learning check PASSED" in stdout


@pytest.mark.data
def test_node_benchmark_tiny_mode_renders_and_extracts(tiny_runs):
    out, _ = tiny_runs
    results = json.loads((out / "node.json").read_text())
    assert set(results["stages_alone"]) == {"decode", "detect", "model", "encode"}
    cpus = os.cpu_count() or 1
    assert results["render"]["frames_per_s"] > 0
    assert results["render"]["plan"] == f"{cpus} actors x 1 CPU"  # every CPU of this machine
    assert results["render"]["segments"] == min(cpus, 2)  # 48 frames, at least 30 a segment
    assert results["extract"]["cpu"]["frames_per_s"] > 0
    if shutil.which("nvidia-smi") is None:
        assert results["render"]["gpu_util"]["mean"] is None  # nothing to sample


@pytest.mark.data
def test_quality_benchmark_tiny_mode_pretrains_fine_tunes_and_scores_both_ways(tiny_runs):
    """Tiny mode's chain: pretrain df on two permitted people, fine-tune the pair from it
    (scoring held-out faces at its checkpoints), render the held-out clip both ways,
    evaluate, and set training's scores beside evaluate's."""
    import cv2

    from benchmarks.pretrained import NEVER
    from benchmarks.quality import TINY_FRAME, TINY_FRAMES, TINY_STEPS, TRAIN_EMOTIONS

    out, _ = tiny_runs
    results = json.loads((out / "quality.json").read_text())
    assert list(results["runs"]) == ["df+init"]
    for run in results["runs"].values():
        assert run["planned_steps"] == run["steps"] == TINY_STEPS and run["s_per_step"] > 0
        # training scored the held-out clips' faces at its checkpoints (at least the last)
        assert run["holdout"]["step"] == TINY_STEPS and run["holdout_cost"]["checkpoints"] >= 1
        for direction in ("a2b", "b2a"):
            assert 0 <= run["holdout"][f"holdout_id_retrieval_{direction}"] <= 1
        # the pose floors of its last checkpoint: the source face itself, marked, is found
        # again within a tenth of its eye distance (the tiny model's faces may be missed)
        for direction in ("a2b", "b2a"):
            floor = run["pose_floor"][direction]
            kinds = ("source", "own", "swap")
            assert set(floor) == {*kinds, *(f"{kind}_shape" for kind in kinds)}
            assert 0 <= floor["source"] < 0.1 and 0 <= floor["source_shape"] < 0.1
    tuned = results["runs"]["df+init"]
    assert tuned["init"] and tuned["pretrain"].startswith(f"df: {TINY_STEPS} steps in ")
    pool = tuned["pretrain"].split(" on ")[1].split(", ")
    assert pool == ["person_c", "person_d"] and not set(pool) & set(NEVER)
    # the fine-tuned run's checkpoint config says what came from the pretrained model
    init = tuned["init_plan"]
    assert init["pretrained"] and "/pretrain/df/" in init["path"]
    assert init["reinitialised"] == ["inter"] and "encoder" in init["copied"]
    renders = results["renders"]
    assert {(r["recipe"], r["direction"]) for r in renders} == {
        ("df+init", "a2b"),
        ("df+init", "b2a"),
    }
    for row in renders:
        assert row["error"] is None and row["clip"] == "fear"  # a held-out emotion
        assert row["clip"] not in TRAIN_EMOTIONS
        assert 0 <= row["id_retrieval"] <= 1 and row["pose_error"] >= 0 and row["seam"] >= 0
        assert row["output"] != row["source"]
    table = (out / "quality.md").read_text()
    assert table.startswith(f"{TINY_STEPS} steps per recipe, 64 px")
    assert "pretrained: df: " in table
    floors = table.split("How much of pose_error is the swap")[1]
    assert f"| df+init @ {TINY_STEPS} | a2b | " in floors
    assert table.count("| df+init | a2b | ") == table.count("| df+init | b2a | ") == 1
    assert table.count("| a2b fear |") == table.count("| b2a fear |") == 1
    picture = cv2.imread(str(out / "side_by_side.png"))  # 2 renders x (source + 1 run)
    assert picture.shape == (2 * 256, 2 * 256, 3)
    assert TINY_FRAME < TINY_FRAMES and picture[:, 256:].std() > 5  # swapped, not blank tiles


def test_quality_benchmark_checks_init_before_anything_runs(tmp_path):
    from benchmarks.quality import main

    with pytest.raises(SystemExit, match="2"):
        main(["--init", str(tmp_path / "missing"), "--out", str(tmp_path)])
    assert not (tmp_path / "quality.json").exists()


def test_benchmark_names_are_checked_before_anything_runs(capsys):
    from benchmarks.__main__ import main

    with pytest.raises(SystemExit, match="usage: python -m benchmarks"):
        main(["gpu", "no-such-benchmark", "--tiny"])
    assert "===" not in capsys.readouterr().out  # not even the first one started


def test_each_ablation_recipe_changes_one_flag_of_the_default():
    from benchmarks.quality import RECIPES, replaced

    def flags(recipe: str) -> dict[str, str]:
        args = RECIPES[recipe]
        return dict(zip(args[::2], args[1::2], strict=True))

    default = flags("original+recipe")
    expected = {
        "recipe-no-ema": {"--ema-decay": "0"},
        "recipe-warp-on": {"--warp-off-share": "0"},
        "recipe-classic-loss": {"--loss": "classic"},
        "recipe-constant-lr": {"--warmup-steps": "0", "--lr-decay": "constant"},
    }
    assert flags("lr-6e-4") == flags("recipe-constant-lr") | {"--lr": "6e-4"}
    assert flags("lr-6e-4-warp-off-half") == flags("lr-6e-4") | {"--warp-off-share": "0.5"}
    assert flags("lr-1e-3") == flags("lr-6e-4") | {"--lr": "1e-3"}
    assert flags("lr-6e-4-eyes-x3") == flags("lr-6e-4") | {"--eye-mouth-weight": "90"}
    assert flags("lr-6e-4-batch-8") == flags("lr-6e-4") | {"--batch-size": "8"}
    assert flags("lr-6e-4-128px") == flags("lr-6e-4") | {"--resolution": "128"}
    assert flags("lr-3e-4-128px") == flags("recipe-constant-lr") | {"--resolution": "128"}
    for recipe, changed in expected.items():
        ablated = flags(recipe)
        assert ablated.keys() == default.keys(), recipe
        assert {k: v for k, v in ablated.items() if default[k] != v} == changed, recipe
    with pytest.raises(ValueError):
        replaced(["--loss", "dfl"], "--lr", "1")  # a flag that is not there


def test_init_only_recipes_fine_tune_from_the_default_s_pretrain_and_nothing_else():
    from benchmarks.quality import PRETRAINED_AS, RECIPES, _parse, runs_of

    args = _parse(
        ["--recipes", "recipe-constant-lr", "--init", "pretrain"]
        + ["--init-only", "fine-tune-lr-6e-4,fine-tune-warp-off-half"]
    )
    runs = runs_of(args)
    assert [(r["label"], r["init"], r["budget_s"]) for r in runs] == [
        ("recipe-constant-lr", False, 1200.0),
        ("recipe-constant-lr 400s", False, 400.0),
        ("recipe-constant-lr+init 400s", True, 400.0),
        ("fine-tune-lr-6e-4+init 400s", True, 400.0),
        ("fine-tune-warp-off-half+init 400s", True, 400.0),
    ]

    def flags_of(recipe: str) -> dict[str, str]:
        return dict(zip(RECIPES[recipe][::2], RECIPES[recipe][1::2], strict=True))

    base = flags_of("recipe-constant-lr")
    for name in ("fine-tune-lr-6e-4", "fine-tune-warp-off-half"):
        assert PRETRAINED_AS[name] == "recipe-constant-lr"
        flags = flags_of(name)
        assert len({k for k in base if base[k] != flags[k]}) == 1, name  # one flag changed


@pytest.mark.parametrize(
    "argv", [["--init-only", "fine-tune-lr-6e-4"], ["--init", "pretrain", "--init-only", "nope"]]
)
def test_init_only_needs_init_and_known_recipes(argv, capsys):
    from benchmarks.quality import _parse

    with pytest.raises(SystemExit, match="2"):
        _parse(argv)
    assert "--init-only" in capsys.readouterr().err


def test_pose_benchmark_needs_a_checkpoint_and_names_one_that_is_not(tmp_path, capsys):
    from benchmarks.pose import main

    with pytest.raises(SystemExit):
        main([])
    assert "--checkpoint" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        main(["--checkpoint", str(tmp_path), "--out", str(tmp_path / "out")])
