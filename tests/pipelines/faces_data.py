"""Tiny faces datasets for the train and export tests, written straight to Parquet.

Each row is a crop of the astronaut portrait (identity "b" is the mirrored, re-lit one)
after a small random rotation, zoom and shift, aligned from the portrait's 5 landmarks as
`rayswap extract` would, and stored with `ops.schema.FACES_SCHEMA`.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ops import schema
from ops.align import align_face, transform_points
from ops.quality import encode_crop
from ops.samples import portrait

# RetinaFace landmarks of ops.samples.portrait("a") and ("b") in its 512 px pixels.
PORTRAIT_LANDMARKS = {
    "a": [[204.7, 101.0], [247.3, 103.4], [223.6, 129.4], [202.6, 138.2], [244.4, 140.4]],
    "b": [[265.8, 103.5], [309.0, 101.3], [288.4, 129.0], [267.8, 141.0], [310.2, 139.4]],
}


def write_faces(
    folder: Path,
    identity: str,
    count: int,
    size: int = 64,
    seed: int = 0,
    corrupt: int = 0,
    name: str | None = None,
) -> Path:
    """Write `count` face rows (the last `corrupt` with garbage image bytes) to folder/*.parquet.

    identity: the portrait drawn ("a" or "b"); name: the identity column (default: identity).
    """
    rng = np.random.default_rng(seed)
    image = portrait(identity)
    base = np.asarray(PORTRAIT_LANDMARKS[identity], np.float32)
    rows = []
    for index in range(count):
        matrix = cv2.getRotationMatrix2D(
            (230.0, 130.0), rng.uniform(-8, 8), rng.uniform(0.95, 1.05)
        )
        matrix[:, 2] += rng.uniform(-6, 6, size=2)
        frame = cv2.warpAffine(image, matrix, (512, 512), borderMode=cv2.BORDER_REFLECT101)
        landmarks = transform_points(base, matrix.astype(np.float32))
        crop, affine = align_face(frame, landmarks, size, 1.5)
        payload = b"not an image" if index >= count - corrupt else encode_crop(crop, "png")
        rows.append(
            {
                schema.IDENTITY: name or identity,
                schema.VIDEO: f"portrait_{name or identity}.mp4",
                schema.VIDEO_ID: f"v{identity}",
                schema.FRAME: index,
                schema.TIME_S: index / 25.0,
                schema.FACE: 0,
                schema.SCORE: 0.99,
                schema.BBOX: [0.0, 0.0, 1.0, 1.0],
                schema.LANDMARKS: landmarks.reshape(-1).tolist(),
                schema.AFFINE: affine.reshape(-1).tolist(),
                schema.SIZE: size,
                schema.COVERAGE: 1.5,
                schema.IMAGE: payload,
                schema.IMAGE_FORMAT: "png",
                schema.SHARPNESS: 100.0,
                schema.ERROR: None,
            }
        )
    os.makedirs(folder, exist_ok=True)
    pq.write_table(
        pa.Table.from_pylist(rows, schema=schema.FACES_SCHEMA), folder / "part-0.parquet"
    )
    return folder
