"""Statistics of a faces dataset: pose proxies, near-duplicates, a robust identity centre.

Pose from the 5 landmarks (frame or crop pixels: both proxies are ratios, so they do not
change under the similarity transform of alignment). Points: E the midpoint of the eyes,
M the midpoint of the mouth corners, N the nose tip; the face's own axes are u (from E
towards M) and v (perpendicular to u, towards the image-right eye), so roll drops out.
- yaw proxy = (N - E) . v / inter-ocular distance: how far the nose sits off the
  eye-mouth midline. 0 is frontal; positive means the nose points to the image's right
  (the subject turns to their left). Classes by |yaw| in `YAW_CLASSES` (see there).
- pitch proxy = (N - E) . u / |M - E| - PITCH_FRONTAL: the nose's height between the
  eyes (0) and the mouth (1), minus its height in the canonical template (0.495).
  Positive: nose nearer the mouth (head tilted down); negative: nearer the eyes (up).
  Nose length differs between people (faces looking at the camera measure -0.12 to
  +0.12 on ../shared/data), so read the spread within one identity, not the value.

Near-duplicates: every face gets a 16 x 16 grey thumbnail (`thumbnails`). A face is a
near-duplicate when its thumbnail's mean absolute difference from a face kept before it
is below a threshold in grey levels (0-255). `find_near_duplicates` compares each face
with a bounded set of candidates instead of all pairs, so it is O(N) (see there).
"""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np

from ops.align import REFERENCE_112
from ops.types import Landmarks

THUMB_PX = 16
HASH_BANDS = 4  # a 64-bit hash split into 4 bands of 16 bits
BAND_BITS = 16
PER_BAND = 32  # most recent kept faces remembered per band value
_eyes = (REFERENCE_112[0] + REFERENCE_112[1]) / 2
_mouth = (REFERENCE_112[3] + REFERENCE_112[4]) / 2
PITCH_FRONTAL = float((REFERENCE_112[2] - _eyes) @ (_mouth - _eyes) / np.sum((_mouth - _eyes) ** 2))

# Pose classes by |yaw proxy|: (name, lower, upper). The canonical template measures 0.00.
# Faces looking at the camera on ../shared/data measure up to about 0.2, not 0.1: every
# 3rd-6th frame of the MEAD front clips, person_d and person_g 0.00-0.10; the Obama
# addresses p99 0.07-0.18 (max 0.21); feifei_li clip 3 and the Biden still 0.13; person_e,
# who looks at the camera from off-centre in a wide frame, p50 0.15 and max 0.20. Faces
# visibly turned measure more: obama2.jpg ("slight yaw") 0.24, person_f's head turns p95
# 0.27. On a rigid head with the depths of the 6-point model commonly used for head pose
# with cv2.solvePnP (nose tip 0.43 eye distances in front of the eyes, mouth corners 0.03)
# the proxy is about 0.41 tan(yaw): 0.2 about 25 degrees, 0.35 about 40, 0.6 about 55; a
# flatter nose gives smaller values, so the angles are rough. 0.1, the old frontal edge,
# came from SOURCES.md's other proxy (the largest horizontal offset over a clip, with roll)
# and called a frontal news anchor at 0.12 "turned".
YAW_CLASSES = (
    ("frontal", 0.0, 0.2),
    ("turned", 0.2, 0.35),
    ("strong", 0.35, 0.6),
    ("profile", 0.6, np.inf),
)
FRONTAL_MAX_YAW = YAW_CLASSES[0][2]


def pose_proxies(landmarks: Landmarks) -> tuple[np.ndarray, np.ndarray]:
    """Yaw and pitch proxies of faces (see the module docstring).

    Args:
        landmarks: (N, 5, 2) or (N, 10) points, x, y in any pixel space: image-left eye,
            image-right eye, nose tip, image-left and image-right mouth corner.
    Returns:
        (yaw, pitch), each (N,) float32; NaN where the eyes or the eye-mouth axis collapse.
    """
    points = np.asarray(landmarks, dtype=np.float64).reshape(-1, 5, 2)
    eyes = (points[:, 0] + points[:, 1]) / 2
    mouth = (points[:, 3] + points[:, 4]) / 2
    nose = points[:, 2] - eyes
    eye_axis = points[:, 1] - points[:, 0]
    inter_ocular = np.linalg.norm(eye_axis, axis=1)
    height = np.linalg.norm(mouth - eyes, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = (mouth - eyes) / height[:, None]
        v = np.stack([-u[:, 1], u[:, 0]], axis=1)
        v *= np.where((v * eye_axis).sum(1) < 0, -1.0, 1.0)[:, None]  # towards image-right eye
        yaw = (nose * v).sum(1) / inter_ocular
        pitch = (nose * u).sum(1) / height - PITCH_FRONTAL
    bad = (inter_ocular < 1e-6) | (height < 1e-6)
    yaw[bad] = np.nan
    pitch[bad] = np.nan
    return yaw.astype(np.float32), pitch.astype(np.float32)


def classify_yaw(yaw: np.ndarray) -> np.ndarray:
    """The pose class of each yaw proxy, by |yaw| (`YAW_CLASSES`, measured there).

    frontal below 0.2 (looking at the camera, up to about 25 degrees: clean frontal clips
    and news anchors measure 0.0-0.2), turned 0.2-0.35 (about 25-40 degrees), strong
    0.35-0.6 (about 40-55 degrees), profile from 0.6.

    Args:
        yaw: (N,) float yaw proxies from `pose_proxies`.
    Returns:
        (N,) object str: "frontal", "turned", "strong" or "profile"; "" where yaw is NaN.
    """
    magnitude = np.abs(np.asarray(yaw, np.float64))
    names = np.full(magnitude.shape, "", object)
    for name, lower, upper in YAW_CLASSES:
        names[(magnitude >= lower) & (magnitude < upper)] = name
    return names


def thumbnails(faces: np.ndarray) -> np.ndarray:
    """(N, 16, 16) uint8 grey thumbnails of (N, R, R, 3) uint8 RGB crops (area average)."""
    faces = np.asarray(faces)
    if faces.dtype != np.uint8 or faces.ndim != 4 or faces.shape[3] != 3:
        raise ValueError(f"faces must be uint8 (N, R, R, 3), got {faces.dtype} {faces.shape}")
    out = np.empty((len(faces), THUMB_PX, THUMB_PX), np.uint8)
    for index, face in enumerate(faces):
        grey = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)
        out[index] = cv2.resize(grey, (THUMB_PX, THUMB_PX), interpolation=cv2.INTER_AREA)
    return out


def thumbnail_hashes(thumbs: np.ndarray) -> np.ndarray:
    """64-bit random-hyperplane hashes of thumbnails, (N,) uint64.

    Each bit is the sign of the thumbnail minus the dataset's mean thumbnail, projected
    on a fixed random direction: close thumbnails share most bits. The directions come
    from a fixed seed, so hashes are stable between runs.
    """
    flat = np.asarray(thumbs, np.float32).reshape(len(thumbs), -1)
    if len(flat) == 0:
        return np.zeros(0, np.uint64)
    planes = np.random.default_rng(0).standard_normal((flat.shape[1], 64)).astype(np.float32)
    bits = ((flat - flat.mean(0)) @ planes) > 0  # (N, 64)
    weights = np.left_shift(np.uint64(1), np.arange(64, dtype=np.uint64))
    return (bits.astype(np.uint64) * weights).sum(1, dtype=np.uint64)


def find_near_duplicates(
    thumbs: np.ndarray, groups: np.ndarray, threshold: float, per_band: int = PER_BAND
) -> np.ndarray:
    """For each face in order, the index of an earlier kept face it nearly duplicates.

    A face duplicates a kept face when the mean absolute difference of their thumbnails
    is below `threshold` grey levels; a face that duplicates none is kept. Faces are only
    ever compared with kept faces, so a slow drift keeps a face every few steps instead of
    chaining into one group. Candidates, instead of all pairs: the last kept face of the
    same group (video), and the faces that share one of the 4 16-bit bands of the
    thumbnail hash (the `per_band` most recent per band value), each standing for the kept
    face it duplicates if it is a duplicate itself. Two hashes that differ in at most 3
    bits share a band, so close copies anywhere in the dataset meet; the cap keeps a
    crowded band from making the search quadratic. Order the faces by (video, frame) so
    that "earlier" means earlier in time.

    Args:
        thumbs: (N, 16, 16) uint8 from `thumbnails`.
        groups: (N,) int, e.g. a video index.
        threshold: grey levels, > 0.
    Returns:
        (N,) int64: -1 for a kept face, else the index of the kept face it duplicates.
    """
    if threshold <= 0:
        raise ValueError(f"threshold must be > 0 grey levels, got {threshold}")
    flat = np.asarray(thumbs, np.int16).reshape(len(thumbs), -1)
    groups = np.asarray(groups)
    if len(groups) != len(flat):
        raise ValueError(f"need one group per face, got {len(groups)} for {len(flat)}")
    hashes = thumbnail_hashes(thumbs)
    mask = np.uint64((1 << BAND_BITS) - 1)
    bands = [(hashes >> np.uint64(BAND_BITS * b)) & mask for b in range(HASH_BANDS)]
    buckets: list[dict[int, deque]] = [{} for _ in range(HASH_BANDS)]
    last_kept: dict = {}
    duplicate_of = np.full(len(flat), -1, np.int64)
    for index in range(len(flat)):
        keys = [int(band[index]) for band in bands]
        seen = {last_kept[groups[index]]} if groups[index] in last_kept else set()
        for bucket, key in zip(buckets, keys, strict=True):
            seen.update(bucket.get(key, ()))
        # a face already found to be a duplicate stands for the kept face it duplicates
        candidates = {int(i) if duplicate_of[i] < 0 else int(duplicate_of[i]) for i in seen}
        if candidates:
            found = np.fromiter(candidates, np.int64, len(candidates))
            differences = np.abs(flat[found] - flat[index]).mean(1)
            best = int(np.argmin(differences))
            if differences[best] < threshold:
                duplicate_of[index] = found[best]
        if duplicate_of[index] < 0:
            last_kept[groups[index]] = index
        for bucket, key in zip(buckets, keys, strict=True):
            bucket.setdefault(key, deque(maxlen=per_band)).append(index)
    return duplicate_of


def geometric_median(
    points: np.ndarray, iterations: int = 50, max_points: int = 20000
) -> np.ndarray:
    """The point with the least summed Euclidean distance to `points` (Weiszfeld 1937).

    Robust: it stays with the majority while fewer than half the points are elsewhere.
    Above `max_points` rows, a fixed-seed sample of that many is used.

    Args:
        points: (N, D) float, N >= 1.
    Returns:
        (D,) float32.
    """
    points = np.asarray(points, np.float64)
    if points.ndim != 2 or len(points) == 0:
        raise ValueError(f"points must be (N >= 1, D), got {points.shape}")
    if len(points) > max_points:
        chosen = np.random.default_rng(0).choice(len(points), max_points, replace=False)
        points = points[chosen]
    centre = np.median(points, axis=0)
    for _ in range(iterations):
        distances = np.maximum(np.linalg.norm(points - centre, axis=1), 1e-9)
        weights = 1.0 / distances
        moved = (weights[:, None] * points).sum(0) / weights.sum()
        if np.linalg.norm(moved - centre) < 1e-7:
            centre = moved
            break
        centre = moved
    return centre.astype(np.float32)


def robust_cutoff(values: np.ndarray, k: float = 4.0) -> float:
    """median + k x the scaled median absolute deviation (1.4826 x MAD) of `values`.

    For normally distributed values that is mean + k sigma; outliers barely move it.
    """
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan")
    median = np.median(values)
    return float(median + k * 1.4826 * np.median(np.abs(values - median)))
