"""Crop encoding: every format of IMAGE_FORMAT_CHOICES round-trips; others are refused."""

from __future__ import annotations

import numpy as np
import pytest

from ops.quality import IMAGE_FORMAT_CHOICES, decode_crop, encode_crop


def test_encode_crop_round_trips_every_format_and_refuses_others() -> None:
    crop = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    for image_format in IMAGE_FORMAT_CHOICES:
        decoded = decode_crop(encode_crop(crop, image_format, quality=100))
        assert decoded.shape == crop.shape
        if image_format == "png":
            assert np.array_equal(decoded, crop)  # lossless
    with pytest.raises(ValueError, match="image_format"):
        encode_crop(crop, "bmp")
