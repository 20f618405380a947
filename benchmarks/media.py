"""Where the benchmarks find the shared media set."""

from __future__ import annotations

from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_clips(data: Path, names: tuple[str, ...] | list[str]) -> list[str]:
    """Paths of `names` under `data`/video; exits with a clear message if any is missing."""
    paths = [data / "video" / name for name in names]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise SystemExit(f"benchmark clips not found: {missing} (use --data)")
    return [str(p) for p in paths]
