"""Image grids as PNG (generator samples, synthesized queries) with optional captions."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from activegen._atomic import atomic_write_bytes
from activegen.data.dataset import float_to_images


def save_image_grid(images: np.ndarray, path: Path, columns: int | None = None,
                    captions: Sequence[str] | None = None, scale: int = 1) -> Path:
    """Write ``float32 [N, C, H, W]`` images in ``[0, 1]`` as one PNG grid (atomically).

    With ``captions`` the grid is drawn with matplotlib, one caption under each image;
    without, pixels are tiled exactly (a 1-pixel gap) with Pillow.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"an image grid needs images [N>0, C, H, W], got {images.shape}")
    n = len(images)
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    tiles = float_to_images(images)  # [N, H, W, C] uint8
    buffer = io.BytesIO()
    if captions is None:
        from PIL import Image

        _, h, w, c = tiles.shape
        canvas = np.full((rows * (h + 1) + 1, columns * (w + 1) + 1, c), 128, dtype=np.uint8)
        for i, tile in enumerate(tiles):
            r, col = divmod(i, columns)
            top, left = 1 + r * (h + 1), 1 + col * (w + 1)
            canvas[top:top + h, left:left + w] = tile
        img = Image.fromarray(canvas[..., 0] if c == 1 else canvas)
        if scale > 1:
            img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
        img.save(buffer, format="PNG")
    else:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(rows, columns, figsize=(1.1 * columns, 1.3 * rows),
                                 squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, tile, caption in zip(axes.flat, tiles, captions, strict=False):
            ax.imshow(tile[..., 0] if tile.shape[2] == 1 else tile, cmap="gray", vmin=0, vmax=255)
            ax.set_title(caption, fontsize=7)
        fig.tight_layout()
        fig.savefig(buffer, format="png", dpi=100)
        plt.close(fig)
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)
