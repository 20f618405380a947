"""Invisible, keyed provenance mark on the swapped face, and its detector.

Where: a key picks a pseudo-random pattern in a fixed canonical face crop (`WM_SIZE` px at
coverage `WM_COVERAGE`, the alignment of `ops.align`), inside a soft oval a little smaller
than the face (`REGION_SCALE` of the template oval). That is the part of the frame the
decoder painted, so the mark never touches background or hair, and it moves, turns and
scales with the face.

What: band-limited noise (a difference of Gaussians with sigmas `BAND_SIGMAS` canonical px,
a fine grain of periods of roughly 4 to 10 canonical px), about 3 grey levels RMS on the
luma. A decoder's face is smooth at that grain, so the face itself hardly correlates with
the pattern. The strength follows the face's size in the frame (`size_factor`): a small
face, whose grain is fine in frame px and near what H.264 drops once the frame is
halved, gets more; a large face, whose coarser grain is easier to see, gets less.

Host compensation: the face the mark lands on correlates a little with any pattern, by
chance, and that chance part does not average out over frames (the face looks the same in
every frame of canonical crop). The embedder measures it and adjusts the frame's strength
(within [0.5, 1.5] x) so that the key's correlation is what the strength alone would give.

Detection: re-detect and re-align each face; search a small grid of scales and angles
around that alignment (`SEARCH_SCALES`, `SEARCH_ANGLES`; a detector's landmarks on a
halved or re-encoded frame land a few percent off those on the original) and shifts of up
to `MAX_SHIFT` px; band-pass the crop's luma the same way; correlate it with the key's
pattern and with `N_DECOYS` patterns of other keys, each taking its best over the same
search. Correlations are averaged over frames. The decoys give the null distribution on
the same frames (same face, same codec noise, same search), so the score is a z-score,
(key - mean(decoys)) / std(decoys): an unmarked video scores like one more decoy, about
N(0, 1) (a Student t with N_DECOYS - 1 degrees of freedom), and `DEFAULT_THRESHOLD` = 4.5
puts the false-positive rate near 1e-5 per video.

Little evidence: one or two frames with a face must score `FEW_FRAMES_MARGIN` more, since a
single face's chance match does not average out (measured with `python -m benchmarks
watermark --null`: over all 7472 frames with a face of the unmarked media set, each scored
as a one-frame clip, the highest z is 2.9; over every run of 2 frames, 3.0). Below the
threshold, fewer than `MIN_FRAMES_TO_CLEAR` frames is "undecided", not "not marked": one
frame of a marked video re-encoded at CRF 28 often scores low, while from 3 frames on its
lowest-scoring run reached about half of the whole clip's score.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from ops.align import estimate_affine
from ops.blend import paste_region, template_oval, warp_to_frame
from ops.types import Affine, Frame, Landmarks

WM_SIZE = 128  # canonical crop side in px
WM_COVERAGE = 1.5  # canonical crop coverage (ops.align)
REGION_SCALE = 0.9  # the marked oval, relative to the template face oval
N_DECOYS = 127
MAX_SHIFT = 2  # canonical px searched around each aligned crop
SEARCH_SCALES = (0.92, 0.96, 1.0, 1.04, 1.08)
SEARCH_ANGLES = (-3.0, 0.0, 3.0)  # degrees
DEFAULT_KEY = "rayswap"
DEFAULT_STRENGTH = 3.0  # RMS of the added luma, in grey levels, inside the region
DEFAULT_THRESHOLD = 4.5
FEW_FRAMES_MARGIN = {1: 1.5, 2: 1.0}  # extra z for 1 or 2 frames with a face: 6.0, 5.5
MIN_FRAMES_TO_CLEAR = 3  # frames with a face needed to call a video not marked
BAND_SIGMAS = (0.6, 1.6)  # Gaussian sigmas of the difference-of-Gaussians band-pass, in px
COMPENSATION_RANGE = (0.5, 1.5)  # bounds of the host-compensated strength, x strength
SIZE_REFERENCE = 0.26  # canonical px per frame px of a face that gets `strength` as given
SIZE_FACTOR_RANGE = (0.7, 1.4)  # bounds of the face-size multiplier of the strength


def _band_pass(image: np.ndarray) -> np.ndarray:
    fine, coarse = BAND_SIGMAS
    return cv2.GaussianBlur(image, (0, 0), fine) - cv2.GaussianBlur(image, (0, 0), coarse)


@lru_cache(maxsize=4)
def watermark_region() -> np.ndarray:
    """Where the mark lives in the canonical crop: a feathered face oval; (S, S) float32."""
    oval = template_oval(WM_SIZE, WM_COVERAGE, REGION_SCALE)
    return cv2.GaussianBlur(oval, (0, 0), 2.0)


def key_seed(key: str, index: int = 0) -> int:
    """A 64-bit seed from a key string and a pattern index (0 = the key's own pattern)."""
    digest = hashlib.sha256(f"rayswap-watermark:{key}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


@lru_cache(maxsize=8)
def watermark_patterns(key: str, count: int = 1 + N_DECOYS) -> np.ndarray:
    """Patterns of `key`: row 0 is the key's own, the rest are decoys; (count, S, S) float32.

    Each is band-limited noise times the region, scaled to unit RMS inside the region.
    """
    region = watermark_region()
    patterns = np.empty((count, WM_SIZE, WM_SIZE), dtype=np.float32)
    for index in range(count):
        rng = np.random.default_rng(key_seed(key, index))
        noise = rng.standard_normal((WM_SIZE, WM_SIZE)).astype(np.float32)
        pattern = _band_pass(noise) * region
        if index > 0:  # decoys orthogonal to the key's pattern: a mark must not move them
            own = patterns[0]
            pattern = pattern - own * ((pattern * own).sum() / (own * own).sum())
        rms = np.sqrt((pattern**2).sum() / region.sum())
        patterns[index] = pattern / rms
    return patterns


def watermark_affine(landmarks_frame: Landmarks) -> Affine:
    """Frame -> canonical watermark crop affine for a face's 5 landmarks, (2, 3) float32."""
    return estimate_affine(landmarks_frame, WM_SIZE, WM_COVERAGE)


def _add_in_crop(frame: Frame, affine: Affine, delta: np.ndarray) -> Frame:
    """Add a canonical-crop luma `delta` (S, S), zero outside `_support_box`, to the frame
    through the inverse affine; only the frame box under the support box is touched."""
    height, width = frame.shape[:2]
    rows, cols = _support_box()
    inverse = cv2.invertAffineTransform(np.asarray(affine, np.float64))
    support = (cols.start, rows.start, cols.stop, rows.stop)
    box = paste_region(inverse, WM_SIZE, height, width, support)
    x0, y0, x1, y1 = box
    out = frame.copy()
    if x1 <= x0 or y1 <= y0:
        return out
    delta_box = warp_to_frame(delta, affine, box)
    region = out[y0:y1, x0:x1].astype(np.float32) + delta_box[..., None]  # same on R, G, B
    out[y0:y1, x0:x1] = np.clip(np.rint(region), 0, 255).astype(np.uint8)
    return out


def _key_correlation(luma: np.ndarray, pattern: np.ndarray) -> float:
    residual = luma_residual(luma)
    norm = float(np.linalg.norm(residual)) * float(np.linalg.norm(pattern)) + 1e-9
    return float((residual * pattern).sum()) / norm


def size_factor(affine: Affine) -> float:
    """Strength multiplier for the face's size in the frame, in `SIZE_FACTOR_RANGE`.

    The pattern is fixed in canonical px, so on a large face its grain is coarse in frame
    px: easier to see, and easy for a codec to keep after halving the frame. On a small
    face it is fine: hard to see, and near what H.264 drops once the frame is halved. So
    large faces get less than `strength` and small ones more, in proportion to canonical
    px per frame px, relative to `SIZE_REFERENCE`.
    """
    canonical_per_frame = float(np.sqrt(abs(np.linalg.det(np.asarray(affine)[:, :2]))))
    low, high = SIZE_FACTOR_RANGE
    return float(np.clip(canonical_per_frame / SIZE_REFERENCE, low, high))


def embed_watermark(
    frame: Frame,
    landmarks_frame: Landmarks,
    key: str = DEFAULT_KEY,
    strength: float = DEFAULT_STRENGTH,
) -> Frame:
    """Add the key's pattern to the luma of one face; returns a new (H, W, 3) uint8 frame.

    Args:
        frame: (H, W, 3) uint8 RGB with the (swapped) face.
        landmarks_frame: (5, 2) landmarks of that face in frame px.
        strength: RMS of the added grey levels inside the region for a face of the
            reference size; scaled by `size_factor`, then moved within
            `COMPENSATION_RANGE` by host compensation.
    """
    affine = watermark_affine(landmarks_frame)
    pattern = watermark_patterns(key)[0]
    strength = strength * size_factor(affine)
    host = _key_correlation(crop_luma(frame, affine), pattern)
    probe = _add_in_crop(frame, affine, pattern * np.float32(strength))  # the full round trip
    gain = (_key_correlation(crop_luma(probe, affine), pattern) - host) / strength  # per level
    if gain <= 0:
        return probe
    low, high = COMPENSATION_RANGE
    amplitude = float(np.clip(strength - host / gain, low * strength, high * strength))
    return _add_in_crop(frame, affine, pattern * np.float32(amplitude))


def crop_luma(frame: Frame, affine: Affine) -> np.ndarray:
    """The luma of a frame's canonical crop; (S, S) float32."""
    crop = cv2.warpAffine(
        frame, affine, (WM_SIZE, WM_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101
    )
    return cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)


def luma_residual(luma: np.ndarray) -> np.ndarray:
    """Band-passed luma of a canonical crop, contrast-normalised; (S, S) float32.

    Dividing by the local band energy keeps strong edges (eyes, mouth, hair line) from
    dominating the correlation; the mark is spread evenly, the edges are not.
    """
    band = _band_pass(luma)
    energy = np.sqrt(cv2.GaussianBlur(band * band, (0, 0), 4.0))
    return band / (energy + 2.0) * watermark_region()


def crop_residual(frame: Frame, affine: Affine) -> np.ndarray:
    """`luma_residual` of the frame's crop under `affine`; (S, S) float32."""
    return luma_residual(crop_luma(frame, affine))


@lru_cache(maxsize=4)
def _support_box() -> tuple[slice, slice]:
    """Rows and columns of the crop that hold the region, with `MAX_SHIFT` + 1 px of zeros
    around it and rounded up to multiples of 8 (a quick FFT size).

    Patterns and residuals are zero outside the region, so correlating inside this box
    gives exactly the full crop's values for shifts up to `MAX_SHIFT`, at a fraction of
    the cost.
    """
    spans = []
    for axis in (1, 0):  # rows, then columns
        inside = np.nonzero(watermark_region().max(axis) > 0)[0]
        lo, hi = int(inside[0]) - MAX_SHIFT - 1, int(inside[-1]) + MAX_SHIFT + 2
        length = min(WM_SIZE, -(-(hi - lo) // 8) * 8)
        lo = max(0, min(lo - (length - (hi - lo)) // 2, WM_SIZE - length))
        spans.append(slice(lo, lo + length))
    return spans[0], spans[1]


@lru_cache(maxsize=8)
def _pattern_spectra(key: str) -> np.ndarray:
    """Conjugate 2-D spectra of the key's patterns inside `_support_box`, complex."""
    rows, cols = _support_box()
    return np.conj(np.fft.rfft2(watermark_patterns(key)[:, rows, cols]))


def correlate_watermark(
    residual: np.ndarray, key: str = DEFAULT_KEY, max_shift: int = MAX_SHIFT
) -> np.ndarray:
    """Normalised correlations of a residual with the key's patterns; (1 + N_DECOYS,) float32.

    Each pattern's value is its best correlation over shifts of up to `max_shift` canonical
    px. Decoys get the same maximum, so the null distribution stays fair.
    """
    patterns = watermark_patterns(key)
    norm = float(np.linalg.norm(residual)) * float(np.linalg.norm(patterns[0])) + 1e-9
    if max_shift <= 0:
        return (patterns.reshape(len(patterns), -1) @ residual.reshape(-1)) / norm
    rows, cols = _support_box()
    box = residual[rows, cols].astype(np.float32)
    spectrum = np.fft.rfft2(box)
    maps = np.fft.irfft2(spectrum[None] * _pattern_spectra(key), s=box.shape)  # (P, h, w)
    offsets = np.r_[0 : max_shift + 1, -max_shift:0]  # circular shifts -max..max
    window = maps[:, offsets][:, :, offsets]  # (P, 2m+1, 2m+1)
    return (window.reshape(len(patterns), -1).max(1) / norm).astype(np.float32)


def correlate_face(frame: Frame, landmarks_frame: Landmarks, key: str = DEFAULT_KEY) -> np.ndarray:
    """Best correlation of each pattern over the registration search; (1 + N_DECOYS,) float32.

    The landmark alignment is tried at every scale in `SEARCH_SCALES` and angle in
    `SEARCH_ANGLES` (about the crop's centre), each with shifts of up to `MAX_SHIFT` px.
    """
    base = np.vstack([watermark_affine(landmarks_frame).astype(np.float64), [0.0, 0.0, 1.0]])
    centre = (WM_SIZE / 2.0, WM_SIZE / 2.0)
    best = None
    for scale in SEARCH_SCALES:
        for angle in SEARCH_ANGLES:
            nudge = np.vstack([cv2.getRotationMatrix2D(centre, angle, scale), [0.0, 0.0, 1.0]])
            affine = (nudge @ base)[:2].astype(np.float32)
            values = correlate_watermark(crop_residual(frame, affine), key)
            best = values if best is None else np.maximum(best, values)
    return best


MARKED, NOT_MARKED, UNDECIDED = "marked", "not_marked", "undecided"


@dataclass(frozen=True)
class WatermarkVerdict:
    """The decision over a video: z-score of the key against its decoys.

    `verdict` is MARKED when the score reaches `threshold`, NOT_MARKED when it does not
    over at least `MIN_FRAMES_TO_CLEAR` frames with a face, and UNDECIDED when it does not
    over fewer: too little evidence to rule a mark out.
    """

    verdict: str
    score: float  # z-score; about N(0, 1) for unmarked video
    frames: int  # frames with a face that were correlated
    mean_correlation: float  # average normalised correlation with the key's pattern
    threshold: float  # the z-score this many frames had to reach (`threshold_for_frames`)

    @property
    def marked(self) -> bool:
        return self.verdict == MARKED


def watermark_scores(mean_correlations: np.ndarray) -> np.ndarray:
    """z-scores of the key against its decoys; (W, 1 + N_DECOYS) means -> (W,) float64.

    Each row is per-frame correlations averaged over the frames of one clip (or window).
    """
    means = np.asarray(mean_correlations, dtype=np.float64).reshape(-1, 1 + N_DECOYS)
    decoys = means[:, 1:]
    spread = decoys.std(axis=1, ddof=1) + 1e-12
    return (means[:, 0] - decoys.mean(axis=1)) / spread


def threshold_for_frames(frames: int, threshold: float = DEFAULT_THRESHOLD) -> float:
    """The z-score a clip with `frames` frames with a face must reach to count as marked.

    `threshold` for `MIN_FRAMES_TO_CLEAR` frames or more; more for fewer (see
    `FEW_FRAMES_MARGIN`), where one frame's chance match weighs more.
    """
    return threshold + FEW_FRAMES_MARGIN.get(frames, 0.0)


def decide_watermark(
    correlations: np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
    min_frames: int = MIN_FRAMES_TO_CLEAR,
) -> WatermarkVerdict:
    """Decide from per-frame correlations (F, 1 + N_DECOYS); see `WatermarkVerdict`.

    Args:
        threshold: the z-score for `min_frames` frames or more (`threshold_for_frames`).
        min_frames: frames with a face below which a low score is UNDECIDED.
    """
    correlations = np.asarray(correlations, dtype=np.float64).reshape(-1, 1 + N_DECOYS)
    frames = len(correlations)
    needed = threshold_for_frames(frames, threshold)
    if frames == 0:
        return WatermarkVerdict(UNDECIDED, 0.0, 0, 0.0, needed)
    mean = correlations.mean(0)
    score = float(watermark_scores(mean[None])[0])
    if score >= needed:
        verdict = MARKED
    else:
        verdict = UNDECIDED if frames < min_frames else NOT_MARKED
    return WatermarkVerdict(verdict, score, frames, float(mean[0]), needed)
