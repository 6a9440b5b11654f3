"""The report's image grids (issue 20: the batch as the network gets it, the worst validation images): each
image lands in its own square, pixel for pixel (nearest: an 8 px digit stays sharp), grey as grey."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from nnrecipe.report.plots import CAPTION, CELL, GAP, TITLE, image_grid


def _cell(png: bytes, index: int, cols: int) -> np.ndarray:
    grid = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    r, c = divmod(index, cols)
    top, left = TITLE + r * (CELL + CAPTION + GAP) + CAPTION, 8 + c * (CELL + 2 * GAP) + GAP
    return grid[top + 2:top + CELL - 2, left + 2:left + CELL - 2]  # inside the square, off its edges


def test_each_image_fills_its_square_pixel_for_pixel_grey_and_colour():
    black, white = np.zeros((1, 8, 8), np.uint8), np.full((1, 8, 8), 255, np.uint8)
    half = np.zeros((1, 8, 8), np.uint8)
    half[:, :, 4:] = 255  # left half black, right half white: drawn 8x, the edge stays one step
    png = image_grid(np.stack([black, white, half] * 3), ["black", "white", "half"] * 3, "three kinds", cols=4)
    image = Image.open(io.BytesIO(png))
    assert image.size == (4 * (CELL + 2 * GAP) + 16, 3 * (CELL + CAPTION + GAP) + TITLE)  # 4 a row, 3 rows
    for i, kind in enumerate(["black", "white", "half"] * 3):
        cell = _cell(png, i, cols=4).astype(int)
        if kind == "half":
            inner = CELL // 2 - 2  # the square's left half (its first 2 px cut off above)
            assert (cell[:, :inner - 2] == 0).all() and (cell[:, inner + 2:] == 255).all()
        else:
            assert (cell == (0 if kind == "black" else 255)).all(), (i, kind)
    red = np.zeros((1, 3, 20, 20), np.float32)
    red[:, 0] = 1.0  # floats in [0, 1], RGB, a size that does not divide the square
    cell = _cell(image_grid(red, ["red"], "colour"), 0, cols=1).astype(int)
    assert (cell[..., 0] == 255).all() and (cell[..., 1:] == 0).all()
