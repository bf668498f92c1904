"""The one in-memory dataset type and the transforms every experiment needs.

Images are kept as ``uint8 [N, H, W, C]`` (the form every on-disk format decodes to) and turned
into the models' input scale, ``float32 [N, C, H, W]`` in ``[0, 1]``, by :meth:`Dataset.to_float`
alone, so that learners, generators and strategies share one pixel scale (a generator trained
on ``[-1, 1]`` maps back through :func:`activegen.data.dataset.to_unit_range`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from activegen.errors import DataError


@dataclass(frozen=True)
class Dataset:
    """Images with integer labels.

    Attributes:
        X: ``uint8`` array ``[N, H, W, C]``.
        y: ``int64`` array ``[N]`` with values in ``range(len(classes))``.
        classes: the name of each label value.
        name: a short name used in results and error messages.
    """

    X: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    name: str = "dataset"
    meta: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.X.ndim != 4:
            raise DataError(f"{self.name}: images must be [N, H, W, C], got shape {self.X.shape}")
        if self.X.dtype != np.uint8:
            raise DataError(f"{self.name}: images must be uint8, got {self.X.dtype}")
        if self.y.ndim != 1 or len(self.y) != len(self.X):
            raise DataError(
                f"{self.name}: {len(self.X)} images but labels of shape {self.y.shape}"
            )
        if self.y.dtype != np.int64:
            object.__setattr__(self, "y", self.y.astype(np.int64))
        if len(self.y) and (self.y.min() < 0 or self.y.max() >= len(self.classes)):
            raise DataError(
                f"{self.name}: labels span [{self.y.min()}, {self.y.max()}] "
                f"but there are {len(self.classes)} classes"
            )

    def __len__(self) -> int:
        return len(self.y)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of one image."""
        return tuple(self.X.shape[1:])  # type: ignore[return-value]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def to_float(self) -> np.ndarray:
        """Images as ``float32 [N, C, H, W]`` in ``[0, 1]``: the input of every model."""
        return images_to_float(self.X)

    def take(self, indices: np.ndarray, name: str | None = None) -> Dataset:
        """The rows at ``indices``, in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        return Dataset(self.X[indices], self.y[indices], self.classes, name or self.name, self.meta)

    def select_classes(self, classes: Sequence[int | str], name: str | None = None) -> Dataset:
        """Keep only ``classes`` (names or label values) and relabel them ``0..k-1`` in order.

        Raises:
            DataError: a requested class is not in the data.
        """
        values: list[int] = []
        for cls in classes:
            value = self._class_value(cls)
            if value in values:
                raise DataError(f"{self.name}: class {cls!r} requested twice")
            values.append(value)
        mask = np.isin(self.y, values)
        remap = np.full(len(self.classes), -1, dtype=np.int64)
        remap[values] = np.arange(len(values))
        present = set(np.unique(self.y[mask]).tolist())
        missing = [self.classes[v] for v in values if v not in present]
        if missing:
            raise DataError(f"{self.name}: no images of class {missing} in the data")
        return Dataset(
            self.X[mask],
            remap[self.y[mask]],
            tuple(self.classes[v] for v in values),
            name or self.name,
            self.meta,
        )

    def _class_value(self, cls: int | str) -> int:
        if isinstance(cls, str) and cls in self.classes:
            return self.classes.index(cls)
        if isinstance(cls, (int, np.integer)) and not isinstance(cls, bool):
            if str(cls) in self.classes:  # digits: class "5" has value 5 only if all present
                return self.classes.index(str(cls))
            if 0 <= int(cls) < len(self.classes):
                return int(cls)
        raise DataError(
            f"{self.name}: class {cls!r} is not in the data; its classes are {list(self.classes)}"
        )

    def resize(self, size: tuple[int, int], name: str | None = None) -> Dataset:
        """Resize every image to ``size = (H, W)`` with bilinear interpolation (antialiased)."""
        h, w = int(size[0]), int(size[1])
        if (h, w) == self.X.shape[1:3]:
            return self
        resized = resize_images(self.X, (h, w))
        return Dataset(resized, self.y, self.classes, name or self.name, self.meta)

    def pad_to(self, size: tuple[int, int], name: str | None = None) -> Dataset:
        """Centre every image on a black canvas of ``size`` (no scaling)."""
        h, w = self.X.shape[1:3]
        th, tw = int(size[0]), int(size[1])
        if th < h or tw < w:
            raise DataError(f"{self.name}: cannot pad {h}x{w} images to the smaller {th}x{tw}")
        top, left = (th - h) // 2, (tw - w) // 2
        out = np.zeros((len(self), th, tw, self.X.shape[3]), dtype=np.uint8)
        out[:, top : top + h, left : left + w] = self.X
        return Dataset(out, self.y, self.classes, name or self.name, self.meta)

    def to_channels(self, channels: int) -> Dataset:
        """Convert grey to RGB (repeat) or RGB to grey (luma), so two sources can be compared."""
        c = self.X.shape[3]
        if c == channels:
            return self
        if c == 1 and channels == 3:
            return Dataset(np.repeat(self.X, 3, axis=3), self.y, self.classes, self.name, self.meta)
        if c == 3 and channels == 1:
            luma = self.X.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
            grey = np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]
            return Dataset(grey, self.y, self.classes, self.name, self.meta)
        raise DataError(f"{self.name}: cannot convert {c} channels to {channels}")

    def subset(self, n: int, seed: int, name: str | None = None) -> Dataset:
        """A seeded random subset of ``n`` images (class proportions preserved)."""
        if n > len(self):
            raise DataError(
                f"{self.name}: asked for a subset of {n} but there are {len(self)} images"
            )
        keep, _ = stratified_split_indices(self.y, n, seed)
        return self.take(np.sort(keep), name)

    def split(self, test_fraction: float, seed: int) -> tuple[Dataset, Dataset]:
        """A seeded stratified split into ``(train, test)``."""
        if not 0.0 < test_fraction < 1.0:
            raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}")
        n_train = len(self) - max(1, round(test_fraction * len(self)))
        train_idx, test_idx = stratified_split_indices(self.y, n_train, seed)
        return (
            self.take(np.sort(train_idx), f"{self.name}"),
            self.take(np.sort(test_idx), f"{self.name}-test"),
        )

    def renamed(self, name: str) -> Dataset:
        return Dataset(self.X, self.y, self.classes, name, self.meta)


def images_to_float(images: np.ndarray) -> np.ndarray:
    """``uint8 [N, H, W, C]`` → ``float32 [N, C, H, W]`` in ``[0, 1]``."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)


def float_to_images(x: np.ndarray) -> np.ndarray:
    """``float32 [N, C, H, W]`` in ``[0, 1]`` → ``uint8 [N, H, W, C]`` (for saving and display)."""
    return np.clip(np.rint(np.asarray(x) * 255.0), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def to_unit_range(x: torch.Tensor) -> torch.Tensor:
    """Map a generator's ``tanh`` output in ``[-1, 1]`` to the models' ``[0, 1]`` scale."""
    return (x + 1.0) * 0.5


def resize_images(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize ``uint8 [N, H, W, C]`` images with antialiased bilinear interpolation (torch)."""
    x = torch.from_numpy(images_to_float(images))
    out = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    return float_to_images(out.numpy())


def stratified_split_indices(
    y: np.ndarray, n_first: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(len(y))`` into ``n_first`` and the rest, keeping class proportions."""
    rng = np.random.default_rng(seed)
    n = len(y)
    order = rng.permutation(n)
    # Allocate n_first across classes proportionally (largest remainder), then take the first
    # ones of each class in the shuffled order.
    classes, counts = np.unique(y, return_counts=True)
    exact = counts * (n_first / n)
    alloc = np.floor(exact).astype(int)
    remainder = n_first - alloc.sum()
    if remainder:
        alloc[np.argsort(-(exact - alloc), kind="stable")[:remainder]] += 1
    first: list[np.ndarray] = []
    for cls, k in zip(classes, alloc, strict=True):
        members = order[y[order] == cls]
        first.append(members[:k])
    first_idx = np.concatenate(first) if first else np.empty(0, dtype=np.int64)
    mask = np.zeros(n, dtype=bool)
    mask[first_idx] = True
    return order[mask[order]].astype(np.int64), order[~mask[order]].astype(np.int64)
