"""Evaluate: sanity of the metrics on real clips, per-video failures, render --evaluate.

Galleries: faces of person_a (A) and person_b (B) extracted from their neutral clips, one
frame in ten. The evaluated clips are other recordings (angry, happy) of the same people,
so no evaluated frame is in a gallery.

How the sanity renders are made, all direction a2b (B's face on videos of A):
- "a real clip of B as output": a render folder written by hand whose manifest pairs a
  clip of A (the source) with a clip of B (the output). Every output frame then shows B,
  with real motion and expressions, which is what a perfect identity swap would give: the
  identity metrics must call every frame B. Only identity is judged on this pair; pose,
  jitter and seam compare two unrelated recordings.
- "the untouched source": the same kind of folder whose output is the source clip itself:
  retrieval ~0, and pose, jitter and seam exactly those of no change (0, 1, 0).
- "an untrained model": a real `rayswap render --evaluate` of 30 frames of a clip of A
  with a randomly initialised model, whose blurred paste leaves A recognisable.
"""

from __future__ import annotations

import json
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ops import metrics, schema
from pipelines.config import EvaluateConfig, ExtractConfig, RenderConfig
from tests.conftest import shared_video

pytest.importorskip("dlib", reason="needs the eval extra: pip install 'rayswap[eval]'")
pytestmark = [pytest.mark.ray, pytest.mark.data]

A_GALLERY = "person_a__mead_M030_front_neutral.mp4"
B_GALLERY = "person_b__mead_W009_front_neutral.mp4"
A_CLIP, A_OTHER = "person_a__mead_M030_front_angry.mp4", "person_a__mead_M030_front_happy.mp4"
B_CLIP = "person_b__mead_W009_front_angry.mp4"


@pytest.fixture(scope="module")
def faces(ray_local, tmp_path_factory) -> dict[str, str]:
    """Faces datasets of A and B from one extract of both neutral clips (every 10th frame)."""
    from pipelines.extract.driver import run_extract

    folder = tmp_path_factory.mktemp("evaluate_faces")
    manifest = folder / "manifest.csv"
    rows = [f"{shared_video(A_GALLERY)},a", f"{shared_video(B_GALLERY)},b"]
    manifest.write_text("uri,identity\n" + "\n".join(rows) + "\n")
    summary = run_extract(ExtractConfig((str(manifest),), str(folder), every_n=10, workers=2))
    assert summary.n_failed == 0
    return {side: str(folder / "faces" / side) for side in ("a", "b")}


def _hand_made_render(folder, pairs: list[tuple[str, str | None, str | None]]) -> str:
    """A render folder for (source, output, error) rows, direction a2b."""
    folder.mkdir()
    rows = [
        {schema.VIDEO: video, schema.OUTPUT: output, schema.FRAMES: 0, schema.ERROR: error}
        for video, output, error in pairs
    ]
    table = pa.Table.from_pylist(rows, schema=schema.RENDER_MANIFEST_SCHEMA)
    pq.write_table(table, folder / "manifest.parquet")
    (folder / "_config.json").write_text(json.dumps({"config": {"direction": "a2b"}}))
    return str(folder)


def _rows(path: str) -> dict[str, dict]:
    return {r[schema.VIDEO].rsplit("/", 1)[-1]: r for r in pq.read_table(path).to_pylist()}


def test_evaluate_scores_a_clip_of_b_one_and_the_untouched_source_zero(faces, tmp_path) -> None:
    from pipelines.evaluate.driver import FRAMES_FILE, run_evaluate

    a_clip, a_other, b_clip = (str(shared_video(n)) for n in (A_CLIP, A_OTHER, B_CLIP))
    render = _hand_made_render(
        tmp_path / "render",
        [
            (a_clip, b_clip, None),  # every output frame shows B
            (a_other, a_other, None),  # the source untouched
            ("/clips/missing_output.mp4", str(tmp_path / "gone.mp4"), None),
            ("/clips/failed_render.mp4", None, "ValueError: not a video"),
        ],
    )
    cfg = EvaluateConfig(render, faces["a"], faces["b"], max_frames=20, workers=2)
    summary = run_evaluate(cfg)
    rows = _rows(summary.output_path)
    target, untouched = rows[A_CLIP], rows[A_OTHER]
    print(f"\nclip of B as output: {target}\nuntouched source: {untouched}")
    assert target[metrics.ID_RETRIEVAL] == 1.0 and target[metrics.ID_MARGIN] > 0.1
    assert target[metrics.SWAPPED_FRAMES] == 20 and target[metrics.DIRECTION] == "a2b"
    assert untouched[metrics.ID_RETRIEVAL] <= 0.05 and untouched[metrics.ID_MARGIN] < -0.1
    assert untouched[metrics.POSE_ERROR] == pytest.approx(0.0, abs=1e-6)
    assert untouched[metrics.JITTER] == pytest.approx(1.0)
    assert untouched[metrics.SEAM] == pytest.approx(0.0, abs=1e-6)
    # a failed video is its row's error; a video the render failed is not evaluated
    assert "FileNotFoundError" in rows["missing_output.mp4"][schema.ERROR]
    assert rows["failed_render.mp4"][schema.ERROR].startswith("not rendered: ValueError")
    assert summary.n_ok == 2 and summary.n_failed == 1 and summary.n_skipped == 1
    frames = pq.read_table(f"{render}/{FRAMES_FILE}")
    assert frames.num_rows == 40 and frames.schema.equals(metrics.FRAMES_SCHEMA)


def test_render_evaluate_scores_an_untrained_model_low_as_evaluate_does(faces, tmp_path) -> None:
    import torch

    from ops.checkpoint import save_checkpoint
    from ops.model import ModelConfig, SwapAutoencoder
    from ops.video import iter_frames, write_video
    from pipelines.evaluate.driver import EVALUATION_FILE, run_evaluate
    from pipelines.evaluate.in_render import EVALUATION_DIR
    from pipelines.render.driver import run_render

    torch.manual_seed(0)
    checkpoint = str(tmp_path / "checkpoint")
    model = SwapAutoencoder(ModelConfig(resolution=64, width=8, latent_dim=32))
    save_checkpoint(checkpoint, model, step=0, coverage=1.5, size=256)
    clip = str(tmp_path / "a_angry_30.mp4")  # 30 frames of a clip of A, re-encoded at CRF 12
    write_video((f for _, _, f in iter_frames(str(shared_video(A_CLIP)), stop=30)), clip, 25, 12)
    out = tmp_path / "render"
    cfg = RenderConfig(
        checkpoint, (clip,), str(out), segment_frames=16, workers=2, evaluate=True, **faces
    )
    summary = run_render(cfg)
    assert summary.n_ok == 1
    assert len(list((out / EVALUATION_DIR).rglob("*.parquet"))) == 2  # one per segment
    in_render = _rows(str(out / EVALUATION_FILE))["a_angry_30.mp4"]
    after = run_evaluate(EvaluateConfig(str(out), faces["a"], faces["b"], workers=1))
    standalone = _rows(after.output_path)["a_angry_30.mp4"]
    print(f"\nuntrained, in render: {in_render}\nuntrained, evaluate: {standalone}")
    for row in (in_render, standalone):
        assert row[schema.FRAMES] == 30 and row[metrics.SWAPPED_FRAMES] >= 28
        assert row[metrics.ID_RETRIEVAL] <= 0.2 and row[metrics.ID_MARGIN] < 0
        assert row[schema.ERROR] is None and not math.isnan(row[metrics.JITTER])
    # the same metrics (evaluate also sees the encoder's compression)
    assert abs(in_render[metrics.ID_MARGIN] - standalone[metrics.ID_MARGIN]) < 0.05
    assert abs(in_render[metrics.POSE_ERROR] - standalone[metrics.POSE_ERROR]) < 0.02
    assert abs(in_render[metrics.SEAM] - standalone[metrics.SEAM]) < 1.0
