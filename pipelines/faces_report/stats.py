"""The numbers of `rayswap faces report`, from per-face `Features` (Ray-free, driver side).

    analyse_faces(features, ...)  -> Analysis: per-face duplicate links, identity
                                     distances and outlier flags, and the report dict
    plan_filters(features, analysis, ...) -> why each row is dropped ("" = kept)

Every number is defined in ops/face_stats.py (pose, near-duplicates, robust centre and
cutoff) and in the README's `rayswap faces report` section.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ops.face_stats import (
    FRONTAL_MAX_YAW,
    YAW_CLASSES,
    classify_yaw,
    find_near_duplicates,
    geometric_median,
    robust_cutoff,
)
from ops.identity import identity_distances
from pipelines.faces_report.features import ERROR_ROW, UNREADABLE, Features

PERCENTILES = (1, 5, 25, 50, 75, 95, 99)
YAW_EDGES = np.round(np.arange(-0.8, 0.801, 0.1), 2)
PITCH_EDGES = np.round(np.arange(-0.3, 0.301, 0.05), 2)
SHARPNESS_EDGES = np.array([0, 25, 50, 100, 200, 400, 800, 1600, 3200], np.float64)
OUTLIER_K = 4.0  # identity outliers: distance above median + 4 x 1.4826 MAD of their identity
# ... and above this, whatever the spread: a clean clip's faces sit so close together that
# median + 4 MAD falls to about 0.2 and calls the same person an outlier. Measured with the
# identity benchmark's sampler (`python -m benchmarks identity`: 295 faces, 12 people, every
# one-person file of ../shared/data, default alignment), distance to the geometric median of
# the same person's faces: one clip's faces p95 0.26, p99 0.36, max 0.39; all of a person's
# files p95 0.37, p99 0.42, max 0.45. Other people to those centres: min 0.45 (dlib's one
# close pair, feifei_li and person_a), p1 0.51, p5 0.59. 0.4 sits above 99% of one person's
# distances and below every other person's; it is under extract --reference's 0.5
# (ops.identity.DEFAULT_MAX_DISTANCE), so a face the report lets pass as the person is one
# extract would keep.
OUTLIER_MIN_DISTANCE = 0.4
FILTER_ORDER = ("unreadable", "blurry", "identity", "duplicate")


@dataclass
class Analysis:
    """Per-face results (aligned with the Features rows) and the report."""

    duplicate_of: np.ndarray  # (N,) int64, -1 kept, else the row it nearly duplicates
    distance: np.ndarray  # (N,) float32 identity distance to its identity's centre, NaN if none
    outlier: np.ndarray  # (N,) bool, distance above its identity's cutoff (robust, floored)
    report: dict


def summarise(values: np.ndarray) -> dict:
    """Percentiles, mean, min and max of the finite values (None when there are none)."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return {f"p{p}": None for p in PERCENTILES} | {"mean": None, "min": None, "max": None}
    found = np.percentile(values, PERCENTILES)
    summary = {f"p{p}": round(float(v), 4) for p, v in zip(PERCENTILES, found, strict=True)}
    return summary | {
        "mean": round(float(values.mean()), 4),
        "min": round(float(values.min()), 4),
        "max": round(float(values.max()), 4),
    }


def histogram(values: np.ndarray, edges: np.ndarray) -> dict:
    """Counts between `edges`, plus the counts below the first and above the last edge."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)
    return {
        "edges": [float(e) for e in edges],
        "counts": [int(c) for c in counts],
        "below": int((values < edges[0]).sum()),
        "above": int((values > edges[-1]).sum()),
    }


def yaw_classes(yaw: np.ndarray) -> dict:
    """Shares of faces by |yaw| (ops.face_stats.classify_yaw): frontal below 0.2, turned
    0.2-0.35, strong 0.35-0.6, profile from 0.6; and left/right, the faces that are not
    frontal with the nose to the image's left/right."""
    yaw = np.asarray(yaw, np.float64)
    yaw = yaw[np.isfinite(yaw)]
    n = max(len(yaw), 1)
    classes = classify_yaw(yaw)
    shares = {name: float((classes == name).sum() / n) for name, _, _ in YAW_CLASSES}
    shares["left"] = float((yaw <= -FRONTAL_MAX_YAW).sum() / n)
    shares["right"] = float((yaw >= FRONTAL_MAX_YAW).sum() / n)
    return {k: round(v, 4) for k, v in shares.items()}


def video_groups(features: Features) -> np.ndarray:
    """(N,) int: one number per (identity, video_id), in the rows' order."""
    keys = [f"{i}\x00{v}" for i, v in zip(features.identity, features.video_id, strict=True)]
    _, groups = np.unique(np.asarray(keys, object).astype(str), return_inverse=True)
    return groups.reshape(-1)


def identity_outliers(features: Features) -> tuple[np.ndarray, np.ndarray, dict]:
    """Distance of each readable face to its identity's geometric median embedding; an
    outlier is farther than median + OUTLIER_K MAD of its identity and OUTLIER_MIN_DISTANCE."""
    distance = np.full(len(features), np.nan, np.float32)
    outlier = np.zeros(len(features), bool)
    per_identity = {}
    for label in sorted(set(features.identity[features.ok])):
        rows = np.flatnonzero(features.ok & (features.identity == label))
        centre = geometric_median(features.embedding[rows])
        distance[rows] = identity_distances(features.embedding[rows], centre[None])
        cutoff = max(OUTLIER_MIN_DISTANCE, robust_cutoff(distance[rows], OUTLIER_K))
        outlier[rows] = distance[rows] > cutoff
        per_identity[str(label)] = {
            "faces": int(len(rows)),
            "distance": summarise(distance[rows]),
            "outlier_cutoff": round(cutoff, 4),
            "outliers": int(outlier[rows].sum()),
        }
    return distance, outlier, per_identity


def worst_faces(features: Features, distance: np.ndarray, outlier: np.ndarray, top: int) -> list:
    order = [i for i in np.argsort(-np.nan_to_num(distance, nan=-1.0)) if np.isfinite(distance[i])]
    return [
        {
            "rank": rank,
            "identity": str(features.identity[i]),
            "video": str(features.video[i]),
            "video_id": str(features.video_id[i]),
            "frame": int(features.frame[i]),
            "face": int(features.face[i]),
            "distance": round(float(distance[i]), 4),
            "outlier": bool(outlier[i]),
        }
        for rank, i in enumerate(order[:top], start=1)
    ]


def per_video(features: Features, groups: np.ndarray, analysis: Analysis) -> list[dict]:
    rows = []
    for group in np.unique(groups):
        members = groups == group
        ok = members & features.ok
        first = int(np.flatnonzero(members)[0])
        distance = analysis.distance[ok]
        rows.append(
            {
                "identity": str(features.identity[first]),
                "video": str(features.video[first]),
                "name": os.path.basename(str(features.video[first]).rstrip("/")),
                "video_id": str(features.video_id[first]),
                "faces": int(ok.sum()),
                "error_rows": int((members & (features.status == ERROR_ROW)).sum()),
                "unreadable": int((members & (features.status == UNREADABLE)).sum()),
                "sharpness_p50": _median(features.sharpness[ok]),
                "yaw_p50": _median(features.yaw[ok]),
                "abs_yaw_p95": _percentile(np.abs(features.yaw[ok]), 95),
                "duplicates": int((analysis.duplicate_of[ok] >= 0).sum()),
                "outliers": int(analysis.outlier[ok].sum()),
                "max_distance": _max(distance),
            }
        )
    return sorted(rows, key=lambda row: (row["identity"], row["name"], row["video_id"]))


def _median(values: np.ndarray) -> float | None:
    return _percentile(values, 50)


def _percentile(values: np.ndarray, q: float) -> float | None:
    values = values[np.isfinite(values)]
    return round(float(np.percentile(values, q)), 4) if len(values) else None


def _max(values: np.ndarray) -> float | None:
    values = values[np.isfinite(values)]
    return round(float(values.max()), 4) if len(values) else None


def near_duplicates(features: Features, keep: np.ndarray, groups: np.ndarray, threshold: float):
    """duplicate_of over the rows in `keep` (indices into all rows), -1 elsewhere."""
    duplicate_of = np.full(len(features), -1, np.int64)
    rows = np.flatnonzero(keep)
    if len(rows):
        found = find_near_duplicates(features.thumb[rows], groups[rows], threshold)
        duplicate_of[rows] = np.where(found >= 0, rows[np.maximum(found, 0)], -1)
    return duplicate_of


def analyse_faces(
    features: Features, duplicate_threshold: float, identity: bool, top: int
) -> Analysis:
    """Every number of the report, over the readable faces (error and unreadable rows counted)."""
    ok = features.ok
    groups = video_groups(features)
    duplicate_of = near_duplicates(features, ok, groups, duplicate_threshold)
    if identity and ok.any():
        distance, outlier, per_identity = identity_outliers(features)
    else:
        distance = np.full(len(features), np.nan, np.float32)
        outlier, per_identity = np.zeros(len(features), bool), {}
    analysis = Analysis(duplicate_of, distance, outlier, {})
    n_ok = int(ok.sum())
    duplicates = int((duplicate_of >= 0).sum())
    analysis.report = {
        "rows": len(features),
        "faces": n_ok,
        "error_rows": int((features.status == ERROR_ROW).sum()),
        "unreadable": int((features.status == UNREADABLE).sum()),
        "identities": sorted({str(i) for i in features.identity}),
        "videos": per_video(features, groups, analysis),
        "pose": {
            "yaw": summarise(features.yaw[ok])
            | {"histogram": histogram(features.yaw[ok], YAW_EDGES)},
            "yaw_classes": yaw_classes(features.yaw[ok]),
            "pitch": summarise(features.pitch[ok])
            | {"histogram": histogram(features.pitch[ok], PITCH_EDGES)},
        },
        "sharpness": summarise(features.sharpness[ok])
        | {"histogram": histogram(features.sharpness[ok], SHARPNESS_EDGES)},
        "duplicates": {
            "threshold": duplicate_threshold,
            "count": duplicates,
            "share": round(duplicates / n_ok, 4) if n_ok else 0.0,
            "kept_with_copies": int(len(set(duplicate_of[duplicate_of >= 0].tolist()))),
        },
        "identity": (
            {
                "per_identity": per_identity,
                "outlier_k": OUTLIER_K,
                "outlier_min_distance": OUTLIER_MIN_DISTANCE,
                "worst": worst_faces(features, distance, outlier, top),
            }
            if identity
            else None
        ),
    }
    return analysis


def plan_filters(
    features: Features,
    analysis: Analysis,
    min_sharpness: float | None,
    max_identity_distance: float | None,
    drop_duplicates: bool,
    duplicate_threshold: float,
) -> np.ndarray:
    """Why each row is dropped from the cleaned dataset ("" when kept), filters in order.

    unreadable (extract error rows, undecodable images) -> blurry (sharpness below
    `min_sharpness`) -> identity (distance above `max_identity_distance`) -> duplicate
    (near-duplicates among the rows still kept, so a sharp face of the right person
    stands for its copies). Each row is counted by the first filter that drops it.
    """
    reason = np.where(features.ok, "", "unreadable").astype(object)
    if min_sharpness is not None:
        reason[(reason == "") & ~(features.sharpness >= min_sharpness)] = "blurry"
    if max_identity_distance is not None:
        reason[(reason == "") & (analysis.distance > max_identity_distance)] = "identity"
    if drop_duplicates:
        kept = reason == ""
        duplicate_of = near_duplicates(features, kept, video_groups(features), duplicate_threshold)
        reason[kept & (duplicate_of >= 0)] = "duplicate"
    return reason
