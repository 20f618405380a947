"""`rayswap render --evaluate`: the metrics of `rayswap evaluate`, computed in the render actors.

    rayswap render ckpt/ clips/ --out renders/ --evaluate --a data/faces/a --b data/faces/b

Inside a `FaceSwapper` actor the source frame and the composed output are both in hand, so
nothing is decoded twice: a `SegmentEvaluator` sees each (source frame, output frame) pair
the renderer composes (before the encoder, so without its compression) and scores it with
the scorer of pipelines/evaluate/driver.py: the actor's own detector finds the face on the output,
the embedder and the galleries (embedded once by the driver) measure its identity. Frames
whose number is a multiple of --evaluate-every-n are scored.

A segment's frame records are committed to OUT/_evaluation/<video_id>/<start>.parquet
before its segment record, so a resumed render finds them. When the render is done, the
driver summarises each video over all its segments (jitter runs across segment joins) and
writes OUT/evaluation.parquet and OUT/evaluation_frames.parquet, as `rayswap evaluate` does.
"""

from __future__ import annotations

import math
import time

import pyarrow as pa

from ops import metrics, schema, storage
from ops.sources import video_id
from pipelines.config import RenderConfig
from pipelines.evaluate.driver import (
    RENDER_KEYS,
    compute_galleries,
    faces_files,
    load_galleries,
    make_scorer,
    not_rendered,
    write_evaluation,
)

EVALUATION_DIR = "_evaluation"
GALLERY_SIZE = 200  # faces of A and of B embedded as the galleries


class SegmentEvaluator:
    """Scores the frames a `SegmentRenderer` composes; one per actor, reset per segment.

    `renderer` is the actor's `pipelines.render.segment.SegmentRenderer`: its detector
    (padded batches, the render's filters), coverage and settings are used.
    """

    def __init__(self, renderer, galleries: list, every_n: int = 1) -> None:
        render = {key: getattr(renderer.cfg, key) for key in RENDER_KEYS}
        shared = load_galleries(galleries)  # what compute_galleries returned
        self.scorer = make_scorer(
            renderer.detect, shared, render, renderer.coverage, renderer.threads
        )
        self.every_n = every_n
        self.video = ""
        self.records: list[dict] = []
        self.seconds = 0.0

    def start(self, video: str) -> None:
        """Begin a segment of `video` (the name its records carry)."""
        self.video, self.records, self.seconds = video, [], 0.0

    def observe(self, pending: list, outputs: list) -> None:
        """Score a flushed batch: `pending` (index, source frame, smoothed faces) items and
        the output frames composed from them, in the same order."""
        started = time.perf_counter()
        items = [
            (item.index, item.frame, item.faces[0][0].landmarks if item.faces else None, out)
            for item, out in zip(pending, outputs, strict=True)
            if item.index % self.every_n == 0
        ]
        if items:
            self.records += self.scorer.score(items, self.video)
        self.seconds += time.perf_counter() - started

    def take(self) -> pa.Table:
        """The segment's frame records as a table (seconds spent in its metadata)."""
        table = metrics.frames_table(self.records)
        self.records = []
        return table.replace_schema_metadata(
            {**(table.schema.metadata or {}), b"seconds": str(self.seconds).encode()}
        )


def segment_path(out: str, key: str, start: int) -> str:
    """OUT/_evaluation/<video_id>/<start>.parquet."""
    return storage.join(out, EVALUATION_DIR, key, f"{start:09d}.parquet")


def write_segment(out: str, key: str, start: int, table: pa.Table) -> None:
    storage.write_bytes_atomic(segment_path(out, key, start), metrics.table_bytes(table))


def prepare_galleries(cfg: RenderConfig) -> list:
    """The galleries of A and B for the actors, as `compute_galleries` shares them (Ray
    must be running)."""
    faces_a, faces_b = faces_files(cfg.a, "--a"), faces_files(cfg.b, "--b")
    return compute_galleries(faces_a, faces_b, GALLERY_SIZE)


def _video_frames(cfg: RenderConfig, key: str) -> tuple[pa.Table | None, float]:
    """A video's frame records from all its segments, and the seconds spent scoring them."""
    folder = storage.join(cfg.out, EVALUATION_DIR, key)
    files = sorted(
        f for f in storage.list_files(folder) if storage.strip_query(f).endswith(".parquet")
    )
    tables = [metrics.read_table_bytes(storage.read_bytes(f)) for f in files]
    seconds = sum(float((t.schema.metadata or {}).get(b"seconds", 0)) for t in tables)
    if not tables:
        return None, 0.0
    return pa.concat_tables([t.replace_schema_metadata(None) for t in tables]), seconds


def write_render_evaluation(cfg: RenderConfig, uris: list[str], manifest: list[dict]) -> str:
    """Summarise every video of the manifest from its segments' records; write the files.

    `uris`: the render's inputs (their video ids name the record folders). A video whose
    records do not cover all its frames (segments rendered by an earlier run without
    --evaluate) keeps its metrics over what was scored, and an error that says so.
    """
    keys = {storage.strip_query(uri): video_id(uri) for uri in uris}
    rows, tables = [], []
    for entry in manifest:
        if entry[schema.ERROR] or not entry[schema.OUTPUT]:
            rows.append(not_rendered(entry, cfg.direction))
            continue
        table, seconds = _video_frames(cfg, keys[entry[schema.VIDEO]])
        row = {name: None for name in metrics.EVALUATION_SCHEMA.names}
        row |= {schema.VIDEO: entry[schema.VIDEO], schema.OUTPUT: entry[schema.OUTPUT]}
        row[metrics.DIRECTION] = cfg.direction
        expected = math.ceil(int(entry[schema.FRAMES]) / cfg.evaluate_every_n)
        if table is None:
            row[schema.ERROR] = (
                "no frame was scored: rendered by an earlier run without --evaluate; "
                "run `rayswap evaluate`"
            )
        else:
            row |= metrics.summarize_frames(table, cfg.direction, cfg.evaluate_every_n)
            row[schema.SECONDS] = seconds
            tables.append(table)
            if table.num_rows < expected:
                row[schema.ERROR] = (
                    f"{table.num_rows} of {expected} frames scored: segments rendered by an "
                    "earlier run without --evaluate; run `rayswap evaluate` for all"
                )
        rows.append(row)
    rows.sort(key=lambda r: r[schema.VIDEO])
    return write_evaluation(cfg.out, rows, tables)
