"""Unlabeled image folders: a practitioner's photos, of any sizes and modes, made uniform.

A folder (flat or nested) of PNG/JPEG/BMP/GIF/TIFF/WebP files is read with Pillow; every image
is converted to ``channels`` (1 = grey, 3 = RGB) and resized to ``size × size``. Files Pillow
cannot read are listed and skipped, never fatal: one bad photo must not stop a session. That
covers every way a file can be bad: a format Pillow cannot decode, a decoder failing on
malformed bytes (Pillow raises many kinds of exception), a decompression bomb (an image
declaring more than :data:`MAX_PIXELS` pixels, refused before it is decoded), and a name that
is not valid UTF-8 (it could not be shown, exported or matched to a label; such a file is
named with its bytes escaped, and renaming it makes it readable). Images are named by their
path relative to the folder (``/``-separated), so labels stay tied to files.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from activegen.errors import DataError

UNLABELED_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif",
                                         ".tiff", ".webp")


#: The most pixels an image file may declare: Pillow's own decompression-bomb limit (about
#: 89 million, a 250 MB RGB image), refused here before decoding rather than warned about.
MAX_PIXELS = 89_478_485


class UnreadableImage(ValueError):
    """A file that cannot be used as an image; the message says why."""


def printable_name(name: str) -> str:
    """``name`` as text that can be printed and written anywhere: bytes that are not UTF-8
    (held as surrogates by Python's file-system decoding) shown as ``\\xNN`` escapes."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def check_name(name: str) -> None:
    """Refuse a file name that is not valid UTF-8 (:class:`UnreadableImage`)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise UnreadableImage("its name is not valid UTF-8 (rename the file to use it)") from None


def decode_image(path: Path, mode: str | None = None) -> Any:
    """The decoded Pillow image of ``path`` (converted to ``mode``, or RGB/RGBA as it has an
    alpha band).

    Raises:
        UnreadableImage: whatever keeps the file from being an image: not one, malformed,
            more than :data:`MAX_PIXELS` pixels, unreadable on disk.
    """
    from PIL import Image

    # Pillow warns between its limit and twice it; that size is refused here, by name.
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_PIXELS:
                raise UnreadableImage(
                    f"{img.width}x{img.height} pixels, more than the {MAX_PIXELS} an image "
                    "may have (a decompression bomb?)")
            img.load()
            return img.convert(mode or ("RGBA" if "A" in img.getbands() else "RGB"))
    except UnreadableImage:
        raise
    except Exception as exc:  # Pillow's decoders raise many kinds for one malformed file
        raise UnreadableImage(f"{type(exc).__name__}: {exc}") from None


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
    """One file as ``uint8 [size, size, channels]`` (:class:`UnreadableImage` if it is not
    one)."""
    from PIL import Image

    image = decode_image(path, "L" if channels == 1 else "RGB")
    image = image.resize((size, size), Image.Resampling.BILINEAR)
    arr = np.asarray(image, dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


def _check(size: int, channels: int) -> None:
    if not 4 <= size <= 1024:
        raise DataError(f"image size {size} is outside 4..1024")
    if channels not in (1, 3):
        raise DataError(f"channels {channels} must be 1 (grey) or 3 (RGB)")


def read_images(files: Iterable[Path], size: int, channels: int, base: Path | None = None,
                names: Sequence[str] | None = None) -> UnlabeledImages:
    """Read ``files``; unreadable ones are skipped and reported. Each is named by ``names``
    (one per file), else relative to ``base``, else by its path."""
    _check(size, channels)
    arrays, paths, skipped = [], [], []
    for i, path in enumerate(files):
        if names is not None:
            name = names[i]
        else:
            name = path.relative_to(base).as_posix() if base is not None else str(path)
        try:
            check_name(name)
            arrays.append(read_image(path, size, channels))
        except UnreadableImage as exc:
            skipped.append((printable_name(name), str(exc)))
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
    kept (a tiny image is enlarged with nearest neighbour, see :data:`PIXELATED_SCALE`);
    :class:`UnreadableImage` if the file is not one (any more)."""
    from PIL import Image

    image = decode_image(path)
    scale = max_side / max(image.size)
    new = (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale)))
    resample = (Image.Resampling.NEAREST if scale >= PIXELATED_SCALE
                else Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.resize(new, resample).save(buffer, format="PNG")
    return buffer.getvalue()
