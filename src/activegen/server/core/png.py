"""The stored image format: 8-bit PNG, exactly the pixels a person is shown.

A synthesized query is stored as a PNG and the engine trains on that PNG's pixels (not on the
generator's floats), so a session reopened from its store trains on what an uninterrupted one
trains on.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def png_bytes(image: np.ndarray) -> bytes:
    """One ``uint8 [H, W, C]`` image (C = 1 or 3) as PNG bytes (grey or RGB)."""
    arr = image[:, :, 0] if image.shape[2] == 1 else image
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buffer, format="PNG")
    return buffer.getvalue()


def png_image(data: bytes) -> np.ndarray:
    """PNG bytes written by :func:`png_bytes` back to ``uint8 [H, W, C]``."""
    with Image.open(io.BytesIO(data)) as img:
        arr = np.asarray(img.convert("L" if img.mode in ("L", "LA", "I", "1") else "RGB"),
                         dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr
