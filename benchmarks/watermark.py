"""Watermark benchmark: cost (PSNR) and survival of edits, per render target.

    python -m benchmarks watermark --checkpoint CKPT [--data ../shared/data] [--strength 3]

For each clip (people SOURCES.md allows as render targets): render it once with the
watermark and once without (lossless, no label, so the two differ only by the mark), report
the PSNR of the marked against the unmarked render over whole frames, then run `verify`
on the marked render after four edits: H.264 CRF 18, CRF 28, half size + CRF 28, and a 10%
crop (5% off each side) + half size + CRF 28; and on the unmarked render at CRF 18. With an
untrained model the "face" is noise, so use a checkpoint from `rayswap train`. Outputs go
to a temporary folder that is deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

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
    from pipelines.render_segment import SegmentRenderer

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


def main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks watermark")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--checkpoint", required=True, help="a checkpoint from `rayswap train`")
    parser.add_argument("--strength", type=float, default=3.0)
    args = parser.parse_args(argv)
    clips = shared_clips(args.data, CLIPS)
    print(f"verify z-scores (marked at >= 4.5); strength {args.strength}")
    print(f"{'clip':24s} {'PSNR dB':>8s} " + " ".join(f"{e:>16s}" for e in (*EDITS, "unmarked")))
    for clip in clips:
        with tempfile.TemporaryDirectory() as tmp:
            row = measure(clip, args.checkpoint, args.strength, tmp)
        scores = " ".join(f"{row[e]:16.2f}" for e in (*EDITS, "unmarked"))
        print(f"{Path(clip).name[:24]:24s} {row['psnr']:8.1f} {scores}", flush=True)
