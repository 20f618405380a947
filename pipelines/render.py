"""Render: swap faces in many videos at once, with a provenance mark on every swapped frame.

    rayswap render ckpt/ clips/ --out renders/ --direction a2b

Plan: the driver resolves the checkpoint once (a training folder -> its latest checkpoint)
and every actor loads exactly that one. Each input is probed and split into segments of
`segment_frames` frames. Each segment goes to one `FaceSwapper` actor (Ray Data actor
pool; a GPU fraction each with --gpu), which decodes, detects, swaps faces in batches
across frames, blends, marks and encodes its frames into a part file: full frames never
leave the actor. When all parts of a video are done, a join task remuxes them in order
(no re-encode), carries the source audio over and writes the provenance metadata, under a
temporary name that is renamed when complete. One manifest row per input video records
what happened.

Resumable (see pipelines/render_plan.py): a rerun of the same command skips finished
videos and finished segments, and its outputs are byte for byte those of one whole run.

Output layout (local path or object-store URI):
    OUT/<name>.mp4          one per input video (name sanitised from the input's name)
    OUT/manifest.parquet    RENDER_MANIFEST_SCHEMA, one row per input
    OUT/_config.json        the resolved config, the pinned checkpoint, library versions
    OUT/_done/<id>.json     the manifest row of each finished video (what a rerun skips)
    OUT/_parts/             segments of unfinished videos, with their counts
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import posixpath
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import ray
import ray.data

from ops import schema, storage
from ops.sources import expand_inputs, probe_source, split_source, video_id
from ops.types import FrameRange
from ops.video_out import frame_rate_of, join_segments
from pipelines.config import RenderConfig, StageSummary, config_json, versions
from pipelines.node_plan import ActorPlan, cluster_nodes, plan_actors
from pipelines.ray_setup import actor_pool, connect_ray
from pipelines.render_plan import (
    COUNT_KEYS,
    PARTS,
    REPORT_KEYS,
    SEGMENT_DONE,
    VIDEO_FINISHED,
    CheckpointPin,
    RenderPlan,
    done_segment,
    finished_video,
    list_finished,
    output_name,  # noqa: F401 - re-exported for callers
    output_names,
    part_path,
    pin_checkpoint,
    recorded_split,
    report,
    segment_length,
    segment_record,
    segments_per_video,
    video_record_path,
)

FAIL_MARKER = ".fail_at_frame_done"


def provenance_metadata(cfg: RenderConfig, swapped_frames: int) -> dict[str, str]:
    """Container tags: synthetic and made by rayswap, or, with no swapped frame, no claim.

    A video in which no face was swapped is the source re-encoded (no label, no mark):
    its tags say so, and never that it is synthetic.
    """
    version = versions().get("rayswap", "unknown")
    if not swapped_frames:
        return {
            "comment": "No face was found to swap: every frame is the source's, re-encoded.",
            "synthetic": "false",
            "encoded_by": f"rayswap {version}",
        }
    return {
        "comment": "SYNTHETIC: faces in this video were swapped by rayswap (deepfake).",
        "description": f"Synthetic video made by rayswap {version}; face swap {cfg.direction}; "
        "carries an invisible rayswap watermark (check with `rayswap verify`).",
        "synthetic": "true",
        "generator": f"rayswap {version}",
        "encoded_by": "rayswap",
    }


def plan_render_segments(
    row: dict,
    segment_frames: int,
    out: str,
    context: int = 0,
    finished: frozenset[str] = frozenset(),
    per_video: int = 1,
) -> list[dict]:
    """flat_map: one input video -> its segment rows, or one error row. Never raises.

    `context` is the smoothing radius: each segment also decodes that many frames before
    its start, so its seek point (`seek_frame`, `seek_pts`) is that far back. What an
    earlier run recorded (`finished`, from `list_finished`) comes back as reports with
    status "finished" (the whole video) or "done" (a segment) and is not rendered again.
    `per_video`: split the video into at least this many segments (few videos, many actors).
    """
    uri, name = row["video"], row["output"]
    key = video_id(uri)
    base = {"video": uri, "video_id": key, "output": storage.join(out, name), "start": 0}
    base |= {"stop": -1, "segments": 1, "part": "", "error": ""}
    seek = {"seek_frame": -1, "seek_pts": -1}
    done = finished_video(base, out, finished)
    if done is not None:
        return [done | seek]
    try:
        info = probe_source(uri)
        length = segment_length(info.frame_count, segment_frames, per_video)
        ranges = split_source(uri, info.frame_count, length, context)
    except Exception as exc:  # noqa: BLE001 - recorded in the manifest
        return [report(base, error=schema.format_error(exc), **seek)]
    rows = []
    for frames in ranges:  # the last runs to the end (stop -1)
        part = part_path(out, key, frames.start)
        seek = {"seek_frame": frames.seek_frame, "seek_pts": frames.seek_pts}
        fields = {"start": frames.start, "stop": frames.stop, "segments": len(ranges)}
        rows.append(done_segment(report(base, part=part, **fields, **seek), out, finished))
    return rows


class FaceSwapper:
    """Ray Data actor: render one segment per row into its part file.

    Loads the pinned checkpoint once (`__init__`); per-segment failures are caught in
    exactly one place (`__call__`) and become report rows with an error. A segment is
    committed as its part file, then its record (OUT/_parts/<video_id>/<start>.json).
    """

    def __init__(self, cfg: dict, checkpoint_step: int, galleries: list | None = None) -> None:
        import torch

        from pipelines.render_segment import SegmentRenderer

        self.cfg = RenderConfig(**cfg)
        self.checkpoint_step = checkpoint_step
        threads = max(1, int(round(self.cfg.cpus_per_worker)))
        device = "cuda" if self.cfg.gpu and torch.cuda.is_available() else "cpu"
        self.renderer = SegmentRenderer(self.cfg, threads=threads, device=device)
        if galleries is not None:  # --evaluate
            from pipelines.evaluate_render import SegmentEvaluator

            every_n = self.cfg.evaluate_every_n
            self.renderer.evaluator = SegmentEvaluator(self.renderer, galleries, every_n)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        reports = []
        for row in _rows(batch):
            if row["error"] or row["status"]:  # failed in planning, or done by an earlier run
                reports.append(report(row))
                continue
            started = time.perf_counter()
            try:
                counts = self._render(row)
                counts["seconds"] = time.perf_counter() - started
                record = part_path(self.cfg.out, row["video_id"], row["start"], ".json")
                storage.write_bytes_atomic(record, segment_record(counts))
                reports.append(report(row, **counts))
            except Exception as exc:  # noqa: BLE001 - one bad video never stops the batch
                error = schema.format_error(exc)
                reports.append(report(row, error=error, seconds=time.perf_counter() - started))
        return {key: [r[key] for r in reports] for key in (*REPORT_KEYS, *COUNT_KEYS)}

    def _render(self, row: dict) -> dict[str, float]:
        if self.renderer.step != self.checkpoint_step:
            raise ValueError(
                f"checkpoint {self.renderer.checkpoint} holds step {self.renderer.step}, "
                f"not the step {self.checkpoint_step} this render pinned"
            )
        stop = None if row["stop"] < 0 else row["stop"]
        on_frame = None if self.cfg.fail_at_frame is None else self._fail_at_frame
        # object-store videos are read in place (ranged reads), never downloaded whole
        with storage.open_media(row["video"]) as media:
            fps = frame_rate_of(media)
        evaluator = self.renderer.evaluator
        if evaluator is not None:
            evaluator.start(storage.strip_query(row["video"]))
        with storage.open_media(row["video"]) as media, tempfile.TemporaryDirectory() as tmp:
            part = os.path.join(tmp, "part.mp4")
            seek = FrameRange(row["start"], row["stop"], row["seek_frame"], row["seek_pts"]).seek
            counts = self.renderer.render(media, row["start"], stop, part, fps, seek, on_frame)
            if counts.frames == 0 and row["start"] == 0:
                raise ValueError(f"{storage.strip_query(row['video'])}: no decodable frames")
            if counts.frames:
                storage.upload_file_atomic(part, row["part"])
        if evaluator is not None:  # before the segment record: a resumed run finds it
            from pipelines.evaluate_render import write_segment

            write_segment(self.cfg.out, row["video_id"], row["start"], evaluator.take())
        return {
            "frames": counts.frames,
            "swapped_frames": counts.swapped_frames,
            "faces_missed": counts.faces_missed,
        }

    def _fail_at_frame(self, index: int) -> None:
        """Fault injection for tests: the worker that encodes frame `fail_at_frame` dies, once."""
        marker = storage.join(self.cfg.out, FAIL_MARKER)
        if index != self.cfg.fail_at_frame or storage.exists(marker):
            return
        storage.write_bytes_atomic(marker, str(index).encode())
        os._exit(1)  # as if killed: no exception, no cleanup; Ray restarts the actor


def _rows(batch: dict[str, np.ndarray]) -> Iterator[dict]:
    keys = list(batch)
    for values in zip(*(batch[k] for k in keys), strict=True):
        yield {
            k: (v.item() if isinstance(v, np.generic) else v)
            for k, v in zip(keys, values, strict=True)
        }


@ray.remote(num_cpus=0.5, max_retries=2)
def join_video(
    video: str, output: str, parts: list[tuple[str, int]], tags: dict, row: dict, record: str
) -> dict:
    """Remux a video's parts into OUT/<name>.mp4 with the source audio; return its row.

    The manifest `row` (its seconds now counting the join) is written to `record`
    (OUT/_done/<video_id>.json) after the output and before the parts are deleted: a
    rerun that finds the record skips the video.
    """
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        local_parts = []
        for i, (part, start) in enumerate(parts):
            local = os.path.join(tmp, f"{i:06d}.mp4")
            with open(local, "wb") as handle:
                handle.write(storage.read_bytes(part))
            local_parts.append((local, start))
        joined = os.path.join(tmp, "joined.mp4")
        with storage.local_copy(video) as source:
            join_segments(local_parts, frame_rate_of(source), joined, source, tags)
        storage.upload_file_atomic(joined, output)  # temp name + rename, or one PUT
    row = {**row, schema.SECONDS: row[schema.SECONDS] + time.perf_counter() - started}
    storage.write_bytes_atomic(record, json.dumps(row).encode())
    for part, _ in parts:
        storage.delete_file(part)
    if parts:  # the video's folder under _parts (only segment records are left in it)
        _delete_dir(posixpath.dirname(storage.resolve(parts[0][0])[1]), parts[0][0])
    return row


def _delete_dir(inner: str, like: str) -> None:
    """Delete a folder (and what is in it) on the filesystem of the path or URI `like`."""
    filesystem, _ = storage.resolve(like)  # keeps a URI's endpoint query
    with contextlib.suppress(OSError):
        filesystem.delete_dir(inner)


def build_render_dataset(
    cfg: RenderConfig,
    plan: RenderPlan,
    finished: frozenset[str],
    actors: ActorPlan,
    per_video: int = 1,
    galleries: list | None = None,
) -> ray.data.Dataset:
    """The plan -> render pipeline; its rows are one report per segment.

    Actors get the pinned checkpoint's exact path and step, never the training folder;
    with --evaluate, the galleries of A and B too.
    """
    names = output_names(plan.sources)
    items = [{"video": s.uri, "output": names[s.uri]} for s in plan.sources]
    # [1] plan: probe each video and split it into segments (CPU-free tasks), then give
    # every segment a block of its own, so that the actors share even a single video
    planned = (
        ray.data.from_items(items, override_num_blocks=max(1, len(items)))
        .flat_map(
            plan_render_segments,
            fn_kwargs={
                "segment_frames": cfg.segment_frames,
                "out": cfg.out,
                "context": cfg.smooth_frames,
                "finished": finished,
                "per_video": per_video,
            },
            num_cpus=0,
        )
        .take_all()
    )
    segments = ray.data.from_items(planned, override_num_blocks=max(1, len(planned)))
    # [2] render: one actor per worker holds the model and a detector; one segment per call
    pinned = replace(cfg, checkpoint=plan.checkpoint.path)
    return segments.map_batches(
        FaceSwapper,
        fn_constructor_kwargs={
            "cfg": asdict(pinned),
            "checkpoint_step": plan.checkpoint.step,
            "galleries": galleries,
        },
        batch_size=1,
        compute=actor_pool(cfg.workers, actors.workers),
        num_cpus=actors.cpus_each,
        num_gpus=actors.gpus_each,
    )


def prepare_render(cfg: RenderConfig) -> RenderPlan:
    """Checks that need no Ray: OUT can be resumed, the checkpoint loads, inputs expand.

    Resolves the checkpoint once (`pin_checkpoint`). Raises ValueError / FileNotFoundError
    naming the problem (a changed setting names its flag); the CLI turns it into exit 2.
    """
    import torch

    from ops.checkpoint import load_checkpoint

    pin = pin_checkpoint(cfg)
    load_checkpoint(pin.path)
    if cfg.evaluate:  # the faces of A and B, and the embedder's packages
        from pipelines.evaluate import check_eval_extra, faces_files

        faces_files(cfg.a, "--a")
        faces_files(cfg.b, "--b")
        check_eval_extra("--evaluate")
    # Actors that ask for a GPU nobody has would wait forever: refuse before starting.
    if cfg.gpu and ray.is_initialized() and ray.cluster_resources().get("GPU", 0) <= 0:
        raise ValueError("--gpu: the Ray cluster this process joined has no GPU; drop --gpu")
    if cfg.gpu and cfg.address is None and not ray.is_initialized():
        if not torch.cuda.is_available():
            raise ValueError("--gpu: this machine has no CUDA GPU; drop --gpu or use --address")
    sources = expand_inputs(cfg.inputs, None)
    if not sources:
        raise ValueError(f"no videos found in {list(cfg.inputs)}")
    return RenderPlan(sources, pin)


class _VideoState:
    """Segments of one video collected on the driver until its join can start."""

    def __init__(self, report: dict) -> None:
        self.video, self.output = report["video"], report["output"]
        self.key, self.status = report["video_id"], report["status"]
        self.expected = int(report["segments"])
        self.reports: list[dict] = []

    def add(self, report: dict) -> bool:
        self.reports.append(report)
        return len(self.reports) == self.expected

    @property
    def error(self) -> str:
        return next((r["error"] for r in self.reports if r["error"]), "")

    def total(self, key: str) -> float:
        return sum(r[key] for r in self.reports)

    def parts(self) -> list[tuple[str, int]]:
        done = sorted((r["start"], r["part"]) for r in self.reports if r["frames"] > 0)
        return [(part, start) for start, part in done]


def manifest_row(state: _VideoState, checkpoint: CheckpointPin, join_error: str = "") -> dict:
    """The video's manifest row: its counts, output (None on error) and pinned checkpoint."""
    error = state.error or join_error
    return {
        schema.VIDEO: storage.strip_query(state.video),
        schema.OUTPUT: None if error else storage.strip_query(state.output),
        schema.FRAMES: int(state.total("frames")),
        schema.SWAPPED_FRAMES: int(state.total("swapped_frames")),
        schema.FACES_MISSED: int(state.total("faces_missed")),
        schema.SECONDS: float(state.total("seconds")),
        schema.ERROR: error or None,
        schema.CHECKPOINT: storage.strip_query(checkpoint.path),
        schema.CHECKPOINT_STEP: checkpoint.step,
    }


def _count(totals: dict, report: dict) -> None:
    """Add a report to the run's totals: what was rendered now, and what was skipped."""
    if report["status"] == VIDEO_FINISHED:
        totals["skipped_videos"] += 1
    elif report["status"] == SEGMENT_DONE:
        totals["skipped_segments"] += 1
    else:
        totals["segments"] += 1
        for key in ("frames", "swapped_frames", "faces_missed"):
            totals[key] += report[key]


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
    states: dict[str, _VideoState] = {}
    joins: dict[ray.ObjectRef, _VideoState] = {}
    rows: list[dict] = []
    reports = iter(dataset.iter_rows())
    try:
        for report in reports:
            state = states.setdefault(report["video"], _VideoState(report))
            _count(totals, report)
            if state.add(report):
                if state.status == VIDEO_FINISHED and state.key in with_parts:
                    _delete_parts(cfg.out, state.key)  # left by a run stopped after its join
                if state.status == VIDEO_FINISHED or state.error:
                    rows.append(manifest_row(state, checkpoint))  # failed: parts kept to resume
                else:  # [3] join the parts in order, with the source audio
                    tags = provenance_metadata(cfg, int(state.total("swapped_frames")))
                    row = manifest_row(state, checkpoint)
                    record = video_record_path(cfg.out, state.key)
                    ref = join_video.remote(
                        state.video, state.output, state.parts(), tags, row, record
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
            rows.append(manifest_row(state, checkpoint, join_error=schema.format_error(exc)))
    return rows


def write_manifest(out: str, rows: list[dict]) -> str:
    path = storage.join(out, "manifest.parquet")
    table = pa.Table.from_pylist(rows, schema=schema.RENDER_MANIFEST_SCHEMA)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    storage.write_bytes_atomic(path, sink.getvalue())
    return path


def _delete_parts(out: str, key: str | None = None) -> None:
    """Delete OUT/_parts/<key>, or OUT/_parts itself (when `key` is None)."""
    parts = storage.join(out, PARTS, key) if key else storage.join(out, PARTS)
    _delete_dir(storage.resolve(parts)[1], parts)


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
    connect_ray(cfg.address)
    actors = plan_actors(
        cluster_nodes(), cfg.cpus_per_worker, cfg.gpu, cfg.workers, cfg.gpus_per_worker
    )
    if per_video is None:  # few videos, many actors: split finer so every actor has work
        per_video = segments_per_video(len(plan.sources), actors.workers)
    pinned = {"path": plan.checkpoint.path, "step": plan.checkpoint.step}
    payload = config_json(
        cfg, stage="render", checkpoint=pinned, segments_per_video=per_video
    ).encode()
    storage.write_bytes_atomic(storage.join(cfg.out, "_config.json"), payload)
    galleries = None
    if cfg.evaluate:  # [0] the identity galleries, embedded once for every actor
        from pipelines.evaluate_render import prepare_galleries

        galleries = prepare_galleries(cfg)
    dataset = build_render_dataset(cfg, plan, finished, actors, per_video, galleries)
    totals = {"videos": len(plan.sources), "segments": 0, "frames": 0, "swapped_frames": 0}
    totals |= {"faces_missed": 0, "skipped_videos": 0, "skipped_segments": 0}
    totals |= {"workers": actors.workers, "cpus_each": actors.cpus_each}
    totals |= {"gpus_each": actors.gpus_each}
    rows = _collect(dataset, cfg, plan.checkpoint, finished, totals, on_progress)
    rows.sort(key=lambda r: r[schema.VIDEO])
    manifest = write_manifest(cfg.out, rows)
    if cfg.evaluate:
        from pipelines.evaluate_render import write_render_evaluation

        write_render_evaluation(cfg, [s.uri for s in plan.sources], rows)
    if not storage.list_files(storage.join(cfg.out, PARTS)):  # parts of failed videos stay
        _delete_parts(cfg.out)
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
        errors_path=manifest,
        seconds=seconds,
        counts=totals,
        errors=[f"{r[schema.VIDEO]}: {r[schema.ERROR]}" for r in failed],
    )
