"""Faces report: look at a faces dataset before spending GPU hours on it, and clean it.

    rayswap faces report data/faces/a --out reports/a
    rayswap faces report data/faces/a --out data-clean/a --min-sharpness 100 \\
        --drop-duplicates --max-identity-distance 0.45

For every face row: pose proxies from its landmarks, sharpness from its column, a 16 x 16
grey thumbnail (near-duplicates) and dlib's identity embedding (outliers: faces far from
their identity's geometric median). Decoding and embedding are the per-row work; they run
in this process for small datasets and on a Ray Data actor pool for large ones (see
`choose_engine`). The driver then computes the numbers (pipelines/faces_report/stats.py),
writes report.json and contact_sheet.png, and with filters a cleaned copy of the dataset
(pipelines/faces_report/write.py). The input is never written to.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from dataclasses import dataclass

import numpy as np

from ops import schema, storage
from ops.faces_dataset import open_faces
from pipelines.config import FacesReportConfig, config_json
from pipelines.faces_report.features import Features, compute_local, compute_ray
from pipelines.faces_report.stats import FILTER_ORDER, Analysis, analyse_faces, plan_filters
from pipelines.faces_report.write import (
    plan_copies,
    write_cleaned,
    write_contact_sheet,
    write_per_face,
)
from pipelines.runtime.checks import LOCAL, ray_address

# What `--engine auto` weighs (measured on a 2-core machine): the identity embedding takes
# about 13 ms of one core a face (dlib's network in torch, `ops.identity_net`; 85-108 ms in
# dlib itself), decoding and the thumbnail about 1 ms, and starting a local Ray with its
# actors (each loading the embedder) costs about 15 s before the first face.
EMBED_S_PER_FACE = 0.013
DECODE_S_PER_FACE = 0.001
RAY_START_S = 15.0
REPORT_JSON = "report.json"
CONTACT_SHEET = "contact_sheet.png"
PER_FACE = "per_face.parquet"


@dataclass(frozen=True)
class Plan:
    """What the pre-flight check found."""

    files: list[str]  # Parquet files in the form of cfg.faces
    rows: int


def _inside(path: str, folder: str) -> bool:
    path, folder = storage.strip_query(path).rstrip("/"), storage.strip_query(folder).rstrip("/")
    return path == folder or path.startswith(folder + "/")


def prepare_faces_report(cfg: FacesReportConfig) -> Plan:
    """Ray-free checks; raise ValueError/FileNotFoundError naming the flag."""
    faces = open_faces(cfg.faces, "FACES", need_faces=False)
    files, dataset = faces.files, faces.dataset
    if _inside(cfg.out, cfg.faces) or _inside(cfg.faces, cfg.out):
        raise ValueError(
            f"--out: {cfg.out} and FACES {cfg.faces} overlap; the report never writes "
            "into its input, give a separate folder"
        )
    if cfg.identity and importlib.util.find_spec("dlib") is None:
        raise ValueError(
            "--identity: identity embeddings need dlib: pip install 'rayswap[eval]' "
            "(or pass --no-identity)"
        )
    cleaned = storage.join(cfg.out, "faces")
    if cfg.filtering and storage.exists(cleaned) and storage.list_files(cleaned):
        raise ValueError(f"--out: {cleaned} already holds a dataset; give a new --out")
    rows = dataset.count_rows()
    if rows == 0:
        raise ValueError(f"FACES: {cfg.faces} holds no face rows")
    return Plan(files=files, rows=rows)


def local_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def local_max_rows(identity: bool, cpus: int) -> float:
    """Rows up to which this process beats a local Ray of `cpus` CPUs: Ray saves
    (1 - 1/cpus) of the per-face time and costs RAY_START_S to start."""
    if cpus <= 1:
        return float("inf")
    per_face = EMBED_S_PER_FACE if identity else DECODE_S_PER_FACE
    return RAY_START_S / (per_face * (1.0 - 1.0 / cpus))


def choose_engine(cfg: FacesReportConfig, rows: int) -> str:
    """ "local" or "ray" for `cfg.engine`. auto: Ray for a cluster (--address or
    RAY_ADDRESS), else whichever `local_max_rows` says is faster on this machine (2 CPUs:
    Ray from about 2,300 faces, 16 CPUs: from about 1,200; 16,000-30,000 with --no-identity)."""
    if cfg.engine != "auto":
        return cfg.engine
    if ray_address(cfg.address) != LOCAL:
        return "ray"
    return "ray" if rows > local_max_rows(cfg.identity, local_cpus()) else "local"


def compute_features(cfg: FacesReportConfig, plan: Plan) -> tuple[Features, str, int]:
    """The per-face work on the chosen engine; returns (features, engine, actors)."""
    engine = choose_engine(cfg, plan.rows)
    if engine == "local":
        return compute_local(list(plan.files), cfg.identity), engine, 1
    from pipelines.runtime.node_plan import cluster_nodes, plan_actors
    from pipelines.runtime.ray_setup import connect_ray

    connect_ray(cfg.address)
    # reads take no CPU slot (I/O), so the actors may own every CPU (no reserve)
    actors = plan_actors(cluster_nodes(), 1.0, False, cfg.workers, None, 0.0)
    features = compute_ray(list(plan.files), cfg.identity, plan.rows, cfg.workers, actors.workers)
    return features, engine, actors.workers


def apply_filters(
    cfg: FacesReportConfig, features: Features, analysis: Analysis, files: dict, engine: str
) -> tuple[np.ndarray, dict]:
    """Write the cleaned dataset; return why each row was dropped and the filters' report."""
    reason = plan_filters(
        features,
        analysis,
        cfg.min_sharpness,
        cfg.max_identity_distance,
        cfg.drop_duplicates,
        cfg.duplicate_threshold,
    )
    written = write_cleaned(plan_copies(features, reason, files, cfg.out), engine == "ray")
    dropped = {name: int((reason == name).sum()) for name in FILTER_ORDER}
    storage.write_bytes_atomic(
        storage.join(cfg.out, "faces", schema.CONFIG_FILE),
        config_json(cfg, stage="faces report", dropped=dropped).encode(),
    )
    return reason, {
        "min_sharpness": cfg.min_sharpness,
        "max_identity_distance": cfg.max_identity_distance,
        "drop_duplicates": cfg.drop_duplicates,
        "dropped": dropped,
        "kept": int(sum(w["kept"] for w in written)),
        "cleaned_path": storage.strip_query(storage.join(cfg.out, "faces")),
    }


def run_faces_report(cfg: FacesReportConfig, plan: Plan | None = None) -> dict:
    """Compute the report; write report.json, the contact sheet, per_face.parquet and,
    with filters, the cleaned dataset. Returns the report (what report.json holds)."""
    started = time.perf_counter()
    plan = prepare_faces_report(cfg) if plan is None else plan
    features, engine, workers = compute_features(cfg, plan)
    computed = time.perf_counter() - started
    analysis = analyse_faces(features, cfg.duplicate_threshold, cfg.identity, cfg.top)
    out = {name: storage.join(cfg.out, name) for name in (REPORT_JSON, CONTACT_SHEET, PER_FACE)}
    report = {
        "faces_path": storage.strip_query(cfg.faces),
        "report_path": storage.strip_query(out[REPORT_JSON]),
        "per_face_path": storage.strip_query(out[PER_FACE]),
        "engine": engine,
        "workers": workers,
    } | analysis.report
    storage.make_dirs(cfg.out)
    files = {storage.resolve(f)[1]: f for f in plan.files}  # inner path -> as given
    shown = write_contact_sheet(features, analysis, files, cfg.sheet_faces, out[CONTACT_SHEET])
    report["contact_sheet"] = {"path": storage.strip_query(out[CONTACT_SHEET]), "faces": shown}
    reason, report["filters"] = None, None
    if cfg.filtering:
        reason, report["filters"] = apply_filters(cfg, features, analysis, files, engine)
    write_per_face(features, analysis, reason, out[PER_FACE])
    report["seconds"] = {
        "features": round(computed, 2),
        "total": round(time.perf_counter() - started, 2),
    }
    storage.write_bytes_atomic(out[REPORT_JSON], json.dumps(report, indent=2).encode())
    return report
