"""Train feeds on a real Ray Data pipeline: the watchdog on a stalled one, streamed batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipelines.train.feed import FaceFeed


def _faces(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    count = len(batch["id"])
    return {
        "face": np.full((count, 8, 8, 3), 7, np.uint8),
        "landmarks": np.zeros((count, 10), np.float32),
    }


@pytest.mark.ray
def test_a_stalled_pipeline_fails_the_feed_with_a_clear_error(ray_local):
    """A map that can never be scheduled (more CPUs than the cluster has) starves the feed."""
    dataset = ray_local.data.range(8).map_batches(_faces, num_cpus=64)
    feed = FaceFeed("a", batch_size=2, timeout_s=3.0, device=torch.device("cpu"))
    feed.stream(dataset.iterator())
    try:
        with pytest.raises(TimeoutError, match=r"no faces of --a arrived for 3 s"):
            feed.next()
    finally:
        feed.close()


@pytest.mark.ray
def test_a_streamed_feed_goes_on_over_epochs(ray_local):
    dataset = ray_local.data.range(6).map_batches(_faces)
    feed = FaceFeed("b", batch_size=4, timeout_s=60.0, device=torch.device("cpu"))
    feed.stream(dataset.iterator())
    try:
        batches = [feed.next() for _ in range(3)]  # 6 rows: one full batch per epoch
    finally:
        feed.close()
    for faces, landmarks in batches:
        assert faces.shape == (4, 8, 8, 3) and faces.dtype == torch.uint8
        assert landmarks.shape == (4, 10) and int(faces[0, 0, 0, 0]) == 7
    assert not feed.cached
