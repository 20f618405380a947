"""curves.png of a training run: its metrics lines drawn against the step.

    png = curves_png(records)   # records: the JSON lines of metrics.jsonl, in order

One panel per group of numbers, each series in its own colour with its name in the
legend, the step on the x axis and the panel's range printed at its corners: the losses
of a and b, the learning rate, and (when the lines carry a "holdout" score) the held-out
swap quality of `rayswap train` at the step of each scored checkpoint. Drawn with OpenCV,
so it needs no plotting library.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

CURVES_FILE = "curves.png"
PANEL_W, PANEL_H, MARGIN = 640, 200, 44
COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]
GROUPS = (("loss", ("loss_a", "loss_b")), ("learning rate", ("lr",)))
HOLDOUT_GROUPS = (
    ("held-out identity retrieval", ("holdout_id_retrieval_a2b", "holdout_id_retrieval_b2a")),
    ("held-out pose error", ("holdout_pose_error_a2b", "holdout_pose_error_b2a")),
)


def _series(records: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    points = [
        (r["step"], r[key])
        for r in records
        if isinstance(r.get(key), int | float) and math.isfinite(r[key])
    ]
    found = np.asarray(points, np.float64).reshape(-1, 2)
    return found[:, 0], found[:, 1]


def _panel(records: list[dict], title: str, keys: tuple[str, ...]) -> np.ndarray:
    image = np.full((PANEL_H, PANEL_W, 3), 255, np.uint8)
    series = {key: _series(records, key) for key in keys}
    series = {key: xy for key, xy in series.items() if len(xy[0])}
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(image, title, (MARGIN, 16), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    if not series:
        return image
    steps = np.concatenate([xy[0] for xy in series.values()])
    values = np.concatenate([xy[1] for xy in series.values()])
    x0, x1 = float(steps.min()), float(max(steps.max(), steps.min() + 1))
    y0, y1 = float(values.min()), float(values.max())
    y1 = y1 if y1 > y0 else y0 + 1e-6
    left, right, top, bottom = MARGIN, PANEL_W - 12, 24, PANEL_H - 24
    cv2.rectangle(image, (left, top), (right, bottom), (180, 180, 180), 1)
    for index, (key, (x, y)) in enumerate(series.items()):
        colour = COLOURS[index % len(COLOURS)]  # RGB: the image is RGB until encoded
        px = left + (x - x0) / (x1 - x0) * (right - left)
        py = bottom - (y - y0) / (y1 - y0) * (bottom - top)
        points = np.stack([px, py], axis=1).round().astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(image, [points], False, colour, 2, cv2.LINE_AA)
        label = f"{key} {y[-1]:.4g}"
        cv2.putText(image, label, (left + 170 * index, 16), font, 0.45, colour, 1, cv2.LINE_AA)
    small = 0.38
    cv2.putText(image, f"{y1:.3g}", (2, top + 10), font, small, (90, 90, 90), 1, cv2.LINE_AA)
    cv2.putText(image, f"{y0:.3g}", (2, bottom), font, small, (90, 90, 90), 1, cv2.LINE_AA)
    cv2.putText(image, f"{x0:.0f}", (left, PANEL_H - 8), font, small, (90, 90, 90), 1)
    last = f"step {x1:.0f}"
    cv2.putText(image, last, (right - 70, PANEL_H - 8), font, small, (90, 90, 90), 1)
    return image


def curves_png(records: list[dict]) -> bytes:
    """The PNG of every panel with data, stacked; one empty loss panel when there is none."""
    scores = [r["holdout"] for r in records if "error" not in r.get("holdout", {"error": 1})]
    panels = [_panel(records, title, keys) for title, keys in GROUPS]
    if scores:
        panels += [_panel(scores, title, keys) for title, keys in HOLDOUT_GROUPS]
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(np.vstack(panels), cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("could not encode curves.png")
    return encoded.tobytes()
