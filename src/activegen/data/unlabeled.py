"""Unlabeled image folders: a practitioner's photos, of any sizes and modes, made uniform.

A folder (flat or nested) of PNG/JPEG/BMP/GIF/TIFF/WebP files is read with Pillow; every image
is converted to ``channels`` (1 = grey, 3 = RGB) and resized to ``size × size``. Files Pillow
cannot read are listed and skipped, never fatal: one bad photo must not stop a session.
Images are named by their path relative to the folder (``/``-separated), so labels stay tied to
files.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from activegen.errors import DataError

UNLABELED_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif",
                                         ".tiff", ".webp")


@dataclass(frozen=True)
class UnlabeledImages:
    """``X uint8 [N, size, size, channels]``, the relative path of each row, and the files
    skipped as ``(relative path, reason)``."""

    X: np.ndarray
    paths: list[str]
    skipped: list[tuple[str, str]]


def list_image_files(root: Path, extensions: Sequence[str] = UNLABELED_EXTENSIONS) -> list[Path]:
    """Image files under ``root`` (recursive, sorted, hidden files and folders ignored)."""
    wanted = {e.lower() for e in extensions}
    out = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and path.suffix.lower() in wanted:
            out.append(path)
    return out


def read_image(path: Path, size: int, channels: int) -> np.ndarray:
    """One file as ``uint8 [size, size, channels]`` (raises OSError/ValueError if unreadable)."""
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        image = img.convert("L" if channels == 1 else "RGB")
    image = image.resize((size, size), Image.Resampling.BILINEAR)
    arr = np.asarray(image, dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


def _check(size: int, channels: int) -> None:
    if not 4 <= size <= 1024:
        raise DataError(f"image size {size} is outside 4..1024")
    if channels not in (1, 3):
        raise DataError(f"channels {channels} must be 1 (grey) or 3 (RGB)")


def read_images(files: Iterable[Path], size: int, channels: int, base: Path | None = None
                ) -> UnlabeledImages:
    """Read ``files``; unreadable ones are skipped and reported (named relative to ``base``)."""
    _check(size, channels)
    arrays, paths, skipped = [], [], []
    for path in files:
        name = path.relative_to(base).as_posix() if base is not None else str(path)
        try:
            arrays.append(read_image(path, size, channels))
        except (OSError, ValueError, SyntaxError) as exc:
            skipped.append((name, f"{type(exc).__name__}: {exc}"))
            continue
        paths.append(name)
    X = (np.stack(arrays) if arrays
         else np.empty((0, size, size, channels), dtype=np.uint8))
    return UnlabeledImages(X, paths, skipped)


def load_unlabeled_images(root: str | Path, size: int = 64, channels: int = 3
                          ) -> UnlabeledImages:
    """Every readable image under ``root``, resized and converted (see the module docstring).

    Raises:
        DataError: ``root`` is not a folder, or it holds no readable image.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: image folder not found")
    files = list_image_files(root)
    if not files:
        raise DataError(f"{root}: no image files ({', '.join(UNLABELED_EXTENSIONS)})")
    result = read_images(files, size, channels, base=root)
    if not result.paths:
        raise DataError(f"{root}: none of its {len(files)} image files is readable "
                        f"(first: {result.skipped[0][0]}: {result.skipped[0][1]})")
    return result


#: Enlarged this many times or more, an image is tiny (a 28×28 digit, not a photo crop): its
#: pixels are drawn as blocks (nearest neighbour), which keeps a digit's strokes sharp; a photo
#: enlarged less is resampled smoothly (blocks would hide what it shows). The page's
#: ``pixelated`` rule uses the same factor.
PIXELATED_SCALE = 4


def display_png(path: Path, max_side: int = 384) -> bytes:
    """The original image as PNG, scaled so its longer side is ``max_side``, its aspect ratio
    kept (a tiny image is enlarged with nearest neighbour, see :data:`PIXELATED_SCALE`)."""
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        image = img.convert("RGBA" if "A" in img.getbands() else "RGB")
    scale = max_side / max(image.size)
    new = (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale)))
    resample = (Image.Resampling.NEAREST if scale >= PIXELATED_SCALE
                else Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.resize(new, resample).save(buffer, format="PNG")
    return buffer.getvalue()
