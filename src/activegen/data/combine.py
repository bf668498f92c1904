"""Pools made of several splits, and the check that a test set shares no image with the pool.

A config may name ``split = ["train", "test"]`` to train the generator (and query) on more
unlabeled images, the GAAL paper's setting; then nothing but a separate source may be a test
set, and :func:`check_disjoint` refuses a test set with an image that is also in the pool.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from activegen.data.dataset import Dataset
from activegen.errors import DataError

__all__ = ["check_disjoint", "concatenate", "image_digests"]


def concatenate(parts: Sequence[Dataset], name: str) -> Dataset:
    """The images and labels of ``parts`` one after another (same classes and image shape)."""
    if not parts:
        raise DataError(f"{name}: no splits to concatenate")
    first = parts[0]
    for part in parts[1:]:
        if part.classes != first.classes or part.image_shape != first.image_shape:
            raise DataError(
                f"{name}: splits differ: classes {list(first.classes)} / {list(part.classes)}, "
                f"images {first.image_shape} / {part.image_shape}"
            )
    return Dataset(np.concatenate([p.X for p in parts]), np.concatenate([p.y for p in parts]),
                   first.classes, name)


def image_digests(X: np.ndarray) -> list[bytes]:
    """A SHA-1 digest of each image's bytes (exact duplicates share a digest)."""
    X = np.ascontiguousarray(X)
    rows = X.reshape(len(X), int(np.prod(X.shape[1:])))  # -1 cannot be inferred for 0 rows
    return [hashlib.sha1(row.tobytes()).digest() for row in rows]


def check_disjoint(pool: Dataset, test: Dataset, test_name: str) -> None:
    """Refuse ``test`` if any of its images is pixel-for-pixel in ``pool``.

    Raises:
        DataError: naming the test set and how many of its images are in the pool.
    """
    if test.X.shape[1:] != pool.X.shape[1:]:
        return  # images of another shape cannot coincide (the shape check reports these)
    in_pool = set(image_digests(pool.X))
    shared = sum(d in in_pool for d in image_digests(test.X))
    if shared:
        raise DataError(
            f"test set {test_name!r}: {shared} of its {len(test)} images are also in the pool "
            f"({pool.name!r}); a test set must not overlap the pool (check 'split' and "
            "'dataset')"
        )
