"""Render: swap faces in many videos at once, with a provenance mark on every swapped frame.

    rayswap render ckpt/ clips/ --out renders/ --direction a2b

Plan: each input is probed and split into segments of `segment_frames` frames. Each
segment goes to one `FaceSwapper` actor (Ray Data actor pool; a GPU fraction each with
--gpu), which decodes, detects, swaps faces in batches across frames, blends, marks and
encodes its frames into a part file: full frames never leave the actor. When all parts of
a video are done, a join task remuxes them in order (no re-encode), carries the source
audio over and writes the provenance metadata, under a temporary name that is renamed
when complete. One manifest row per input video records what happened.

Output layout (local path or object-store URI):
    OUT/<name>.mp4          one per input video (name sanitised from the input's name)
    OUT/manifest.parquet    RENDER_MANIFEST_SCHEMA, one row per input
    OUT/_config.json        the resolved config and library versions
    OUT/_parts/             segment files while a run is in progress
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import ray
import ray.data

from ops import schema, storage
from ops.sources import VideoSource, expand_inputs, probe_source, split_source, video_id
from ops.types import FrameRange
from ops.video_out import frame_rate_of, join_segments
from pipelines.config import RenderConfig, StageSummary, config_json, versions
from pipelines.ray_setup import actor_pool, connect_ray, plan_workers

REPORT_KEYS = ("video", "video_id", "output", "start", "stop", "segments", "part", "error")
COUNT_KEYS = ("frames", "swapped_frames", "faces_missed", "seconds")
NAME_MAX = 120


def output_name(uri: str) -> str:
    """A safe file name for a video's output: its stem with only [A-Za-z0-9._-], + .mp4.

    The name never contains a path separator or starts with a dot, so it stays in --out.
    """
    stem = os.path.splitext(os.path.basename(storage.strip_query(uri).rstrip("/")))[0]
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:NAME_MAX] or "video"
    return f"{safe}.mp4"


def output_names(sources: list[VideoSource]) -> dict[str, str]:
    """Input URI -> output file name; clashing names get the video id appended."""
    names = {s.uri: output_name(s.uri) for s in sources}
    counts: dict[str, int] = {}
    for name in names.values():
        counts[name] = counts.get(name, 0) + 1
    for uri, name in names.items():
        if counts[name] > 1:
            names[uri] = f"{name[:-4]}-{video_id(uri)[:8]}.mp4"
    return names


def provenance_metadata(cfg: RenderConfig) -> dict[str, str]:
    """Container tags stating that the video is synthetic and made by rayswap."""
    version = versions().get("rayswap", "unknown")
    return {
        "comment": "SYNTHETIC: faces in this video were swapped by rayswap (deepfake).",
        "description": f"Synthetic video made by rayswap {version}; face swap {cfg.direction}; "
        "carries an invisible rayswap watermark (check with `rayswap verify`).",
        "synthetic": "true",
        "generator": f"rayswap {version}",
        "encoded_by": "rayswap",
    }


def _report(row: dict, **fields: object) -> dict:
    report = {key: row.get(key) for key in REPORT_KEYS}
    report.update({key: 0 for key in COUNT_KEYS}, error=row.get("error") or "")
    report.update(fields)
    return report


def plan_render_segments(row: dict, segment_frames: int, out: str, context: int = 0) -> list[dict]:
    """flat_map: one input video -> its segment rows, or one error row. Never raises.

    `context` is the smoothing radius: each segment also decodes that many frames before
    its start, so its seek point (`seek_frame`, `seek_pts`) is that far back.
    """
    uri, name = row["video"], row["output"]
    key = video_id(uri)
    base = {"video": uri, "video_id": key, "output": storage.join(out, name), "start": 0}
    base |= {"stop": -1, "segments": 1, "part": "", "error": ""}
    seek = {"seek_frame": -1, "seek_pts": -1}
    try:
        info = probe_source(uri)
        ranges = split_source(uri, info.frame_count, segment_frames, context)
    except Exception as exc:  # noqa: BLE001 - recorded in the manifest
        return [_report(base, error=schema.format_error(exc), **seek)]
    rows = []
    for frames in ranges:  # the last runs to the end (stop -1)
        part = storage.join(out, "_parts", key, f"{frames.start:09d}.mp4")
        seek = {"seek_frame": frames.seek_frame, "seek_pts": frames.seek_pts}
        fields = {"start": frames.start, "stop": frames.stop, "segments": len(ranges)}
        rows.append(_report(base, part=part, **fields, **seek))
    return rows


class FaceSwapper:
    """Ray Data actor: render one segment per row into its part file.

    Loads the checkpoint once (`__init__`); per-segment failures are caught in exactly one
    place (`__call__`) and become report rows with an error.
    """

    def __init__(self, cfg: dict) -> None:
        import torch

        from pipelines.render_segment import SegmentRenderer

        self.cfg = RenderConfig(**cfg)
        threads = max(1, int(round(self.cfg.cpus_per_worker)))
        device = "cuda" if self.cfg.gpu and torch.cuda.is_available() else "cpu"
        self.renderer = SegmentRenderer(self.cfg, threads=threads, device=device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        reports = []
        for row in _rows(batch):
            if row["error"]:
                reports.append(_report(row))
                continue
            started = time.perf_counter()
            try:
                counts = self._render(row)
                reports.append(_report(row, seconds=time.perf_counter() - started, **counts))
            except Exception as exc:  # noqa: BLE001 - one bad video never stops the batch
                error = schema.format_error(exc)
                reports.append(_report(row, error=error, seconds=time.perf_counter() - started))
        return {key: [r[key] for r in reports] for key in (*REPORT_KEYS, *COUNT_KEYS)}

    def _render(self, row: dict) -> dict[str, int]:
        stop = None if row["stop"] < 0 else row["stop"]
        # object-store videos are read in place (ranged reads), never downloaded whole
        with storage.open_media(row["video"]) as media:
            fps = frame_rate_of(media)
        with storage.open_media(row["video"]) as media, tempfile.TemporaryDirectory() as tmp:
            part = os.path.join(tmp, "part.mp4")
            seek = FrameRange(row["start"], row["stop"], row["seek_frame"], row["seek_pts"]).seek
            counts = self.renderer.render(media, row["start"], stop, part, fps, seek)
            if counts.frames == 0 and row["start"] == 0:
                raise ValueError(f"{storage.strip_query(row['video'])}: no decodable frames")
            if counts.frames:
                storage.upload_file_atomic(part, row["part"])
        return {
            "frames": counts.frames,
            "swapped_frames": counts.swapped_frames,
            "faces_missed": counts.faces_missed,
        }


def _rows(batch: dict[str, np.ndarray]) -> Iterator[dict]:
    keys = list(batch)
    for values in zip(*(batch[k] for k in keys), strict=True):
        yield {
            k: (v.item() if isinstance(v, np.generic) else v)
            for k, v in zip(keys, values, strict=True)
        }


@ray.remote(num_cpus=0.5, max_retries=2)
def join_video(video: str, output: str, parts: list[tuple[str, int]], tags: dict) -> float:
    """Remux a video's parts into OUT/<name>.mp4 with the source audio; returns seconds."""
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
    for part, _ in parts:
        storage.delete_file(part)
    if parts:  # the video's folder under _parts (empty now)
        filesystem, inner = storage.resolve(parts[0][0])  # keeps a URI's endpoint query
        inner = posixpath.dirname(inner)
        with contextlib.suppress(OSError):
            filesystem.delete_dir(inner)
    return time.perf_counter() - started


def build_render_dataset(
    cfg: RenderConfig, sources: list[VideoSource], workers: int
) -> ray.data.Dataset:
    """The plan -> render pipeline; its rows are one report per segment."""
    names = output_names(sources)
    items = [{"video": s.uri, "output": names[s.uri]} for s in sources]
    # [1] plan: probe each video and split it into segments
    segments = ray.data.from_items(items, override_num_blocks=max(1, len(items))).flat_map(
        plan_render_segments,
        fn_kwargs={
            "segment_frames": cfg.segment_frames,
            "out": cfg.out,
            "context": cfg.smooth_frames,
        },
        num_cpus=0,
    )
    # [2] render: one actor per worker holds the model and a detector; one segment per call
    return segments.map_batches(
        FaceSwapper,
        fn_constructor_kwargs={"cfg": asdict(cfg)},
        batch_size=1,
        compute=actor_pool(cfg.workers, workers),
        num_cpus=cfg.cpus_per_worker,
        num_gpus=cfg.gpus_per_worker if cfg.gpu else 0,
    )


def prepare_render(cfg: RenderConfig) -> list[VideoSource]:
    """Checks that need no Ray: the checkpoint loads and the inputs expand to videos.

    Raises ValueError / FileNotFoundError naming the problem; the CLI turns it into exit 2.
    """
    import torch

    from ops.checkpoint import load_checkpoint

    load_checkpoint(cfg.checkpoint)
    # Actors that ask for a GPU nobody has would wait forever: refuse before starting.
    if cfg.gpu and ray.is_initialized() and ray.cluster_resources().get("GPU", 0) <= 0:
        raise ValueError("--gpu: the Ray cluster this process joined has no GPU; drop --gpu")
    if cfg.gpu and cfg.address is None and not ray.is_initialized():
        if not torch.cuda.is_available():
            raise ValueError("--gpu: this machine has no CUDA GPU; drop --gpu or use --address")
    sources = expand_inputs(cfg.inputs, None)
    if not sources:
        raise ValueError(f"no videos found in {list(cfg.inputs)}")
    return sources


class _VideoState:
    """Segments of one video collected on the driver until its join can start."""

    def __init__(self, report: dict) -> None:
        self.video, self.output = report["video"], report["output"]
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


def manifest_row(state: _VideoState, join_error: str = "", join_s: float = 0.0) -> dict:
    error = state.error or join_error
    return {
        schema.VIDEO: storage.strip_query(state.video),
        schema.OUTPUT: None if error else storage.strip_query(state.output),
        schema.FRAMES: int(state.total("frames")),
        schema.SWAPPED_FRAMES: int(state.total("swapped_frames")),
        schema.FACES_MISSED: int(state.total("faces_missed")),
        schema.SECONDS: float(state.total("seconds") + join_s),
        schema.ERROR: error or None,
    }


def _collect(
    dataset: ray.data.Dataset,
    cfg: RenderConfig,
    totals: dict,
    on_progress: Callable[[dict, dict], None] | None,
) -> list[dict]:
    """Drive the dataset, start each video's join as soon as its last segment is done."""
    states: dict[str, _VideoState] = {}
    joins: dict[ray.ObjectRef, _VideoState] = {}
    rows: list[dict] = []
    tags = provenance_metadata(cfg)
    for report in dataset.iter_rows():
        state = states.setdefault(report["video"], _VideoState(report))
        totals["segments"] += 1
        for key in ("frames", "swapped_frames", "faces_missed"):
            totals[key] += report[key]
        if state.add(report):
            if state.error:
                rows.append(manifest_row(state))
                for part, _ in state.parts():  # parts of the segments that did succeed
                    storage.delete_file(part)
            else:  # [3] join the parts in order, with the source audio
                joins[join_video.remote(state.video, state.output, state.parts(), tags)] = state
        if on_progress is not None:
            on_progress(report, totals)
    for ref, state in joins.items():
        try:
            rows.append(manifest_row(state, join_s=ray.get(ref)))
        except Exception as exc:  # noqa: BLE001 - a failed join is this video's error row
            rows.append(manifest_row(state, join_error=schema.format_error(exc)))
    return rows


def write_manifest(out: str, rows: list[dict]) -> str:
    path = storage.join(out, "manifest.parquet")
    table = pa.Table.from_pylist(rows, schema=schema.RENDER_MANIFEST_SCHEMA)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    storage.write_bytes_atomic(path, sink.getvalue())
    return path


def run_render(
    cfg: RenderConfig,
    sources: list[VideoSource] | None = None,
    on_progress: Callable[[dict, dict], None] | None = None,
) -> StageSummary:
    """Render every input to completion; write the manifest; return the summary."""
    started = time.perf_counter()
    sources = prepare_render(cfg) if sources is None else sources
    storage.make_dirs(cfg.out)
    storage.write_bytes_atomic(
        storage.join(cfg.out, "_config.json"), config_json(cfg, stage="render").encode()
    )
    connect_ray(cfg.address)
    workers = plan_workers(cfg.workers, cfg.cpus_per_worker)
    dataset = build_render_dataset(cfg, sources, workers)
    totals = {"videos": len(sources), "segments": 0, "frames": 0, "swapped_frames": 0}
    totals |= {"faces_missed": 0, "workers": workers}
    rows = _collect(dataset, cfg, totals, on_progress)
    rows.sort(key=lambda r: r[schema.VIDEO])
    manifest = write_manifest(cfg.out, rows)
    with contextlib.suppress(OSError):  # only removed when every part has been joined
        filesystem, inner = storage.resolve(storage.join(cfg.out, "_parts"))
        if not storage.list_files(storage.join(cfg.out, "_parts")):
            filesystem.delete_dir(inner)
    seconds = time.perf_counter() - started
    totals["seconds"] = seconds
    totals["frames_per_s"] = totals["frames"] / seconds if seconds else 0.0
    failed = [r for r in rows if r[schema.ERROR]]
    return StageSummary(
        stage="render",
        n_ok=len(rows) - len(failed),
        n_failed=len(failed),
        output_path=cfg.out,
        errors_path=manifest,
        seconds=seconds,
        counts=totals,
        errors=[f"{r[schema.VIDEO]}: {r[schema.ERROR]}" for r in failed],
    )
