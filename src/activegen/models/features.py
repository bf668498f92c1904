"""Feature extractors, so that a linear model can work on photos.

One spec string chooses the extractor (the ``features`` key of an image session):

- ``"pixels"``: the image itself, flattened, in ``[0, 1]`` (no weights needed; the default);
- ``"backbone:<path>"``: the 512-d pooled ``layer4`` output of a ResNet-18 whose weights are a
  local torchvision ``state_dict`` file, loaded with ``torch.load(weights_only=True)`` (nothing
  is downloaded; see :func:`activegen.models.resnet.load_imagenet_weights` for the adaptation).
  Inputs are normalised with ImageNet's mean and standard deviation.

Features are standardised with statistics fitted once on the pool (:meth:`FeatureExtractor.fit`),
which the exported model carries, so that predictions later see the same transform.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from activegen.errors import ConfigError

_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def parse_features_spec(spec: str) -> tuple[str, Path | None]:
    """``("pixels", None)`` or ``("backbone", path)``; a :class:`ConfigError` for anything else."""
    if spec == "pixels":
        return "pixels", None
    if spec.startswith("backbone:") and len(spec) > len("backbone:"):
        return "backbone", Path(spec[len("backbone:"):])
    raise ConfigError(f"features {spec!r}: use 'pixels' or 'backbone:<path to a torchvision "
                      "resnet18 state dict>'")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class FeatureExtractor:
    """Images ``uint8 [N, H, W, C]`` → standardised features ``float32 [N, D]``.

    Args:
        spec: see the module docstring.
        channels: the images' channel count (1 or 3).
        batch_size: images per forward pass of a backbone.
    """

    def __init__(self, spec: str, channels: int, batch_size: int = 256) -> None:
        self.kind, self.path = parse_features_spec(spec)
        self.spec = spec
        self.channels = channels
        self.batch_size = batch_size
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None
        self.weights_sha256: str | None = None
        self._network: torch.nn.Module | None = None
        if self.kind == "backbone":
            from activegen.models.resnet import ResNet18Network, load_imagenet_weights

            assert self.path is not None
            network = ResNet18Network(channels, n_classes=1)
            load_imagenet_weights(network, self.path)  # ConfigError naming the file
            self._network = network.eval()
            self.weights_sha256 = file_sha256(self.path)

    @property
    def id(self) -> str:
        """What the exported model records: the kind, and the weights' hash for a backbone."""
        return "pixels" if self.kind == "pixels" else f"backbone:sha256={self.weights_sha256}"

    def raw(self, images: np.ndarray) -> np.ndarray:
        """Unstandardised features of ``uint8 [N, H, W, C]`` images."""
        x = images.astype(np.float32) / np.float32(255.0)
        if self.kind == "pixels":
            return x.reshape(len(x), int(np.prod(x.shape[1:])))  # -1 fails for 0 images
        assert self._network is not None
        if self.channels == 3:
            x = (x - _IMAGENET_MEAN) / _IMAGENET_STD
        else:
            x = (x - _IMAGENET_MEAN.mean()) / _IMAGENET_STD.mean()
        out = []
        with torch.no_grad():
            for start in range(0, len(x), self.batch_size):
                chunk = torch.from_numpy(np.ascontiguousarray(
                    x[start:start + self.batch_size].transpose(0, 3, 1, 2)))
                out.append(self._network(chunk)[1].numpy())
        return (np.concatenate(out) if out else np.empty((0, 512))).astype(np.float32)

    def fit(self, images: np.ndarray) -> np.ndarray:
        """Fit the standardisation on ``images`` and return their features."""
        raw = self.raw(images)
        self.mean = raw.mean(axis=0)
        std = raw.std(axis=0)
        self.scale = np.where(std > 1e-6, std, 1.0).astype(np.float32)
        return self._standardise(raw)

    def set_standardisation(self, mean: np.ndarray, scale: np.ndarray) -> None:
        self.mean = np.asarray(mean, dtype=np.float32)
        self.scale = np.asarray(scale, dtype=np.float32)

    def _standardise(self, raw: np.ndarray) -> np.ndarray:
        assert self.mean is not None and self.scale is not None
        return ((raw - self.mean) / self.scale).astype(np.float32)

    def transform(self, images: np.ndarray) -> np.ndarray:
        """Standardised features (after :meth:`fit` or :meth:`set_standardisation`)."""
        if self.mean is None:
            raise RuntimeError("FeatureExtractor.transform before fit")
        return self._standardise(self.raw(images))
