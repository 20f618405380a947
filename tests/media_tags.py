"""Container tags of a media file, as the tests read them back."""

from __future__ import annotations

import av


def read_metadata(path: str) -> dict[str, str]:
    """Container tags of a media file (keys as FFmpeg reports them)."""
    with av.open(path) as container:
        return dict(container.metadata)
