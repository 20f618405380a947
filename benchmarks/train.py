"""Train benchmark: the Ray Train pipeline against a raw PyTorch loop, FLOP/s, feed rate.

    python -m benchmarks train [--a FACES_A --b FACES_B] [--resolution 64] [--batch-size 16]
                               [--steps 120] [--threads 1] [--device cpu|cuda] [--quick]

All numbers come from one run and are compared as ratios:
- raw loop: `train_step` on one fixed, pre-augmented batch per identity, in this process,
  measured before and after the Ray runs (the baseline is their mean), with `--threads`
  torch threads (the same thread count a Ray Train worker gets from
  --cpus-per-worker); images/s counts both identities;
- achieved FLOP/s of that loop (forward + backward FLOPs counted by torch's
  FlopCounterMode) against the measured float32 matmul rate on the same threads
  (bf16 on CUDA);
- feed rate: decode (JPEG crop -> R px) and augment (warp, affine, flip, colour) at 128 px,
  images/s on one core;
- the real pipeline (`run_train`: Ray Data decode + augment, DDP, checkpoints at the end):
  steady-state images/s from its metrics, with augmentation in Ray Data tasks vs inside
  the worker, and with 1 vs 2 workers; the ratio is against the raw loop.
Without --a/--b, small faces datasets are generated from the sample portrait.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from ops.align import template_landmarks
from ops.augment import augment_batch, load_face
from ops.model import ModelConfig, SwapAutoencoder
from ops.quality import encode_crop
from ops.train_step import make_optimizer, train_step


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks train")
    parser.add_argument("--a", help="faces Parquet of identity a (default: generated)")
    parser.add_argument("--b", help="faces Parquet of identity b (default: generated)")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=120, help="steps per pipeline run")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="skip the 2-worker run")
    parser.add_argument("--json", help="also write the results here")
    return parser.parse_args(argv)


def fixed_batch(resolution: int, batch_size: int, device: str) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 255, size=(batch_size, resolution, resolution, 3), dtype=np.uint8)
    landmarks = np.stack([template_landmarks(resolution).reshape(-1)] * batch_size)
    arrays = augment_batch(faces, landmarks, np.full(batch_size, 1.5), rng)
    return {key: torch.from_numpy(value).to(device) for key, value in arrays.items()}


def raw_loop(args: argparse.Namespace, seconds: float = 8.0) -> dict[str, float]:
    """images/s and FLOP/s of train_step on a fixed batch, no Ray."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model = SwapAutoencoder(ModelConfig(resolution=args.resolution)).to(args.device)
    optimizer = make_optimizer(model, 1e-4)
    batch = fixed_batch(args.resolution, args.batch_size, args.device)
    autocast = torch.bfloat16 if args.device == "cuda" else None
    with FlopCounterMode(display=False) as counter:
        train_step(model, optimizer, batch, batch, autocast)
    flops_per_step = counter.get_total_flops()
    for _ in range(3):  # warm up
        train_step(model, optimizer, batch, batch, autocast)
    _sync(args.device)
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        train_step(model, optimizer, batch, batch, autocast)
        steps += 1
    _sync(args.device)
    elapsed = time.perf_counter() - started
    return {
        "images_per_s": 2 * args.batch_size * steps / elapsed,
        "flops_per_s": flops_per_step * steps / elapsed,
        "flops_per_image": flops_per_step / (2 * args.batch_size),
    }


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def matmul_rate(device: str, seconds: float = 3.0) -> float:
    """Measured dense matmul FLOP/s (float32 on CPU, bf16 on CUDA)."""
    n = 1024 if device == "cpu" else 8192
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    left = torch.rand(n, n, device=device, dtype=dtype)
    right = torch.rand(n, n, device=device, dtype=dtype)
    left @ right
    _sync(device)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        left @ right
        count += 1
    _sync(device)
    return 2 * n**3 * count / (time.perf_counter() - started)


def feed_rate(resolution: int = 128, count: int = 64) -> dict[str, float]:
    """Decode + augment images/s on one core (cv2 pinned to one thread)."""
    cv2.setNumThreads(1)
    rng = np.random.default_rng(0)
    from ops.samples import animate, portrait

    crop = animate(portrait("a"), 0, 256)
    payload = encode_crop(crop, "jpeg")
    landmarks_frame = template_landmarks(256)
    affine = np.array([[1, 0, 0], [0, 1, 0]], np.float32)
    started = time.perf_counter()
    faces, points = zip(
        *(load_face(payload, landmarks_frame, affine, resolution) for _ in range(count)),
        strict=True,
    )
    decode_s = time.perf_counter() - started
    faces_array, points_array = np.stack(faces), np.stack(points).reshape(count, 10)
    started = time.perf_counter()
    augment_batch(faces_array, points_array, np.full(count, 1.5), rng)
    augment_s = time.perf_counter() - started
    cv2.setNumThreads(0)
    return {
        "decode_per_s": count / decode_s,
        "augment_per_s": count / augment_s,
        "decode_augment_per_s": count / (decode_s + augment_s),
    }


def pipeline_rate(args: argparse.Namespace, faces: tuple[str, str], **overrides) -> float:
    """Steady-state images/s of run_train (metrics windows after the first two)."""
    from pipelines.config import TrainConfig
    from pipelines.train import run_train

    with tempfile.TemporaryDirectory(prefix="rayswap-bench-") as out:
        fields = dict(
            a=faces[0],
            b=faces[1],
            out=out,
            resolution=args.resolution,
            batch_size=args.batch_size,
            steps=args.steps,
            save_every=args.steps,
            log_every=max(1, args.steps // 6),
            cpus_per_worker=float(args.threads),
            gpu=args.device == "cuda",
        )
        fields.update(overrides)
        run_train(TrainConfig(**fields))
        lines = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    steady = lines[2:] or lines
    return float(np.mean([line["images_per_s"] for line in steady]))


def _faces(args: argparse.Namespace, folder: str) -> tuple[str, str]:
    if args.a and args.b:
        return args.a, args.b
    from tests.pipelines.faces_data import write_faces

    a = write_faces(Path(folder) / "a", "a", 96, size=128)
    b = write_faces(Path(folder) / "b", "b", 96, size=128, seed=1)
    return str(a), str(b)


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    torch.set_num_threads(args.threads)
    results: dict[str, float] = {}
    raw = raw_loop(args)
    results["raw_images_per_s"] = raw["images_per_s"]
    results["raw_flops_per_s"] = raw["flops_per_s"]
    results["gflop_per_image"] = raw["flops_per_image"] / 1e9
    results["matmul_flops_per_s"] = matmul_rate(args.device)
    results.update(feed_rate())

    import ray

    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")
    ray.init(
        address="local",
        num_cpus=max(4, os.cpu_count() or 1),
        include_dashboard=False,
        log_to_driver=False,
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    with tempfile.TemporaryDirectory(prefix="rayswap-bench-faces-") as folder:
        faces = _faces(args, folder)
        results["ray_data_1w"] = pipeline_rate(args, faces, augment_in="data")
        results["ray_worker_1w"] = pipeline_rate(args, faces, augment_in="worker")
        if not args.quick:
            results["ray_data_2w"] = pipeline_rate(args, faces, augment_in="data", workers=2)
    ray.shutdown()
    # the raw loop again: on a shared machine the load drifts; the baseline is the mean
    results["raw_images_per_s_after"] = raw_loop(args)["images_per_s"]
    results["raw_images_per_s_before"] = results["raw_images_per_s"]
    results["raw_images_per_s"] = (
        results["raw_images_per_s_before"] + results["raw_images_per_s_after"]
    ) / 2
    _print_table(args, results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def _print_table(args: argparse.Namespace, r: dict[str, float]) -> None:
    raw = r["raw_images_per_s"]
    rows = [
        (
            "raw PyTorch loop, fixed batch",
            f"{raw:.1f} images/s",
            f"baseline (before {r['raw_images_per_s_before']:.1f}, "
            f"after {r['raw_images_per_s_after']:.1f})",
        ),
        (
            "Ray Train pipeline, augment in Ray Data, 1 worker",
            f"{r['ray_data_1w']:.1f} images/s",
            f"{r['ray_data_1w'] / raw:.2f} x raw (target >= 0.9)",
        ),
        (
            "Ray Train pipeline, augment in worker, 1 worker",
            f"{r['ray_worker_1w']:.1f} images/s",
            f"{r['ray_worker_1w'] / raw:.2f} x raw",
        ),
    ]
    if "ray_data_2w" in r:
        rows.append(
            (
                "Ray Train pipeline, augment in Ray Data, 2 workers",
                f"{r['ray_data_2w']:.1f} images/s",
                f"{r['ray_data_2w'] / r['ray_data_1w']:.2f} x 1 worker",
            )
        )
    rows += [
        (
            "achieved FLOP/s (raw loop)",
            f"{r['raw_flops_per_s'] / 1e9:.1f} GFLOP/s",
            f"{r['raw_flops_per_s'] / r['matmul_flops_per_s']:.2f} x matmul "
            f"({r['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s); "
            f"{r['gflop_per_image']:.2f} GFLOP/image",
        ),
        ("feed: decode at 128 px, 1 core", f"{r['decode_per_s']:.0f} images/s", ""),
        ("feed: augment at 128 px, 1 core", f"{r['augment_per_s']:.0f} images/s", ""),
        ("feed: decode + augment, 1 core", f"{r['decode_augment_per_s']:.0f} images/s", ""),
    ]
    print(
        f"train benchmark: {args.resolution} px, batch {args.batch_size} per identity, "
        f"{args.threads} thread(s) per worker, device {args.device}"
    )
    width = max(len(name) for name, _, _ in rows)
    for name, value, note in rows:
        print(f"  {name:<{width}}  {value:>18}  {note}")
