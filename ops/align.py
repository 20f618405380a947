"""Similarity alignment of 5 face landmarks to a canonical template (Umeyama 1991).

The template is the widely used 5-point layout of 112 px face-recognition crops
(eyes, nose tip, mouth corners), normalised to [0, 1]. `coverage` zooms out around the
crop centre: 1.0 is the tight recognition crop (brows to chin); the default 1.5 keeps the
forehead, jaw and cheeks that a swap must repaint. Affines are (2, 3) float32, frame -> crop.
"""

from __future__ import annotations

import cv2
import numpy as np

from ops.types import Affine, Frame, Landmarks

# 5-point reference in a 112 x 112 crop (right eye, left eye, nose, right mouth, left mouth).
REFERENCE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)
MIN_SIZE, MAX_SIZE = 32, 1024


def template_landmarks(size: int, coverage: float = 1.5) -> Landmarks:
    """The canonical 5 landmarks in crop pixels for a `size` x `size` crop, (5, 2) float32."""
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size must be in [{MIN_SIZE}, {MAX_SIZE}] px, got {size}")
    if not 0.5 <= coverage <= 4.0:
        raise ValueError(f"coverage must be in [0.5, 4.0], got {coverage}")
    normalised = REFERENCE_112 / 112.0
    return ((0.5 + (normalised - 0.5) / coverage) * size).astype(np.float32)


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, translation) src -> dst.

    Args:
        src, dst: (N, 2) point sets.
    Returns:
        (2, 3) float64 matrix M with dst ~= M[:, :2] @ src + M[:, 2].
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(
            f"need two (N>=2, 2) point sets of equal shape, got {src.shape}, {dst.shape}"
        )
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:  # avoid a reflection
        sign[1, 1] = -1
    rotation = u @ sign @ vt
    variance = (src_c**2).sum() / len(src)
    if variance <= 1e-12:
        raise ValueError("landmarks are degenerate (all points coincide)")
    scale = np.trace(np.diag(singular) @ sign) / variance
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]])


def estimate_affine(landmarks_frame: Landmarks, size: int, coverage: float = 1.5) -> Affine:
    """Affine (2, 3) float32 mapping frame pixels to a `size` crop with the face on the template."""
    landmarks_frame = np.asarray(landmarks_frame, dtype=np.float64).reshape(-1, 2)
    if landmarks_frame.shape != (5, 2):
        raise ValueError(f"landmarks must be (5, 2), got {landmarks_frame.shape}")
    return umeyama(landmarks_frame, template_landmarks(size, coverage)).astype(np.float32)


def warp_face(frame: Frame, affine: Affine, size: int) -> Frame:
    """Cut the aligned `size` x `size` crop out of an (H, W, 3) uint8 frame."""
    return cv2.warpAffine(
        frame, affine, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101
    )


def align_face(
    frame: Frame, landmarks_frame: Landmarks, size: int, coverage: float = 1.5
) -> tuple[Frame, Affine]:
    """Return (crop, affine): the (size, size, 3) uint8 crop and its frame -> crop affine."""
    affine = estimate_affine(landmarks_frame, size, coverage)
    return warp_face(frame, affine, size), affine


def invert_affine(affine: Affine) -> Affine:
    """The crop -> frame affine of a frame -> crop affine, (2, 3) float32."""
    return cv2.invertAffineTransform(np.asarray(affine, dtype=np.float64)).astype(np.float32)


def transform_points(points: np.ndarray, affine: Affine) -> np.ndarray:
    """Apply a (2, 3) affine to (N, 2) points; returns (N, 2) float32."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    affine = np.asarray(affine, dtype=np.float64)
    return (points @ affine[:, :2].T + affine[:, 2]).astype(np.float32)
