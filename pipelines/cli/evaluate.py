"""The `rayswap evaluate` command, and the metrics table that `evaluate` and
`render --evaluate` print."""

from __future__ import annotations

import math
import posixpath

import typer

from pipelines.cli.app import command, preflight, run_step
from pipelines.cli.common import Progress, check_out_dir, finish, plan_text
from pipelines.config import EvaluateConfig, EvaluateCounts, StageSummary

# (column, header, format) of the printed table; the Parquet file has every column
TABLE_COLUMNS = (
    ("frames", "frames", "d"),
    ("swapped_frames", "swapped", "d"),
    ("id_retrieval", "id_retrieval", ".3f"),
    ("id_margin", "id_margin", "+.3f"),
    ("pose_error", "pose_error", ".3f"),
    ("jitter", "jitter", ".2f"),
    ("seam", "seam_dE", ".2f"),
)


def _cell(value, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def metrics_table(rows: list[dict]) -> list[str]:
    """The evaluation rows as aligned text lines: one per video, errors after the metrics."""
    header = ["video", *(title for _, title, _ in TABLE_COLUMNS)]
    body = []
    for row in rows:
        name = posixpath.basename(str(row["video"]).replace("\\", "/"))
        cells = [name, *(_cell(row.get(key), spec) for key, _, spec in TABLE_COLUMNS)]
        body.append((cells, row.get("error") or ""))
    widths = [max(len(r[i]) for r in [header, *(c for c, _ in body)]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest])

    return [line(header)] + [line(c) + (f"  error: {e}" if e else "") for c, e in body]


def read_metrics_rows(path: str) -> list[dict]:
    """The rows of an evaluation.parquet."""
    from ops import metrics, storage

    return metrics.read_table_bytes(storage.read_bytes(path)).to_pylist()


def evaluate_summary_lines(summary: StageSummary) -> list[str]:
    c = summary.counts
    skipped = f", {summary.n_skipped} not rendered" if summary.n_skipped else ""
    return [
        *metrics_table(read_metrics_rows(summary.output_path)),
        f"evaluate: {c.videos} videos ({summary.n_failed} failed{skipped}), "
        f"{c.frames} frames in {summary.seconds:.1f} s "
        f"({summary.rate('frames'):.1f} frames/s, {plan_text(summary)})",
        f"metrics: {summary.output_path} (frames: evaluation_frames.parquet beside it)",
    ]


@command(EvaluateConfig)
def evaluate(cfg: EvaluateConfig) -> None:
    """Score a render's swaps per video: identity, pose, jitter and seam.

    Writes RENDER/evaluation.parquet (one row per video) and evaluation_frames.parquet (one
    row per frame) and prints the table. id_retrieval: share of swapped frames whose face
    is nearer the target's faces than the source's (1 = always the target). id_margin:
    distance to the source's faces minus distance to the target's (> 0 is the target).
    pose_error: landmark distance output vs source ÷ eye distance (0 = same pose).
    jitter: landmark shake of the output ÷ that of the source (1 = none added). seam_dE:
    colour step the paste adds at the edge of the face (CIE76 delta E; about 2.3 is just
    noticeable).
    Needs the eval extra: pip install 'rayswap[eval]'.
    """
    from pipelines.evaluate.driver import prepare_evaluate, run_evaluate

    plan = preflight(prepare_evaluate, cfg)
    check_out_dir(cfg.render, "RENDER")
    typer.echo(f"evaluate: {len(plan.videos)} videos of {cfg.render}", err=True)
    progress = Progress()

    def show(report: dict, totals: EvaluateCounts) -> None:
        if report["error"]:
            progress.show(f"  error: {report['video']}: {report['error']}", force=True)
        progress.show(f"evaluate: {totals.videos} videos done, {totals.frames} frames")

    summary = run_step("evaluate", run_evaluate, cfg, plan, on_progress=show)
    progress.close()
    finish(summary, cfg.max_error_fraction, evaluate_summary_lines(summary))
