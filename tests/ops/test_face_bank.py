"""FaceBank: faces held on the device, drawn in shuffled epochs of full batches."""

from __future__ import annotations

import pytest
import torch

from ops.face_bank import FaceBank, faces_nbytes


def bank_of(count: int, seed: int = 0) -> FaceBank:
    faces = torch.arange(count, dtype=torch.uint8).view(count, 1, 1, 1).expand(count, 4, 4, 3)
    landmarks = torch.arange(count, dtype=torch.float32)[:, None].expand(count, 10)
    return FaceBank(faces.contiguous(), landmarks.contiguous(), torch.Generator().manual_seed(seed))


def test_each_epoch_visits_every_face_once_in_a_new_order():
    bank = bank_of(12)
    epochs = []
    for _ in range(3):
        drawn = [bank.sample(4) for _ in range(3)]
        ids = torch.cat([faces[:, 0, 0, 0] for faces, _ in drawn]).tolist()
        assert sorted(ids) == list(range(12))
        for faces, landmarks in drawn:  # rows stay paired with their landmarks
            assert torch.equal(faces[:, 0, 0, 0].float(), landmarks[:, 0])
        epochs.append(ids)
    assert epochs[0] != epochs[1] and bank.epochs == 3


def test_partial_batches_are_dropped_and_seeds_repeat():
    bank = bank_of(10, seed=3)
    first = [bank.sample(4)[0][:, 0, 0, 0].tolist() for _ in range(4)]  # 2 per epoch
    assert bank.epochs == 2 and all(len(batch) == 4 for batch in first)
    again = bank_of(10, seed=3)
    assert [again.sample(4)[0][:, 0, 0, 0].tolist() for _ in range(4)] == first


def test_bank_rejects_bad_inputs_and_oversized_batches():
    with pytest.raises(ValueError, match="uint8"):
        FaceBank(torch.zeros(2, 4, 4, 3), torch.zeros(2, 10), torch.Generator())
    with pytest.raises(ValueError, match="landmarks"):
        FaceBank(torch.zeros(2, 4, 4, 3, dtype=torch.uint8), torch.zeros(3, 10), torch.Generator())
    with pytest.raises(ValueError, match="batch of 5"):
        bank_of(4).sample(5)


def test_faces_nbytes_counts_pixels_and_landmarks():
    assert faces_nbytes(1000, 128) == 1000 * (128 * 128 * 3 + 40)
