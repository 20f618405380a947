"""Identity embeddings: dlib's ResNet face descriptor (128-D) on rayswap's aligned faces.

dlib's `dlib_face_recognition_resnet_model_v1` maps a 150 x 150 face chip to a 128-D
vector; two faces of one person lie close (Euclidean distance), two people far apart.
Its weights ship inside the `face-recognition-models` package and dlib itself in
`dlib-bin`, both from the package index through the optional extra
`pip install 'rayswap[eval]'`: nothing is downloaded at run time. The network runs in
torch (`ops.identity_net`, the same weights read from dlib's file, descriptors equal to
dlib's within 1e-6; about 12 ms of CPU a face on one thread against dlib-bin's 85-108), or in
dlib with `network="dlib"`.

Alignment. The network expects chips cut the way `dlib.get_face_chip` cuts them. Three
ways to get there from a rayswap face are implemented (`alignment=`):
- "dlib" (default): dlib's own 5-point shape predictor (eye corners, base of the nose),
  started from a box around our 5 RetinaFace landmarks, then `get_face_chip`;
- "template": a similarity transform of our 5 landmarks onto the place those same points
  take in dlib's chip (`CHIP_TEMPLATE`, measured over real faces);
- "resize": the aligned crop re-cut at coverage 1.5 and resized to 150 px.
On 295 faces of 12 people of ../shared/data (`python -m benchmarks identity`), "dlib"
ranks best (ROC-AUC of face pairs from different files 0.998, "template" 0.997, "resize"
0.80); the shape predictor costs about 1 ms of a face's CPU time.

Distances. `identity_distances` measures each face against a gallery of one person by the
Euclidean distance to the gallery's mean descriptor: at the same share of other people
accepted it keeps more of the person than the mean of the k nearest (docs/extract.md).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import cv2
import numpy as np

from ops.align import template_landmarks, umeyama
from ops.types import Frame, Landmarks

EXTRA_HINT = "pip install 'rayswap[eval]'"
CHIP_PX = 150  # the side dlib's descriptor network expects
CHIP_PADDING = 0.25  # dlib's default for face recognition chips
EMBEDDING_DIM = 128
ALIGNMENTS = ("template", "dlib", "resize")
NETWORKS = ("torch", "dlib")
NETWORK_BATCH = 32  # chips per torch forward pass
# extract --reference: the largest identity distance (`identity_distances`) kept by default.
# On the shared media it keeps 89-94% of a person's faces and 0.2-0.3% of other people's
# (nearly all of one pair dlib confuses); a profile of another man measured 0.51
# (docs/extract.md).
DEFAULT_MAX_DISTANCE = 0.5

# Our 5 RetinaFace points (image-left eye, image-right eye, nose tip, image-left and
# image-right mouth corner) in dlib's 150 px recognition chip (padding 0.25): the mean
# position they take when dlib's own 5-point predictor cuts the chip, over 90 faces of
# 9 people of ../shared/data (per-point std 1-4 px).
CHIP_TEMPLATE = np.array(
    [[47.0, 45.8], [101.5, 46.8], [76.3, 74.8], [51.3, 106.0], [95.5, 107.0]],
    dtype=np.float64,
)


def _model_dir() -> str:
    """The folder of dlib model files inside the installed face-recognition-models package.

    Found without importing the package, whose __init__ imports the deprecated
    pkg_resources.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the identity embedder needs face-recognition-models: {EXTRA_HINT}")
    folder = os.path.join(list(spec.submodule_search_locations)[0], "models")
    if not os.path.isdir(folder):
        raise ImportError(f"face-recognition-models has no models folder ({folder}): {EXTRA_HINT}")
    return folder


def _import_dlib() -> Any:
    try:
        import dlib
    except ImportError as exc:
        raise ImportError(f"the identity embedder needs dlib (dlib-bin): {EXTRA_HINT}") from exc
    return dlib


def _check_faces(faces: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    faces = np.asarray(faces)
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if faces.dtype != np.uint8 or faces.ndim != 4 or faces.shape[3] != 3:
        raise ValueError(f"faces must be uint8 (N, R, R, 3), got {faces.dtype} {faces.shape}")
    if faces.shape[1] != faces.shape[2] or faces.shape[1] < 16:
        raise ValueError(f"faces must be square crops of >= 16 px, got {faces.shape[1:3]}")
    if landmarks.shape != (len(faces), 5, 2):
        raise ValueError(
            f"landmarks must be (N, 5, 2) with N = {len(faces)} faces, got {landmarks.shape}"
        )
    if not np.isfinite(landmarks).all():
        raise ValueError("landmarks must be finite")
    return faces, landmarks


def _landmark_rect(dlib: Any, landmarks: np.ndarray) -> Any:
    """A detector-like box around 5 landmarks, the region dlib's shape predictor expects."""
    centre = landmarks.mean(0)
    scale = np.sqrt(((landmarks - centre) ** 2).sum(1).mean())  # RMS spread of the points
    # RetinaFace boxes measured against their landmarks: 3.4 x 4.6 spreads, centred
    # 0.25 spread above the landmarks' centroid
    cx, cy = centre[0], centre[1] - 0.25 * scale
    half_w, half_h = 1.7 * scale, 2.3 * scale
    return dlib.rectangle(
        int(round(cx - half_w)),
        int(round(cy - half_h)),
        int(round(cx + half_w)),
        int(round(cy + half_h)),
    )


class IdentityEmbedder:
    """dlib's 128-D face descriptor for aligned faces, loaded once.

    Args:
        alignment: how a face becomes dlib's 150 px chip; one of ALIGNMENTS.
        threads: accepted for symmetry with the detectors; the torch network runs on the
            process's torch threads (`torch.set_num_threads`).
        network: "torch" (default) or "dlib": which runs the descriptor network.
    Raises:
        ImportError naming `pip install 'rayswap[eval]'` when dlib or its models are missing.
    """

    def __init__(self, alignment: str = "dlib", threads: int = 1, network: str = "torch") -> None:
        if alignment not in ALIGNMENTS:
            raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {alignment!r}")
        if network not in NETWORKS:
            raise ValueError(f"network must be one of {NETWORKS}, got {network!r}")
        self.alignment = alignment
        self.threads = threads
        self.network = network
        self._dlib = _import_dlib()
        models = _model_dir()
        weights = os.path.join(models, "dlib_face_recognition_resnet_model_v1.dat")
        if network == "torch":  # torch is imported here: the CLI starts without it
            from ops.identity_net import DlibFaceNet

            self._network = DlibFaceNet.from_dat(weights)
        else:
            self._network = self._dlib.face_recognition_model_v1(weights)
        self._shape_predictor = (
            self._dlib.shape_predictor(os.path.join(models, "shape_predictor_5_face_landmarks.dat"))
            if alignment == "dlib"
            else None
        )

    def embed(self, faces: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Embed aligned face crops.

        Args:
            faces: (N, R, R, 3) uint8 RGB crops, any R (as extract writes them).
            landmarks: (N, 5, 2) the 5 landmarks of each face in crop pixels (x, y).
        Returns:
            (N, 128) float32 descriptors, as dlib gives them (not unit length).
        """
        faces, landmarks = _check_faces(faces, landmarks)
        chips = [self.face_chip(f, lm) for f, lm in zip(faces, landmarks, strict=True)]
        return self._describe(chips)

    def embed_frame(self, frame: Frame, landmarks_frame: Landmarks) -> np.ndarray:
        """Embed one face of a full (H, W, 3) uint8 RGB frame; returns (128,) float32."""
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame must be uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
        landmarks_frame = np.asarray(landmarks_frame, dtype=np.float64).reshape(-1, 2)
        if landmarks_frame.shape != (5, 2) or not np.isfinite(landmarks_frame).all():
            raise ValueError(f"landmarks must be finite (5, 2), got {landmarks_frame.shape}")
        return self._describe([self.face_chip(frame, landmarks_frame)])[0]

    def face_chip(self, image: Frame, landmarks: np.ndarray) -> np.ndarray:
        """dlib's (150, 150, 3) uint8 chip of the face whose 5 landmarks are given in `image`."""
        landmarks = np.asarray(landmarks, dtype=np.float64)
        if self.alignment == "dlib":
            shape = self._shape_predictor(image, _landmark_rect(self._dlib, landmarks))
            return np.ascontiguousarray(
                self._dlib.get_face_chip(image, shape, size=CHIP_PX, padding=CHIP_PADDING)
            )
        target = CHIP_TEMPLATE if self.alignment == "template" else template_landmarks(CHIP_PX)
        affine = umeyama(landmarks, target)
        return cv2.warpAffine(
            image,
            affine,
            (CHIP_PX, CHIP_PX),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT101,
        )

    def _describe(self, chips: list[np.ndarray]) -> np.ndarray:
        if not chips:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        if self.network == "dlib":
            vectors = self._network.compute_face_descriptor(chips)  # one batch through the net
            return np.asarray([np.asarray(v) for v in vectors], dtype=np.float32)
        import torch

        found = []
        with torch.inference_mode():
            for start in range(0, len(chips), NETWORK_BATCH):
                batch = np.stack(chips[start : start + NETWORK_BATCH])
                x = torch.from_numpy(batch).permute(0, 3, 1, 2).float()
                found.append(self._network(x).numpy())
        return np.concatenate(found).astype(np.float32)


def identity_distances(
    embeddings: np.ndarray, gallery: np.ndarray, k: int | None = None
) -> np.ndarray:
    """Distance of each embedding to a gallery of one person.

    Args:
        embeddings: (N, 128) float descriptors.
        gallery: (M, 128) descriptors of the reference person, M >= 1.
        k: None (default): Euclidean distance to the gallery's mean descriptor; an int:
            the mean distance to the k nearest gallery faces (capped at M).
    Returns:
        (N,) float32 distances; smaller is more likely the same person.
    """
    embeddings = np.asarray(embeddings, dtype=np.float32)
    gallery = np.asarray(gallery, dtype=np.float32)
    if embeddings.ndim != 2 or gallery.ndim != 2 or embeddings.shape[1] != gallery.shape[1]:
        raise ValueError(
            f"need (N, D) embeddings and an (M, D) gallery, got {embeddings.shape}, {gallery.shape}"
        )
    if len(gallery) == 0:
        raise ValueError("the gallery is empty")
    if k is None:
        return np.linalg.norm(embeddings - gallery.mean(axis=0), axis=1).astype(np.float32)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    distances = np.linalg.norm(embeddings[:, None, :] - gallery[None, :, :], axis=2)  # (N, M)
    nearest = np.sort(distances, axis=1)[:, : min(k, len(gallery))]
    return nearest.mean(axis=1).astype(np.float32)
