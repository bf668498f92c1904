"""Feature sources: images ``float32 [N, C, H, W]`` → feature vectors ``float32 [N, d]``.

One spec string names a source (:func:`make_source`):

- ``pixels``: the flattened image (:mod:`.pixels`);
- ``self-supervised``: SimCLR features learned on the unlabeled pool (:mod:`.self_supervised`);
- ``timm:NAME[@weights]``, ``open_clip:ARCH[:TAG][@weights]``, ``torchvision:NAME[@weights]``:
  pretrained backbones through their libraries' loaders, offline (:mod:`.pretrained`);
- ``vae`` and ``backbone:<path>``: today's extractors of :mod:`activegen.models.features`
  (:mod:`.legacy`).

Every source keeps the :class:`FeatureSource` contract: ``fit(pool)`` once (cached where it
trains), ``transform(X)`` in bounded memory, ``settings()`` and ``id`` for cache keys and model
files.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from activegen.errors import ConfigError
from activegen.features.settings import FeaturesSettings, SelfSupervisedSettings

if TYPE_CHECKING:
    from activegen.features._progress import ProgressCallback
    from activegen.features.base import FeatureSource

#: the package's names, imported on first use: a config names ``[features]`` without torch
_LAZY = {
    "FeatureSource": "activegen.features.base",
    "NotFittedFeaturesError": "activegen.features.base",
    "PixelSource": "activegen.features.pixels",
    "PretrainedSource": "activegen.features.pretrained",
    "LIBRARIES": "activegen.features.pretrained",
    "parse_pretrained_spec": "activegen.features.pretrained",
    "SelfSupervisedSource": "activegen.features.self_supervised",
    "TrainingRecord": "activegen.features.self_supervised",
}

__all__ = ["FeaturesSettings", "SelfSupervisedSettings", "make_source", "source_for", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'activegen.features' has no attribute {name!r}")


def source_for(features: FeaturesSettings, channels: int, cache_dir: Path | None,
               seed: int = 0, **options: Any) -> FeatureSource:
    """The source a ``[features]`` table names, not yet fitted (``options``: threads,
    on_progress, display)."""
    return make_source(features.source, channels=channels, cache_dir=cache_dir, seed=seed,
                       settings=features.self_supervised, image_size=features.image_size,
                       **options)


def make_source(spec: str, *, channels: int | None = None, cache_dir: Path | None = None,
                seed: int = 0, settings: SelfSupervisedSettings | None = None,
                threads: int | None = None, on_progress: ProgressCallback | None = None,
                display: str = "auto", image_size: int | None = None) -> FeatureSource:
    """The feature source a spec names (see the module docstring).

    Args:
        spec: the source's name.
        channels: the images' channels; needed by ``vae`` and ``backbone:``.
        cache_dir: the artifact cache root for sources that train.
        seed: seeds what trains (``self-supervised`` takes its seed from ``settings``).
        settings: the ``self-supervised`` settings (default: the measured defaults).
        threads: torch threads (None: the idle cores).
        on_progress: ``(epoch, epochs, loss)`` while a source trains.
        display: progress display while training (``auto``, ``bar``, ``lines``, ``none``).
        image_size: a pretrained backbone's input size (None: the model's).

    Raises:
        ConfigError: an unknown spec, or a pretrained backbone whose library or weights are
            missing (nothing is downloaded).
    """
    from activegen.features.pixels import PixelSource
    from activegen.features.pretrained import LIBRARIES, PretrainedSource
    from activegen.features.self_supervised import SelfSupervisedSource

    if spec == "pixels":
        return PixelSource()
    if spec == "self-supervised":
        return SelfSupervisedSource(settings, cache_dir=cache_dir, threads=threads,
                                    on_progress=on_progress, display=display)
    if spec.partition(":")[0] in LIBRARIES:
        return PretrainedSource(spec, image_size=image_size, threads=threads)
    if spec == "vae" or spec.startswith("backbone:"):
        from activegen.features.legacy import ExtractorSource

        if channels not in (1, 3):
            raise ConfigError(f"features {spec!r}: pass channels (1 or 3)")
        return ExtractorSource(spec, channels, cache_dir=cache_dir, seed=seed,
                               on_progress=on_progress, display=display)
    raise ConfigError(f"features {spec!r}: use pixels, self-supervised, vae, backbone:<path>, "
                      "timm:NAME[@weights], open_clip:ARCH[:TAG][@weights] or "
                      "torchvision:NAME[@weights]")
