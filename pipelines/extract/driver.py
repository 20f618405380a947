"""Extract: videos -> aligned face crops in Parquet, sharded over CPU workers with Ray Data.

    rayswap extract clips/ --out data/ --identity a

A segment stage (pipelines/segments.py): each input video is probed and split into
segments of `segment_frames` frames (pipelines/extract/plan.py), so a two-hour file
spreads over the cluster like many short ones. Each segment goes to one `FaceExtractor`
actor (pipelines/extract/actor.py), which decodes, detects, aligns, filters and encodes in
one place and commits one Parquet file per segment (pipelines/extract/commit.py) under a
name derived from (video_id, first frame), written atomically: a rerun skips finished
segments and can never duplicate rows. Only a small report row per segment flows back
to this driver, for progress and the summary.

Output layout (local path or object-store URI):
    OUT/faces/<identity>/<video_id>-<start>.parquet   faces dataset, one per identity
    OUT/errors/<video_id>-<start>.parquet             errors dataset (only failed items)
    OUT/_config.json, OUT/faces/_config.json, OUT/errors/_config.json
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np

from ops import storage
from ops.sources import VideoSource
from pipelines.config import ExtractConfig, ExtractCounts, StageSummary, parse_label_selector
from pipelines.extract.actor import FaceExtractor
from pipelines.extract.commit import write_configs
from pipelines.extract.plan import (
    COUNT_KEYS,
    list_done_segments,
    plan_segments,
    prepare_extract,
)
from pipelines.extract.reference import load_reference
from pipelines.runtime import ray_setup
from pipelines.runtime.node_plan import stage_actors
from pipelines.segments import ERRORS, SEGMENT_DONE, segment_dataset


def run_extract(
    cfg: ExtractConfig,
    sources: list[VideoSource] | None = None,
    on_progress: Callable[[dict, Any], None] | None = None,
    reference: np.ndarray | None = None,
) -> StageSummary:
    """Run extraction to completion; return the summary. Progress goes to `on_progress`.

    sources: what `prepare_extract(cfg)` returned (called here when None);
    reference: the --reference embeddings (`load_reference`), loaded here if not given.
    """
    started = time.perf_counter()
    sources = prepare_extract(cfg) if sources is None else sources
    if cfg.reference and reference is None:
        reference = load_reference(cfg.reference, cfg.detect_size)
    storage.make_dirs(storage.join(cfg.out, "faces"))
    write_configs(cfg)
    done = list_done_segments(cfg.out)
    # [0] join Ray, then plan the actors: probing takes no CPU slot, so they may own every CPU
    ray_setup.connect_ray(cfg.address)
    actors = stage_actors(cfg, reserve_cpus=0.0)
    config = asdict(cfg)
    dataset = segment_dataset(
        [{"video": s.uri, "identity": s.identity} for s in sources],
        plan_segments,
        {"cfg": config, "done": done},
        FaceExtractor,
        {"cfg": config, "reference": reference},
        actors,
        cfg.workers,
        parse_label_selector(cfg.label_selector),  # e.g. CPU nodes only
    )
    totals = ExtractCounts(
        videos=len(sources),
        reference_faces=len(reference) if reference is not None else 0,
        max_distance=cfg.max_distance or 0.0,
    )
    failed_videos: dict[str, str] = {}
    for report in dataset.iter_rows():
        totals.add(report, COUNT_KEYS)
        totals.skipped += report["status"] == SEGMENT_DONE
        if report["error"]:
            totals.errors += 1
            failed_videos.setdefault(report["video"], report["error"])
        if on_progress is not None:
            on_progress(report, totals)
    seconds = time.perf_counter() - started
    return StageSummary(
        stage="extract",
        n_ok=len(sources) - len(failed_videos),
        n_failed=len(failed_videos),
        n_skipped=totals.skipped,
        output_path=storage.join(cfg.out, "faces"),
        errors_path=storage.join(cfg.out, ERRORS),
        seconds=seconds,
        counts=totals,
        errors=list(failed_videos.values()),  # each error names its file
        plan=actors,
    )
