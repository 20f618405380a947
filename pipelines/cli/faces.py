"""The `rayswap faces` commands: `faces report`.

    rayswap faces report data/faces/a --out reports/a
    rayswap faces report data/faces/a --out clean/a --min-sharpness 100 --drop-duplicates \\
        --max-identity-distance 0.45
"""

from __future__ import annotations

import typer

from pipelines.cli.app import command, faces_app, preflight, run_step
from pipelines.cli.common import check_out_dir
from pipelines.config import FacesReportConfig


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _video_table(videos: list[dict]) -> list[str]:
    width = min(48, max([len(v["name"]) for v in videos] + [5]))
    head = f"{'video':<{width}} {'faces':>6} {'sharp p50':>9} {'yaw p50':>7} {'|yaw| p95':>9}"
    lines = [head + f" {'dup %':>6} {'outliers':>8} {'max dist':>8}"]
    for video in videos:
        name = video["name"] if len(video["name"]) <= width else "..." + video["name"][3 - width :]
        share = 100.0 * video["duplicates"] / video["faces"] if video["faces"] else 0.0
        lines.append(
            f"{name:<{width}} {video['faces']:>6} {_num(video['sharpness_p50'], 1):>9} "
            f"{_num(video['yaw_p50']):>7} {_num(video['abs_yaw_p95']):>9} {share:>6.1f} "
            f"{video['outliers']:>8} {_num(video['max_distance']):>8}"
        )
    return lines


def _percentile_table(report: dict) -> list[str]:
    columns = ("p1", "p5", "p25", "p50", "p75", "p95", "p99")
    lines = [f"{'':<10}" + "".join(f"{c:>8}" for c in columns)]
    for name, stats, digits in (
        ("yaw", report["pose"]["yaw"], 2),
        ("pitch", report["pose"]["pitch"], 2),
        ("sharpness", report["sharpness"], 1),
    ):
        lines.append(f"{name:<10}" + "".join(f"{_num(stats[c], digits):>8}" for c in columns))
    return lines


def _identity_lines(identity: dict) -> list[str]:
    lines = []
    for label, found in identity["per_identity"].items():
        distance = found["distance"]
        lines.append(
            f"identity {label}: distance to its centre p50 {_num(distance['p50'])}, p95 "
            f"{_num(distance['p95'])}, max {_num(distance['max'])}; outlier cutoff "
            f"{_num(found['outlier_cutoff'])} (median + {identity['outlier_k']:g} MAD, at least "
            f"{identity['outlier_min_distance']:g}): "
            f"{found['outliers']} outliers"
        )
    if identity["worst"]:
        lines.append("farthest from their identity (rank, distance, identity, video, frame):")
    for face in identity["worst"]:
        mark = "  OUTLIER" if face["outlier"] else ""
        name = face["video"].rstrip("/").rsplit("/", 1)[-1]
        lines.append(
            f"  #{face['rank']:<3} {face['distance']:.3f}  {face['identity']}  {name}  "
            f"frame {face['frame']} face {face['face']}{mark}"
        )
    return lines


def report_lines(report: dict) -> list[str]:
    """The report as readable lines (the whole of it is in report.json)."""
    seconds = report["seconds"]
    engine = "this process" if report["engine"] == "local" else f"Ray, {report['workers']} actors"
    lines = [
        f"faces report: {report['faces_path']}: {report['faces']} faces in "
        f"{len(report['videos'])} videos ({report['error_rows']} error rows, "
        f"{report['unreadable']} unreadable), identities {', '.join(report['identities'])}",
        f"engine: {engine}; {seconds['features']:.1f} s decode + embed, "
        f"{seconds['total']:.1f} s in all",
        "",
        *_video_table(report["videos"]),
        "",
        *_percentile_table(report),
        "",
    ]
    classes = report["pose"]["yaw_classes"]
    lines.append(
        "pose (|yaw|): "
        + ", ".join(
            f"{k} {100 * classes[k]:.1f}%" for k in ("frontal", "turned", "strong", "profile")
        )
        + f" (left {100 * classes['left']:.1f}%, right {100 * classes['right']:.1f}%)"
    )
    duplicates = report["duplicates"]
    lines.append(
        f"near-duplicates: {100 * duplicates['share']:.1f}% ({duplicates['count']} faces repeat "
        f"an earlier face within {duplicates['threshold']:g} grey levels)"
    )
    if report["identity"] is None:
        lines.append("identity: not computed (--no-identity)")
    else:
        lines += _identity_lines(report["identity"])
    filters = report["filters"]
    if filters:
        dropped = ", ".join(f"{k} {v}" for k, v in filters["dropped"].items())
        lines.append(
            f"filters dropped: {dropped}; kept {filters['kept']} -> {filters['cleaned_path']}/"
        )
    sheet = report["contact_sheet"]
    lines.append(f"contact sheet: {sheet['path']} ({sheet['faces']} faces, outliers in red)")
    lines.append(f"report: {report['report_path']}; per face: {report['per_face_path']}")
    return lines


@command(FacesReportConfig, "report", group=faces_app)
def report(cfg: FacesReportConfig) -> None:
    """Report on a faces dataset before training, and optionally write a cleaned copy.

    Faces per video, pose spread, sharpness, near-duplicates, identity outliers and a
    contact sheet. Prints a table and writes OUT/report.json and OUT/contact_sheet.png. With
    --min-sharpness, --drop-duplicates or --max-identity-distance the kept rows are written
    to OUT/faces/<identity>/ with the input's schema (`rayswap train` reads them); the input
    is never changed.
    """
    from pipelines.faces_report.driver import prepare_faces_report, run_faces_report

    check_out_dir(cfg.out)
    plan = preflight(prepare_faces_report, cfg)
    typer.echo(f"faces report: {plan.rows} rows in {len(plan.files)} files", err=True)
    for line in report_lines(run_step("faces report", run_faces_report, cfg, plan)):
        typer.echo(line)
