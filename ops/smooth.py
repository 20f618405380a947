"""Temporal smoothing of face landmarks over a centred window of frames.

Detectors jitter by a pixel or two from frame to frame; an affine built from raw landmarks
makes the pasted face shimmer. Render therefore averages each face's landmarks with the
same face in the `radius` frames before and after (Gaussian weights, so no lag: the window
is centred). The window is finite, so a frame's result depends only on frames within
`radius` of it: a segment that also decodes `radius` frames of context on each side gets
exactly the landmarks a single pass over the whole video gets, and segments join without a
seam.

The same window gives a temporal-consistency check: a face is swapped only if the same face
is found in at least `min_support` other frames of the window, which drops one-frame
detector false positives (a bird's head, a poster).
"""

from __future__ import annotations

import numpy as np

from ops.types import Detection, Landmarks


def face_scale(landmarks: Landmarks) -> float:
    """Size of a face in px: distance from the eye midpoint to the mouth midpoint."""
    points = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    return float(np.linalg.norm(points[:2].mean(0) - points[3:].mean(0))) + 1e-6


def match_face(target: Landmarks, candidates: list[Detection], max_dist: float) -> Detection | None:
    """The candidate whose landmark centroid is nearest `target`'s, if within `max_dist` px."""
    if not candidates:
        return None
    centre = np.asarray(target, dtype=np.float64).reshape(5, 2).mean(0)
    dists = [np.linalg.norm(c.landmarks.reshape(5, 2).mean(0) - centre) for c in candidates]
    best = int(np.argmin(dists))
    return candidates[best] if dists[best] <= max_dist else None


def smooth_faces(
    window: list[list[Detection]],
    centre: int,
    radius: int = 3,
    min_support: int = 1,
) -> list[tuple[Detection, Landmarks]]:
    """Smoothed landmarks of every supported face in frame `centre` of a window.

    Args:
        window: detections of consecutive frames; `window[centre]` is the frame to smooth.
            Frames beyond the window's ends are treated as absent (the video's ends).
        radius: frames on each side that take part (0 = no smoothing).
        min_support: other frames in the window that must contain the same face; capped at
            the number of other frames available, so a one-frame video still swaps.
    Returns:
        (detection, landmarks (5, 2) float32 in frame px) per kept face of frame `centre`.
    """
    lo, hi = max(0, centre - radius), min(len(window), centre + radius + 1)
    sigma = max(radius / 2.0, 0.5)
    needed = min(min_support, hi - lo - 1)
    kept = []
    for detection in window[centre]:
        landmarks = detection.landmarks.reshape(5, 2).astype(np.float64)
        scale = face_scale(landmarks)
        total = np.zeros((5, 2))
        weight_sum, support = 0.0, 0
        for index in range(lo, hi):
            offset = index - centre
            if offset == 0:
                match = detection
            else:
                max_dist = 0.35 * scale * (1 + abs(offset))
                match = match_face(landmarks, window[index], max_dist)
                if match is None:
                    continue
                support += 1
            weight = float(np.exp(-(offset**2) / (2 * sigma**2)))
            total += weight * match.landmarks.reshape(5, 2)
            weight_sum += weight
        if support >= needed:
            kept.append((detection, (total / weight_sum).astype(np.float32)))
    return kept
