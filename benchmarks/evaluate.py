"""Evaluate benchmark: frames/s per core of `rayswap evaluate` and what --evaluate costs render.

    python -m benchmarks evaluate [--data ../shared/data] [--frames 90] [--gallery 50]

All numbers come from one run on the same frames, so they compare as ratios:
- galleries: faces of person_a and person_b extracted (Ray, every 2nd frame of their
  neutral clips), then up to `--gallery` of each embedded in this process: faces/s/core;
- each stage alone on one core (1 thread, CPU time of the process, best of 3, so other
  load on a shared machine does not skew the ratios), per evaluated frame: decode (the
  source and the output), detect (RetinaFace on both), embed (dlib's descriptor of the
  output face) and seam (two aligned crops in LAB); the bound 1 / (sum of stage times);
- the actor's own loop (`VideoEvaluator.evaluate_video`) on one core against that bound;
- `run_evaluate` on a local Ray, 1 video with 1 worker and 2 videos with 2 workers:
  frames/s and frames/s per worker core (actor start and galleries included, Ray start not);
- render with and without --evaluate, the segment renderer on one core (untrained
  64 px model): frames/s and the share of render time evaluation adds.
The pairs are (source, output) = (person_a angry, person_b angry), which stands in for a
perfect swap, and (person_a happy, itself), the untouched source: both people SOURCES.md
allows as swap identities. Nothing is written outside a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from benchmarks.media import DEFAULT_DATA, shared_clips
from benchmarks.render import _best_s
from ops import schema

GALLERY_CLIPS = ("person_a__mead_M030_front_neutral.mp4", "person_b__mead_W009_front_neutral.mp4")
PAIR_CLIPS = (
    "person_a__mead_M030_front_angry.mp4",
    "person_b__mead_W009_front_angry.mp4",
    "person_a__mead_M030_front_happy.mp4",
)


def extract_faces(clips: list[str], folder: str) -> dict[str, str]:
    """Faces datasets of a and b (every 2nd frame), as `rayswap extract` writes them."""
    from pipelines.config import ExtractConfig
    from pipelines.extract.driver import run_extract

    manifest = os.path.join(folder, "gallery.csv")
    with open(manifest, "w") as handle:
        handle.write(f"uri,identity\n{clips[0]},a\n{clips[1]},b\n")
    run_extract(ExtractConfig((manifest,), os.path.join(folder, "x"), every_n=2, workers=2))
    return {side: os.path.join(folder, "x", "faces", side) for side in ("a", "b")}


def hand_made_render(pairs: list[tuple[str, str]], folder: str) -> str:
    """A render folder (manifest + _config.json, a2b) whose outputs are the given clips."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(folder)
    rows = [{schema.VIDEO: source, schema.OUTPUT: output} for source, output in pairs]
    pq.write_table(
        pa.Table.from_pylist(rows, schema=schema.RENDER_MANIFEST_SCHEMA),
        os.path.join(folder, "manifest.parquet"),
    )
    with open(os.path.join(folder, schema.CONFIG_FILE), "w") as handle:
        json.dump({"config": {"direction": "a2b"}}, handle)
    return folder


def time_galleries(faces: dict[str, str], limit: int) -> tuple:
    """(gallery_a, gallery_b, faces per CPU second) embedded in this process."""
    import numpy as np

    from ops.identity import IdentityEmbedder
    from pipelines.evaluate.driver import faces_files, gallery_faces

    embedder = IdentityEmbedder()
    galleries, count, seconds = [], 0, 0.0
    for side in ("a", "b"):
        crops, points = gallery_faces(faces_files(faces[side], f"--{side}"), limit)
        started = time.process_time()
        parts = [embedder.embed(np.stack(crops[s]), np.stack(points[s])) for s in crops]
        seconds += time.process_time() - started
        galleries.append(np.concatenate(parts))
        count += len(galleries[-1])
    return galleries[0], galleries[1], count / seconds


def time_stages(pair: tuple[str, str], frames_n: int, galleries: tuple) -> dict[str, float]:
    """Frames/s of each stage alone on one thread, and of the actor's loop, on one pair."""
    import numpy as np

    from ops import metrics
    from ops.identity import IdentityEmbedder
    from ops.video import iter_frames
    from pipelines.evaluate.driver import RENDER_KEYS, VideoEvaluator

    source, output = pair
    with tempfile.TemporaryDirectory() as tmp:
        render = hand_made_render([pair], os.path.join(tmp, "render"))
        evaluator = VideoEvaluator(
            {"render": render, "a": "a", "b": "b", "max_frames": frames_n},
            {key: _render_default(key) for key in RENDER_KEYS},
            1.5,
            galleries,
        )

        def decode() -> list:
            return [
                (s, o)
                for (_, _, s), (_, _, o) in zip(
                    iter_frames(source, 0, frames_n),
                    iter_frames(output, 0, frames_n),
                    strict=False,
                )
            ]

        pairs = decode()
        n = len(pairs)
        rates = {"decode (both)": n / _best_s(decode)}
        sources = [s for s, _ in pairs]
        outputs = [o for _, o in pairs]
        rates["detect (both)"] = n / _best_s(lambda: evaluator.detect(sources + outputs))
        found = evaluator.detect(sources)
        points = [f[0].landmarks if f else np.zeros((5, 2), np.float32) for f in found]
        embedder = IdentityEmbedder()
        rates["embed"] = n / _best_s(
            lambda: [embedder.embed_frame(o, p) for o, p in zip(outputs, points, strict=True)], 2
        )
        rings = metrics.seam_rings()
        rates["seam"] = n / _best_s(
            lambda: [
                metrics.seam_delta_e(s, o, p, rings)
                for s, o, p in zip(sources, outputs, points, strict=True)
            ]
        )
        rates["actor loop (1 core)"] = n / _best_s(
            lambda: evaluator.evaluate_video(source, output), 2
        )
    return rates


def _render_default(key: str):
    from dataclasses import fields

    from pipelines.config import RenderConfig

    return next(f.default for f in fields(RenderConfig) if f.name == key)


def time_ray(pairs: list[tuple[str, str]], faces: dict, workers: int, frames_n: int) -> tuple:
    """(frames, seconds, seconds of the galleries) of run_evaluate over `pairs` with
    `workers` 1-CPU actors."""
    from pipelines.config import EvaluateConfig
    from pipelines.evaluate.driver import run_evaluate

    with tempfile.TemporaryDirectory() as tmp:
        render = hand_made_render(pairs, os.path.join(tmp, "render"))
        cfg = EvaluateConfig(
            render, faces["a"], faces["b"], max_frames=frames_n, gallery_size=50, workers=workers
        )
        started = time.perf_counter()
        summary = run_evaluate(cfg)
        seconds = time.perf_counter() - started
    if summary.n_failed:
        raise RuntimeError(f"evaluate failed: {summary.errors}")
    return int(summary.counts.frames), seconds, summary.counts.gallery_seconds


def time_render(clip: str, frames_n: int, galleries: tuple) -> list[float]:
    """Frames/s of the segment renderer on one core: without --evaluate, with it, and with
    --evaluate-every-n 5."""
    import torch

    from ops.checkpoint import save_checkpoint
    from ops.model import ModelConfig, SwapAutoencoder
    from ops.video_out import frame_rate_of
    from pipelines.config import RenderConfig
    from pipelines.evaluate.in_render import SegmentEvaluator
    from pipelines.render.segment import SegmentRenderer

    torch.set_num_threads(1)
    torch.manual_seed(0)
    fps = frame_rate_of(clip)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = os.path.join(tmp, "untrained")
        save_checkpoint(checkpoint, SwapAutoencoder(ModelConfig(resolution=64)), 0, 1.5, 256)
        renderer = SegmentRenderer(RenderConfig(checkpoint, (clip,), "unused"), threads=1)
        part = os.path.join(tmp, "s.mp4")
        seconds = [_best_s(lambda: renderer.render(clip, 0, frames_n, part, fps), 2)]
        for every_n in (1, 5):
            renderer.evaluator = SegmentEvaluator(renderer, galleries, every_n)
            renderer.evaluator.start(clip)
            seconds.append(_best_s(lambda: renderer.render(clip, 0, frames_n, part, fps), 2))
    return [frames_n / s for s in seconds]


def main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks evaluate")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--frames", type=int, default=90, help="frames per video")
    parser.add_argument("--gallery", type=int, default=50, help="faces per gallery")
    args = parser.parse_args(argv)
    gallery_clips = shared_clips(args.data, GALLERY_CLIPS)
    a_angry, b_angry, a_happy = shared_clips(args.data, PAIR_CLIPS)
    pairs = [(a_angry, b_angry), (a_happy, a_happy)]
    from pipelines.runtime.ray_setup import connect_ray

    connect_ray(None)
    with tempfile.TemporaryDirectory() as tmp:
        faces = extract_faces(gallery_clips, tmp)
        *galleries, gallery_rate = time_galleries(faces, args.gallery)
        print(
            f"galleries: {len(galleries[0])} + {len(galleries[1])} faces embedded, "
            f"{gallery_rate:.1f} faces/s per core"
        )
        names = ["a_angry->b_angry", "a_happy untouched"]
        print(f"{'stage (1 core), frames/s':28s} " + " ".join(f"{n:>18s}" for n in names))
        per_pair = [time_stages(p, args.frames, tuple(galleries)) for p in pairs]
        stages = ("decode (both)", "detect (both)", "embed", "seam")
        for name in (*stages, "actor loop (1 core)"):
            print(f"{name:28s} " + " ".join(f"{r[name]:18.1f}" for r in per_pair))
        bounds = [1.0 / sum(1.0 / r[s] for s in stages) for r in per_pair]
        print(f"{'bound 1/sum(1/stage)':28s} " + " ".join(f"{b:18.1f}" for b in bounds))
        ratios = [r["actor loop (1 core)"] / b for r, b in zip(per_pair, bounds, strict=True)]
        print(f"{'actor loop / bound':28s} " + " ".join(f"{x:18.2f}" for x in ratios))
        one_frames, one_s, one_g = time_ray(pairs[:1], faces, 1, args.frames)
        two_frames, two_s, two_g = time_ray(pairs, faces, 2, args.frames)
        for videos, frames, seconds, gallery_s in (
            (1, one_frames, one_s, one_g),
            (2, two_frames, two_s, two_g),
        ):
            rate, videos_rate = frames / seconds, frames / (seconds - gallery_s)
            print(
                f"ray, {videos} video(s), {videos} worker(s): {frames} frames in {seconds:.1f} s = "
                f"{rate:.1f} frames/s; without the galleries ({gallery_s:.1f} s) "
                f"{videos_rate:.1f} frames/s = {videos_rate / videos:.1f} per worker core"
            )
        print(
            f"parallel speed-up 2 vs 1: {two_frames / two_s / (one_frames / one_s):.2f}x "
            f"(cores on this machine: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f})"
        )
        plain, scored, fifth = time_render(a_angry, args.frames, tuple(galleries))
        print(
            f"render, 1 core: {plain:.1f} frames/s; with --evaluate {scored:.1f} frames/s "
            f"(+{plain / scored - 1:.0%} render time); with --evaluate-every-n 5 "
            f"{fifth:.1f} frames/s (+{plain / fifth - 1:.0%})"
        )
