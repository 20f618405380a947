"""Paths and object-store URIs, through pyarrow.fs.

Every stage reads and writes either a local path or a URI that pyarrow.fs understands
(s3://, gs://, hdfs://, file://). A custom S3 endpoint (MinIO, a test server) is picked up
by the AWS SDK from AWS_ENDPOINT_URL, or given in the URI: `s3://bucket/key?endpoint_override=...`.
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import os
import posixpath
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pyarrow.fs as pafs

GLOB_CHARS = "*?["


def is_uri(path: str) -> bool:
    """True for "scheme://..." strings other than file://."""
    scheme = urlsplit(path).scheme
    return len(scheme) > 1 and "://" in path and scheme != "file"


def resolve(path: str) -> tuple[pafs.FileSystem, str]:
    """Return (filesystem, path inside it) for a local path or a URI."""
    if path.startswith("file://"):
        path = path[len("file://") :]
    if not is_uri(path):
        return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(path))
    filesystem, inner = pafs.FileSystem.from_uri(path)
    return filesystem, inner


def join(base: str, *parts: str) -> str:
    """Join path parts onto a local path or a URI, keeping any URI query string."""
    if not is_uri(base):
        return os.path.join(base, *parts)
    split = urlsplit(base)
    joined = posixpath.join(split.path, *parts) if split.path else "/" + posixpath.join(*parts)
    query = f"?{split.query}" if split.query else ""
    return f"{split.scheme}://{split.netloc}{joined}{query}"


def strip_query(uri: str) -> str:
    """A URI without its query string or credentials (for display, rows and stable ids)."""
    uri = uri.split("?", 1)[0]
    if is_uri(uri):
        split = urlsplit(uri)
        if "@" in split.netloc:  # s3://KEY:SECRET@bucket/... never leaves in a row or a log
            return f"{split.scheme}://{split.netloc.rsplit('@', 1)[1]}{split.path}"
    return uri


def exists(path: str) -> bool:
    filesystem, inner = resolve(path)
    return filesystem.get_file_info(inner).type != pafs.FileType.NotFound


def is_dir(path: str) -> bool:
    filesystem, inner = resolve(path)
    return filesystem.get_file_info(inner).type == pafs.FileType.Directory


def file_info(path: str) -> pafs.FileInfo:
    filesystem, inner = resolve(path)
    return filesystem.get_file_info(inner)


def _rebuild(base: str, inner_base: str, inner: str) -> str:
    """Turn an inner path found under `inner_base` back into the form of `base`."""
    if not is_uri(base):
        return inner
    split = urlsplit(base)
    query = f"?{split.query}" if split.query else ""
    userinfo = split.netloc.rsplit("@", 1)[0] + "@" if "@" in split.netloc else ""
    return f"{split.scheme}://{userinfo}{inner}{query}"


def list_files(path: str, recursive: bool = True) -> list[str]:
    """All files under a directory or prefix, sorted, in the form of `path`."""
    filesystem, inner = resolve(path)
    selector = pafs.FileSelector(inner, recursive=recursive, allow_not_found=True)
    infos = filesystem.get_file_info(selector)
    found = [i.path for i in infos if i.type == pafs.FileType.File]
    return sorted(_rebuild(path, inner, p) for p in found)


def expand_glob(pattern: str) -> list[str]:
    """Files matching a glob such as `/data/**/*.mp4` or `s3://bucket/clips/*.mp4`."""
    path_part = pattern.split("?", 1)[0] if is_uri(pattern) else pattern  # not the query's "?"
    split_at = min((path_part.find(c) for c in GLOB_CHARS if c in path_part), default=-1)
    if split_at < 0:
        return [pattern] if exists(pattern) else []
    base = pattern[:split_at].rsplit("/", 1)[0] or "/"
    query = ""
    if is_uri(pattern) and "?" in pattern:
        pattern, query = pattern.split("?", 1)
        base = base.split("?", 1)[0]
    candidates = list_files(base + (f"?{query}" if query else ""))
    plain = strip_query(pattern).replace("**/", "*")
    return [c for c in candidates if fnmatch.fnmatch(strip_query(c), plain)]


@contextlib.contextmanager
def local_copy(path: str) -> Iterator[str]:
    """Yield a local file path for `path`, downloading object-store files to a temp file."""
    if not is_uri(path):
        yield resolve(path)[1]
        return
    filesystem, inner = resolve(path)
    suffix = os.path.splitext(inner)[1]
    with tempfile.NamedTemporaryFile(suffix=suffix, prefix="rayswap-") as tmp:
        with filesystem.open_input_stream(inner) as src:
            shutil.copyfileobj(src, tmp, length=4 * 1024 * 1024)
        tmp.flush()
        yield tmp.name


@contextlib.contextmanager
def open_media(path: str, buffer_bytes: int = 8 * 1024 * 1024) -> Iterator[str | io.BufferedReader]:
    """Yield something PyAV can open: the local path, or a buffered random-access stream.

    Object-store videos are read in place with ranged reads (8 MiB at a time), so a
    segment in the middle of a two-hour file fetches only the bytes it decodes.
    """
    if not is_uri(path):
        yield resolve(path)[1]
        return
    filesystem, inner = resolve(path)
    with filesystem.open_input_file(inner) as raw:
        yield io.BufferedReader(raw, buffer_size=buffer_bytes)


def read_bytes(path: str) -> bytes:
    filesystem, inner = resolve(path)
    with filesystem.open_input_stream(inner) as src:
        return src.read()


def write_bytes_atomic(path: str, payload: bytes) -> None:
    """Write a whole file so that readers see the old file or the new one, never half of it.

    Local: a temp name in the same directory, then os.replace. Object stores: one PUT,
    which is atomic by itself.
    """
    filesystem, inner = resolve(path)
    filesystem.create_dir(posixpath.dirname(inner) if is_uri(path) else os.path.dirname(inner))
    if is_uri(path):
        with filesystem.open_output_stream(inner) as dst:
            dst.write(payload)
        return
    tmp = f"{inner}.tmp-{uuid.uuid4().hex[:8]}"
    with open(tmp, "wb") as dst:
        dst.write(payload)
    os.replace(tmp, inner)


def upload_file_atomic(local_path: str, path: str) -> None:
    """Move or copy a finished local file to `path` (local rename or one object-store PUT)."""
    filesystem, inner = resolve(path)
    if not is_uri(path):
        os.makedirs(os.path.dirname(inner), exist_ok=True)
        tmp = f"{inner}.tmp-{uuid.uuid4().hex[:8]}"
        shutil.copyfile(local_path, tmp)
        os.replace(tmp, inner)
        return
    with open(local_path, "rb") as src, filesystem.open_output_stream(inner) as dst:
        shutil.copyfileobj(src, dst, length=4 * 1024 * 1024)


def check_writable_dir(path: str) -> None:
    """Raise ValueError unless the local folder `path` exists or can be made, and can be written.

    Walks up to the nearest existing ancestor: it must be a folder (not a file, nor a
    broken link) in which a file can really be created. The probe write catches what
    permission bits miss (root ignores them; read-only mounts and pseudo filesystems
    refuse anyway). URIs are left to the object store, which answers on the first write.
    """
    if is_uri(path):
        return
    target = resolve(path)[1]
    existing = target
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        where = "" if existing == target else f", so {target} cannot be made under it"
        raise ValueError(f"{existing} is a file, not a folder{where}")
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".rayswap-write-test-"):
            pass
    except OSError as exc:
        raise ValueError(f"cannot write in {existing} ({exc.strerror or exc})") from exc


def make_dirs(path: str) -> None:
    filesystem, inner = resolve(path)
    filesystem.create_dir(inner, recursive=True)


def delete_file(path: str) -> None:
    filesystem, inner = resolve(path)
    with contextlib.suppress(FileNotFoundError, OSError):
        filesystem.delete_file(inner)
