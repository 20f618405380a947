"""Crop quality and encoding: sharpness, and the image bytes stored in Parquet."""

from __future__ import annotations

import cv2
import numpy as np

from ops.types import Frame

IMAGE_FORMATS = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}  # format: cv2 file extension
IMAGE_FORMAT_CHOICES = tuple(IMAGE_FORMATS)  # ("png", "jpeg", "webp"): what `encode_crop` takes


def sharpness(crop: Frame) -> float:
    """Variance of the Laplacian of the grey crop; higher is sharper (blur gives < ~50)."""
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def encode_crop(crop: Frame, image_format: str = "png", quality: int = 95) -> bytes:
    """Encode an (H, W, 3) uint8 RGB crop as PNG, JPEG or WebP bytes (`IMAGE_FORMAT_CHOICES`)."""
    if image_format not in IMAGE_FORMAT_CHOICES:
        raise ValueError(
            f"image_format must be one of {IMAGE_FORMAT_CHOICES}, got {image_format!r}"
        )
    params: list[int] = []
    if image_format == "jpeg":
        params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    elif image_format == "webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, quality]
    elif image_format == "png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, 1]
    ok, buffer = cv2.imencode(
        IMAGE_FORMATS[image_format], cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), params
    )
    if not ok:
        raise ValueError(f"could not encode a {crop.shape} crop as {image_format}")
    return buffer.tobytes()


def decode_crop(payload: bytes) -> Frame:
    """Decode crop bytes back to (H, W, 3) uint8 RGB; raise ValueError if they are not an image."""
    if not payload:
        raise ValueError("empty image bytes")
    bgr = cv2.imdecode(np.frombuffer(payload, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"image bytes could not be decoded ({len(payload)} bytes)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
