"""The person `rayswap extract --reference` keeps: reference faces -> identity embeddings.

Runs on the driver before Ray starts, so a bad reference is a usage error (exit code 2)
naming --reference; the actors get the embeddings, never the files. Ray-free.

A reference is an image file (its largest face is the person), a rayswap faces dataset
(a folder of Parquet files such as OUT/faces/<identity>, or one .parquet file; up to
REFERENCE_MAX_FACES faces spread over it), or several of these, all of one person.
"""

from __future__ import annotations

import cv2
import numpy as np
import pyarrow.compute as pc

from ops import schema, storage
from ops.align import transform_points
from ops.detect import RetinaFaceDetector, select_faces
from ops.faces_dataset import open_faces
from ops.identity import IdentityEmbedder
from ops.quality import decode_crop

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
REFERENCE_MAX_FACES = 64  # per faces dataset: the mean of 64 descriptors is stable
FLAG = "--reference"


def load_reference(
    paths: tuple[str, ...], detect_size: int = 640, max_faces: int = REFERENCE_MAX_FACES
) -> np.ndarray:
    """Embeddings (M, 128) float32 of the reference person's faces, M >= 1.

    Raises ValueError naming --reference and the path when a reference is missing, is
    neither an image nor a faces dataset, holds no usable face, or the eval extra is absent.
    """
    if not paths:
        raise ValueError(f"{FLAG}: give an image or a faces dataset of the person to keep")
    kinds = [_reference_kind(path) for path in paths]  # every path checked before loading
    try:
        embedder = IdentityEmbedder()
    except ImportError as exc:
        raise ValueError(f"{FLAG}: {exc}") from exc
    detector = None
    found = []
    for path, kind in zip(paths, kinds, strict=True):
        if kind == "faces":
            found.append(_embed_faces_dataset(embedder, path, max_faces))
        else:
            detector = detector or RetinaFaceDetector(threads=0, max_side=detect_size)
            found.append(_embed_image(embedder, detector, path))
    return np.concatenate(found).astype(np.float32)


def _reference_kind(path: str) -> str:
    """The kind of a reference, "faces" or "image"; ValueError naming --reference otherwise."""
    if not storage.exists(path):
        raise ValueError(f"{FLAG} {path}: not found")
    if storage.is_dir(path) or storage.strip_query(path).lower().endswith(".parquet"):
        return "faces"
    if storage.strip_query(path).lower().endswith(IMAGE_SUFFIXES):
        return "image"
    raise ValueError(
        f"{FLAG} {path}: neither an image ({', '.join(IMAGE_SUFFIXES)}) nor a faces "
        f"dataset (a folder of rayswap faces Parquet, or a .parquet file)"
    )


def _embed_image(embedder: IdentityEmbedder, detector: RetinaFaceDetector, path: str) -> np.ndarray:
    """(1, 128): the largest face of an image file."""
    encoded = np.frombuffer(storage.read_bytes(path), dtype=np.uint8)
    image_bgr = cv2.imdecode(encoded, cv2.IMREAD_COLOR) if encoded.size else None
    if image_bgr is None:
        raise ValueError(f"{FLAG} {path}: cannot decode the image")
    frame = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
    largest = select_faces(detector.detect_batch([frame])[0], which="largest")
    if not largest:
        raise ValueError(f"{FLAG} {path}: no face found in the image")
    return embedder.embed_frame(frame, largest[0].landmarks)[None]


def _embed_faces_dataset(embedder: IdentityEmbedder, path: str, max_faces: int) -> np.ndarray:
    """(M, 128): up to `max_faces` faces spread evenly over a faces dataset."""
    dataset = open_faces(path, FLAG).dataset
    columns = [schema.IMAGE, schema.LANDMARKS, schema.AFFINE]
    table = dataset.to_table(
        columns=columns, filter=pc.field(schema.ERROR).is_null() & pc.field(schema.IMAGE).is_valid()
    )
    if table.num_rows == 0:
        raise ValueError(f"{FLAG} {path}: the faces dataset holds no usable face")
    chosen = np.unique(np.linspace(0, table.num_rows - 1, min(max_faces, table.num_rows)).round())
    rows = table.take(chosen.astype(np.int64)).to_pylist()
    by_size: dict[int, tuple[list, list]] = {}  # embed() takes one crop size per call
    for row in rows:
        try:
            crop = decode_crop(row[schema.IMAGE])
        except ValueError:  # a corrupt crop is not the person's face; the others are
            continue
        affine = np.asarray(row[schema.AFFINE], dtype=np.float32).reshape(2, 3)
        landmarks = np.asarray(row[schema.LANDMARKS], dtype=np.float32).reshape(5, 2)
        crops, landmarks_crop = by_size.setdefault(crop.shape[0], ([], []))
        crops.append(crop)
        landmarks_crop.append(transform_points(landmarks, affine))
    if not by_size:
        raise ValueError(f"{FLAG} {path}: none of its face images could be decoded")
    return np.concatenate([embedder.embed(np.stack(c), np.stack(lm)) for c, lm in by_size.values()])
