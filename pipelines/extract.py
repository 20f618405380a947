"""Extract: videos -> aligned face crops in Parquet, sharded over CPU workers with Ray Data.

    rayswap extract clips/ --out data/ --identity a

Plan: each input video is probed and split into segments of `segment_frames` frames, so a
two-hour file spreads over the cluster like many short ones. Each segment goes to one
`FaceExtractor` actor, which decodes, detects, aligns, filters and encodes in one place:
full frames never cross the object store. The actor commits one Parquet file per segment
under a name derived from (video_id, first frame), written atomically, so a rerun skips
finished segments and can never duplicate rows. Only a small report row per segment flows
back to the driver, for progress and the summary.

Output layout (local path or object-store URI):
    OUT/faces/<identity>/<video_id>-<start>.parquet   faces dataset, one per identity
    OUT/errors/<video_id>-<start>.parquet             errors dataset (only failed items)
    OUT/_config.json, OUT/faces/_config.json, OUT/errors/_config.json
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from itertools import islice

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import ray
import ray.data

from ops import schema, storage
from ops.align import align_face, transform_points
from ops.detect import select_faces
from ops.detect_torch import make_detector
from ops.identity import IdentityEmbedder, identity_distances
from ops.quality import encode_crop, sharpness
from ops.sources import VideoSource
from ops.types import Detection, Frame, FrameRange
from ops.video import iter_frames
from pipelines.config import ExtractConfig, StageSummary, config_json, parse_label_selector
from pipelines.extract_plan import (
    REPORT_KEYS,
    error_path,
    list_done_segments,
    name_file,
    plan_segments,
    prepare_extract,
    segment_path,
    segment_report,
)
from pipelines.extract_reference import load_reference
from pipelines.node_plan import ActorPlan, cluster_nodes, plan_actors
from pipelines.ray_setup import actor_pool, connect_ray

PLAN_TASKS = 4  # concurrent probe tasks
FAIL_MARKER = ".fail_at_frame_done"


def _batched(items: Iterator, n: int) -> Iterator[list]:
    while chunk := list(islice(items, n)):
        yield chunk


def _table_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


class FaceExtractor:
    """Ray Data actor: decode + detect + align + encode the frames of one segment per row.

    Owns one RetinaFace session whose thread count matches the actor's CPUs, and with
    --reference one identity embedder and the reference person's embeddings (computed
    once on the driver). Per-item failures are caught in exactly one place (`__call__`)
    and become error rows.
    """

    def __init__(self, cfg: dict, out: str, reference: np.ndarray | None = None) -> None:
        self.cfg = ExtractConfig(**cfg)
        self.out = out
        self.threads = max(1, int(round(self.cfg.cpus_per_worker)))
        self.detector = make_detector(
            "cuda" if self.cfg.gpu else "cpu",
            threads=self.threads,
            max_side=self.cfg.detect_size,
            score_threshold=min(self.cfg.min_score, 0.99),
            backend=self.cfg.detector,
        )
        self.reference = None if reference is None else np.asarray(reference, np.float32)
        if self.cfg.reference and self.reference is None:
            raise ValueError("--reference: the actors need the reference embeddings")
        self.embedder = IdentityEmbedder() if self.reference is not None else None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        reports = []
        for row in _rows(batch):
            started, began_at = time.perf_counter(), time.time()
            if row["stage"] == "done":
                reports.append(segment_report(row, stage="skipped"))
                continue
            try:
                if row["error"]:
                    raise _Recorded(row["stage"], row["error"])
                counts = self._extract_segment(row)
                storage.delete_file(error_path(self.out, row["video_id"], row["start"]))
                reports.append(
                    segment_report(
                        row,
                        stage="ok",
                        seconds=time.perf_counter() - started,
                        began_at=began_at,
                        **counts,
                    )
                )
            except Exception as exc:  # noqa: BLE001 - one bad video never stops the batch
                stage = exc.stage if isinstance(exc, _Recorded) else "extract"
                error = exc.error if isinstance(exc, _Recorded) else name_file(row["video"], exc)
                self._write_error(row, stage, error)
                reports.append(
                    segment_report(
                        row,
                        stage=stage,
                        error=error,
                        seconds=time.perf_counter() - started,
                        began_at=began_at,
                    )
                )
        return {key: [r[key] for r in reports] for key in REPORT_KEYS}

    def _extract_segment(self, row: dict) -> dict[str, int]:
        cfg = self.cfg
        stop = None if row["stop"] < 0 else row["stop"]
        rows: list[dict] = []
        counts = {"frames": 0, "filtered": 0, "rejected": 0}
        # with --reference every face is a candidate: "largest" is the person's largest face
        which = "all" if self.reference is not None else cfg.faces
        with storage.open_media(row["video"]) as local:
            seek = FrameRange(row["start"], row["stop"], row["seek_frame"], row["seek_pts"]).seek
            stream = iter_frames(local, row["start"], stop, row["every_n"], self.threads, seek)
            for chunk in _batched(stream, cfg.detect_batch):
                detections = self.detector.detect_batch([frame for _, _, frame in chunk])
                faces_per_frame = []
                for (index, time_s, frame), found in zip(chunk, detections, strict=True):
                    self._maybe_fail(index)
                    counts["frames"] += 1
                    kept = select_faces(found, cfg.min_face, cfg.min_score, which)
                    counts["filtered"] += len(found) - len(kept)
                    faces = [
                        self._face(row, index, time_s, face_index, frame, detection)
                        for face_index, detection in enumerate(kept)
                    ]
                    counts["filtered"] += sum(face is None for face in faces)
                    faces_per_frame.append([face for face in faces if face is not None])
                rows.extend(self._keep_faces(faces_per_frame, counts))
        if counts["frames"] == 0 and row["start"] == 0:
            raise ValueError(f"{storage.strip_query(row['video'])}: no decodable frames")
        table = pa.Table.from_pylist(rows, schema=schema.FACES_SCHEMA)
        path = segment_path(self.out, row["identity"], row["video_id"], row["start"])
        storage.write_bytes_atomic(path, _table_bytes(table))
        return {**counts, "faces": len(rows)}

    def _keep_faces(
        self, faces_per_frame: list[list[tuple[dict, Frame, np.ndarray]]], counts: dict[str, int]
    ) -> list[dict]:
        """The rows to write: every face, or with --reference only the person's (counted)."""
        if self.reference is not None and any(faces_per_frame):
            crops = np.stack([crop for faces in faces_per_frame for _, crop, _ in faces])
            landmarks = np.stack([points for faces in faces_per_frame for _, _, points in faces])
            # one batch through the embedder for the whole chunk of frames
            distances = iter(
                identity_distances(self.embedder.embed(crops, landmarks), self.reference)
            )
            for faces in faces_per_frame:
                for face_row, _, _ in faces:
                    face_row[schema.IDENTITY_DISTANCE] = float(next(distances))
            for i, faces in enumerate(faces_per_frame):
                matched = [
                    f for f in faces if f[0][schema.IDENTITY_DISTANCE] <= self.cfg.max_distance
                ]
                counts["rejected"] += len(faces) - len(matched)
                if self.cfg.faces == "largest":  # candidates come largest first
                    counts["filtered"] += len(matched[1:])
                    matched = matched[:1]
                faces_per_frame[i] = matched
        rows = []
        for faces in faces_per_frame:
            for face_row, crop, _ in faces:
                face_row[schema.IMAGE] = encode_crop(crop, self.cfg.image_format)
                rows.append(face_row)
        return rows

    def _maybe_fail(self, index: int) -> None:
        """Fault injection for tests: the worker that reaches frame `fail_at_frame` dies, once."""
        if index != self.cfg.fail_at_frame:
            return
        marker = storage.join(self.out, FAIL_MARKER)
        if storage.exists(marker):
            return
        storage.write_bytes_atomic(marker, str(index).encode())
        os._exit(1)  # as if killed: no exception, no cleanup; Ray restarts the actor

    def _face(
        self,
        row: dict,
        index: int,
        time_s: float,
        face_index: int,
        frame: Frame,
        detection: Detection,
    ) -> tuple[dict, Frame, np.ndarray] | None:
        """(row without its image, crop, crop landmarks) of one face; None if too blurry."""
        cfg = self.cfg
        crop, affine = align_face(frame, detection.landmarks, cfg.size, cfg.coverage)
        crop_sharpness = sharpness(crop)
        if crop_sharpness < cfg.min_sharpness:
            return None
        face_row = {
            schema.IDENTITY: row["identity"],
            schema.VIDEO: storage.strip_query(row["video"]),
            schema.VIDEO_ID: row["video_id"],
            schema.FRAME: index,
            schema.TIME_S: time_s,
            schema.FACE: face_index,
            schema.SCORE: detection.score,
            schema.BBOX: detection.bbox.tolist(),
            schema.LANDMARKS: detection.landmarks.reshape(-1).tolist(),
            schema.AFFINE: affine.reshape(-1).tolist(),
            schema.SIZE: cfg.size,
            schema.COVERAGE: cfg.coverage,
            schema.IMAGE: None,  # encoded once the face is kept
            schema.IMAGE_FORMAT: cfg.image_format,
            schema.SHARPNESS: crop_sharpness,
            schema.IDENTITY_DISTANCE: None,
            schema.ERROR: None,
        }
        return face_row, crop, transform_points(detection.landmarks, affine)

    def _write_error(self, row: dict, stage: str, error: str) -> None:
        record = {
            schema.VIDEO: storage.strip_query(row["video"]),
            schema.VIDEO_ID: row["video_id"],
            schema.IDENTITY: row["identity"],
            schema.SEGMENT_START: row["start"],
            schema.STAGE: stage,
            schema.ERROR: error,
            schema.ACTION: "skipped; no faces written for this segment (rerun retries it)",
        }
        table = pa.Table.from_pylist([record], schema=schema.ERRORS_SCHEMA)
        storage.write_bytes_atomic(
            error_path(self.out, row["video_id"], row["start"]), _table_bytes(table)
        )


class _Recorded(Exception):
    """An error found while planning, carried to the actor that records it."""

    def __init__(self, stage: str, error: str) -> None:
        super().__init__(error)
        self.stage, self.error = stage, error


def _rows(batch: dict[str, np.ndarray]) -> Iterator[dict]:
    keys = list(batch)
    for values in zip(*(batch[k] for k in keys), strict=True):
        yield {
            k: (v.item() if isinstance(v, np.generic) else v)
            for k, v in zip(keys, values, strict=True)
        }


def build_extract_dataset(
    cfg: ExtractConfig,
    sources: list[VideoSource],
    done: frozenset[str],
    actors: ActorPlan,
    reference: np.ndarray | None = None,
) -> ray.data.Dataset:
    """The plan -> extract pipeline; its rows are one report per segment."""
    items = [{"video": s.uri, "identity": s.identity} for s in sources]
    cfg_dict = asdict(cfg)
    # [1] plan: probe each video and split it into segments (light, I/O bound)
    # Probing is I/O bound: it takes no CPU slot, so the actors may own every CPU.
    segments = ray.data.from_items(items, override_num_blocks=max(1, len(items))).flat_map(
        plan_segments,
        fn_kwargs={"cfg": cfg_dict, "done": done},
        num_cpus=0,
        compute=ray.data.TaskPoolStrategy(size=min(PLAN_TASKS, max(1, len(items)))),
    )
    # [2] extract: one actor per worker holds a detector; one segment per call
    return segments.map_batches(
        FaceExtractor,
        fn_constructor_kwargs={"cfg": cfg_dict, "out": cfg.out, "reference": reference},
        batch_size=1,
        compute=actor_pool(cfg.workers, actors.workers),
        num_cpus=actors.cpus_each,
        num_gpus=actors.gpus_each,
        label_selector=parse_label_selector(cfg.label_selector),  # e.g. CPU nodes only
    )


def write_configs(cfg: ExtractConfig) -> None:
    payload = config_json(cfg, stage="extract", schema_version=schema.SCHEMA_VERSION).encode()
    for folder in ("", "faces", "errors"):
        storage.write_bytes_atomic(
            storage.join(cfg.out, folder, "_config.json")
            if folder
            else storage.join(cfg.out, "_config.json"),
            payload,
        )


def run_extract(
    cfg: ExtractConfig,
    sources: list[VideoSource] | None = None,
    on_progress: Callable[[dict, dict], None] | None = None,
    reference: np.ndarray | None = None,
) -> StageSummary:
    """Run extraction to completion; return the summary. Progress goes to `on_progress`.

    reference: the --reference embeddings (`load_reference`), loaded here if not given.
    """
    started = time.perf_counter()
    sources = prepare_extract(cfg) if sources is None else sources
    if cfg.reference and reference is None:
        reference = load_reference(cfg.reference, cfg.detect_size)
    storage.make_dirs(storage.join(cfg.out, "faces"))
    write_configs(cfg)
    done = list_done_segments(cfg.out)
    connect_ray(cfg.address)
    # probing takes no CPU slot, so the actors may own every CPU (no reserve)
    actors = plan_actors(
        cluster_nodes(), cfg.cpus_per_worker, cfg.gpu, cfg.workers, cfg.gpus_per_worker, 0.0
    )
    dataset = build_extract_dataset(cfg, sources, done, actors, reference)

    totals = {
        "videos": len(sources),
        "segments": 0,
        "frames": 0,
        "faces": 0,
        "filtered": 0,
        "rejected": 0,  # faces of someone other than the --reference person
        "reference": len(reference) if reference is not None else 0,  # reference faces
        "max_distance": cfg.max_distance or 0.0,
        "skipped": 0,
        "errors": 0,
        "workers": actors.workers,
        "cpus_each": actors.cpus_each,
        "gpus_each": actors.gpus_each,
    }
    failed_videos: dict[str, str] = {}
    first_began = float("inf")
    for report in dataset.iter_rows():
        if report["began_at"]:
            first_began = min(first_began, report["began_at"])
        totals["segments"] += 1
        totals["frames"] += report["frames"]
        totals["faces"] += report["faces"]
        totals["filtered"] += report["filtered"]
        totals["rejected"] += report["rejected"]
        totals["skipped"] += report["stage"] == "skipped"
        if report["error"]:
            totals["errors"] += 1
            failed_videos.setdefault(report["video"], report["error"])
        if on_progress is not None:
            on_progress(report, totals)
    seconds = time.perf_counter() - started
    totals["seconds"] = seconds
    # from the first segment's start to the end: the rate once the actor pool is up
    totals["working_seconds"] = max(time.time() - first_began, 1e-9) if totals["frames"] else 0.0
    totals["frames_per_s"] = totals["frames"] / seconds if seconds else 0.0
    totals["faces_per_s"] = totals["faces"] / seconds if seconds else 0.0
    return StageSummary(
        stage="extract",
        n_ok=len(sources) - len(failed_videos),
        n_failed=len(failed_videos),
        n_skipped=totals["skipped"],
        output_path=storage.join(cfg.out, "faces"),
        errors_path=storage.join(cfg.out, "errors"),
        seconds=seconds,
        counts=totals,
        errors=list(failed_videos.values()),  # each error names its file
    )
