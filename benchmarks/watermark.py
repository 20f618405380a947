"""Watermark benchmark: cost (PSNR) and survival of edits, per render target.

    python -m benchmarks watermark --checkpoint CKPT [--data ../shared/data] [--strength 3]
    python -m benchmarks watermark --null [--data ../shared/data] [--cache DIR]

For each clip (people SOURCES.md allows as render targets): render it once with the
watermark and once without (lossless, no label, so the two differ only by the mark), report
the PSNR of the marked against the unmarked render over whole frames, then run `verify`
on the marked render after four edits: H.264 CRF 18, CRF 28, half size + CRF 28, and a 10%
crop (5% off each side) + half size + CRF 28; and on the unmarked render at CRF 18. With an
untrained model the "face" is noise, so use a checkpoint from `rayswap train`. Outputs go
to a temporary folder that is deleted at the end.

`--null` measures false positives instead, where evidence is thinnest: every frame with a
face of every unmarked clip and still in the media set is correlated on its own (raw
landmarks, as verify sees a one-frame clip), then every run of F consecutive such frames
of a clip is scored as a clip of F frames. It prints, per F, how many runs there were,
the highest z-score among them, and how many reach verify's threshold for F frames
(`ops.watermark.threshold_for_frames`). No checkpoint needed; `--cache` keeps the
per-frame correlations (a full pass takes tens of minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.media import DEFAULT_DATA, shared_clips

CLIPS = (
    "person_a__mead_M030_front_surprised.mp4",
    "person_d__liveportrait_d18.mp4",
    "person_e__liveportrait_s18.mp4",
    "person_f__liveportrait_d3.mp4",
    "person_g__liveportrait_d13.mp4",
)
EDITS = ("crf18", "crf28", "half+crf28", "crop+half+crf28")


def _render(clip: str, checkpoint: str, strength: float, out_path: str, mark: bool) -> None:
    from ops.video_out import frame_rate_of
    from pipelines.config import RenderConfig
    from pipelines.render.segment import SegmentRenderer

    class Unmarked(SegmentRenderer):
        def mark_points(self, frames, jobs):  # no face to mark: the render without the mark
            return []

    cfg = RenderConfig(
        checkpoint, (clip,), os.path.dirname(out_path), label=False, crf=0,
        watermark_strength=strength,
    )  # fmt: skip
    renderer = (SegmentRenderer if mark else Unmarked)(cfg, threads=os.cpu_count() or 1)
    renderer.render(clip, 0, None, out_path, frame_rate_of(clip))


def _edit(frames: list, edit: str) -> list:
    import cv2

    if "crop" in edit:
        height, width = frames[0].shape[:2]
        dy, dx = height // 20, width // 20
        frames = [f[dy : height - dy, dx : width - dx] for f in frames]
    if "half" in edit:
        height, width = frames[0].shape[:2]
        size = (width // 4 * 2, height // 4 * 2)
        frames = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]
    return frames


def measure(clip: str, checkpoint: str, strength: float, folder: str) -> dict[str, float]:
    import numpy as np

    from ops.detect import RetinaFaceDetector
    from ops.video import iter_frames, write_video
    from ops.video_out import frame_rate_of
    from pipelines.config import VerifyConfig
    from pipelines.verify import verify_video

    marked_path = os.path.join(folder, "marked.mp4")
    plain_path = os.path.join(folder, "plain.mp4")
    _render(clip, checkpoint, strength, marked_path, mark=True)
    _render(clip, checkpoint, strength, plain_path, mark=False)
    marked = [frame for _, _, frame in iter_frames(marked_path)]
    plain = [frame for _, _, frame in iter_frames(plain_path)]
    mse = np.mean(
        [np.mean((a.astype(np.float32) - b) ** 2) for a, b in zip(marked, plain, strict=True)]
    )
    row = {"psnr": float(10 * np.log10(255**2 / max(mse, 1e-12)))}
    fps = float(frame_rate_of(clip))
    detector = RetinaFaceDetector(threads=os.cpu_count() or 1)
    cfg = VerifyConfig(videos=("x",))
    for name, frames in [(e, marked) for e in EDITS] + [("unmarked", plain)]:
        path = os.path.join(folder, "edited.mp4")
        write_video(_edit(frames, name), path, fps, crf=18 if name in ("crf18", "unmarked") else 28)
        row[name] = verify_video(path, detector, cfg).score
    return row


NULL_RUNS = (1, 2, 3, 4, 5, 8, 10, 20, 50, 120)  # clip lengths F, in frames with a face
NULL_CHUNK = 32  # frames decoded and correlated at a time (bounded memory on 4K input)


def _media_frames(path: str):
    """Frames of a clip, or the one frame of a still, as (H, W, 3) uint8 RGB."""
    import cv2

    from ops.video import iter_frames

    if path.lower().endswith((".jpg", ".jpeg", ".png")):
        yield cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        return
    for _, _, frame in iter_frames(path):
        yield frame


def frame_correlations(path: str) -> np.ndarray:
    """(F, 1 + N_DECOYS) correlations of every frame with a face, each on its own."""
    from itertools import islice

    from ops.detect import RetinaFaceDetector
    from ops.watermark import N_DECOYS
    from pipelines.config import VerifyConfig
    from pipelines.verify import frame_correlations as correlate

    cfg = VerifyConfig(videos=(path,))
    detector = RetinaFaceDetector(threads=1, max_side=cfg.detect_size, score_threshold=0.5)
    frames = _media_frames(path)
    rows = []
    while chunk := list(islice(frames, NULL_CHUNK)):
        rows.append(correlate(chunk, detector, cfg, radius=0).reshape(-1, 1 + N_DECOYS))
    return np.concatenate(rows) if rows else np.zeros((0, 1 + N_DECOYS))


def _cached_correlations(path: str, cache: str | None) -> np.ndarray:

    target = os.path.join(cache, Path(path).name + ".npy") if cache else None
    if target and os.path.exists(target):
        return np.load(target)
    correlations = frame_correlations(path)
    if target:
        np.save(target, correlations)
    return correlations


def run_scores(correlations: np.ndarray, frames: int) -> np.ndarray:
    """z-scores of every run of `frames` consecutive rows, scored as one clip; (R,)."""

    from ops.watermark import watermark_scores

    if len(correlations) < frames:
        return np.zeros(0)
    sums = np.cumsum(np.vstack([np.zeros_like(correlations[:1]), correlations]), axis=0)
    return watermark_scores((sums[frames:] - sums[:-frames]) / frames)


def null_main(data: Path, cache: str | None, workers: int) -> None:
    from concurrent.futures import ProcessPoolExecutor

    from ops.watermark import DEFAULT_THRESHOLD, threshold_for_frames

    media = sorted((data / "video").glob("*.mp4")) + sorted((data / "image").glob("*.jpg"))
    media = sorted((str(p) for p in media), key=os.path.getsize, reverse=True)
    if cache:
        os.makedirs(cache, exist_ok=True)
    with ProcessPoolExecutor(workers) as pool:
        correlations = pool.map(_cached_correlations, media, [cache] * len(media))
        found = dict(zip(media, correlations, strict=True))
    total = sum(len(c) for c in found.values())
    print(f"unmarked: {len(media)} clips and stills, {total} frames with a face")
    print(f"{'F frames':>8s} {'runs':>7s} {'max z':>7s} {'threshold':>9s} {'marked':>6s}  max in")
    for frames in NULL_RUNS:
        scores = {name: run_scores(c, frames) for name, c in found.items()}
        runs = sum(len(z) for z in scores.values())
        if not runs:
            continue
        threshold = threshold_for_frames(frames, DEFAULT_THRESHOLD)
        worst = max((z.max(), name) for name, z in scores.items() if len(z))
        marked = sum(int((z >= threshold).sum()) for z in scores.values())
        print(
            f"{frames:8d} {runs:7d} {worst[0]:7.2f} {threshold:9.2f} {marked:6d}  "
            f"{Path(worst[1]).name}",
            flush=True,
        )
    whole = [float(run_scores(c, len(c))[0]) for c in found.values() if len(c)]
    print(f"whole clips: {len(whole)}, z from {min(whole):.2f} to {max(whole):.2f}")
    singles = np.concatenate([c for c in found.values() if len(c)])
    quantiles = np.quantile(run_scores(singles, 1), [0.5, 0.99, 0.999, 0.9999])
    print("one-frame z quantiles 50/99/99.9/99.99%: " + " ".join(f"{q:.2f}" for q in quantiles))


def main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks watermark")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--checkpoint", help="a checkpoint from `rayswap train`")
    parser.add_argument("--strength", type=float, default=3.0)
    parser.add_argument("--null", action="store_true", help="false positives on unmarked media")
    parser.add_argument("--cache", help="folder for --null's per-frame correlations")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    if args.null:
        null_main(args.data, args.cache, args.workers)
        return
    if not args.checkpoint:
        parser.error("--checkpoint is required (or --null)")
    clips = shared_clips(args.data, CLIPS)
    print(f"verify z-scores (marked at >= 4.5); strength {args.strength}")
    print(f"{'clip':24s} {'PSNR dB':>8s} " + " ".join(f"{e:>16s}" for e in (*EDITS, "unmarked")))
    for clip in clips:
        with tempfile.TemporaryDirectory() as tmp:
            row = measure(clip, args.checkpoint, args.strength, tmp)
        scores = " ".join(f"{row[e]:16.2f}" for e in (*EDITS, "unmarked"))
        print(f"{Path(clip).name[:24]:24s} {row['psnr']:8.1f} {scores}", flush=True)
