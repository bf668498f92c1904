"""``pixels``: the image itself, flattened, in ``[0, 1]`` (the reference every learned feature
must beat, and the features of activegen's linear models today)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from activegen.features.base import FeatureSource


class PixelSource(FeatureSource):
    """Flattened pixels ``[N, C·H·W]``; learns nothing from the pool."""

    kind: ClassVar[str] = "pixels"

    def _features(self, X: np.ndarray) -> np.ndarray:
        return X.reshape(len(X), -1)

    @property
    def dim(self) -> int:
        if self.image_shape is None:
            raise ValueError("pixels: the dimension is known once images were seen")
        return int(np.prod(self.image_shape))

    def settings(self) -> dict[str, Any]:
        return {"kind": self.kind}

    @property
    def id(self) -> str:
        return "pixels"  # the name today's model files record for these features
