"""DivergenceWatch: a loss stuck far above its lowest is called out once; noise is not."""

from __future__ import annotations

import numpy as np

from ops.divergence import DivergenceWatch


def lines(loss_a, loss_b, every=10):
    return [
        {"step": every * (i + 1), "loss_a": float(a), "loss_b": float(b)}
        for i, (a, b) in enumerate(zip(loss_a, loss_b, strict=True))
    ]


def test_a_loss_stuck_far_above_its_lowest_is_called_out_once():
    # the shape of a run at --lr 1e-3 on this model: down to 0.46 / 0.56 by step 100, a
    # jump between 100 and 180, then stuck at 2.67 / 2.07 for good
    a = list(np.linspace(0.9, 0.46, 10)) + list(np.linspace(0.6, 2.67, 8)) + [2.67] * 40
    b = list(np.linspace(1.0, 0.56, 10)) + list(np.linspace(0.7, 2.07, 8)) + [2.07] * 40
    watch = DivergenceWatch()
    said = [(line["step"], watch.add(line)) for line in lines(a, b)]
    warnings = [(step, text) for step, text in said if text]
    assert len(warnings) == 1  # once, not every line after
    step, text = warnings[0]
    assert 150 <= step <= 300  # within patience lines of the jump
    assert "loss_a" in text and "0.4600 at step 100" in text and "lower --lr" in text
    assert watch.message == text


def test_noise_a_short_spike_and_the_warp_off_drop_are_not_divergence():
    rng = np.random.default_rng(0)
    steps = 400
    trend = 0.3 + 0.6 * np.exp(-np.arange(steps) / 40)  # a healthy descent...
    trend[320:] *= 0.8  # ...the warp-off phase lowers it
    noisy = trend * rng.uniform(0.7, 1.3, steps)  # window means wander by 30%
    spiky = noisy.copy()
    spiky[200:205] *= 4  # a spike for five lines, then back
    watch = DivergenceWatch()
    assert all(watch.add(line) is None for line in lines(noisy, spiky))
    assert watch.message is None


def test_a_line_without_losses_is_skipped():
    watch = DivergenceWatch(patience=1)
    assert watch.add({"step": 10}) is None
    assert watch.add({"step": 20, "loss_a": 1.0, "loss_b": 1.0}) is None
    assert watch.add({"step": 30, "loss_a": 3.0}) is not None
