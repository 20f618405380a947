"""The extract actor: decode + detect + align + filter + encode the frames of one segment.

Full frames never leave the actor: it commits the segment's faces as one Parquet file
(pipelines/extract/commit.py) and returns a small report row (pipelines/segments.py).
"""

from __future__ import annotations

import numpy as np

from ops import schema, storage
from ops.align import align_face, transform_points
from ops.detect import select_faces
from ops.detect_torch import make_detector
from ops.identity import IdentityEmbedder, identity_distances
from ops.quality import encode_crop, sharpness
from ops.types import Detection, Frame, FrameRange
from ops.video import batched, iter_frames
from pipelines.config import ExtractConfig
from pipelines.extract.commit import write_faces
from pipelines.extract.plan import COUNT_KEYS, REPORT_KEYS
from pipelines.segments import SegmentActor, fail_once


class FaceExtractor(SegmentActor):
    """Ray Data actor: the faces of one segment per row, committed as one Parquet file.

    Owns one RetinaFace detector whose thread count matches the actor's CPUs, and with
    --reference one identity embedder and the reference person's embeddings (computed
    once on the driver).
    """

    keys, counts = REPORT_KEYS, COUNT_KEYS
    work_step = "extract"
    action = "skipped; no faces written for this segment (rerun retries it)"

    def __init__(self, cfg: dict, reference: np.ndarray | None = None) -> None:
        self.cfg = ExtractConfig(**cfg)
        self.out = self.cfg.out
        self.threads = max(1, int(round(self.cfg.cpus_per_worker)))
        self.detector = make_detector(
            "cuda" if self.cfg.gpu else "cpu",
            threads=self.threads,
            max_side=self.cfg.detect_size,
            score_threshold=min(self.cfg.min_score, 0.99),
            backend=self.cfg.detector,
        )
        self.reference = None if reference is None else np.asarray(reference, np.float32)
        if self.cfg.reference and self.reference is None:
            raise ValueError("--reference: the actors need the reference embeddings")
        self.embedder = IdentityEmbedder() if self.reference is not None else None

    def work(self, row: dict) -> dict[str, int]:
        cfg = self.cfg
        stop = None if row["stop"] < 0 else row["stop"]
        rows: list[dict] = []
        counts = {"frames": 0, "filtered": 0, "rejected": 0}
        # with --reference every face is a candidate: "largest" is the person's largest face
        which = "all" if self.reference is not None else cfg.faces
        with storage.open_media(row["video"]) as local:
            seek = FrameRange(row["start"], row["stop"], row["seek_frame"], row["seek_pts"]).seek
            stream = iter_frames(local, row["start"], stop, row["every_n"], self.threads, seek)
            for chunk in batched(stream, cfg.detect_batch):
                detections = self.detector.detect_batch([frame for _, _, frame in chunk])
                faces_per_frame = []
                for (index, time_s, frame), found in zip(chunk, detections, strict=True):
                    fail_once(self.out, index, cfg.fail_at_frame)
                    counts["frames"] += 1
                    kept = select_faces(found, cfg.min_face, cfg.min_score, which)
                    counts["filtered"] += len(found) - len(kept)
                    faces = [
                        self._face(row, index, time_s, face_index, frame, detection)
                        for face_index, detection in enumerate(kept)
                    ]
                    counts["filtered"] += sum(face is None for face in faces)
                    faces_per_frame.append([face for face in faces if face is not None])
                rows.extend(self._keep_faces(faces_per_frame, counts))
        if counts["frames"] == 0 and row["start"] == 0:
            raise ValueError(f"{storage.strip_query(row['video'])}: no decodable frames")
        write_faces(self.out, row, rows)
        return {**counts, "faces": len(rows)}

    def _keep_faces(
        self, faces_per_frame: list[list[tuple[dict, Frame, np.ndarray]]], counts: dict[str, int]
    ) -> list[dict]:
        """The rows to write: every face, or with --reference only the person's (counted)."""
        if self.reference is not None and any(faces_per_frame):
            crops = np.stack([crop for faces in faces_per_frame for _, crop, _ in faces])
            landmarks = np.stack([points for faces in faces_per_frame for _, _, points in faces])
            # one batch through the embedder for the whole chunk of frames
            distances = iter(
                identity_distances(self.embedder.embed(crops, landmarks), self.reference)
            )
            for faces in faces_per_frame:
                for face_row, _, _ in faces:
                    face_row[schema.IDENTITY_DISTANCE] = float(next(distances))
            for i, faces in enumerate(faces_per_frame):
                matched = [
                    f for f in faces if f[0][schema.IDENTITY_DISTANCE] <= self.cfg.max_distance
                ]
                counts["rejected"] += len(faces) - len(matched)
                if self.cfg.faces == "largest":  # candidates come largest first
                    counts["filtered"] += len(matched[1:])
                    matched = matched[:1]
                faces_per_frame[i] = matched
        rows = []
        for faces in faces_per_frame:
            for face_row, crop, _ in faces:
                face_row[schema.IMAGE] = encode_crop(crop, self.cfg.image_format)
                rows.append(face_row)
        return rows

    def _face(
        self,
        row: dict,
        index: int,
        time_s: float,
        face_index: int,
        frame: Frame,
        detection: Detection,
    ) -> tuple[dict, Frame, np.ndarray] | None:
        """(row without its image, crop, crop landmarks) of one face; None if too blurry."""
        cfg = self.cfg
        crop, affine = align_face(frame, detection.landmarks, cfg.size, cfg.coverage)
        crop_sharpness = sharpness(crop)
        if crop_sharpness < cfg.min_sharpness:
            return None
        face_row = {
            schema.IDENTITY: row["identity"],
            schema.VIDEO: storage.strip_query(row["video"]),
            schema.VIDEO_ID: row["video_id"],
            schema.FRAME: index,
            schema.TIME_S: time_s,
            schema.FACE: face_index,
            schema.SCORE: detection.score,
            schema.BBOX: detection.bbox.tolist(),
            schema.LANDMARKS: detection.landmarks.reshape(-1).tolist(),
            schema.AFFINE: affine.reshape(-1).tolist(),
            schema.SIZE: cfg.size,
            schema.COVERAGE: cfg.coverage,
            schema.IMAGE: None,  # encoded once the face is kept
            schema.IMAGE_FORMAT: cfg.image_format,
            schema.SHARPNESS: crop_sharpness,
            schema.IDENTITY_DISTANCE: None,
            schema.ERROR: None,
        }
        return face_row, crop, transform_points(detection.landmarks, affine)
