"""A whole node at work: render and extract frames/s with the default plan, on 720p.

    python -m benchmarks node [--out DIR] [--checkpoint CKPT] [--copies 13]
    python -m benchmarks node --tiny --out DIR     # the same steps, seconds long, on CPU

`--tiny` renders 48 frames of one clip with one actor per CPU of this machine (so a test
shows a render that takes every CPU still finishes, with the clip split among the actors).

Prepared for the GPU machine (it needs only what ../shared/gpu/stage.sh stages) and fits
in about 6 minutes there. In one run it measures and writes DIR/node.json:
1. the input: `--copies` copies of person_e (1280x720, 30 fps, 9.4 s each; 13 copies are
   2 minutes), given as separate videos;
2. each stage alone on this machine: decode (PyAV, one thread), detect (RetinaFace at
   640 px, batches of 8, on the GPU when there is one), the model (batches of 8 faces)
   and encode (x264 veryfast, one thread), in frames/s;
3. `rayswap render` with the default plan (`--gpu` when there is a GPU): end-to-end
   frames/s, the actor plan it printed, and the GPU's utilisation sampled every 0.5 s
   (nvidia-smi), mean and peak;
4. `rayswap extract` on the same input with and without `--gpu`: frames/s and plan.
Steps 3 and 4 run in this process on one Ray, started once before them and not counted
in their frames/s (`benchmarks.media.one_ray`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.media import DEFAULT_DATA, one_ray, run_rayswap, shared_clips
from ops.video import iter_frames, write_video

CLIP, TINY_CLIP = "person_e__liveportrait_s18.mp4", "person_d__liveportrait_d18.mp4"
RATE = re.compile(r"\(([\d.]+) frames/s, ([^)]*)\)")
SEGMENTS = re.compile(r"(\d+) segments")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks node")
    parser.add_argument("--out", default="node-check", help="folder for node.json")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--checkpoint", help="a trained checkpoint (default: untrained)")
    parser.add_argument("--copies", type=int, default=13, help="copies of the 9.4 s clip")
    parser.add_argument("--tiny", action="store_true", help="one short clip, on CPU")
    return parser.parse_args(argv)


class GpuSampler:
    """nvidia-smi's utilisation.gpu every 0.5 s in a thread; empty without nvidia-smi."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        query = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]
        while not self.stop.wait(0.5):
            try:
                done = subprocess.run(query, capture_output=True, text=True, timeout=5)
                self.samples.append(float(done.stdout.split()[0]))
            except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
                return

    def __enter__(self) -> GpuSampler:
        if shutil.which("nvidia-smi"):
            self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()

    def summary(self) -> dict[str, float | None]:
        if not self.samples:
            return {"mean": None, "max": None}
        return {"mean": sum(self.samples) / len(self.samples), "max": max(self.samples)}


def _summary_rate(stdout: str) -> dict:
    """frames/s and the plan text from a stage's summary line."""
    line = stdout.splitlines()[0]
    found, segments = RATE.search(line), SEGMENTS.search(line)
    rate = {"segments": int(segments.group(1)) if segments else None}
    if found is None:
        return {**rate, "frames_per_s": None, "plan": line}
    return {**rate, "frames_per_s": float(found.group(1)), "plan": found.group(2)}


def stage_rates(clip: str, checkpoint: str, device: str, frames_n: int) -> dict[str, float]:
    """Frames/s of decode, detect, model and encode alone, over the first `frames_n` frames."""
    from ops.align import align_face
    from ops.checkpoint import load_checkpoint
    from ops.detect_torch import make_detector

    torch.set_num_threads(1)
    started = time.perf_counter()
    frames = [f for index, _, f in iter_frames(clip, stop=frames_n)]
    rates = {"decode": len(frames) / (time.perf_counter() - started)}
    detector = make_detector(device, threads=1)
    detector.detect_batch(frames[:8])  # warm up
    started = time.perf_counter()
    found = [
        d
        for begin in range(0, len(frames), 8)
        for d in detector.detect_batch(frames[begin : begin + 8])
    ]
    rates["detect"] = len(frames) / (time.perf_counter() - started)
    loaded = load_checkpoint(checkpoint, map_location=device)
    size = loaded.model_config.resolution
    crops = [
        align_face(f, d[0].landmarks, size)[0] for f, d in zip(frames, found, strict=True) if d
    ]
    faces = torch.from_numpy(np.stack(crops)).to(device)
    faces = faces.permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        loaded.model.swap(faces[:8], to="b")
        _sync(device)
        started = time.perf_counter()
        for begin in range(0, len(faces), 8):
            loaded.model.swap(faces[begin : begin + 8], to="b")
        _sync(device)
    rates["model"] = len(faces) / (time.perf_counter() - started)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        write_video(frames, str(Path(folder) / "e.mp4"), 30.0)
        rates["encode"] = len(frames) / (time.perf_counter() - started)
    return rates


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    gpu = torch.cuda.is_available() and not args.tiny
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (clip,) = shared_clips(args.data, [TINY_CLIP if args.tiny else CLIP])
    results: dict = {"device": torch.cuda.get_device_name() if gpu else "cpu", "gpu": gpu}
    with tempfile.TemporaryDirectory(prefix="rayswap-node-") as folder:
        work = Path(folder)
        inputs = []
        for copy in range(1 if args.tiny else args.copies):
            inputs.append(str(work / f"clip_{copy:02d}.mp4"))
            if args.tiny:  # its first 48 frames
                write_video([f for _, _, f in iter_frames(clip, stop=48)], inputs[-1], 30.0)
            else:
                shutil.copy(clip, inputs[-1])
        checkpoint = args.checkpoint or _untrained(work)
        device = "cuda" if gpu else "cpu"
        results["stages_alone"] = stage_rates(clip, checkpoint, device, 24 if args.tiny else 120)
        if gpu:
            torch.cuda.empty_cache()  # the stages' cached blocks go back before the runs
        with one_ray():
            results |= _runs(work, inputs, checkpoint, gpu, args.tiny)
    (out / "node.json").write_text(json.dumps(results, indent=2))
    _print_table(results)


def _runs(work: Path, inputs: list[str], checkpoint: str, gpu: bool, tiny: bool) -> dict:
    """`rayswap render`, then `rayswap extract` (CPU, and --gpu on a GPU), on one Ray."""
    results: dict = {}
    flags = ["--gpu"] if gpu else []
    if tiny:  # one actor per CPU of this machine: a render that takes every CPU
        flags += ["--workers", str(os.cpu_count() or 1)]
    with GpuSampler() as sampler:
        stdout, seconds = run_rayswap(
            ["render", checkpoint, *inputs, "--out", str(work / "r"), *flags]
        )
    results["render"] = {**_summary_rate(stdout), "seconds": seconds}
    results["render"]["gpu_util"] = sampler.summary()
    results["extract"] = {}
    for name, extra in (("cpu", []), *((("gpu", ["--gpu"]),) if gpu else ())):
        with GpuSampler() as sampler:
            stdout, seconds = run_rayswap(
                ["extract", *inputs, "--out", str(work / f"x_{name}"), *extra]
            )
        results["extract"][name] = {**_summary_rate(stdout), "seconds": seconds}
        results["extract"][name]["gpu_util"] = sampler.summary()
    return results


def _untrained(work: Path) -> str:
    from benchmarks.render import _untrained_checkpoint

    return _untrained_checkpoint(str(work), 128)


def _print_table(r: dict) -> None:
    print(f"node benchmark on {r['device']}")
    stages = ", ".join(f"{k} {v:.0f}" for k, v in r["stages_alone"].items())
    where = "GPU" if r["gpu"] else "CPU"
    print(f"  stages alone (frames/s, one thread; detect and model on the {where}): {stages}")
    render = r["render"]
    util = render["gpu_util"]
    gpu_text = (
        f"; GPU busy {util['mean']:.0f}% mean, {util['max']:.0f}% peak"
        if util["mean"] is not None
        else ""
    )
    print(f"  render:  {render['frames_per_s']} frames/s end to end ({render['plan']}){gpu_text}")
    for name, run in r["extract"].items():
        print(f"  extract ({name}): {run['frames_per_s']} frames/s ({run['plan']})")
