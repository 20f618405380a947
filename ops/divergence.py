"""Tell a training run that has diverged from one that is only noisy, from its loss lines.

A learning rate too high for the model can throw the weights out of their basin: the loss
jumps to several times its lowest and stays there, finite, so no NaN guard catches it, and
the decoder draws a flat oval from then on. `DivergenceWatch` reads each metrics line and
says so once, when a side's loss has stayed above `factor` x its lowest for `patience`
lines in a row. Window means of a healthy run wander by tens of percent, not by 2x, and
only downwards at a phase change (the warp-off phase lowers the loss).
"""

from __future__ import annotations

from dataclasses import dataclass, field

SIDES = ("loss_a", "loss_b")


@dataclass
class DivergenceWatch:
    factor: float = 2.0  # this many times the lowest loss of the side...
    patience: int = 10  # ...for this many metrics lines in a row
    lowest: dict[str, tuple[float, int]] = field(default_factory=dict)  # side -> (loss, step)
    above_since: dict[str, int] = field(default_factory=dict)  # side -> first step above
    runs: dict[str, int] = field(default_factory=dict)  # side -> lines in a row above
    message: str | None = None  # the warning, once given

    def add(self, metrics: dict) -> str | None:
        """Take one metrics line ({"step", "loss_a", "loss_b", ...}); the warning, the first
        time a side has diverged, else None."""
        message = None
        for side in SIDES:
            loss = metrics.get(side)
            if loss is None:
                continue
            low, low_step = self.lowest.get(side, (float("inf"), 0))
            if loss < low:
                self.lowest[side] = (loss, metrics["step"])
            if loss > self.factor * low:
                self.runs[side] = self.runs.get(side, 0) + 1
                self.above_since.setdefault(side, metrics["step"])
            else:
                self.runs[side] = 0
                self.above_since.pop(side, None)
            if self.runs[side] >= self.patience and self.message is None:
                message = self.message = (
                    f"{side} has stayed above {self.factor:g}x its lowest ({low:.4f} at step "
                    f"{low_step}) since step {self.above_since[side]}, now {loss:.4f}: the run "
                    "has likely diverged and will not recover; stop it and train again with "
                    "a lower --lr"
                )
        return message
