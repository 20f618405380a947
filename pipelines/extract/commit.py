"""Extract commit: what a segment's faces become on disk, and the configs beside them.

OUT/faces/<identity>/<video_id>-<start>.parquet   one file per segment, written atomically
OUT/errors/<video_id>-<start>.parquet             one row per failed segment (segments.py)
OUT/_config.json, OUT/faces/_config.json, OUT/errors/_config.json
"""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq

from ops import schema, storage
from pipelines.config import ExtractConfig, config_json
from pipelines.extract.plan import segment_path
from pipelines.segments import ERRORS


def write_faces(out: str, row: dict, faces: list[dict]) -> None:
    """Commit a segment's face rows as its Parquet file (temp name + rename, or one PUT).

    The name comes from (identity, video_id, start), so a rerun that finds it skips the
    segment, and no row is ever written twice.
    """
    table = pa.Table.from_pylist(faces, schema=schema.FACES_SCHEMA)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    path = segment_path(out, row["identity"], row["video_id"], row["start"])
    storage.write_bytes_atomic(path, sink.getvalue())


def write_configs(cfg: ExtractConfig) -> None:
    """The resolved config beside the output, the faces and the errors datasets."""
    payload = config_json(cfg, stage="extract", schema_version=schema.SCHEMA_VERSION).encode()
    for folder in ((), ("faces",), (ERRORS,)):
        storage.write_bytes_atomic(storage.join(cfg.out, *folder, schema.CONFIG_FILE), payload)
