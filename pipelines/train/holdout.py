"""Is the swap good yet: held-out faces scored at every checkpoint, in an actor of their own.

The driver samples up to --holdout-faces held-out faces of each identity
(`pipelines.train.data.held_out_faces`) and starts one `HoldoutActor` (0 CPUs reserved:
it works only for the seconds after each checkpoint) with them and up to
GALLERY_FACES training faces of each identity. The actor embeds the galleries once
(`ops.identity`), finds the detector's landmarks of the held-out faces once, and then
scores each checkpoint it is handed (`ops.holdout.HoldoutScorer`), loading its weights
(the weight average when there is one, as render does). Rank 0 hands it each checkpoint
after the report and collects the finished scores at its next log steps, so no rank ever
waits for a score; the last checkpoint's score is awaited at the end of the run.

Without the eval extra (dlib) there is no actor, and the run says so once.
"""

from __future__ import annotations

import functools
import importlib.util
import time
from typing import Any

import numpy as np
import ray

from ops.holdout import HeldOutFaces
from pipelines.config import TrainConfig
from pipelines.train.data import FacesInfo, held_out_faces

GALLERY_FACES = 32  # training faces per identity in each gallery (as evaluate's default)
FINAL_WAIT_S = 600.0  # how long the end of a run waits for the last checkpoint's score


def scoring_unavailable() -> str | None:
    """Why held-out scoring cannot run here (None: it can)."""
    if importlib.util.find_spec("dlib") is None:
        return "held-out swap scores need the eval extra: pip install 'rayswap[eval]'"
    return None


def build_scorer(held: HeldOutFaces, galleries: dict[str, tuple[list[str], dict]]) -> Any:
    """The `ops.holdout.HoldoutScorer` of one run, on this process's CPU (one thread):
    galleries of up to GALLERY_FACES training faces per side ({side: (faces files, the
    run's holdout plan)}) embedded, and render's watermark as the mark."""
    import torch

    from ops.detect import RetinaFaceDetector
    from ops.faces_dataset import sample_faces
    from ops.holdout import HoldoutScorer
    from ops.identity import IdentityEmbedder, identity_distances
    from ops.watermark import embed_watermark
    from pipelines.train.data import is_held_out

    torch.set_num_threads(1)
    embedder = IdentityEmbedder()
    embedded = {}
    for side, (files, holdout) in galleries.items():
        skip = functools.partial(is_held_out, holdout)  # the galleries are training faces
        crops, points = sample_faces(files, GALLERY_FACES, skip)
        parts = [embedder.embed(np.stack(crops[s]), np.stack(points[s])) for s in crops]
        embedded[side] = np.concatenate(parts)
    detector = RetinaFaceDetector(threads=1, score_threshold=0.5)
    return HoldoutScorer(
        held,
        embedder.embed,
        detector.detect_batch,
        embedded["a"],
        embedded["b"],
        identity_distances,
        mark=embed_watermark,  # as render marks its frames (its default key and strength)
    )


@ray.remote(num_cpus=0)
class HoldoutActor:
    """Scores checkpoints on one run's held-out faces (see the module docstring)."""

    def __init__(self, held: HeldOutFaces, galleries: dict[str, tuple[list[str], dict]]) -> None:
        self.scorer = build_scorer(held, galleries)

    def score(self, checkpoint: str, step: int) -> dict[str, Any]:
        """The held-out numbers of one checkpoint, with its step (or the error)."""
        from ops.checkpoint import load_checkpoint

        try:
            loaded = load_checkpoint(checkpoint)
            return {"step": step, **self.scorer.score(loaded.model)}
        except Exception as exc:  # noqa: BLE001 - a score lost is reported, training goes on
            return {"step": step, "error": f"{type(exc).__name__}: {exc}"}


def held_out_of(
    cfg: TrainConfig, infos: dict[str, FacesInfo], coverage: float
) -> tuple[HeldOutFaces, dict[str, tuple[list[str], dict]]]:
    """A run's held-out faces of both sides, and its galleries as `build_scorer` takes them
    ({side: (faces files, the run's holdout plan)})."""
    sides = {side: held_out_faces(info, cfg, coverage) for side, info in infos.items()}
    galleries = {side: (info.files, info.holdout) for side, info in infos.items()}
    return HeldOutFaces(sides["a"], sides["b"], coverage=coverage), galleries


def start_scorer(
    cfg: TrainConfig, infos: dict[str, FacesInfo], coverage: float
) -> tuple[Any | None, str]:
    """(the actor, or None; a line for the summary) for this run's held-out faces."""
    if not any(info.held_out for info in infos.values()):
        return None, "held-out faces: none (--holdout-videos 0 or too few frames)"
    missing = scoring_unavailable()
    if missing:
        return None, missing
    held, galleries = held_out_of(cfg, infos, coverage)
    for side in ("a", "b"):
        if not len(getattr(held, side)):
            return None, f"held-out faces: none of {side} decode; not scored"
    note = (
        f"held-out faces: {len(held.a)} of a, {len(held.b)} of b scored at every checkpoint, "
        f"pasted into their {held.a.context.shape[1]} px crops"
    )
    return HoldoutActor.remote(held, galleries), note


class ScoreQueue:
    """Rank 0's checkpoints handed to the actor, and the scores that came back.

    At most one checkpoint is scored at a time. One handed over while the actor is busy
    waits, and a newer one replaces it (the older is never scored, `skipped` counts it):
    when checkpoints come faster than their scores (a fast GPU, a small --save-every),
    scores never queue up behind training, nor name checkpoints --keep-checkpoints has
    already deleted. The last checkpoint is always scored: `collect` with a timeout hands
    over the waiting one as soon as the actor is free.
    """

    def __init__(self, scorer: Any, checkpoints: str) -> None:
        self.scorer, self.checkpoints = scorer, checkpoints
        self.pending: list[Any] = []  # the score in flight (one at most)
        self.waiting: int | None = None  # the newest step not yet handed over
        self.skipped = 0

    def submit(self, step: int) -> None:
        if self.waiting is not None:
            self.skipped += 1
        self.waiting = step
        self._start()

    def _start(self) -> None:
        if self.pending or self.waiting is None:
            return
        from ops import storage

        path = storage.join(self.checkpoints, f"checkpoint_{self.waiting:08d}")
        self.pending.append(self.scorer.score.remote(path, self.waiting))
        self.waiting = None

    def collect(self, timeout_s: float = 0.0) -> list[dict[str, Any]]:
        """The scores finished within `timeout_s` (0: those already done), by step; with a
        timeout, the waiting checkpoint is scored too, within the same time."""
        deadline = time.monotonic() + timeout_s
        done: list[dict[str, Any]] = []
        while self.pending:
            left = max(0.0, deadline - time.monotonic())
            ready, self.pending = ray.wait(self.pending, num_returns=1, timeout=left)
            done += ray.get(ready)
            self._start()
            if not ready or not timeout_s:
                break
        return sorted(done, key=lambda score: score["step"])


def best_checkpoint(lines: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The held-out score with the best swap in both directions (mean id_retrieval of a2b
    and b2a, then mean id_margin), from a run's metrics lines; None without scores."""
    scores = [line["holdout"] for line in lines if "error" not in line.get("holdout", {"error": 1})]

    def rank(score: dict[str, Any]) -> tuple[float, float]:
        ids = [score.get(f"holdout_id_retrieval_{d}") or 0.0 for d in ("a2b", "b2a")]
        margins = [score.get(f"holdout_id_margin_{d}") or 0.0 for d in ("a2b", "b2a")]
        return (sum(ids) / 2, sum(margins) / 2)

    return max(scores, key=rank) if scores else None
