"""Evaluate: how good are the swaps of a render? Identity, pose, jitter and seam, per video.

    rayswap evaluate renders/ --a data/faces/a --b data/faces/b

Reads the render's manifest (RENDER/manifest.parquet) and its `_config.json` (the
direction, the detector and mask settings, the pinned checkpoint's coverage). The galleries
are identity embeddings (ops.identity) of up to `--gallery-size` faces of A and of B, taken
evenly through their faces datasets and embedded once, by two Ray tasks. A pool of
`VideoEvaluator` actors (each holds a RetinaFace detector, the embedder and both
galleries) then takes one video each: it decodes the source and the output side by side,
finds the largest face of each source frame, the face at that place in the output, and
scores the pair (ops.metrics). A video that fails gets a row with its error and the batch
goes on. The metrics are defined in ops/metrics.py and explained in docs/evaluate.md.

Output, beside the manifest:
    RENDER/evaluation.parquet         ops.metrics.EVALUATION_SCHEMA, one row per video
    RENDER/evaluation_frames.parquet  ops.metrics.FRAMES_SCHEMA, one row per evaluated frame

`rayswap render --evaluate` computes the same rows inside the render actors
(pipelines/evaluate/in_render.py); the galleries and the scorer come from here.
"""

from __future__ import annotations

import importlib.util
import json
import math
import posixpath
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pyarrow as pa
import ray
import ray.data

from ops import metrics, schema, storage
from ops.detect import RetinaFaceDetector, select_faces
from ops.faces_dataset import open_faces, sample_faces
from ops.types import Detection, Frame
from ops.video import batched, iter_frames
from pipelines.config import ActorPlan, EvaluateConfig, EvaluateCounts, RenderConfig, StageSummary
from pipelines.runtime import ray_setup
from pipelines.runtime.node_plan import stage_actors
from pipelines.runtime.ray_setup import actor_pool

EVALUATION_FILE = "evaluation.parquet"
FRAMES_FILE = "evaluation_frames.parquet"
DEFAULT_COVERAGE = 1.5  # when the render's checkpoint can no longer be read
DETECT_BATCH = 8
FRAMES_BYTES = "frames_parquet"  # the report column carrying a video's frame records
# the render settings evaluation follows: its direction, detector filters and mask
RENDER_KEYS = ("direction", "detect_size", "min_score", "min_face", "mask_erode", "mask_feather")


# -- checks before Ray starts -----------------------------------------------------------------
def check_eval_extra(flag: str) -> None:
    """Raise ValueError naming `flag` unless the identity embedder's packages are installed."""
    from ops.identity import EXTRA_HINT

    missing = [n for n in ("dlib", "face_recognition_models") if not importlib.util.find_spec(n)]
    if missing:
        raise ValueError(
            f"{flag}: the identity embedder needs {' and '.join(missing)}, which are not "
            f"installed; {EXTRA_HINT}"
        )


def faces_files(path: str, flag: str) -> list[str]:
    """The Parquet files of a faces dataset with at least one usable face, or ValueError."""
    return open_faces(path, flag).files


@dataclass(frozen=True)
class EvaluatePlan:
    """What the driver read before Ray starts: the manifest rows and the render's settings."""

    videos: list[dict]  # manifest rows (video, output, error)
    render: dict  # RenderConfig fields as the render ran (defaults where absent)
    coverage: float  # of the faces the render swapped (its checkpoint's)
    faces_a: list[str]
    faces_b: list[str]

    @property
    def direction(self) -> str:
        return self.render["direction"]


def read_render_config(render: str, flag: str = "RENDER") -> tuple[dict, float]:
    """(RenderConfig fields as the render ran, coverage) from RENDER/_config.json."""
    path = storage.join(render, schema.CONFIG_FILE)
    if not storage.exists(path):
        raise FileNotFoundError(f"{flag}: {path} not found; give the --out folder of a render")
    try:
        saved = json.loads(storage.read_bytes(path))
    except ValueError as exc:
        raise ValueError(f"{flag}: {path} is not readable JSON ({exc})") from exc
    defaults = {f.name: f.default for f in fields(RenderConfig) if f.name in RENDER_KEYS}
    config = {**defaults, **(saved.get("config") or {})}
    config = {key: config[key] for key in RENDER_KEYS}
    if config["direction"] not in metrics.DIRECTIONS:
        raise ValueError(f"{flag}: {path} has direction {config['direction']!r}")
    coverage = DEFAULT_COVERAGE
    pinned = saved.get("checkpoint")
    if isinstance(pinned, dict) and pinned.get("path"):
        from ops.checkpoint import read_checkpoint_config

        try:
            coverage = float(read_checkpoint_config(pinned["path"])["coverage"])
        except (OSError, ValueError, KeyError):
            pass  # moved or deleted since: the seam rings use the default coverage
    return config, coverage


def prepare_evaluate(cfg: EvaluateConfig) -> EvaluatePlan:
    """Checks that need no Ray; ValueError / FileNotFoundError name the flag (exit 2)."""
    if not storage.exists(cfg.render):
        raise FileNotFoundError(f"RENDER: {cfg.render} not found")
    manifest = storage.join(cfg.render, "manifest.parquet")
    if not storage.exists(manifest):
        raise FileNotFoundError(
            f"RENDER: no manifest.parquet in {cfg.render}; give the --out folder of a render"
        )
    render, coverage = read_render_config(cfg.render)
    faces_a, faces_b = faces_files(cfg.a, "--a"), faces_files(cfg.b, "--b")
    check_eval_extra("--a/--b")
    columns = [schema.VIDEO, schema.OUTPUT, schema.ERROR]
    videos = metrics.read_table_bytes(storage.read_bytes(manifest)).select(columns).to_pylist()
    if not videos:
        raise ValueError(f"RENDER: {manifest} lists no video")
    return EvaluatePlan(videos, render, coverage, faces_a, faces_b)


# -- galleries --------------------------------------------------------------------------------
def gallery_faces(files: list[str], limit: int) -> tuple[dict[int, list], dict[int, list]]:
    """Up to `limit` usable faces spread evenly over a dataset, grouped by crop size
    (`ops.faces_dataset.sample_faces`)."""
    return sample_faces(files, limit)


@ray.remote(num_cpus=1)
def embed_gallery(files: list[str], limit: int) -> np.ndarray:
    """(M, 128) float32 embeddings of up to `limit` faces of one identity."""
    from ops.identity import IdentityEmbedder

    embedder = IdentityEmbedder()
    crops, points = gallery_faces(files, limit)
    parts = [embedder.embed(np.stack(crops[s]), np.stack(points[s])) for s in sorted(crops)]
    if not parts:
        raise ValueError("no face of the gallery could be decoded")
    return np.concatenate(parts)


def compute_galleries(faces_a: list[str], faces_b: list[str], limit: int) -> list:
    """The galleries of A and B, embedded by two Ray tasks at once and put in the object
    store once: returns a one-item list that holds the reference (`load_galleries`).

    In a list, the reference reaches the actors unresolved, so their constructor arguments
    stay small (inline) and a restarted actor fetches the galleries again; the caller
    keeps the list alive while the actors run.
    """
    galleries = tuple(ray.get([embed_gallery.remote(f, limit) for f in (faces_a, faces_b)]))
    return [ray.put(galleries)]


def load_galleries(shared: list | tuple) -> tuple[np.ndarray, np.ndarray]:
    """(gallery_a, gallery_b) from what `compute_galleries` returned (or the pair itself)."""
    if len(shared) == 1 and isinstance(shared[0], ray.ObjectRef):
        return ray.get(shared[0])
    gallery_a, gallery_b = shared
    return gallery_a, gallery_b


def make_scorer(
    detect: Callable[[list[Frame]], list[list[Detection]]],
    galleries: tuple[np.ndarray, np.ndarray],
    render: dict,
    coverage: float,
    threads: int = 1,
) -> metrics.SwapScorer:
    """A `SwapScorer` with the embedder, both galleries and the render's mask settings."""
    from ops.identity import IdentityEmbedder, identity_distances

    rings = metrics.seam_rings(coverage, render["mask_erode"], render["mask_feather"])
    embedder = IdentityEmbedder(threads=threads)
    return metrics.SwapScorer(detect, embedder, *galleries, rings, identity_distances)


# -- the actors -------------------------------------------------------------------------------
class VideoEvaluator:
    """Ray Data actor: one video per row -> its evaluation row and frame records.

    Holds a RetinaFace detector (the render's settings), the embedder and both galleries.
    Per-video failures are caught in exactly one place (`__call__`) and become the row's error.
    """

    def __init__(self, cfg: dict, render: dict, coverage: float, galleries: list) -> None:
        self.cfg = EvaluateConfig(**cfg)
        self.render = render
        self.threads = max(1, int(round(self.cfg.cpus_per_worker)))
        self.detector = RetinaFaceDetector(
            threads=self.threads,
            max_side=render["detect_size"],
            score_threshold=min(render["min_score"], 0.99),
        )
        shared = load_galleries(galleries)
        self.scorer = make_scorer(self.detect, shared, render, coverage, self.threads)

    def detect(self, frames: list[Frame]) -> list[list[Detection]]:
        """Faces of each frame that pass the render's filters, largest first."""
        found: list[list[Detection]] = []
        for begin in range(0, len(frames), DETECT_BATCH):
            found += self.detector.detect_batch(frames[begin : begin + DETECT_BATCH])
        min_face, min_score = self.render["min_face"], self.render["min_score"]
        return [select_faces(f, min_face, min_score, "all") for f in found]

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        rows = []
        for video, output in zip(batch[schema.VIDEO], batch[schema.OUTPUT], strict=True):
            started = time.perf_counter()
            try:
                records = self.evaluate_video(str(video), str(output))
                table = metrics.frames_table(records)
                row = metrics.summarize_frames(table, self.render["direction"], self.cfg.every_n)
                row |= {FRAMES_BYTES: metrics.table_bytes(table), schema.ERROR: ""}
            except Exception as exc:  # noqa: BLE001 - one bad video never stops the batch
                row = {FRAMES_BYTES: b"", schema.ERROR: schema.format_error(exc)}
            row |= {schema.VIDEO: str(video), schema.OUTPUT: str(output)}
            row[schema.SECONDS] = time.perf_counter() - started
            rows.append(report_row(row))
        return {key: [r[key] for r in rows] for key in REPORT_COLUMNS}

    def evaluate_video(self, video: str, output: str) -> list[dict]:
        """Frame records of one rendered video against its source."""
        output = resolve_output(self.cfg.render, output)
        step, limit = self.cfg.every_n, self.cfg.max_frames
        records: list[dict] = []
        with storage.open_media(video) as source, storage.open_media(output) as rendered:
            pairs = zip(
                iter_frames(source, every_n=step, threads=self.threads),
                iter_frames(rendered, every_n=step, threads=self.threads),
                strict=False,  # a render keeps the frame count; a foreign output may not
            )
            for chunk in batched(pairs, DETECT_BATCH):
                if limit is not None:
                    chunk = chunk[: limit - len(records)]
                faces = self.detect([src for (_, _, src), _ in chunk])
                items = [
                    (index, src, found[0].landmarks if found else None, out)
                    for ((index, _, src), (_, _, out)), found in zip(chunk, faces, strict=True)
                ]
                records += self.scorer.score(items, video)
                if limit is not None and len(records) >= limit:
                    break
        if not records:
            raise ValueError(f"{storage.strip_query(output)}: no decodable frames")
        return records


REPORT_COLUMNS = (*metrics.EVALUATION_SCHEMA.names, FRAMES_BYTES)


def report_row(row: dict) -> dict:
    """An actor's row with every report column; None metrics become NaN (one type per
    column across blocks); `evaluation_rows` turns them back."""
    out = {}
    for name in REPORT_COLUMNS:
        value = row.get(name)
        if name in (schema.VIDEO, schema.OUTPUT, schema.ERROR, metrics.DIRECTION):
            value = value or ""
        elif name == FRAMES_BYTES:
            value = value or b""
        elif name in (schema.FRAMES, metrics.SWAPPED_FRAMES, metrics.OUTPUT_FACES):
            value = int(value or 0)
        else:
            value = math.nan if value is None else float(value)
        out[name] = value
    return out


def resolve_output(render: str, output: str) -> str:
    """The output as the manifest recorded it, or by its name in RENDER (a moved folder)."""
    if storage.exists(output):
        return output
    moved = storage.join(render, posixpath.basename(output))
    if storage.exists(moved):
        return moved
    raise FileNotFoundError(f"rendered video not found: {output}")


# -- the driver -------------------------------------------------------------------------------
def evaluation_rows(reports: list[dict], direction: str) -> tuple[list[dict], list[pa.Table]]:
    """Reports -> `EVALUATION_SCHEMA` rows (NaN -> None, "" -> None) and frame tables."""
    rows, tables = [], []
    for report in reports:
        row = {name: report.get(name) for name in metrics.EVALUATION_SCHEMA.names}
        for name, value in row.items():
            if isinstance(value, float) and math.isnan(value) or value == "":
                row[name] = None
        row[metrics.DIRECTION] = direction
        rows.append(row)
        if report.get(FRAMES_BYTES):
            tables.append(metrics.read_table_bytes(report[FRAMES_BYTES]))
    rows.sort(key=lambda r: r[schema.VIDEO])
    return rows, tables


def not_rendered(video: dict, direction: str) -> dict:
    """The evaluation row of a video whose render failed."""
    row = {name: None for name in metrics.EVALUATION_SCHEMA.names}
    row |= {schema.VIDEO: video[schema.VIDEO], metrics.DIRECTION: direction}
    row[schema.ERROR] = f"not rendered: {video[schema.ERROR] or 'no output'}"
    return row


def write_evaluation(out: str, rows: list[dict], tables: list[pa.Table]) -> str:
    """Write OUT/evaluation.parquet and OUT/evaluation_frames.parquet; return the first."""
    path = storage.join(out, EVALUATION_FILE)
    table = pa.Table.from_pylist(rows, schema=metrics.EVALUATION_SCHEMA)
    storage.write_bytes_atomic(path, metrics.table_bytes(table))
    frames = pa.concat_tables(tables) if tables else metrics.frames_table([])
    frames = frames.sort_by([(schema.VIDEO, "ascending"), (schema.FRAME, "ascending")])
    storage.write_bytes_atomic(storage.join(out, FRAMES_FILE), metrics.table_bytes(frames))
    return path


def evaluation_summary(
    rows: list[dict],
    path: str,
    seconds: float,
    counts: EvaluateCounts,
    skipped: int = 0,
    plan: ActorPlan | None = None,
) -> StageSummary:
    failed = [r for r in rows if r[schema.ERROR] and not r[schema.ERROR].startswith("not rendered")]
    counts.videos, counts.frames = len(rows), sum(r[schema.FRAMES] or 0 for r in rows)
    return StageSummary(
        stage="evaluate",
        n_ok=len(rows) - len(failed) - skipped,
        n_failed=len(failed),
        n_skipped=skipped,
        output_path=path,
        errors_path=path,
        seconds=seconds,
        counts=counts,
        errors=[f"{r[schema.VIDEO]}: {r[schema.ERROR]}" for r in failed],
        plan=plan,
    )


def run_evaluate(
    cfg: EvaluateConfig,
    plan: EvaluatePlan | None = None,
    on_progress: Callable[[dict, Any], None] | None = None,
) -> StageSummary:
    """Evaluate every rendered video of a render; write the Parquet files; return the summary.

    `plan` is what `prepare_evaluate(cfg)` returned (it is called when None).
    """
    started = time.perf_counter()
    plan = prepare_evaluate(cfg) if plan is None else plan
    ray_setup.connect_ray(cfg.address)  # [0] join Ray, then plan the actors on it
    actors = stage_actors(cfg)
    rendered = [v for v in plan.videos if v[schema.OUTPUT] and not v[schema.ERROR]]
    skipped = [not_rendered(v, plan.direction) for v in plan.videos if v not in rendered]
    reports: list[dict] = []
    totals = EvaluateCounts()
    if rendered:
        # [1] galleries: embeddings of faces of A and of B, once, by two tasks
        gallery_started = time.perf_counter()
        galleries = compute_galleries(plan.faces_a, plan.faces_b, cfg.gallery_size)
        totals.gallery_seconds = time.perf_counter() - gallery_started
        items = [{schema.VIDEO: v[schema.VIDEO], schema.OUTPUT: v[schema.OUTPUT]} for v in rendered]
        # [2] one video per actor call; the actors hold the detector, embedder and galleries
        dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            VideoEvaluator,
            fn_constructor_kwargs={
                "cfg": asdict(cfg),
                "render": plan.render,
                "coverage": plan.coverage,
                "galleries": galleries,
            },
            batch_size=1,
            compute=actor_pool(
                None if cfg.workers is None else min(cfg.workers, len(items)),
                min(actors.workers, len(items)),
            ),
            num_cpus=actors.cpus_each,
        )
        for report in dataset.iter_rows():
            reports.append(report)
            totals.videos += 1
            totals.frames += report[schema.FRAMES]
            if on_progress is not None:
                on_progress(report, totals)
    rows, tables = evaluation_rows(reports, plan.direction)
    rows = sorted(rows + skipped, key=lambda r: r[schema.VIDEO])
    path = write_evaluation(cfg.render, rows, tables)
    seconds = time.perf_counter() - started
    return evaluation_summary(rows, path, seconds, totals, len(skipped), actors)
