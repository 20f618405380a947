"""`rayswap demo`: every stage, end to end, on clips generated from a public-domain portrait.

    rayswap demo --out rayswap-demo

Writes OUT/samples/sample_{a,b}.mp4, extracts their faces to OUT/extract/faces/{a,b}/, and
runs each later stage that exists on them. Returns the lines the CLI prints at the end.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ops.samples import make_sample_clips
from pipelines.config import ExtractConfig
from pipelines.extract import run_extract


def run_demo(out: str, frames: int = 60, echo: Callable[[str], None] = print) -> list[str]:
    out = os.path.abspath(out)
    echo(f"demo: writing sample clips to {out}/samples")
    clips = make_sample_clips(os.path.join(out, "samples"), frames=frames, size=256)
    extract_out = os.path.join(out, "extract")
    lines = []
    for identity, clip in clips.items():
        cfg = ExtractConfig(
            inputs=(clip,),
            out=extract_out,
            identity=identity,
            size=128,
            segment_frames=max(8, frames // 2),
        )
        summary = run_extract(cfg)
        echo(
            f"demo: extract {identity}: {int(summary.counts['faces'])} faces "
            f"from {int(summary.counts['frames'])} frames"
        )
        if summary.n_failed:
            raise RuntimeError(f"demo extract failed: {summary.errors}")
    lines.append(f"faces:   {extract_out}/faces/a/ and {extract_out}/faces/b/")
    return lines
