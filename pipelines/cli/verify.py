"""The `rayswap verify` command.

Exit codes, for scripts: 0 every video is marked; 1 a video is not marked; 3 a video is
undecided (too few frames with a face); 4 a video could not be read; 2 bad invocation.
With several videos the first of 4, 1, 3 that applies wins; `--json` gives each verdict.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer

from pipelines.cli.app import command, run_step
from pipelines.config import VerifyConfig

if TYPE_CHECKING:
    from pipelines.verify import VerifyResult

# verdict -> exit code, most severe first (ops.watermark / pipelines.verify verdicts)
EXIT_CODES = {"error": 4, "not_marked": 1, "undecided": 3, "marked": 0}


def exit_code(verdicts: list[str]) -> int:
    """The exit code for a run's verdicts: that of the most severe one present."""
    for verdict, code in EXIT_CODES.items():
        if verdict in verdicts:
            return code
    return 0


def _frames(count: int) -> str:
    return f"{count} frame{'' if count == 1 else 's'} with a face"


def verdict_line(result: VerifyResult) -> str:
    """One human-readable line for a `VerifyResult`."""
    from ops.watermark import MIN_FRAMES_TO_CLEAR

    if result.verdict == "error":
        return f"{result.video}: error: {result.error}"
    if result.verdict == "marked":
        head = "MARKED (synthetic, made by rayswap)"
    elif result.verdict == "undecided":
        needed = f"{MIN_FRAMES_TO_CLEAR} needed to rule a mark out"
        head = f"undecided: {_frames(result.frames)} ({needed})"
    else:
        head = "not marked"
    return (
        f"{result.video}: {head}; score {result.score:.1f} (threshold {result.threshold:g}); "
        f"{result.frames}/{result.sampled} sampled frames with a face"
    )


def verdict_record(result: VerifyResult) -> dict:
    """A `VerifyResult` as a JSON-ready dict."""
    return {
        "video": result.video,
        "verdict": result.verdict,
        "score": round(result.score, 3),
        "threshold": result.threshold,
        "frames_with_face": result.frames,
        "frames_sampled": result.sampled,
        "error": result.error or None,
    }


@command(VerifyConfig)
def verify(cfg: VerifyConfig) -> None:
    """Check videos for rayswap's invisible watermark: marked, not marked or undecided.

    The score is a z-score of the key's pattern against 127 decoy patterns, over the frames
    with a face: unmarked videos score about 0, marked ones well above the threshold. One
    or two frames with a face must score higher to count as marked (a single frame's chance
    match weighs more); below that, fewer than 3 frames with a face are "undecided".

    Exit code: 0 every video is marked; 1 a video is not marked; 3 a video is undecided; 4
    a video could not be read; 2 bad invocation. With several videos the first of 4, 1, 3
    that applies wins.
    """
    from pipelines.verify import run_verify

    results = run_step("verify", run_verify, cfg)
    if cfg.json:
        typer.echo(json.dumps([verdict_record(r) for r in results], indent=2))
    else:
        for result in results:
            typer.echo(verdict_line(result))
    raise typer.Exit(exit_code([r.verdict for r in results]))
