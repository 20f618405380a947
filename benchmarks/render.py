"""Render benchmark: the pipeline's frames/s against its stages timed alone, and 1 vs 2 videos.

    python -m benchmarks render [--data ../shared/data] [--checkpoint CKPT] [--frames 120]

All numbers come from one run on the same frames, so they compare as ratios:
- each stage alone on one core (1 thread, CPU time of the process, best of 3, so other
  load on a shared machine does not skew the ratios), over the first `--frames` frames:
  decode (PyAV), detect (RetinaFace at 640 px, batches of 8), model (swap, batches of 8
  faces), blend (align + colour match + mask + paste back + watermark + label) and encode
  (x264 veryfast CRF 18);
- the bound a single core can reach: 1 / (sum of the per-frame stage times);
- the segment renderer (what one actor runs) in one process on one core;
- `run_render` on a local Ray with one 1-CPU worker for 1 video, and two workers for 2
  videos in parallel (Ray start excluded; actor start and the join included).
Clips are people SOURCES.md allows as render targets (person_d, person_f). Outputs go to a
temporary folder that is deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.media import DEFAULT_DATA, shared_clips

CLIPS = ("person_d__liveportrait_d18.mp4", "person_f__liveportrait_d3.mp4")


def _untrained_checkpoint(folder: str, resolution: int) -> str:
    import torch

    from ops.checkpoint import save_checkpoint
    from ops.model import ModelConfig, SwapAutoencoder

    torch.manual_seed(0)
    path = os.path.join(folder, "untrained")
    save_checkpoint(path, SwapAutoencoder(ModelConfig(resolution=resolution)), 0, 1.5, 256)
    return path


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def _best_s(fn: Callable[[], object], repeats: int = 3) -> float:
    """Fastest of `repeats` runs in CPU seconds of this process: stable on a shared machine."""
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        fn()
        best = min(best, time.process_time() - started)
    return best


def time_stages(clip: str, frames_n: int, checkpoint: str) -> dict[str, float]:
    """Frames/s of each stage alone on one thread, over the clip's first `frames_n` frames."""
    import torch

    from ops.align import align_face
    from ops.smooth import smooth_faces
    from ops.video import iter_frames
    from ops.video_out import SegmentWriter, frame_rate_of
    from pipelines.config import RenderConfig
    from pipelines.render.composite import Pending
    from pipelines.render.segment import SegmentRenderer

    torch.set_num_threads(1)
    fps = frame_rate_of(clip)
    frames = [frame for _, _, frame in iter_frames(clip, 0, frames_n, threads=1)]
    n = len(frames)
    rates = {"decode": n / _best_s(lambda: list(iter_frames(clip, 0, frames_n, threads=1)))}
    renderer = SegmentRenderer(RenderConfig(checkpoint, (clip,), "unused"), threads=1)
    rates["detect"] = n / _best_s(lambda: renderer.detect(frames))
    found = renderer.detect(frames)
    faces = [smooth_faces(found, i, 3, 1) for i in range(len(found))]
    crops = [
        align_face(frame, points, renderer.resolution, renderer.coverage)[0]
        for frame, kept in zip(frames, faces, strict=True)
        for _, points in kept
    ]
    model_s = _best_s(lambda: renderer.compositor.swap(crops))
    rates["model"] = n / model_s
    pending = [Pending(i, f, kept) for i, (f, kept) in enumerate(zip(frames, faces, strict=True))]
    rates["blend"] = n / (_best_s(lambda: renderer.compositor.composite(pending)) - model_s)
    composed = renderer.compositor.composite(pending)
    height, width = frames[0].shape[:2]
    with tempfile.TemporaryDirectory() as tmp:

        def encode() -> None:
            with SegmentWriter(os.path.join(tmp, "e.mp4"), fps, width, height) as writer:
                for frame in composed:
                    writer.write(frame)

        rates["encode"] = n / _best_s(encode)
        part = os.path.join(tmp, "s.mp4")
        rates["segment renderer (1 core)"] = n / _best_s(
            lambda: renderer.render(clip, 0, frames_n, part, fps)
        )
    return rates


def time_ray(clips: list[str], checkpoint: str, workers: int) -> tuple[int, float]:
    """(frames, seconds) of run_render over `clips` with `workers` 1-CPU actors."""
    from pipelines.config import RenderConfig
    from pipelines.render.driver import run_render

    with tempfile.TemporaryDirectory() as tmp:
        cfg = RenderConfig(checkpoint, tuple(clips), tmp, workers=workers, segment_frames=100000)
        started = time.perf_counter()
        summary = run_render(cfg)
        seconds = time.perf_counter() - started
    if summary.n_failed:
        raise RuntimeError(f"render failed: {summary.errors}")
    return int(summary.counts.frames), seconds


def _trimmed(clips: list[str], frames_n: int, folder: str) -> list[str]:
    """The first `frames_n` frames of each clip (with audio), so the Ray runs stay short."""
    from ops.samples import write_clip
    from ops.video import iter_frames
    from ops.video_out import frame_rate_of

    out = []
    for clip in clips:
        frames = [frame for _, _, frame in iter_frames(clip, 0, frames_n)]
        path = os.path.join(folder, os.path.basename(clip))
        write_clip(frames, path, fps=round(float(frame_rate_of(clip))))
        out.append(path)
    return out


def main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks render")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--checkpoint", default=None, help="default: an untrained 64 px model")
    parser.add_argument("--resolution", type=int, default=64, help="of the untrained model")
    parser.add_argument("--frames", type=int, default=120)
    args = parser.parse_args(argv)
    clips = shared_clips(args.data, CLIPS)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or _untrained_checkpoint(tmp, args.resolution)
        print(f"checkpoint: {args.checkpoint or f'untrained {args.resolution} px model'}")
        print(f"{'stage (1 core)':28s} " + " ".join(f"{Path(c).name[:14]:>14s}" for c in clips))
        per_clip = [time_stages(c, args.frames, checkpoint) for c in clips]
        stages = ("decode", "detect", "model", "blend", "encode")
        for name in (*stages, "segment renderer (1 core)"):
            print(f"{name:28s} " + " ".join(f"{r[name]:14.1f}" for r in per_clip))
        bounds = [1.0 / sum(1.0 / r[s] for s in stages) for r in per_clip]
        print(f"{'bound 1/sum(1/stage)':28s} " + " ".join(f"{b:14.1f}" for b in bounds))
        ratios = [r["segment renderer (1 core)"] / b for r, b in zip(per_clip, bounds, strict=True)]
        print(f"{'renderer / bound':28s} " + " ".join(f"{x:14.2f}" for x in ratios))
        short = _trimmed(clips, args.frames, tmp)
        from pipelines.runtime.ray_setup import connect_ray

        connect_ray(None)
        one_frames, one_s = time_ray(short[:1], checkpoint, workers=1)
        two_frames, two_s = time_ray(short, checkpoint, workers=2)
        one, two = one_frames / one_s, two_frames / two_s
        print(
            f"ray, 1 video, 1 worker:   {one_frames} frames in {one_s:.1f} s = {one:.1f} frames/s"
        )
        print(
            f"ray, 2 videos, 2 workers: {two_frames} frames in {two_s:.1f} s = {two:.1f} frames/s"
        )
        print(
            f"parallel speed-up 2 vs 1: {two / one:.2f}x (cores on this machine: {os.cpu_count()})"
        )
