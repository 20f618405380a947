"""The render actor: swap the faces of one segment of one video into its part file.

Full frames never leave the actor: `SegmentRenderer` (pipelines/render/segment.py) decodes,
detects, swaps, blends, marks and encodes; the part file and its record are committed
under OUT/_parts (pipelines/render/plan.py), and a small report row returns.
"""

from __future__ import annotations

import os
import tempfile
import time
from fractions import Fraction
from functools import partial

from ops import storage
from ops.types import FrameRange
from pipelines.config import RenderConfig
from pipelines.render.plan import (
    COUNT_KEYS,
    REPORT_KEYS,
    CheckpointPin,
    part_path,
    segment_record,
)
from pipelines.segments import SegmentActor, fail_once


class FaceSwapper(SegmentActor):
    """Ray Data actor: render one segment per row into its part file.

    Loads the pinned checkpoint once (`__init__`). A segment is committed as its part
    file, then its record (OUT/_parts/<video_id>/<start>.json).
    """

    keys, counts = REPORT_KEYS, COUNT_KEYS
    work_step = "render"
    action = "skipped; the video is not joined until a rerun renders this segment"

    def __init__(self, cfg: dict, checkpoint: CheckpointPin, galleries: list | None = None) -> None:
        import torch

        from pipelines.render.segment import SegmentRenderer

        # the pinned checkpoint's exact directory, never the training folder it came from
        self.cfg = RenderConfig(**{**cfg, "checkpoint": checkpoint.path})
        self.out = self.cfg.out
        threads = max(1, int(round(self.cfg.cpus_per_worker)))
        device = "cuda" if self.cfg.gpu and torch.cuda.is_available() else "cpu"
        self.renderer = SegmentRenderer(self.cfg, threads=threads, device=device)
        # checked once; a mismatch fails every segment of this actor as its own error row
        self.pin_error = ""
        if self.renderer.step != checkpoint.step:
            self.pin_error = (
                f"checkpoint {self.renderer.checkpoint} holds step {self.renderer.step}, "
                f"not the step {checkpoint.step} this render pinned"
            )
        if galleries is not None:  # --evaluate
            from pipelines.evaluate.in_render import SegmentEvaluator

            every_n = self.cfg.evaluate_every_n
            self.renderer.evaluator = SegmentEvaluator(self.renderer, galleries, every_n)

    def work(self, row: dict) -> dict[str, float]:
        started = time.perf_counter()
        counts = self._render(row)
        counts["seconds"] = time.perf_counter() - started
        record = part_path(self.cfg.out, row["video_id"], row["start"], ".json")
        storage.write_bytes_atomic(record, segment_record(counts))
        return counts

    def _render(self, row: dict) -> dict[str, float]:
        if self.pin_error:
            raise ValueError(self.pin_error)
        stop = None if row["stop"] < 0 else row["stop"]
        on_frame = partial(fail_once, self.out, at=self.cfg.fail_at_frame)
        fps = Fraction(row["frame_rate"])  # probed once, in planning
        evaluator = self.renderer.evaluator
        if evaluator is not None:
            evaluator.start(storage.strip_query(row["video"]))
        # object-store videos are read in place (ranged reads), never downloaded whole
        with storage.open_media(row["video"]) as media, tempfile.TemporaryDirectory() as tmp:
            part = os.path.join(tmp, "part.mp4")
            seek = FrameRange(row["start"], row["stop"], row["seek_frame"], row["seek_pts"]).seek
            counts = self.renderer.render(media, row["start"], stop, part, fps, seek, on_frame)
            if counts.frames == 0 and row["start"] == 0:
                raise ValueError(f"{storage.strip_query(row['video'])}: no decodable frames")
            if counts.frames:
                storage.upload_file_atomic(part, row["part"])
        if evaluator is not None:  # before the segment record: a resumed run finds it
            from pipelines.evaluate.in_render import write_segment

            write_segment(self.cfg.out, row["video_id"], row["start"], evaluator.take())
        return {
            "frames": counts.frames,
            "swapped_frames": counts.swapped_frames,
            "faces_missed": counts.faces_missed,
        }
