"""The `rayswap faces` commands (added to the app by `register`): `faces report`.

    rayswap faces report data/faces/a --out reports/a
    rayswap faces report data/faces/a --out clean/a --min-sharpness 100 --drop-duplicates \\
        --max-identity-distance 0.45
"""

from __future__ import annotations

from typing import Annotated

import typer

from pipelines.cli_common import AddressOption, absolute, build_config, check_out_dir, usage_check
from pipelines.faces_report import FacesReportConfig

faces_app = typer.Typer(
    name="faces",
    help="Look into faces datasets before training on them.",
    no_args_is_help=True,
)


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
            f"{_num(found['outlier_cutoff'])} (median + {identity['outlier_k']:g} MAD): "
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


@faces_app.command("report")
def report(
    faces: Annotated[
        str,
        typer.Argument(
            help="Faces Parquet: a folder or URI as extract writes it (OUT/faces/<identity>, "
            "or OUT/faces for every identity), or one .parquet file.",
            show_default=False,
        ),
    ],
    out: Annotated[
        str,
        typer.Option(
            help="Folder or URI for report.json, contact_sheet.png and, with filters, the "
            "cleaned dataset (OUT/faces/<identity>). Never inside FACES."
        ),
    ],
    min_sharpness: Annotated[
        float | None,
        typer.Option(help="Filter: drop faces whose sharpness (variance of Laplacian) is below."),
    ] = None,
    drop_duplicates: Annotated[
        bool, typer.Option(help="Filter: drop near-duplicates, keeping the first of each.")
    ] = False,
    duplicate_threshold: Annotated[
        float,
        typer.Option(
            help="Near-duplicate: mean absolute difference of 16x16 grey thumbnails below "
            "this many grey levels (0-255)."
        ),
    ] = 2.0,
    max_identity_distance: Annotated[
        float | None,
        typer.Option(
            help="Filter: drop faces whose identity embedding is farther than this from their "
            "identity's centre (dlib distance; the report suggests a cutoff)."
        ),
    ] = None,
    identity: Annotated[
        bool,
        typer.Option(help="Embed faces with dlib for identity outliers (needs the eval extra)."),
    ] = True,
    top: Annotated[int, typer.Option(help="How many of the farthest faces to list.")] = 10,
    sheet_faces: Annotated[int, typer.Option(help="Faces on the contact sheet.")] = 48,
    engine: Annotated[
        str,
        typer.Option(
            help="Where the per-face work runs: auto (this process for small datasets, Ray "
            "for large ones or with --address), local or ray."
        ),
    ] = "auto",
    workers: Annotated[
        int | None,
        typer.Option(help="Ray actors that decode and embed. Default: one per CPU."),
    ] = None,
    address: AddressOption = None,
) -> None:
    """Report on a faces dataset before training, and optionally write a cleaned copy.

    Faces per video, pose spread, sharpness, near-duplicates, identity outliers and a
    contact sheet. Prints a table and writes OUT/report.json and OUT/contact_sheet.png. With
    --min-sharpness, --drop-duplicates or --max-identity-distance the kept rows are written
    to OUT/faces/<identity>/ with the input's schema (`rayswap train` reads them); the input
    is never changed.
    """
    from pipelines.faces_report import prepare_faces_report, run_faces_report

    cfg = build_config(
        FacesReportConfig,
        faces=absolute(faces),
        out=absolute(out),
        min_sharpness=min_sharpness,
        drop_duplicates=drop_duplicates,
        duplicate_threshold=duplicate_threshold,
        max_identity_distance=max_identity_distance,
        identity=identity,
        top=top,
        sheet_faces=sheet_faces,
        engine=engine,
        workers=workers,
        address=address,
    )
    check_out_dir(cfg.out)
    plan = usage_check(prepare_faces_report, cfg)
    typer.echo(f"faces report: {plan.rows} rows in {len(plan.files)} files", err=True)
    for line in report_lines(run_faces_report(cfg, plan)):
        typer.echo(line)


def register(app: typer.Typer) -> None:
    """Add the `faces` command group to the rayswap app."""
    app.add_typer(faces_app, name="faces")
