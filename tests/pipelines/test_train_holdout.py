"""Which faces training holds out, how they reach the held-out scorer, and which checkpoint
the end summary names: Ray-free."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from ops.augment import centre_affine, load_face
from ops.holdout import CONTEXT_PX
from pipelines.train.data import held_out_faces, inspect_faces, plan_holdout
from pipelines.train.holdout import best_checkpoint
from tests.pipelines.faces_data import write_faces
from tests.pipelines.test_train import tiny_config


def test_whole_videos_are_held_out_when_there_are_enough_else_each_videos_last_frames():
    cfg = tiny_config(("a", "b"), "out", holdout_videos=None, holdout_share=0.25)
    three = (["v1"] * 4 + ["v2"] * 4 + ["v3"] * 4, list(range(4)) * 3)
    assert plan_holdout(*three, cfg) == {"v3": 0}  # the last video by name, whole
    two = (["v2"] * 8 + ["v1"] * 4, list(range(8)) + list(range(10, 14)))
    assert plan_holdout(*two, cfg) == {"v1": 13, "v2": 6}  # the last quarter of each
    assert plan_holdout(*three, tiny_config(("a", "b"), "out", holdout_videos=2)) == {
        "v2": 0,
        "v3": 0,
    }
    with pytest.raises(ValueError, match="--holdout-videos: 3 of 3 videos would leave none"):
        plan_holdout(*three, tiny_config(("a", "b"), "out", holdout_videos=3))
    assert plan_holdout(*two, tiny_config(("a", "b"), "out", holdout_videos=0)) == {}


@pytest.mark.parametrize("stored", [128, 320])
def test_held_out_faces_come_as_the_model_sees_them_and_in_their_stored_crop(tmp_path, stored):
    """The model's input is the centre of the stored crop at the model's coverage; the
    context is the stored crop itself (at most CONTEXT_PX), and the one maps onto the other."""
    folder = write_faces(tmp_path / "a", "a", 20, size=stored, corrupt=1)
    faces = (str(folder), str(tmp_path / "b"))
    cfg = tiny_config(faces, tmp_path / "out", holdout_videos=None, holdout_share=0.3)
    info = inspect_faces(str(folder), "a", cfg)
    assert info.held_out == 6  # the last 30% of the one video's 20 frames, one corrupt
    held = held_out_faces(info, cfg, coverage=1.1)
    side = min(stored, CONTEXT_PX)
    assert len(held) == 5  # the corrupt crop is not scored
    assert held.faces.shape == (5, 64, 64, 3) and held.context.shape == (5, side, side, 3)
    assert held.zoom == pytest.approx(1.5 / 1.1)
    row = pq.read_table(folder / "part-0.parquet").to_pylist()[14]  # the first held out
    points, affine = np.asarray(row["landmarks"]), np.asarray(row["affine"]).reshape(2, 3)
    face, landmarks = load_face(row["image"], points, affine, 64, 1.5 / 1.1)
    assert np.array_equal(held.faces[0], face)  # exactly as training decodes a face
    assert np.allclose(held.landmarks[0], landmarks)
    into_model = centre_affine(side, 64, held.zoom)
    mapped = held.context_landmarks[0] @ into_model[:, :2].T + into_model[:, 2]
    assert np.abs(mapped - held.landmarks[0]).max() < 0.6  # the same points, half a px
    # the context's px per frame px, the faces' median (each ~5% apart): the face's size
    # in its frame, at which the scorer detects it
    table = pq.read_table(folder / "part-0.parquet").to_pylist()[14:19]
    scales = [np.hypot(*np.asarray(r["affine"])[[0, 3]]) * side / stored for r in table]
    assert held.frame_scale == pytest.approx(np.median(scales))
    nothing = tiny_config(faces, tmp_path / "out", holdout_videos=0)
    none = held_out_faces(inspect_faces(str(folder), "a", nothing), nothing, 1.1)
    assert len(none) == 0 and none.faces.shape == (0, 64, 64, 3)


def test_the_best_checkpoint_is_the_best_swap_both_ways_then_the_margin():
    def line(step, a2b, b2a, margin=0.0):
        return {
            "step": step,
            "holdout": {
                "step": step,
                "holdout_id_retrieval_a2b": a2b,
                "holdout_id_retrieval_b2a": b2a,
                "holdout_id_margin_a2b": margin,
                "holdout_id_margin_b2a": margin,
            },
        }

    lines = [line(2, 1.0, 0.0), line(4, 0.6, 0.6), line(6, 0.7, 0.5, 0.1), {"step": 7}]
    lines.append({"step": 8, "holdout": {"step": 8, "error": "lost"}})
    assert best_checkpoint(lines)["step"] == 6  # 0.6 both ways ties 6; its margin wins
    assert best_checkpoint([{"step": 1}]) is None
