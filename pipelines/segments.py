"""The shape of a segment stage (extract and render), and the pieces they share.

Both stages turn many videos into per-segment work on a pool of Ray Data actors:

1. plan (`<stage>/plan.py`, Ray-free): output layout, what an earlier run finished, and a
   flat_map that probes one video and splits it into segment rows (`split_video`). The
   driver collects the rows first, then gives every segment a block of its own
   (`segment_dataset`), so the actors share even a single long video.
2. actor (`<stage>/actor.py`): a `SegmentActor` that does one segment per call and
   writes its result under OUT; only a small report row per segment returns.
3. commit (`<stage>/commit.py`): how results become outputs: extract's segment Parquet
   files, render's part files joined into one video per input.
4. driver (`<stage>/driver.py`): `prepare_<stage>` (checks before Ray starts), then
   `run_<stage>`: join Ray (`runtime.ray_setup.connect_ray`), plan the actors
   (`runtime.node_plan`), run the dataset, add up the reports (`Counts.add`), return a
   `StageSummary`.

Per-item failures, one contract for both stages: a segment that fails (in planning, e.g.
a file that cannot be probed, or in its actor) never stops the batch. It is recorded as
one row of the errors dataset, OUT/errors/<video_id>-<start>.parquet (`ops.schema.
ERRORS_SCHEMA`: the video, the step that failed, the error naming the file, the action
taken), written as it happens, and its report carries the error to the summary. A rerun
retries exactly the failed segments, and a segment that then succeeds deletes its error
row. The CLI exits 1 when more than --max-error-fraction of the videos failed.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ops import schema, storage
from ops.sources import probe_and_split
from ops.types import FrameRange, VideoInfo

ERRORS = "errors"
FAIL_MARKER = ".fail_at_frame_done"
# report status: "" worked on in this run, "done" a segment an earlier run finished,
# "finished" a whole video an earlier run finished (render)
SEGMENT_DONE, VIDEO_FINISHED = "done", "finished"


# -- plan ----------------------------------------------------------------------------------------
def split_video(
    uri: str, segment_frames: int, context: int = 0, length: Callable[[int], int] | None = None
) -> tuple[VideoInfo, list[FrameRange]]:
    """Probe a video and split it into segments, opening it once (raises naming the file
    if it can't). `info.frame_rate` is the exact rate the segment rows carry.

    context: frames each segment also decodes before its start (render's smoothing);
    length: frames per segment from the video's frame count (default `segment_frames`).
    """
    return probe_and_split(uri, segment_frames, context, length)


STATUS_KEYS = ("status", "error", "error_step")  # every report has them, "" when unset


def report_row(row: dict, keys: tuple[str, ...], counts: tuple[str, ...], **fields: Any) -> dict:
    """A segment's report: the row's `keys`, its `counts` (0 where it has none) and its
    status keys ("" where unset), updated by `fields`; seconds a float in every block."""
    report = {key: row.get(key) for key in keys}
    report.update({key: row.get(key) or 0 for key in counts})
    report.update({key: row.get(key) or "" for key in STATUS_KEYS})
    report.update(fields)
    report["seconds"] = float(report.get("seconds") or 0.0)
    return report


def name_file(uri: str, exc: BaseException) -> str:
    """The error message of `exc`, naming the file `uri` if it does not already."""
    message = schema.format_error(exc)
    name = storage.strip_query(uri)
    return message if name in message else f"{message} ({name})"


def segment_dataset(
    items: list[dict],
    plan: Callable[..., list[dict]],
    plan_kwargs: dict,
    actor: type,
    actor_kwargs: dict,
    actors: Any,
    requested: int | None,
    label_selector: dict[str, str] | None = None,
):
    """items (one per video) -> plan rows -> one actor call per segment -> reports.

    actors: the `ActorPlan`; requested: --workers (None: the plan's count).

    Planning is I/O bound and takes no CPU slot, so the actors may own every CPU. Its rows
    are collected, then each gets a block of its own: every actor gets work, even from a
    single video (repartitioning a lazily planned dataset instead hangs at real size).
    """
    import ray.data

    from pipelines.runtime.ray_setup import actor_pool, wait_for_free_cpu

    wait_for_free_cpu()  # an earlier stage's actors may still be giving back their CPUs
    planned = (
        ray.data.from_items(items, override_num_blocks=max(1, len(items)))
        .flat_map(plan, fn_kwargs=plan_kwargs, num_cpus=0)
        .take_all()
    )
    segments = ray.data.from_items(planned, override_num_blocks=max(1, len(planned)))
    return segments.map_batches(
        actor,
        fn_constructor_kwargs=actor_kwargs,
        batch_size=1,
        compute=actor_pool(requested, actors.workers),
        num_cpus=actors.cpus_each,
        num_gpus=actors.gpus_each,
        label_selector=label_selector,
    )


# -- actor ---------------------------------------------------------------------------------------
def rows(batch: dict[str, np.ndarray]) -> Iterator[dict]:
    """The rows of a Ray Data batch as plain dicts (numpy scalars as Python values)."""
    keys = list(batch)
    for values in zip(*(batch[k] for k in keys), strict=True):
        yield {
            k: (v.item() if isinstance(v, np.generic) else v)
            for k, v in zip(keys, values, strict=True)
        }


class PlannedError(Exception):
    """An error found while planning (e.g. probing), carried to the actor that records it."""

    def __init__(self, step: str, error: str) -> None:
        super().__init__(error)
        self.step, self.error = step, error


class SegmentActor:
    """Base of the stages' actors: one segment per call, failures caught here and recorded.

    A subclass sets `out`, its report's `keys` and `counts` (as its plan's `report_row`
    calls use them), `work_step` and `action` (what a failure means for the output), and
    implements `work(row) -> counts`.
    """

    out: str
    keys: tuple[str, ...]
    counts: tuple[str, ...]
    work_step = "work"  # the errors dataset's `stage` of a failure inside `work`
    action = "skipped; nothing written for this segment (rerun retries it)"

    def work(self, row: dict) -> dict:
        raise NotImplementedError

    def report(self, row: dict, **fields: Any) -> dict:
        return report_row(row, self.keys, self.counts, **fields)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        reports = []
        for row in rows(batch):
            if row["status"]:  # done by an earlier run
                reports.append(self.report(row))
                continue
            started = time.perf_counter()
            try:
                if row["error"]:
                    raise PlannedError(row["error_step"] or "plan", row["error"])
                counts = self.work(row)
                delete_error(self.out, row["video_id"], row["start"])
                fields = {"seconds": time.perf_counter() - started, **counts}
                reports.append(self.report(row, **fields))
            except Exception as exc:  # noqa: BLE001 - one bad video never stops the batch
                planned = isinstance(exc, PlannedError)
                step = exc.step if planned else self.work_step
                error = exc.error if planned else name_file(row["video"], exc)
                write_error(self.out, row, step, error, self.action)
                seconds = time.perf_counter() - started
                reports.append(self.report(row, error=error, error_step=step, seconds=seconds))
        return {key: [r[key] for r in reports] for key in reports[0]} if reports else {}


def fail_once(out: str, index: int, at: int | None) -> None:
    """Fault injection for tests: the worker that reaches frame `at` dies, once per OUT."""
    if at is None or index != at:
        return
    marker = storage.join(out, FAIL_MARKER)
    if storage.exists(marker):
        return
    storage.write_bytes_atomic(marker, str(index).encode())
    os._exit(1)  # as if killed: no exception, no cleanup; Ray restarts the actor


# -- the errors dataset --------------------------------------------------------------------------
def error_path(out: str, video_key: str, start: int) -> str:
    """OUT/errors/<video_id>-<start>.parquet: the error row of one segment."""
    return storage.join(out, ERRORS, f"{video_key}-{max(start, 0):09d}.parquet")


def write_error(out: str, row: dict, step: str, error: str, action: str) -> None:
    """Record one failed item as a row of the errors dataset (atomically)."""
    record = {
        schema.VIDEO: storage.strip_query(row["video"]),
        schema.VIDEO_ID: row["video_id"],
        schema.IDENTITY: row.get("identity"),
        schema.SEGMENT_START: row["start"],
        schema.STAGE: step,
        schema.ERROR: error,
        schema.ACTION: action,
    }
    table = pa.Table.from_pylist([record], schema=schema.ERRORS_SCHEMA)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    storage.write_bytes_atomic(error_path(out, row["video_id"], row["start"]), sink.getvalue())


def delete_error(out: str, video_key: str, start: int) -> None:
    """A segment that now succeeded has no error row (left by an earlier run) any more."""
    storage.delete_file(error_path(out, video_key, start))
