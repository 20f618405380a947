"""What `rayswap faces report` writes: the contact sheet and the cleaned dataset.

    OUT/report.json                       every number of the report
    OUT/contact_sheet.png                 a sample of faces, identity outliers first, in red
    OUT/per_face.parquet                  every face row's numbers (pose, duplicate, distance)
    OUT/faces/<identity>/<source name>    with filters: the kept rows of each source file
    OUT/faces/_config.json                the report's config, the source and the drops

The cleaned files are the source files minus the dropped rows: same columns, same types,
same schema metadata, so `rayswap train` reads them like extract's output. The input is
only ever read.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ops import schema, storage
from ops.contact_sheet import contact_sheet
from ops.quality import decode_crop, encode_crop
from pipelines.faces_report.features import Features
from pipelines.faces_report.stats import Analysis

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
COPY_THREADS = 8


def sheet_rows(features: Features, analysis: Analysis, count: int) -> list[int]:
    """Rows on the contact sheet: identity outliers, worst first (at most half), then an
    even sample of the other readable faces in dataset order."""
    if count <= 0:
        return []
    by_distance = np.argsort(-np.nan_to_num(analysis.distance, nan=-1.0), kind="stable")
    outliers = [int(r) for r in by_distance if analysis.outlier[r]][: max(1, count // 2)]
    chosen = set(outliers)
    rest = [int(r) for r in np.flatnonzero(features.ok) if r not in chosen]
    take = min(count - len(outliers), len(rest))
    picks = np.linspace(0, len(rest) - 1, take).round().astype(int) if take > 0 else []
    return outliers + sorted({rest[i] for i in picks})


def read_crops(features: Features, rows: list[int], files: dict[str, str]) -> dict[int, np.ndarray]:
    """Decoded crops of `rows`, read from their source files (keys and image columns only)."""
    wanted: dict[str, dict[tuple, int]] = defaultdict(dict)
    for row in rows:
        key = (features.video_id[row], int(features.frame[row]), int(features.face[row]))
        wanted[features.path[row]][key] = row
    crops = {}
    for inner, keys in wanted.items():
        filesystem, _ = storage.resolve(files[inner])
        table = pq.read_table(
            inner,
            filesystem=filesystem,
            columns=[schema.VIDEO_ID, schema.FRAME, schema.FACE, schema.IMAGE],
        )
        for record in table.to_pylist():
            key = (record[schema.VIDEO_ID], record[schema.FRAME], record[schema.FACE])
            if key in keys:
                crops[keys[key]] = decode_crop(record[schema.IMAGE])
    return crops


def write_contact_sheet(
    features: Features, analysis: Analysis, files: dict[str, str], count: int, path: str
) -> int:
    """Write the contact sheet PNG to `path`; return how many faces it shows."""
    rows = sheet_rows(features, analysis, count)
    crops = read_crops(features, rows, files)
    rows = [r for r in rows if r in crops]
    ranks = {
        r: i + 1 for i, r in enumerate(np.argsort(-np.nan_to_num(analysis.distance, nan=-1.0)))
    }
    captions = []
    for row in rows:
        distance = analysis.distance[row]
        if analysis.outlier[row]:
            captions.append(f"#{ranks[row]} d{distance:.2f}")
        else:
            captions.append(
                f"f{features.frame[row]}" + (f" d{distance:.2f}" if np.isfinite(distance) else "")
            )
    sheet = contact_sheet(
        [crops[r] for r in rows], captions, [bool(analysis.outlier[r]) for r in rows]
    )
    storage.write_bytes_atomic(path, encode_crop(sheet, "png"))
    return len(rows)


def _folder_name(identity: str) -> str:
    """The identity as a folder name; names that are not plain get a hash instead."""
    if SAFE_NAME.fullmatch(identity) and identity not in (".", ".."):
        return identity
    return "identity-" + hashlib.sha1(identity.encode()).hexdigest()[:10]


def plan_copies(
    features: Features, reason: np.ndarray, files: dict[str, str], out: str
) -> list[dict]:
    """One job per source file: where it is, where its kept rows go, which keys to drop."""
    names = {inner: os.path.basename(inner) for inner in files}
    clashes = {n for n, c in Counter(names.values()).items() if c > 1}
    for inner, name in names.items():
        if name in clashes:  # same file name in two source folders: keep both apart
            names[inner] = f"{hashlib.sha1(inner.encode()).hexdigest()[:8]}-{name}"
    dropped: dict[str, list[str]] = defaultdict(list)
    for row in np.flatnonzero(reason != ""):
        dropped[features.path[row]].append(
            f"{features.video_id[row]}/{features.frame[row]}/{features.face[row]}"
        )
    return [
        {
            "source": files[inner],
            "folder": storage.join(out, "faces"),
            "name": names[inner],
            "drop": dropped.get(inner, []),
        }
        for inner in sorted(files)
    ]


def copy_kept_rows(job: dict) -> dict:
    """Write the rows of job["source"] not in job["drop"] to folder/<identity>/<name>."""
    filesystem, inner = storage.resolve(job["source"])
    table = pq.read_table(inner, filesystem=filesystem)
    drop = set(job["drop"])
    keys = zip(
        table.column(schema.VIDEO_ID).to_pylist(),
        table.column(schema.FRAME).to_pylist(),
        table.column(schema.FACE).to_pylist(),
        strict=True,
    )
    kept = table.filter(pa.array([f"{v}/{f}/{i}" not in drop for v, f, i in keys]))
    identities = kept.column(schema.IDENTITY).to_pylist()
    for identity in sorted(set(identities)):
        part = kept.filter(pa.array([i == identity for i in identities]))
        sink = io.BytesIO()
        pq.write_table(part, sink, compression="zstd")
        path = storage.join(job["folder"], _folder_name(identity), job["name"])
        storage.write_bytes_atomic(path, sink.getvalue())
    return {"source": job["source"], "rows": table.num_rows, "kept": kept.num_rows}


def write_cleaned(jobs: list[dict], use_ray: bool) -> list[dict]:
    """Run the copy jobs: Ray Data tasks on a cluster, a thread pool in this process."""
    if not use_ray:
        with ThreadPoolExecutor(COPY_THREADS) as pool:  # Parquet I/O releases the GIL
            return list(pool.map(copy_kept_rows, jobs))
    import ray.data

    dataset = ray.data.from_items(jobs, override_num_blocks=max(1, len(jobs)))
    return dataset.map(copy_kept_rows, num_cpus=0.5).take_all()


def write_per_face(
    features: Features, analysis: Analysis, reason: np.ndarray | None, path: str
) -> None:
    """One row per face row of the input with its numbers, for digging further (Parquet)."""
    links = analysis.duplicate_of
    duplicate_of = [
        None if j < 0 else f"{features.video_id[j]}/{features.frame[j]}/{features.face[j]}"
        for j in links
    ]
    table = pa.table(
        {
            schema.IDENTITY: features.identity.astype(str),
            schema.VIDEO: features.video.astype(str),
            schema.VIDEO_ID: features.video_id.astype(str),
            schema.FRAME: features.frame,
            schema.FACE: features.face,
            "status": features.status.astype(str),
            schema.SHARPNESS: features.sharpness,
            "yaw": features.yaw,
            "pitch": features.pitch,
            "duplicate_of": pa.array(duplicate_of, pa.string()),
            "centre_distance": analysis.distance,
            "outlier": analysis.outlier,
            "dropped": pa.array(
                [None] * len(features) if reason is None else [r or None for r in reason],
                pa.string(),
            ),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    storage.write_bytes_atomic(path, sink.getvalue())
