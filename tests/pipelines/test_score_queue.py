"""Rank 0's queue of checkpoints for the held-out scorer, against a real (slow) Ray actor:
one score in flight, superseded checkpoints skipped, the last one always scored."""

from __future__ import annotations

import time

import pytest

from pipelines.train.holdout import ScoreQueue


@pytest.fixture(scope="module")
def slow_scorer(ray_local):
    @ray_local.remote(num_cpus=0)
    class SlowScorer:
        """Takes `seconds` per checkpoint and says which paths it was handed."""

        def __init__(self, seconds: float) -> None:
            self.seconds, self.seen = seconds, []

        def score(self, checkpoint: str, step: int) -> dict:
            self.seen.append(checkpoint)
            time.sleep(self.seconds)
            return {"step": step}

        def paths(self) -> list[str]:
            return self.seen

    return SlowScorer


def test_checkpoints_that_come_faster_than_scores_skip_to_the_newest(slow_scorer, ray_local):
    actor = slow_scorer.remote(0.5)
    queue = ScoreQueue(actor, "/runs/ab/train")
    for step in (250, 500, 750, 1000):  # all within the first score's half second
        queue.submit(step)
    assert queue.collect() == []  # nothing done yet, nothing waited for
    scores = queue.collect(timeout_s=30)
    assert [s["step"] for s in scores] == [250, 1000]  # 500 and 750 superseded
    assert queue.skipped == 2 and not queue.pending and queue.waiting is None
    paths = ray_local.get(actor.paths.remote())
    assert paths == ["/runs/ab/train/checkpoint_00000250", "/runs/ab/train/checkpoint_00001000"]


def test_a_free_scorer_scores_every_checkpoint_and_a_timeout_leaves_the_rest(slow_scorer):
    queue = ScoreQueue(slow_scorer.remote(0.2), "ckpt")
    seen = []
    for step in (1, 2, 3):
        queue.submit(step)
        seen += queue.collect(timeout_s=30)  # each done before the next checkpoint
    assert [s["step"] for s in seen] == [1, 2, 3] and queue.skipped == 0
    slow = ScoreQueue(slow_scorer.remote(2.0), "ckpt")
    slow.submit(1)
    slow.submit(2)
    started = time.monotonic()
    assert slow.collect(timeout_s=0.1) == []  # waited only the time given
    assert time.monotonic() - started < 1.5
    assert slow.pending and slow.waiting == 2  # still to come, nothing lost
    scores = slow.collect(timeout_s=30)
    assert [s["step"] for s in scores] == [1, 2]
