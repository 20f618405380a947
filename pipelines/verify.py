"""Verify: does a video carry rayswap's provenance watermark?

    rayswap verify renders/*.mp4

For each video: decode up to `max_frames` frames spread evenly over it, detect the largest
face, smooth its landmarks over time as render does, re-align it to the canonical
watermark crop, and correlate with the key's pattern and its decoys (ops.watermark). The
score is a z-score over all frames with a face. A video is marked when the score reaches
the threshold for that many frames (stricter for one or two frames); not marked when it
does not, over at least 3 frames with a face; undecided when it does not over fewer
(none included): too little evidence to rule a mark out. It runs in this process (no
Ray): it is quick, and a user checking one file should not need a cluster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ops import schema, storage
from ops.detect import RetinaFaceDetector, select_faces
from ops.smooth import smooth_faces
from ops.video import iter_frames, probe_video
from ops.watermark import MARKED, correlate_face, decide_watermark
from pipelines.config import VerifyConfig

ERROR = "error"  # the verdict of a video that could not be read


@dataclass(frozen=True)
class VerifyResult:
    """One video's verdict: MARKED, NOT_MARKED, UNDECIDED (ops.watermark), or ERROR."""

    video: str
    verdict: str
    score: float
    frames: int  # frames correlated (with a face)
    sampled: int  # frames decoded
    threshold: float  # the z-score `frames` frames had to reach
    error: str = ""

    @property
    def marked(self) -> bool:
        return self.verdict == MARKED


def frame_correlations(
    frames: list, detector: RetinaFaceDetector, cfg: VerifyConfig, radius: int
) -> np.ndarray:
    """(F, 1 + N_DECOYS) correlations of the largest face of each frame that has one.

    Landmarks are smoothed over `radius` neighbouring frames (0: each frame on its own).
    """
    found = []
    for begin in range(0, len(frames), 8):
        batch = detector.detect_batch(frames[begin : begin + 8])
        found += [select_faces(f, 16, cfg.min_score, "largest") for f in batch]
    rows = []
    for index, frame in enumerate(frames):
        faces = smooth_faces(found, index, radius, min_support=0)
        if faces:
            rows.append(correlate_face(frame, faces[0][1], cfg.watermark_key))
    return np.array(rows)


def verify_video(path: str, detector: RetinaFaceDetector, cfg: VerifyConfig) -> VerifyResult:
    """Verdict for one local video file; raises ValueError for unreadable files."""
    info = probe_video(path)
    every_n = max(1, math.ceil(info.frame_count / cfg.max_frames))
    frames = [frame for _, _, frame in iter_frames(path, every_n=every_n)][: cfg.max_frames]
    radius = 1 if every_n == 1 else 0  # smooth only over neighbouring frames
    verdict = decide_watermark(frame_correlations(frames, detector, cfg, radius), cfg.threshold)
    return VerifyResult(
        path, verdict.verdict, verdict.score, verdict.frames, len(frames), verdict.threshold
    )


def run_verify(cfg: VerifyConfig) -> list[VerifyResult]:
    """Verdicts for every video, in order; an unreadable video gets an ERROR result."""
    detector = RetinaFaceDetector(threads=0, max_side=cfg.detect_size, score_threshold=0.5)
    results = []
    for video in cfg.videos:
        try:
            with storage.local_copy(video) as local:
                result = verify_video(local, detector, cfg)
            results.append(replace(result, video=video))
        except Exception as exc:  # noqa: BLE001 - reported per video, the rest go on
            error = schema.format_error(exc)
            results.append(VerifyResult(video, ERROR, 0.0, 0, 0, cfg.threshold, error))
    return results
