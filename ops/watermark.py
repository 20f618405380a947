"""Invisible, keyed provenance mark in canonical face coordinates, and its detector.

Embedding: a key picks a pseudo-random pattern in a fixed canonical face crop
(`WM_SIZE` px at coverage `WM_COVERAGE`, the alignment of `ops.align`). The pattern is
band-limited to mid frequencies (periods of roughly 6 to 25 canonical px, which H.264 at
CRF 28 keeps and which survive halving the frame) and covers the aligned crop.
It is added to the luma of the swapped face, a few grey levels strong, through the inverse
of the face's alignment affine, so it moves, turns and scales with the face.

Detection: re-detect and re-align each face, which undoes crops, shifts and rescaling;
band-pass the crop's luma the same way; correlate it with the key's pattern and with
`N_DECOYS` patterns of other keys (best over shifts of up to `MAX_SHIFT` px, the same for
all patterns). One frame is a weak signal, so correlations are averaged
over many frames. The decoys give the null distribution on the same frames (same face
content, same codec noise, same temporal correlation), so the score is a z-score:
(true - mean(decoys)) / std(decoys). An unmarked video scores like one more decoy
(about N(0, 1), in practice a Student t with N_DECOYS - 1 degrees of freedom);
`DEFAULT_THRESHOLD` = 4.5 puts the false-positive rate near 1e-5 per video.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from ops.align import estimate_affine
from ops.blend import paste_region
from ops.types import Affine, Frame, Landmarks

WM_SIZE = 128  # canonical crop side in px
WM_COVERAGE = 1.5  # canonical crop coverage (ops.align)
N_DECOYS = 127
MAX_SHIFT = 2  # canonical px searched around the re-detected alignment
REGION_BORDER = 8  # px of the canonical crop left unmarked at each edge
DEFAULT_KEY = "rayswap"
DEFAULT_STRENGTH = 4.0  # RMS of the added luma, in grey levels, inside the region
DEFAULT_THRESHOLD = 4.5
BAND_SIGMAS = (1.2, 4.0)  # Gaussian sigmas of the difference-of-Gaussians band-pass, in px


def _band_pass(image: np.ndarray) -> np.ndarray:
    fine, coarse = BAND_SIGMAS
    return cv2.GaussianBlur(image, (0, 0), fine) - cv2.GaussianBlur(image, (0, 0), coarse)


@lru_cache(maxsize=4)
def watermark_region() -> np.ndarray:
    """Where the mark lives in the canonical crop: all of it but a soft border; (S, S) float32.

    The whole crop (face, hair and the background next to the face) holds several times
    the independent samples of the face oval alone, which is what the verdict grows with.
    """
    region = np.zeros((WM_SIZE, WM_SIZE), dtype=np.float32)
    region[REGION_BORDER:-REGION_BORDER, REGION_BORDER:-REGION_BORDER] = 1.0
    return cv2.GaussianBlur(region, (0, 0), 3.0)


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
        strength: RMS of the added grey levels inside the face oval.
    """
    affine = watermark_affine(landmarks_frame)
    delta = watermark_patterns(key)[0] * np.float32(strength)  # (S, S) grey levels
    height, width = frame.shape[:2]
    x0, y0, x1, y1 = paste_region(cv2.invertAffineTransform(affine), WM_SIZE, height, width)
    out = frame.copy()
    if x1 <= x0 or y1 <= y0:
        return out
    shifted = np.asarray(affine, np.float64).copy()
    shifted[:, 2] += shifted[:, :2] @ np.array([x0, y0], dtype=np.float64)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    delta_box = cv2.warpAffine(delta, shifted, (x1 - x0, y1 - y0), flags=flags, borderValue=0.0)
    region = out[y0:y1, x0:x1].astype(np.float32) + delta_box[..., None]  # same on R, G, B
    out[y0:y1, x0:x1] = np.clip(np.rint(region), 0, 255).astype(np.uint8)
    return out


def watermark_residual(frame: Frame, landmarks_frame: Landmarks) -> np.ndarray:
    """The band-passed luma of a face's canonical crop, contrast-normalised; (S, S) float32.

    Dividing by the local band energy keeps strong edges (eyes, mouth, hair line) from
    dominating the correlation; the mark is spread evenly, the edges are not.
    """
    affine = watermark_affine(landmarks_frame)
    crop = cv2.warpAffine(
        frame, affine, (WM_SIZE, WM_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101
    )
    luma = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
    band = _band_pass(luma)
    energy = np.sqrt(cv2.GaussianBlur(band * band, (0, 0), 4.0))
    return band / (energy + 2.0) * watermark_region()


@lru_cache(maxsize=8)
def _pattern_spectra(key: str) -> np.ndarray:
    """Conjugate 2-D spectra of the key's patterns, (1 + N_DECOYS, S, S // 2 + 1) complex."""
    return np.conj(np.fft.rfft2(watermark_patterns(key)))


def correlate_watermark(
    residual: np.ndarray, key: str = DEFAULT_KEY, max_shift: int = MAX_SHIFT
) -> np.ndarray:
    """Normalised correlations of a residual with the key's patterns; (1 + N_DECOYS,) float32.

    Each pattern's value is its best correlation over shifts of up to `max_shift` canonical
    px, which absorbs the detector's landmark jitter between render and verify. Decoys get
    the same maximum, so the null distribution stays fair.
    """
    patterns = watermark_patterns(key)
    norm = float(np.linalg.norm(residual)) * float(np.linalg.norm(patterns[0])) + 1e-9
    if max_shift <= 0:
        return (patterns.reshape(len(patterns), -1) @ residual.reshape(-1)) / norm
    spectrum = np.fft.rfft2(residual.astype(np.float32))
    maps = np.fft.irfft2(spectrum[None] * _pattern_spectra(key), s=residual.shape)  # (P, S, S)
    offsets = np.r_[0 : max_shift + 1, -max_shift:0]  # circular shifts -max..max
    window = maps[:, offsets][:, :, offsets]  # (P, 2m+1, 2m+1)
    return (window.reshape(len(patterns), -1).max(1) / norm).astype(np.float32)


@dataclass(frozen=True)
class WatermarkVerdict:
    """The decision over a video: z-score of the key against its decoys."""

    marked: bool
    score: float  # z-score; about N(0, 1) for unmarked video
    frames: int  # frames with a face that were correlated
    mean_correlation: float  # average normalised correlation with the key's pattern


def decide_watermark(
    correlations: np.ndarray, threshold: float = DEFAULT_THRESHOLD, min_frames: int = 3
) -> WatermarkVerdict:
    """Decide from per-frame correlations (F, 1 + N_DECOYS): marked when z >= threshold."""
    correlations = np.asarray(correlations, dtype=np.float64).reshape(-1, 1 + N_DECOYS)
    frames = len(correlations)
    if frames == 0:
        return WatermarkVerdict(False, 0.0, 0, 0.0)
    mean = correlations.mean(0)
    decoys = mean[1:]
    spread = decoys.std(ddof=1) + 1e-12
    score = float((mean[0] - decoys.mean()) / spread)
    return WatermarkVerdict(score >= threshold and frames >= min_frames, score, frames, mean[0])
