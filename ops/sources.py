"""Turn what a user types as INPUT into a list of videos with identities.

An INPUT is a video file, a folder or object-store prefix (searched recursively for
video files), a glob (`clips/*.mp4`, `s3://bucket/raw/**/*.mov`), or a manifest: a .csv
or .parquet file with a `uri` column and optionally an `identity` column. Inputs that
do not exist are kept, so the stage can record an error row for them.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ops import storage
from ops.types import FrameRange, VideoInfo
from ops.video import VIDEO_EXTENSIONS, probe_video, split_frames

MANIFEST_EXTENSIONS = (".csv", ".parquet")
DEFAULT_IDENTITY = "unlabelled"


@dataclass(frozen=True)
class VideoSource:
    uri: str
    identity: str


def is_video_name(path: str) -> bool:
    return storage.strip_query(path).lower().endswith(VIDEO_EXTENSIONS)


def read_manifest(path: str, identity: str | None) -> list[VideoSource]:
    """Rows of a CSV/Parquet manifest with `uri` (required) and `identity` columns."""
    payload = storage.read_bytes(path)
    if storage.strip_query(path).lower().endswith(".parquet"):
        table = pq.read_table(io.BytesIO(payload))
    else:
        table = pacsv.read_csv(io.BytesIO(payload))
    if "uri" not in table.column_names:
        raise ValueError(f"{path}: manifest needs a 'uri' column, has {table.column_names}")
    uris = [str(u) for u in table.column("uri").to_pylist()]
    if "identity" in table.column_names:
        names = [str(n) if n is not None else None for n in table.column("identity").to_pylist()]
    else:
        names = [None] * len(uris)
    base = os.path.dirname(storage.strip_query(path))
    sources = []
    for uri, name in zip(uris, names, strict=True):
        if not storage.is_uri(uri) and not os.path.isabs(uri) and not storage.is_uri(path):
            uri = os.path.join(base, uri)  # relative to the manifest
        sources.append(VideoSource(uri, identity or name or DEFAULT_IDENTITY))
    return sources


def expand_inputs(inputs: list[str] | tuple[str, ...], identity: str | None) -> list[VideoSource]:
    """Expand INPUTs to unique VideoSources in a stable order (manifests keep their identity)."""
    sources: list[VideoSource] = []
    default = identity or DEFAULT_IDENTITY
    for item in inputs:
        if not storage.is_uri(item):
            item = os.path.abspath(os.path.expanduser(item))  # workers may run elsewhere
        plain = storage.strip_query(item)
        if any(c in plain for c in storage.GLOB_CHARS):
            matches = [m for m in storage.expand_glob(item) if is_video_name(m)]
            sources += [VideoSource(m, default) for m in matches]
            if not matches:
                sources.append(VideoSource(item, default))  # reported as "no match"
        elif plain.lower().endswith(MANIFEST_EXTENSIONS) and storage.exists(item):
            sources += read_manifest(item, identity)
        elif storage.is_dir(item):
            sources += [
                VideoSource(f, default) for f in storage.list_files(item) if is_video_name(f)
            ]
        else:
            sources.append(VideoSource(item, default))
    seen: set[tuple[str, str]] = set()
    unique = []
    for source in sources:
        if (source.uri, source.identity) not in seen:
            seen.add((source.uri, source.identity))
            unique.append(source)
    return unique


def video_id(uri: str) -> str:
    """Stable id of a video: hash of its URI, size and modification time (16 hex chars).

    A file that cannot be stat'ed hashes its URI alone, so its error rows still get a key.
    """
    key = storage.strip_query(uri)
    try:
        info = storage.file_info(uri)
        if info.size is not None:
            key += f"|{info.size}|{info.mtime_ns or 0}"
    except (OSError, ValueError):
        pass
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def probe_and_split(
    uri: str,
    segment_frames: int,
    context: int = 0,
    length: Callable[[int], int] | None = None,
) -> tuple[VideoInfo, list[FrameRange]]:
    """Probe a video and split it into segments, opening it once (see `split_frames`).

    length: frames per segment from the probed frame count (default `segment_frames`).
    Raises FileNotFoundError / ValueError naming the file for a missing path, an empty
    file, or anything FFmpeg cannot read as video.
    """
    name = storage.strip_query(uri)
    if not storage.exists(uri):
        raise FileNotFoundError(f"{name}: no such file")
    if storage.file_info(uri).size == 0:
        raise ValueError(f"{name}: file is empty (0 bytes)")
    with storage.open_media(uri) as media:
        info = probe_video(media)
        frames = length(info.frame_count) if length is not None else segment_frames
        if hasattr(media, "seek"):
            media.seek(0)
        return info, split_frames(media, info.frame_count, frames, context)
