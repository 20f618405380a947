"""`rayswap demo`: every stage, end to end, on clips generated from a public-domain portrait.

    rayswap demo --out rayswap-demo

1. samples: OUT/samples/sample_{a,b}.mp4 (animated portrait, with an audio tone);
2. extract: their faces into OUT/extract/faces/{a,b}/ (one run, OUT/samples/clips.csv);
3. train: a short run of the shared-encoder model into OUT/train/ (checkpoint + preview);
4. render: sample_a with b's face (a2b) into OUT/render/, marked as synthetic;
5. verify: the rendered video carries the watermark, the source clip does not.

The run is small enough for a laptop CPU; the model it trains is a smoke test of the
pipeline, not a useful swap. Returns the lines the CLI prints at the end.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

from ops import schema
from ops.samples import make_sample_clips
from pipelines.config import ExtractConfig, RenderConfig, TrainConfig, VerifyConfig
from pipelines.extract.driver import run_extract
from pipelines.render.driver import run_render
from pipelines.train.driver import run_train
from pipelines.verify import run_verify


def run_demo(
    out: str, frames: int = 60, steps: int = 60, echo: Callable[[str], None] = print
) -> list[str]:
    out = os.path.abspath(out)
    echo(f"demo: [1/5] sample clips -> {out}/samples")
    clips = make_sample_clips(os.path.join(out, "samples"), frames=frames, size=256)

    extract_out = os.path.join(out, "extract")
    manifest = os.path.join(out, "samples", "clips.csv")  # both identities in one run
    with open(manifest, "w") as handle:
        handle.write("uri,identity\n")
        # names relative to the manifest: the clips sit beside it
        handle.writelines(f"{os.path.basename(c)},{i}\n" for i, c in clips.items())
    cfg = ExtractConfig(
        inputs=(manifest,), out=extract_out, size=128, segment_frames=max(8, frames // 2)
    )
    found = {identity: {"faces": 0, "frames": 0} for identity in clips}

    def count(report: dict, _totals: object) -> None:
        for key in ("faces", "frames"):
            found[report["identity"]][key] += int(report[key] or 0)

    summary = run_extract(cfg, on_progress=count)
    for identity, counts in found.items():
        echo(
            f"demo: [2/5] extract {identity}: {counts['faces']} faces from "
            f"{counts['frames']} frames"
        )
    if summary.n_failed:
        raise RuntimeError(f"demo extract failed: {summary.errors}")

    train_out = os.path.join(out, "train")
    batch = max(2, min(8, frames // 4))
    train_cfg = TrainConfig(
        a=os.path.join(extract_out, "faces", "a"),
        b=os.path.join(extract_out, "faces", "b"),
        out=train_out,
        resolution=64,
        batch_size=batch,
        steps=steps,
        save_every=max(1, steps // 2),
        log_every=max(1, steps // 6),
        model="original",  # the smallest family: a smoke test, not a swap
        width=16,
        latent_dim=128,
        lr=5e-4,
        warmup_steps=0,
    )
    trained = run_train(train_cfg, on_progress=lambda m: echo(_train_line(m, steps)))
    if trained.checkpoint is None:
        raise RuntimeError("demo train wrote no checkpoint")
    echo(f"demo: [3/5] train: {trained.step} steps, checkpoint {trained.checkpoint}")

    render_out = os.path.join(out, "render")
    render_cfg = RenderConfig(
        checkpoint=trained.checkpoint,
        inputs=(clips["a"],),
        out=render_out,
        direction="a2b",
        segment_frames=max(16, frames),
    )
    rendered = run_render(render_cfg)
    if rendered.n_failed:
        raise RuntimeError(f"demo render failed: {rendered.errors}")
    video = os.path.join(render_out, "sample_a.mp4")
    echo(f"demo: [4/5] render: {video}")

    verdicts = run_verify(VerifyConfig(videos=(video, clips["a"])))
    for verdict in verdicts:
        state = "marked" if verdict.marked else "not marked"
        echo(
            f"demo: [5/5] verify {os.path.relpath(verdict.video, out)}: {state} "
            f"(score {verdict.score:.1f})"
        )
    if not verdicts[0].marked or verdicts[1].marked:
        raise RuntimeError("demo verify: the watermark check did not come out as expected")

    summary_path = os.path.join(out, "summary.json")
    with open(summary_path, "w") as handle:
        json.dump(
            {
                "samples": clips,
                "faces": os.path.join(extract_out, "faces"),
                "checkpoint": trained.checkpoint,
                "steps": trained.step,
                "last_metrics": trained.last_metrics,
                "video": video,
                "manifest": os.path.join(render_out, "manifest.parquet"),
                "marked": verdicts[0].marked,
                "score": verdicts[0].score,
                schema.SWAPPED_FRAMES: rendered.counts.swapped_frames,
            },
            handle,
            indent=2,
            default=str,
        )
    return [
        f"video:    {video}  (sample_a with b's face, marked as synthetic)",
        f"preview:  {os.path.join(trained.checkpoint, 'preview.png')}",
        f"summary:  {summary_path}",
    ]


def _train_line(metrics: dict, steps: int) -> str:
    loss_a, loss_b = metrics.get("loss_a", float("nan")), metrics.get("loss_b", float("nan"))
    return (
        f"demo: [3/5] train step {metrics.get('step', '?')}/{steps}: loss_a {loss_a:.3f} "
        f"loss_b {loss_b:.3f}"
    )
