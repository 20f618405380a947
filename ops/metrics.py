"""Swap quality metrics: identity, pose, jitter and seam of rendered faces against their sources.

Everything here compares an output frame (the render) with its source frame (the input
video at the same frame number). Per frame:

- identity distances of the output face to the galleries of A and B (an embedder from
  `ops.identity`, passed in; this module never imports it, so it runs without the extra);
- pose error: mean distance between the 5 landmarks of the output face and of the source
  face, divided by the source's inter-ocular distance (0 = same place and pose);
- seam: the colour step the paste adds at the edge of the pasted region (`seam_delta_e`).

Per video (`summarize_frames`):

- id_retrieval: share of swapped frames whose output face is nearer the target's gallery
  than the source's (1.0 = every frame shows the target; the untouched source scores 0);
- id_margin: mean of distance-to-source-gallery minus distance-to-target-gallery;
- pose_error: mean of the per-frame pose errors;
- jitter: mean landmark acceleration (second difference over consecutive frames, divided by
  the inter-ocular distance) of the output face, divided by that of the source face.
  Head motion is smooth, so acceleration is mostly jitter; a swap that copies the source's
  motion and adds no shake scores 1.0. `motion` is the same ratio for first differences;
- seam: mean per-frame seam in CIE76 delta E.

Frame records carry the landmarks, so a video rendered in segments is summarised over
its whole length (`summarize_frames` sorts by frame). Coordinates are frame pixels;
landmarks (5, 2) in `ops.types` order.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ops import schema
from ops.align import estimate_affine
from ops.blend import MASK_FLOOR, blend_mask, template_oval
from ops.model import DIRECTIONS
from ops.smooth import face_scale, match_face
from ops.types import Detection, Frame, Landmarks

# evaluation_frames.parquet: one row per evaluated frame
SOURCE_FACE = "source_face"  # the source frame has a face (render swaps these frames)
OUTPUT_FACE = "output_face"  # a face was found on the output, where the source's is
LANDMARKS_SOURCE = "landmarks_source"
LANDMARKS_OUTPUT = "landmarks_output"
DISTANCE_A = "distance_a"
DISTANCE_B = "distance_b"
POSE_ERROR = "pose_error"
SEAM = "seam"

FRAMES_SCHEMA = pa.schema(
    [
        pa.field(schema.VIDEO, pa.string(), nullable=False),
        pa.field(schema.FRAME, pa.int64(), nullable=False),
        pa.field(SOURCE_FACE, pa.bool_(), nullable=False),
        pa.field(OUTPUT_FACE, pa.bool_(), nullable=False),
        pa.field(LANDMARKS_SOURCE, pa.list_(pa.float32(), 10)),  # frame px
        pa.field(LANDMARKS_OUTPUT, pa.list_(pa.float32(), 10)),  # frame px
        pa.field(DISTANCE_A, pa.float32()),
        pa.field(DISTANCE_B, pa.float32()),
        pa.field(POSE_ERROR, pa.float32()),  # ÷ inter-ocular distance
        pa.field(SEAM, pa.float32()),  # CIE76 delta E
    ],
    metadata={b"rayswap.schema": b"evaluation_frames"},
)

# evaluation.parquet: one row per rendered video
DIRECTION = "direction"
SWAPPED_FRAMES = schema.SWAPPED_FRAMES  # frames with a source face
OUTPUT_FACES = "output_faces"
ID_RETRIEVAL = "id_retrieval"
ID_MARGIN = "id_margin"
DISTANCE_TARGET = "distance_target"
DISTANCE_SOURCE = "distance_source"
JITTER = "jitter"
MOTION = "motion"

EVALUATION_SCHEMA = pa.schema(
    [
        pa.field(schema.VIDEO, pa.string(), nullable=False),
        pa.field(schema.OUTPUT, pa.string()),
        pa.field(DIRECTION, pa.string()),
        pa.field(schema.FRAMES, pa.int64()),  # frames evaluated
        pa.field(SWAPPED_FRAMES, pa.int64()),
        pa.field(OUTPUT_FACES, pa.int64()),
        pa.field(ID_RETRIEVAL, pa.float64()),
        pa.field(ID_MARGIN, pa.float64()),
        pa.field(DISTANCE_TARGET, pa.float64()),
        pa.field(DISTANCE_SOURCE, pa.float64()),
        pa.field(POSE_ERROR, pa.float64()),
        pa.field(JITTER, pa.float64()),
        pa.field(MOTION, pa.float64()),
        pa.field(SEAM, pa.float64()),
        pa.field(schema.SECONDS, pa.float64()),
        pa.field(schema.ERROR, pa.string()),
    ],
    metadata={b"rayswap.schema": b"evaluation"},
)

SEAM_CROP_PX = 128  # the seam is measured in an aligned crop of this side
SEAM_RING = 0.04  # ring width, as a fraction of the crop side
FULL_ALPHA = 0.95  # mask value from which a pixel counts as pasted


def _points(landmarks: np.ndarray) -> np.ndarray:
    """Any (..., 10) or (..., 5, 2) landmarks as (..., 5, 2) float64."""
    points = np.asarray(landmarks, dtype=np.float64)
    return points.reshape(*points.shape[: -1 if points.shape[-1] == 10 else -2], 5, 2)


def inter_ocular_px(landmarks: np.ndarray) -> np.ndarray:
    """Distance between the eye centres; (N, 5, 2) or (N, 10) landmarks -> (N,) float64 px."""
    points = _points(landmarks)
    return np.linalg.norm(points[..., 0, :] - points[..., 1, :], axis=-1)


def pose_errors(landmarks_output: np.ndarray, landmarks_source: np.ndarray) -> np.ndarray:
    """Mean 5-point distance output vs source ÷ source inter-ocular distance; (N,) float64.

    landmarks_*: (N, 5, 2) or (N, 10) in frame px. 0 = the output face sits exactly where
    the source face was, in the same pose; 0.1 is a tenth of the eye distance.
    """
    out, src = _points(landmarks_output), _points(landmarks_source)
    mean_distance = np.linalg.norm(out - src, axis=-1).mean(-1)
    return mean_distance / np.maximum(inter_ocular_px(src), 1e-6)


def shape_errors(landmarks_output: np.ndarray, landmarks_source: np.ndarray) -> np.ndarray:
    """`pose_errors` left once the output's points are moved, scaled and turned as one onto
    the source's (the least-squares similarity): the part of the error that is the face's
    shape (its expression, its person's proportions), not where or how large it is drawn;
    (N,) float64."""
    out, src = _points(landmarks_output), _points(landmarks_source)
    out_c = out - out.mean(-2, keepdims=True)
    src_c = src - src.mean(-2, keepdims=True)
    u, sigma, vt = np.linalg.svd(np.swapaxes(src_c, -1, -2) @ out_c)
    flip = np.sign(np.linalg.det(u @ vt))  # a rotation, never a mirror
    sigma[..., -1] *= flip
    u[..., :, -1] *= flip[..., None]
    rotation = u @ vt
    scale = sigma.sum(-1) / np.maximum((out_c**2).sum((-1, -2)), 1e-12)
    fitted = scale[..., None, None] * out_c @ np.swapaxes(rotation, -1, -2)
    fitted += src.mean(-2, keepdims=True)
    return pose_errors(fitted, src)


def _runs(frames: np.ndarray, step: int) -> list[np.ndarray]:
    """Index runs of consecutive frame numbers (difference `step`)."""
    if len(frames) == 0:
        return []
    breaks = np.flatnonzero(np.diff(frames) != step) + 1
    return [run for run in np.split(np.arange(len(frames)), breaks) if len(run)]


def landmark_motion(
    landmarks_output: np.ndarray,
    landmarks_source: np.ndarray,
    frames: np.ndarray,
    step: int = 1,
) -> tuple[float, float]:
    """(jitter, motion): landmark acceleration and speed of the output ÷ those of the source.

    Args:
        landmarks_output, landmarks_source: (N, 5, 2) or (N, 10) frame px, one row per frame
            where both faces were found, sorted by frame.
        frames: (N,) frame numbers; differences are taken only within runs of frames `step`
            apart (a frame without a face breaks the run).
    Returns:
        jitter: mean |second difference| of the output ÷ that of the source (1.0 = no added
            shake); motion: the same for first differences. NaN when undefined (too few
            consecutive frames, or a source that does not move).
    """
    out, src = _points(landmarks_output), _points(landmarks_source)
    scale = np.maximum(inter_ocular_px(src), 1e-6)
    sums = np.zeros((2, 2))  # [order 1, 2] x [output, source]
    counts = np.zeros(2)
    for run in _runs(np.asarray(frames), step):
        for order in (1, 2):
            if len(run) <= order:
                continue
            for column, points in enumerate((out[run], src[run])):
                change = np.diff(points, n=order, axis=0)  # (n - order, 5, 2)
                per_frame = np.linalg.norm(change, axis=-1).mean(-1) / scale[run][order:]
                sums[order - 1, column] += per_frame.sum()
            counts[order - 1] += len(run) - order
    ratios = []
    for order in (1, 2):
        output_sum, source_sum = sums[order - 1]
        defined = counts[order - 1] > 0 and source_sum > 1e-9
        ratios.append(float(output_sum / source_sum) if defined else math.nan)
    return ratios[1], ratios[0]


@dataclass(frozen=True)
class SeamRings:
    """The two rings in which `seam_delta_e` compares colours, in a canonical crop.

    inner: pixels the paste fully replaces (blend mask >= 0.95) within `width` px of the
    mask's falling edge; outer: pixels the paste never touches (mask 0) within `width` px
    of its rising edge. Both (size, size) bool.
    """

    size: int
    coverage: float
    inner: np.ndarray
    outer: np.ndarray


def seam_rings(
    coverage: float = 1.5,
    mask_erode: float = 0.03,
    mask_feather: float = 0.05,
    size: int = SEAM_CROP_PX,
    ring: float = SEAM_RING,
) -> SeamRings:
    """Rings either side of the region render pastes (its template oval, eroded and
    feathered with the render's --mask-erode and --mask-feather, `ops.blend.blend_mask`)."""
    mask = blend_mask(None, template_oval(size, coverage), mask_erode, mask_feather)
    width = max(1, int(round(ring * size)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    full = (mask >= FULL_ALPHA).astype(np.uint8)
    touched = (mask >= MASK_FLOOR).astype(np.uint8)
    inner = full.astype(bool) & ~cv2.erode(full, kernel).astype(bool)
    outer = cv2.dilate(touched, kernel).astype(bool) & ~touched.astype(bool)
    return SeamRings(size, coverage, inner, outer)


def _lab_crop(frame: Frame, affine: np.ndarray, size: int) -> np.ndarray:
    crop = cv2.warpAffine(frame, affine, (size, size), flags=cv2.INTER_LINEAR)
    return cv2.cvtColor(crop.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)  # L 0-100


def seam_delta_e(
    source_frame: Frame, output_frame: Frame, landmarks_source: Landmarks, rings: SeamRings
) -> float:
    """The colour step the paste added at the edge of the pasted region, CIE76 delta E.

    In the canonical crop of the source face (its landmarks, the render's coverage): the
    mean LAB colour of the inner ring minus that of the outer ring, on the output, minus
    the same difference on the source. A natural face has a colour step between cheek and
    surroundings; the source measures it, so only what the paste adds (a face that is
    lighter, darker or tinted at its edge) counts. 0 = no added step; a just-visible
    difference is about 2. NaN when the rings fall mostly outside the frame.

    source_frame, output_frame: (H, W, 3) uint8 RGB of the same size (the output may be
    larger by the even-size padding); landmarks_source: (5, 2) frame px.
    """
    affine = estimate_affine(landmarks_source, rings.size, rings.coverage)
    height, width = source_frame.shape[:2]
    inside = cv2.warpAffine(
        np.ones((height, width), np.uint8),
        affine,
        (rings.size, rings.size),
        flags=cv2.INTER_NEAREST,
    ).astype(bool)
    inner, outer = rings.inner & inside, rings.outer & inside
    if inner.sum() < 0.5 * rings.inner.sum() or outer.sum() < 0.5 * rings.outer.sum():
        return math.nan
    steps = []
    for frame in (output_frame[:height, :width], source_frame):
        lab = _lab_crop(np.ascontiguousarray(frame), affine, rings.size)
        steps.append(lab[inner].mean(0) - lab[outer].mean(0))
    return float(np.linalg.norm(steps[0] - steps[1]))


class Embedder(Protocol):
    """An identity embedder (`ops.identity.IdentityEmbedder`): one face of a frame -> (D,)."""

    def embed_frame(self, frame: Frame, landmarks_frame: Landmarks) -> np.ndarray: ...


class SwapScorer:
    """Per-frame metrics of output frames against their source frames.

    Args:
        detect: frames -> kept detections per frame (the render's detector and filters).
        embedder: an `ops.identity.IdentityEmbedder` (anything with `embed_frame`).
        gallery_a, gallery_b: (M, D) float32 embeddings of faces of A and of B.
        rings: where the seam is measured (`seam_rings` with the render's mask settings).
        distances: `ops.identity.identity_distances` (embeddings, gallery) -> (N,).
    """

    def __init__(
        self,
        detect: Callable[[list[Frame]], list[list[Detection]]],
        embedder: Embedder,
        gallery_a: np.ndarray,
        gallery_b: np.ndarray,
        rings: SeamRings,
        distances: Callable[[np.ndarray, np.ndarray], np.ndarray],
    ) -> None:
        self.detect = detect
        self.embedder = embedder
        self.galleries = (np.asarray(gallery_a), np.asarray(gallery_b))
        self.rings = rings
        self.distances = distances

    def score(
        self, items: Sequence[tuple[int, Frame, Landmarks | None, Frame]], video: str
    ) -> list[dict]:
        """Frame records (`FRAMES_SCHEMA`) of (frame number, source frame, source face's
        landmarks or None, output frame) items; frames without a source face get a record
        with only `source_face` False."""
        with_face = [item for item in items if item[2] is not None]
        found = dict(
            zip(
                [item[0] for item in with_face],
                self.detect([item[3] for item in with_face]) if with_face else [],
                strict=True,
            )
        )
        records = []
        for index, source_frame, landmarks_source, output_frame in items:
            record = {schema.VIDEO: video, schema.FRAME: int(index), SOURCE_FACE: False}
            record[OUTPUT_FACE] = False
            if landmarks_source is not None:
                record |= self._score_face(
                    source_frame, np.asarray(landmarks_source), output_frame, found[index]
                )
            records.append(record)
        return records

    def _score_face(
        self,
        source_frame: Frame,
        landmarks_source: Landmarks,
        output_frame: Frame,
        candidates: list[Detection],
    ) -> dict:
        landmarks_source = landmarks_source.reshape(5, 2).astype(np.float32)
        match = match_face(landmarks_source, candidates, 0.5 * face_scale(landmarks_source))
        # no face found on the output: embed what was pasted where the source face was
        landmarks_output = landmarks_source if match is None else match.landmarks.reshape(5, 2)
        embedding = np.asarray(self.embedder.embed_frame(output_frame, landmarks_output))[None]
        distance_a, distance_b = (float(self.distances(embedding, g)[0]) for g in self.galleries)
        pose = (
            None
            if match is None
            else float(pose_errors(landmarks_output[None], landmarks_source[None])[0])
        )
        seam = seam_delta_e(source_frame, output_frame, landmarks_source, self.rings)
        return {
            SOURCE_FACE: True,
            OUTPUT_FACE: match is not None,
            LANDMARKS_SOURCE: landmarks_source.reshape(-1).tolist(),
            LANDMARKS_OUTPUT: None if match is None else landmarks_output.reshape(-1).tolist(),
            DISTANCE_A: distance_a,
            DISTANCE_B: distance_b,
            POSE_ERROR: pose,
            SEAM: None if math.isnan(seam) else seam,
        }


def _mean(values: np.ndarray) -> float | None:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else None


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def summarize_frames(frames: pa.Table, direction: str, step: int = 1) -> dict:
    """One video's metrics (the `EVALUATION_SCHEMA` metric columns) from its frame records.

    `direction` a2b: the target is B and the source A (render put B's face on A's video);
    b2a the reverse. `step`: the frame stride the records were sampled at (for jitter).
    Metrics with no frame to average are None.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    table = frames.sort_by(schema.FRAME)
    column = {name: table[name].to_numpy(zero_copy_only=False) for name in table.column_names}
    swapped = column[SOURCE_FACE].astype(bool)
    both = swapped & column[OUTPUT_FACE].astype(bool)
    target, source = (DISTANCE_B, DISTANCE_A) if direction == "a2b" else (DISTANCE_A, DISTANCE_B)
    d_target = column[target][swapped].astype(np.float64)
    d_source = column[source][swapped].astype(np.float64)
    jitter = motion = math.nan
    if both.sum() >= 3:
        jitter, motion = landmark_motion(
            np.stack(column[LANDMARKS_OUTPUT][both]),
            np.stack(column[LANDMARKS_SOURCE][both]),
            column[schema.FRAME][both],
            step,
        )
    return {
        schema.FRAMES: int(table.num_rows),
        SWAPPED_FRAMES: int(swapped.sum()),
        OUTPUT_FACES: int(both.sum()),
        ID_RETRIEVAL: float((d_target < d_source).mean()) if swapped.any() else None,
        ID_MARGIN: _mean(d_source - d_target),
        DISTANCE_TARGET: _mean(d_target),
        DISTANCE_SOURCE: _mean(d_source),
        POSE_ERROR: _mean(column[POSE_ERROR][both].astype(np.float64)),
        JITTER: _finite(jitter),
        MOTION: _finite(motion),
        SEAM: _mean(column[SEAM][swapped].astype(np.float64)),
    }


def frames_table(records: list[dict]) -> pa.Table:
    """Frame records -> a `FRAMES_SCHEMA` table (missing keys are null)."""
    return pa.Table.from_pylist(
        [{name: r.get(name) for name in FRAMES_SCHEMA.names} for r in records],
        schema=FRAMES_SCHEMA,
    )


def table_bytes(table: pa.Table) -> bytes:
    """A table as Parquet bytes (what crosses Ray and is written to storage)."""
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def read_table_bytes(payload: bytes) -> pa.Table:
    return pq.read_table(io.BytesIO(payload))
