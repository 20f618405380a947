"""Detector benchmark: RetinaFace through onnxruntime vs the torch port, frames/s.

    python -m benchmarks detect [--device cpu|cuda] [--seconds 3] [--rounds 3] [--data DIR]

Both backends detect on the same decoded frames of a 1280x720 clip, downscaled to
`--detect-size` (640 px: 640x360), through `detect_batch` end to end (resize, network,
anchor decoding, NMS, Detection records). On CPU every combination of threads (1, 2) and
batch size (1, 8) is timed for both backends; `make_detector` uses onnxruntime on CPU
where it is the faster one. With `--device cuda` the torch backend is timed on the GPU
(batches 1, 8, 32) after the CPU table.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import torch

from benchmarks.media import DEFAULT_DATA, shared_clips
from ops.detect import Detector, RetinaFaceDetector
from ops.detect_torch import TorchRetinaFaceDetector
from ops.types import Frame
from ops.video import iter_frames

CLIP = "person_e__liveportrait_s18.mp4"  # 1280x720, one face


def read_frames(path: str, count: int = 32, every_n: int = 8) -> list[Frame]:
    """`count` RGB frames of a clip, one every `every_n`."""
    frames = iter_frames(path, every_n=every_n)
    return [frame for _, _, frame in itertools.islice(frames, count)]


def frames_per_s(detector: Detector, frames: list[Frame], batch: int, seconds: float) -> float:
    """Frames/s of `detector.detect_batch` over batches of `batch` frames for about `seconds`."""
    batches = [frames[i : i + batch] for i in range(0, len(frames) - batch + 1, batch)]
    done, start = 0, time.perf_counter()
    while done == 0 or time.perf_counter() - start < seconds:
        detector.detect_batch(batches[(done // batch) % len(batches)])
        done += batch
    return done / (time.perf_counter() - start)


def best_rates(
    cells: dict[tuple[str, int, int], Detector], frames: list[Frame], seconds: float, rounds: int
) -> dict[tuple[str, int, int], float]:
    """Best frames/s of each (backend, threads, batch) cell over `rounds` interleaved rounds.

    Interleaving and keeping the best round make the comparison fair on a shared machine,
    where other processes take the cores at random moments.
    """
    best = dict.fromkeys(cells, 0.0)
    for key, detector in cells.items():
        detector.detect_batch(frames[: key[2]])  # warm-up: allocations, anchor grids
    for _ in range(rounds):
        for key, detector in cells.items():
            if key[0] == "torch":
                torch.set_num_threads(key[1])  # process-wide in torch
            best[key] = max(best[key], frames_per_s(detector, frames, key[2], seconds / rounds))
    return best


def _row(backend: str, device: str, threads: int, batch: int, rate: float) -> None:
    print(f"{backend:12s} {device:6s} {threads:7d} {batch:5d} {rate:9.1f}", flush=True)


def main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks detect")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda for the torch backend")
    parser.add_argument("--detect-size", type=int, default=640)
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per cell")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds, best kept")
    parser.add_argument("--threads", default="1,2", help="CPU thread counts to time")
    args = parser.parse_args(argv)
    frames = read_frames(shared_clips(args.data, (CLIP,))[0])
    height, width = frames[0].shape[:2]
    print(f"{CLIP}: {width}x{height}, detect size {args.detect_size}, {len(frames)} frames")
    print(f"{'backend':12s} {'device':6s} {'threads':>7s} {'batch':>5s} {'frames/s':>9s}")
    cells: dict[tuple[str, int, int], Detector] = {}
    for threads in (int(t) for t in args.threads.split(",")):
        onnx = RetinaFaceDetector(threads=threads, max_side=args.detect_size)
        port = TorchRetinaFaceDetector("cpu", threads=threads, max_side=args.detect_size)
        for batch in (1, 8):
            cells[("onnxruntime", threads, batch)] = onnx
            cells[("torch", threads, batch)] = port
    rates = best_rates(cells, frames, args.seconds, args.rounds)
    for (name, threads, batch), rate in rates.items():
        _row(name, "cpu", threads, batch, rate)
    if args.device != "cpu":
        gpu = TorchRetinaFaceDetector(args.device, max_side=args.detect_size)
        for batch in (1, 8, 32):
            gpu.detect_batch(frames[:batch])  # warm-up: CUDA context, kernels
            _row("torch", args.device[:6], 0, batch, frames_per_s(gpu, frames, batch, args.seconds))
    ratios = [rates[("torch", *key[1:])] / rates[key] for key in rates if key[0] == "onnxruntime"]
    print(f"torch / onnxruntime on CPU: {min(ratios):.2f}x to {max(ratios):.2f}x")
