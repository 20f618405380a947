"""A contact sheet: a grid of face crops with a caption under each, some of them marked."""

from __future__ import annotations

import cv2
import numpy as np

from ops.types import Frame

CAPTION_PX = 14
BORDER_PX = 3
MARK_RGB = (230, 30, 30)
TEXT_RGB = (230, 230, 230)
BACKGROUND_RGB = (24, 24, 24)


def contact_sheet(
    faces: list[Frame],
    captions: list[str],
    marked: list[bool],
    columns: int = 8,
    tile_px: int = 96,
) -> Frame:
    """Lay faces out in a grid; marked faces get a red frame and a red caption.

    Args:
        faces: (R, R, 3) uint8 RGB crops, any size each (resized to `tile_px`).
        captions: one short text per face (ASCII; cut to fit the tile).
        marked: one flag per face.
    Returns:
        (rows x (tile_px + 14), columns x tile_px, 3) uint8 RGB; one empty tile when
        there are no faces.
    """
    if not len(faces) == len(captions) == len(marked):
        raise ValueError(
            f"need one caption and one mark per face: {len(faces)}, {len(captions)}, {len(marked)}"
        )
    if columns < 1 or tile_px < 32:
        raise ValueError(f"columns must be >= 1 and tile_px >= 32, got {columns}, {tile_px}")
    columns = max(1, min(columns, len(faces)))
    rows = max(1, -(-len(faces) // columns))
    cell_h = tile_px + CAPTION_PX
    sheet = np.empty((rows * cell_h, columns * tile_px, 3), np.uint8)
    sheet[:] = BACKGROUND_RGB
    for index, (face, caption, mark) in enumerate(zip(faces, captions, marked, strict=True)):
        top, left = (index // columns) * cell_h, (index % columns) * tile_px
        tile = cv2.resize(
            np.asarray(face, np.uint8), (tile_px, tile_px), interpolation=cv2.INTER_AREA
        )
        if mark:
            cv2.rectangle(tile, (1, 1), (tile_px - 2, tile_px - 2), MARK_RGB, BORDER_PX)
        sheet[top : top + tile_px, left : left + tile_px] = tile
        text = caption[: max(1, tile_px // 6)]
        cv2.putText(
            sheet,
            text,
            (left + 2, top + tile_px + CAPTION_PX - 4),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.32,
            MARK_RGB if mark else TEXT_RGB,
            1,
            cv2.LINE_AA,
        )
    return sheet
