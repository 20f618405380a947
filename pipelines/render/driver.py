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
videos and finished segments, and its outputs are byte for byte those of one whole run;
a rerun with nothing left to do writes the manifest again without joining Ray.

The output layout (OUT/<name>.mp4, manifest.parquet, errors/, _config.json, _done/,
_parts/) is described once, in docs/render.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any

import ray
import ray.data

from ops import schema, storage
from ops.sources import expand_inputs
from pipelines.config import ActorPlan, RenderConfig, RenderCounts, StageSummary, config_json
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
    finished_video,
    list_finished,
    output_names,
    pin_checkpoint,
    plan_render_segments,
    recorded_split,
    segments_per_video,
    video_record_path,
    video_row,
)
from pipelines.runtime import ray_setup
from pipelines.runtime.checks import check_gpu
from pipelines.runtime.node_plan import cluster_nodes, render_reserve_cpus, stage_actors
from pipelines.segments import (
    ERRORS,
    SEGMENT_DONE,
    VIDEO_FINISHED,
    error_path,
    name_file,
    segment_dataset,
    write_error,
)

RENDERED_KEYS = ("frames", "swapped_frames", "faces_missed")
JOIN_ACTION = "output not written; its segments are kept, and a rerun joins them again"


def prepare_render(cfg: RenderConfig) -> RenderPlan:
    """Checks before the stage's Ray work: OUT can be resumed, the checkpoint is complete
    (its config read and checked; the weights are loaded by the actors only), inputs expand,
    --gpu can be met (`check_gpu` asks a Ray this process already joined; it starts none).

    Resolves the checkpoint once (`pin_checkpoint`). Raises ValueError / FileNotFoundError
    naming the problem (a changed setting names its flag); the CLI turns it into exit 2.
    """
    pin = pin_checkpoint(cfg)
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


def _count(totals: RenderCounts, report: dict) -> None:
    """Add a report to the run's totals: what was rendered now, and what was skipped."""
    if report["status"] == VIDEO_FINISHED:
        totals.skipped_videos += 1
    elif report["status"] == SEGMENT_DONE:
        totals.skipped_segments += 1
    else:
        totals.add(report, RENDERED_KEYS)


def _finished_reports(
    cfg: RenderConfig, names: dict[str, str], finished: frozenset[str]
) -> list[dict] | None:
    """The reports of every input when an earlier run finished them all, else None.

    Ray-free: a rerun with nothing left to do needs neither Ray nor actors.
    """
    reports = []
    for uri, name in names.items():
        report = finished_video(video_row(uri, name, cfg.out), cfg.out, finished)
        if report is None:
            return None
        reports.append(report)
    return reports


def _collect(
    reports: Iterable[dict],
    cfg: RenderConfig,
    checkpoint: CheckpointPin,
    finished: frozenset[str],
    totals: RenderCounts,
    on_progress: Callable[[dict, Any], None] | None,
) -> list[dict]:
    """Drive the reports (the dataset's, or those of finished videos), start each video's
    join as soon as its last segment is done.

    On an interrupt (Ctrl-C) the dataset stops and the joins already started finish, so
    a rerun finds every finished video recorded and no half-written file.
    """
    with_parts = {name.split("/")[1] for name in finished if name.startswith(f"{PARTS}/")}
    states: dict[str, VideoState] = {}
    joins: dict[ray.ObjectRef, VideoState] = {}
    rows: list[dict] = []
    reports = iter(reports)
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
                        state.video,
                        state.output,
                        state.parts(),
                        state.frame_rate,
                        tags,
                        row,
                        record,
                        failed,
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
    on_progress: Callable[[dict, Any], None] | None = None,
) -> StageSummary:
    """Render every input to completion; write the manifest; return the summary.

    `plan` is what `prepare_render(cfg)` returned (it is called when None).
    """
    started = time.perf_counter()
    plan = prepare_render(cfg) if plan is None else plan
    storage.make_dirs(cfg.out)
    finished = list_finished(cfg.out)
    names = output_names(plan.sources)
    totals = RenderCounts(videos=len(plan.sources))
    actors = None
    done = _finished_reports(cfg, names, finished)
    if done is not None:  # a rerun with nothing left to do: no Ray, no actors
        rows = _collect(done, cfg, plan.checkpoint, finished, totals, on_progress)
    else:
        ray_setup.connect_ray(cfg.address)  # [0] join Ray, then plan the actors on it
        actors = stage_actors(cfg, reserve_cpus=render_reserve_cpus(cluster_nodes()))
        dataset = _render_dataset(cfg, plan, names, finished, actors)
        rows = _collect(dataset.iter_rows(), cfg, plan.checkpoint, finished, totals, on_progress)
    rows.sort(key=lambda r: r[schema.VIDEO])
    manifest = write_manifest(cfg.out, rows)
    if cfg.evaluate:
        from pipelines.evaluate.in_render import write_render_evaluation

        write_render_evaluation(cfg, [s.uri for s in plan.sources], rows)
    if not storage.list_files(storage.join(cfg.out, PARTS)):  # parts of failed videos stay
        delete_parts(cfg.out)
    seconds = time.perf_counter() - started
    failed = [r for r in rows if r[schema.ERROR]]
    return StageSummary(
        stage="render",
        n_ok=len(rows) - len(failed),
        n_failed=len(failed),
        n_skipped=totals.skipped_videos,
        output_path=cfg.out,
        errors_path=storage.join(cfg.out, ERRORS),
        manifest_path=manifest,
        seconds=seconds,
        counts=totals,
        errors=[f"{r[schema.VIDEO]}: {r[schema.ERROR]}" for r in failed],
        plan=actors,
    )


def _render_dataset(
    cfg: RenderConfig,
    plan: RenderPlan,
    names: dict[str, str],
    finished: frozenset[str],
    actors: ActorPlan,
) -> ray.data.Dataset:
    """Record the run's settings, then the dataset: videos -> segments -> FaceSwapper."""
    per_video = recorded_split(cfg.out)  # a rerun keeps the segments it started with
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
        {"cfg": asdict(cfg), "checkpoint": plan.checkpoint, "galleries": galleries},
        actors,
        cfg.workers,
    )
    return dataset
