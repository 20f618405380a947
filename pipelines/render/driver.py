"""Render: swap faces in many videos at once, with a provenance mark on every swapped frame.

    rayswap render ckpt/ clips/ --out renders/ --direction a2b

A segment stage (pipelines/segments.py). The driver resolves the checkpoint once (a
training folder -> its latest checkpoint) and every actor loads exactly that one. Each
input is probed and split into segments of `segment_frames` frames
(pipelines/render/plan.py). Each segment goes to one `FaceSwapper` actor
(pipelines/render/actor.py; a GPU share each with --gpu), which decodes, detects, swaps
faces in batches across frames, blends, marks and encodes its frames into a part file:
full frames never leave the actor. When all parts of a video are done, a join task
(pipelines/render/commit.py) remuxes them in order with the source audio and the
provenance metadata. One manifest row per input video records what happened; a failed
segment or join also gets its row in OUT/errors.

Resumable (see pipelines/render/plan.py): a rerun of the same command skips finished
videos and finished segments, and its outputs are byte for byte those of one whole run.

Output layout (local path or object-store URI):
    OUT/<name>.mp4          one per input video (name sanitised from the input's name)
    OUT/manifest.parquet    RENDER_MANIFEST_SCHEMA, one row per input
    OUT/errors/             ERRORS_SCHEMA, one row per failed segment or join
    OUT/_config.json        the resolved config, the pinned checkpoint, library versions
    OUT/_done/<id>.json     the manifest row of each finished video (what a rerun skips)
    OUT/_parts/             segments of unfinished videos, with their counts
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, replace

import ray
import ray.data

from ops import schema, storage
from ops.sources import expand_inputs
from pipelines.config import RenderConfig, StageSummary, config_json
from pipelines.render.actor import FaceSwapper
from pipelines.render.commit import (
    VideoState,
    delete_parts,
    join_video,
    manifest_row,
    provenance_metadata,
    write_manifest,
)
from pipelines.render.plan import (
    PARTS,
    CheckpointPin,
    RenderPlan,
    list_finished,
    output_names,
    pin_checkpoint,
    plan_render_segments,
    recorded_split,
    segments_per_video,
    video_record_path,
)
from pipelines.runtime.checks import check_gpu
from pipelines.runtime.node_plan import stage_actors
from pipelines.segments import (
    ERRORS,
    SEGMENT_DONE,
    VIDEO_FINISHED,
    add_counts,
    error_path,
    name_file,
    segment_dataset,
    write_error,
)

RENDERED_KEYS = ("frames", "swapped_frames", "faces_missed")
JOIN_ACTION = "output not written; its segments are kept, and a rerun joins them again"


def prepare_render(cfg: RenderConfig) -> RenderPlan:
    """Checks that need no Ray: OUT can be resumed, the checkpoint loads, inputs expand.

    Resolves the checkpoint once (`pin_checkpoint`). Raises ValueError / FileNotFoundError
    naming the problem (a changed setting names its flag); the CLI turns it into exit 2.
    """

    from ops.checkpoint import load_checkpoint

    pin = pin_checkpoint(cfg)
    load_checkpoint(pin.path)
    if cfg.evaluate:  # the faces of A and B, and the embedder's packages
        from pipelines.evaluate.driver import check_eval_extra, faces_files

        faces_files(cfg.a, "--a")
        faces_files(cfg.b, "--b")
        check_eval_extra("--evaluate")
    check_gpu(cfg.gpu, cfg.address)
    sources = expand_inputs(cfg.inputs, None)
    if not sources:
        raise ValueError(f"no videos found in {list(cfg.inputs)}")
    return RenderPlan(sources, pin)


def _count(totals: dict, report: dict) -> None:
    """Add a report to the run's totals: what was rendered now, and what was skipped."""
    if report["status"] == VIDEO_FINISHED:
        totals["skipped_videos"] += 1
    elif report["status"] == SEGMENT_DONE:
        totals["skipped_segments"] += 1
    else:
        add_counts(totals, report, RENDERED_KEYS)


def _collect(
    dataset: ray.data.Dataset,
    cfg: RenderConfig,
    checkpoint: CheckpointPin,
    finished: frozenset[str],
    totals: dict,
    on_progress: Callable[[dict, dict], None] | None,
) -> list[dict]:
    """Drive the dataset, start each video's join as soon as its last segment is done.

    On an interrupt (Ctrl-C) the dataset stops and the joins already started finish, so
    a rerun finds every finished video recorded and no half-written file.
    """
    with_parts = {name.split("/")[1] for name in finished if name.startswith(f"{PARTS}/")}
    states: dict[str, VideoState] = {}
    joins: dict[ray.ObjectRef, VideoState] = {}
    rows: list[dict] = []
    reports = iter(dataset.iter_rows())
    try:
        for report in reports:
            state = states.setdefault(report["video"], VideoState(report))
            _count(totals, report)
            if state.add(report):
                if state.status == VIDEO_FINISHED and state.key in with_parts:
                    delete_parts(cfg.out, state.key)  # left by a run stopped after its join
                if state.status == VIDEO_FINISHED or state.error:
                    rows.append(manifest_row(state, checkpoint))  # failed: parts kept to resume
                else:  # [3] join the parts in order, with the source audio
                    tags = provenance_metadata(cfg, int(state.total("swapped_frames")))
                    row = manifest_row(state, checkpoint)
                    record = video_record_path(cfg.out, state.key)
                    failed = error_path(cfg.out, state.key, 0)  # a join's error row
                    ref = join_video.remote(
                        state.video, state.output, state.parts(), tags, row, record, failed
                    )
                    joins[ref] = state
            if on_progress is not None:
                on_progress(report, totals)
    finally:
        getattr(reports, "close", lambda: None)()  # stops the actors at once on an interrupt
        if joins:
            ray.wait(list(joins), num_returns=len(joins))
    for ref, state in joins.items():
        try:
            rows.append(ray.get(ref))
        except Exception as exc:  # noqa: BLE001 - a failed join is this video's error row
            error = name_file(state.video, exc)
            row = {"video": state.video, "video_id": state.key, "start": 0}
            write_error(cfg.out, row, "join", error, JOIN_ACTION)
            rows.append(manifest_row(state, checkpoint, join_error=error))
    return rows


def run_render(
    cfg: RenderConfig,
    plan: RenderPlan | None = None,
    on_progress: Callable[[dict, dict], None] | None = None,
) -> StageSummary:
    """Render every input to completion; write the manifest; return the summary.

    `plan` is what `prepare_render(cfg)` returned (it is called when None).
    """
    started = time.perf_counter()
    plan = prepare_render(cfg) if plan is None else plan
    storage.make_dirs(cfg.out)
    per_video = recorded_split(cfg.out)  # a rerun keeps the segments it started with
    finished = list_finished(cfg.out)
    actors = stage_actors(cfg)
    if per_video is None:  # few videos, many actors: split finer so every actor has work
        per_video = segments_per_video(len(plan.sources), actors.workers)
    pinned = {"path": plan.checkpoint.path, "step": plan.checkpoint.step}
    payload = config_json(
        cfg, stage="render", checkpoint=pinned, segments_per_video=per_video
    ).encode()
    storage.write_bytes_atomic(storage.join(cfg.out, schema.CONFIG_FILE), payload)
    galleries = None
    if cfg.evaluate:  # [0] the identity galleries, embedded once for every actor
        from pipelines.evaluate.in_render import prepare_galleries

        galleries = prepare_galleries(cfg)
    names = output_names(plan.sources)
    # actors get the pinned checkpoint's exact path and step, never the training folder
    pinned_cfg = asdict(replace(cfg, checkpoint=plan.checkpoint.path))
    dataset = segment_dataset(
        [{"video": s.uri, "output": names[s.uri]} for s in plan.sources],
        plan_render_segments,
        {
            "segment_frames": cfg.segment_frames,
            "out": cfg.out,
            "context": cfg.smooth_frames,  # frames of landmark smoothing before each start
            "finished": finished,
            "per_video": per_video,
        },
        FaceSwapper,
        {"cfg": pinned_cfg, "checkpoint_step": plan.checkpoint.step, "galleries": galleries},
        actors,
        cfg.workers,
    )
    totals = {"videos": len(plan.sources), "segments": 0, "frames": 0, "swapped_frames": 0}
    totals |= {"faces_missed": 0, "skipped_videos": 0, "skipped_segments": 0}
    totals |= actors.counts()
    rows = _collect(dataset, cfg, plan.checkpoint, finished, totals, on_progress)
    rows.sort(key=lambda r: r[schema.VIDEO])
    manifest = write_manifest(cfg.out, rows)
    if cfg.evaluate:
        from pipelines.evaluate.in_render import write_render_evaluation

        write_render_evaluation(cfg, [s.uri for s in plan.sources], rows)
    if not storage.list_files(storage.join(cfg.out, PARTS)):  # parts of failed videos stay
        delete_parts(cfg.out)
    seconds = time.perf_counter() - started
    totals["seconds"] = seconds
    totals["frames_per_s"] = totals["frames"] / seconds if seconds else 0.0
    failed = [r for r in rows if r[schema.ERROR]]
    return StageSummary(
        stage="render",
        n_ok=len(rows) - len(failed),
        n_failed=len(failed),
        n_skipped=totals["skipped_videos"],
        output_path=cfg.out,
        errors_path=storage.join(cfg.out, ERRORS),
        manifest_path=manifest,
        seconds=seconds,
        counts=totals,
        errors=[f"{r[schema.VIDEO]}: {r[schema.ERROR]}" for r in failed],
    )
