"""Mixed precision that learns (bf16 autocast on CPU stands in for the GPU), loss windows,
and every model family and loss learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ops.align import align_face, template_landmarks, transform_points
from ops.augment import augment_batch
from ops.detect import RetinaFaceDetector
from ops.losses import LOSSES
from ops.model import ModelConfig, SwapAutoencoder
from ops.train_step import (
    LossWindow,
    autocast_dtype_for,
    loss_fn,
    make_optimizer,
    prepare_for_steps,
    train_step,
)
from ops.video import iter_frames
from tests.conftest import shared_video

STEPS, BATCH = 50, 8


@pytest.fixture(scope="module")
def real_faces() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """64 px aligned faces and crop landmarks of person_a and person_b (every 6th frame)."""
    detector = RetinaFaceDetector(threads=1)
    faces = {}
    for side, name in (
        ("a", "person_a__mead_M030_front_happy.mp4"),
        ("b", "person_b__mead_W009_front_happy.mp4"),
    ):
        frames = [frame for _, _, frame in iter_frames(str(shared_video(name)), every_n=6)]
        crops, points = [], []
        for frame, found in zip(frames, detector.detect_batch(frames), strict=True):
            if found:
                crop, affine = align_face(frame, found[0].landmarks, 64)
                crops.append(crop)
                points.append(transform_points(found[0].landmarks, affine).reshape(-1))
        faces[side] = torch.from_numpy(np.stack(crops)), torch.from_numpy(np.stack(points))
    return faces


def _train(faces, autocast_dtype: torch.dtype | None) -> list[float]:
    """STEPS steps from seed 0 on fresh augmentations of the real faces; the total losses."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    model = SwapAutoencoder(ModelConfig(resolution=64, width=16, latent_dim=128))
    optimizer = make_optimizer(model, 5e-4)
    losses = []
    for _ in range(STEPS):
        batches = []
        for side in ("a", "b"):
            crops, points = faces[side]
            pick = torch.randint(0, len(crops), (BATCH,), generator=generator)
            batches.append(augment_batch(crops[pick], points[pick], 1.5, generator))
        losses.append(train_step(model, optimizer, *batches, autocast_dtype)[0].item())
    return losses


@pytest.mark.data
def test_bf16_autocast_tracks_float32_on_real_faces(real_faces):
    """bf16 forward + float32 loss: no NaN, and within 3% of float32 after STEPS steps."""
    assert len(real_faces["a"][0]) >= 8 and len(real_faces["b"][0]) >= 8
    full = _train(real_faces, None)
    mixed = _train(real_faces, torch.bfloat16)
    assert np.isfinite(mixed).all()
    late_full, late_mixed = np.mean(full[-10:]), np.mean(mixed[-10:])
    assert late_full < 0.7 * np.mean(full[:5])  # it learns
    assert abs(late_mixed - late_full) < 0.03 * late_full


def test_losses_are_float32_outside_autocast():
    torch.manual_seed(0)
    model = SwapAutoencoder(ModelConfig(resolution=64, width=4, latent_dim=16))
    faces = torch.randint(0, 255, (2, 64, 64, 3), dtype=torch.uint8)
    batch = augment_batch(faces, torch.rand(2, 10) * 64, 1.5, torch.Generator().manual_seed(0))
    total, loss_a, loss_b = loss_fn(model, batch, batch, torch.bfloat16)
    assert total.dtype == loss_a.dtype == loss_b.dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rgb_a, _, _, _ = model(batch["warped"], batch["warped"])
    assert rgb_a.dtype == torch.bfloat16  # the forward did run in bf16
    result = train_step(model, make_optimizer(model, 1e-4), batch, batch, torch.bfloat16)
    assert result.shape == (3,) and result.dtype == torch.float32 and not result.requires_grad


def test_loss_window_averages_and_remembers_the_first_bad_step():
    window = LossWindow(torch.device("cpu"))
    window.add(torch.tensor([3.0, 1.0, 2.0]), step=1)
    window.add(torch.tensor([5.0, 2.0, 3.0]), step=2)
    assert window.bad_step() is None
    assert window.read() == {"loss": 4.0, "loss_a": 1.5, "loss_b": 2.5}
    window.add(torch.tensor([float("nan"), 1.0, float("nan")]), step=3)
    window.add(torch.tensor([float("inf"), float("inf"), 1.0]), step=4)
    assert window.bad_step() == 3
    assert np.isnan(window.read()["loss"])
    window.add(torch.tensor([1.0, 0.5, 0.5]), step=5)
    assert window.read()["loss"] == 1.0 and window.bad_step() == 3  # remembered


def test_optimizer_is_plain_adam_on_cpu():
    model = SwapAutoencoder(ModelConfig(resolution=64, width=4, latent_dim=16))
    optimizer = make_optimizer(model, 1e-4)
    assert optimizer.defaults["betas"] == (0.5, 0.999) and not optimizer.defaults["fused"]


def _tiny_batch() -> dict[str, torch.Tensor]:
    faces = torch.randint(0, 255, (2, 64, 64, 3), dtype=torch.uint8)
    return augment_batch(faces, torch.rand(2, 10) * 64, 1.5, torch.Generator().manual_seed(0))


def test_channels_last_steps_equal_contiguous_steps():
    """The GPU layout (NHWC weights and inputs) computes the same steps, here on CPU."""
    batch = _tiny_batch()
    results = []
    for channels_last in (False, True):
        torch.manual_seed(0)
        model = SwapAutoencoder(ModelConfig(resolution=64, width=4, latent_dim=16))
        _, step_model = prepare_for_steps(model, channels_last=channels_last)
        inputs = dict(batch)
        if channels_last:
            inputs["warped"] = batch["warped"].contiguous(memory_format=torch.channels_last)
        optimizer = make_optimizer(model, 1e-3)
        results.append([train_step(step_model, optimizer, inputs, inputs) for _ in range(3)])
    for plain, nhwc in zip(*results, strict=True):
        assert torch.allclose(plain, nhwc, rtol=1e-4)
    assert model.encoder.convs[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_compiled_steps_match_eager_and_checkpoints_keep_plain_keys():
    """--compile: the same losses as eager, and the raw model's state dict (what checkpoints
    save) has no torch.compile prefixes, so it loads into an uncompiled model."""
    batch = _tiny_batch()
    losses = {}
    for compiled in (False, True):
        torch.manual_seed(0)
        model = SwapAutoencoder(ModelConfig(resolution=64, width=4, latent_dim=16))
        _, step_model = prepare_for_steps(model, compile_model=compiled)
        optimizer = make_optimizer(model, 1e-3)
        losses[compiled] = torch.stack(
            [train_step(step_model, optimizer, batch, batch) for _ in range(2)]
        )
    assert torch.allclose(losses[False], losses[True], rtol=1e-3)
    state = model.state_dict()
    assert not any("_orig_mod" in key for key in state)
    fresh = SwapAutoencoder(ModelConfig(resolution=64, width=4, latent_dim=16))
    fresh.load_state_dict(state)


def test_autocast_dtype_for_resolves_each_precision():
    assert autocast_dtype_for("auto", gpu=True) == torch.bfloat16
    assert autocast_dtype_for("auto", gpu=False) is None
    assert autocast_dtype_for("bf16", gpu=False) == torch.bfloat16
    assert autocast_dtype_for("fp32", gpu=True) is None
    with pytest.raises(ValueError, match="precision"):
        autocast_dtype_for("fp16", gpu=True)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("family", ("df", "liae"))
def test_a_few_train_steps_lower_the_loss_of_each_dfl_family(family, loss):
    torch.manual_seed(0)
    faces = torch.randint(0, 255, (2, 64, 64, 3), dtype=torch.uint8)
    landmarks = torch.from_numpy(np.stack([template_landmarks(64).reshape(-1)] * 2))
    batch_a = augment_batch(faces, landmarks, 1.5, torch.Generator().manual_seed(0))
    batch_b = augment_batch(faces.flip(2), landmarks, 1.5, torch.Generator().manual_seed(1))
    sizes = {"encoder_dims": 8, "decoder_dims": 8, "mask_dims": 4, "latent_dim": 32}
    model = SwapAutoencoder(ModelConfig(model=family, **sizes))
    optimizer = make_optimizer(model, 1e-3)
    losses = [train_step(model, optimizer, batch_a, batch_b, None, loss) for _ in range(15)]
    first, last = losses[0], losses[-1]
    assert last[0] < 0.8 * first[0] and last[1] < first[1] and last[2] < first[2]
