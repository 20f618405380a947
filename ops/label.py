"""The visible "synthetic" label drawn on swapped frames (on by default; `--no-label` skips it).

The label goes in the bottom-left corner on a dark translucent box, sized from the frame
height, so it stays readable from 144p to 4K. Only frames that were altered get it: a
frame without a face passes through untouched.
"""

from __future__ import annotations

import cv2
import numpy as np

from ops.types import Frame

LABEL_TEXT = "SYNTHETIC"


def draw_label(frame: Frame, text: str = LABEL_TEXT) -> Frame:
    """Return a copy of an (H, W, 3) uint8 RGB frame with `text` in its bottom-left corner."""
    height, width = frame.shape[:2]
    scale = max(0.3, height / 720.0)
    thickness = max(1, int(round(2 * scale)))
    font = cv2.FONT_HERSHEY_SIMPLEX
    (text_w, text_h), baseline = cv2.getTextSize(text, font, 0.8 * scale, thickness)
    pad = max(2, int(round(6 * scale)))
    x0, y1 = pad, height - pad
    x1, y0 = min(width, x0 + text_w + 2 * pad), max(0, y1 - text_h - baseline - 2 * pad)
    out = frame.copy()
    box = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = (box * 0.45).astype(np.uint8)  # darken behind the text
    origin = (x0 + pad, y1 - pad - baseline // 2)
    cv2.putText(out, text, origin, font, 0.8 * scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return out
