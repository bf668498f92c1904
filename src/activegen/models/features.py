"""Feature extractors, so that a linear model can work on photos.

One spec string chooses the extractor (the ``features`` key of an image session):

- ``"pixels"``: the image itself, flattened, in ``[0, 1]`` (no weights needed; the default);
- ``"backbone:<path>"``: the 512-d pooled ``layer4`` output of a ResNet-18 whose weights are a
  local torchvision ``state_dict`` file, loaded with ``torch.load(weights_only=True)`` (nothing
  is downloaded; see :func:`activegen.models.resnet.load_imagenet_weights` for the adaptation).
  Inputs are normalised with ImageNet's mean and standard deviation.
- ``"vae"``: features learned on the unlabeled images themselves: the posterior means of the
  convolutional VAE of :mod:`activegen.generative.vae` (:data:`VAE_SETTINGS`), trained on the
  pool when the session opens (cached on disk by the pool's bytes and the seed, so reopening
  does not retrain). The exported model carries the VAE's weights as plain arrays.
- ``"self-supervised"``: SimCLR features learned on the unlabeled images themselves
  (:mod:`activegen.features.self_supervised`; settings :class:`SelfSupervisedSettings`),
  trained once per pool and settings and cached; the exported model carries the encoder's
  weights as plain arrays and its settings in the header.

Features are standardised with statistics fitted once on the pool (:meth:`FeatureExtractor.fit`),
which the exported model carries, so that predictions later see the same transform.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from activegen._cache import arrays_digest, file_digest
from activegen.errors import ConfigError
from activegen.features.settings import SelfSupervisedSettings
from activegen.generative.vae import VAESettings

if TYPE_CHECKING:
    from activegen.features.self_supervised import SelfSupervisedSource

_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

#: the VAE of ``features = "vae"`` (the project's default VAE; the model file relies on it)
VAE_SETTINGS = VAESettings(latent_dim=32, width=32, epochs=20)


def parse_features_spec(spec: str) -> tuple[str, Path | None]:
    """``("pixels", None)``, ``("vae", None)``, ``("self-supervised", None)`` or
    ``("backbone", path)``; a :class:`ConfigError` for anything else."""
    if spec in ("pixels", "vae", "self-supervised"):
        return spec, None
    if spec.startswith("backbone:") and len(spec) > len("backbone:"):
        return "backbone", Path(spec[len("backbone:"):])
    raise ConfigError(f"features {spec!r}: use 'pixels', 'vae', 'self-supervised' or "
                      "'backbone:<path to a torchvision resnet18 state dict>'")


def _model_scale(images: np.ndarray) -> np.ndarray:
    """``uint8 [N, H, W, C]`` → ``float32 [N, C, H, W]`` in ``[0, 1]``."""
    return np.ascontiguousarray(images.astype(np.float32).transpose(0, 3, 1, 2) / 255.0)


class FeatureExtractor:
    """Images ``uint8 [N, H, W, C]`` → standardised features ``float32 [N, D]``.

    Args:
        spec: see the module docstring.
        channels: the images' channel count (1 or 3).
        batch_size: images per forward pass of a backbone.
        cache_dir: where a ``vae`` or ``self-supervised`` extractor keeps what it trains
            (None: no cache).
        seed: seeds the VAE's training (the encoder's seed is in its settings).
        self_supervised: the encoder's settings (``self-supervised``; default: the defaults).
        on_progress: ``(epoch, epochs, loss)`` after each epoch of the encoder's training.
        display: the encoder's progress display (``auto``, ``bar``, ``lines``, ``none``).
    """

    def __init__(self, spec: str, channels: int, batch_size: int = 256,
                 cache_dir: Path | None = None, seed: int = 0,
                 self_supervised: SelfSupervisedSettings | None = None,
                 on_progress: Callable[[int, int, float], None] | None = None,
                 display: str = "auto") -> None:
        self.kind, self.path = parse_features_spec(spec)
        self.spec = spec
        self.channels = channels
        self.batch_size = batch_size
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None
        self.weights_sha256: str | None = None
        self._network: torch.nn.Module | None = None
        self.cache_dir, self.seed = cache_dir, seed
        self.on_progress, self.display = on_progress, display
        self._vae: torch.nn.Module | None = None
        self.encoder: SelfSupervisedSource | None = None
        if self.kind == "self-supervised":
            from activegen.features.self_supervised import SelfSupervisedSource

            self.encoder = SelfSupervisedSource(self_supervised, cache_dir=cache_dir,
                                                on_progress=on_progress, display=display)
        if self.kind == "backbone":
            from activegen.models.resnet import ResNet18Network, load_imagenet_weights

            assert self.path is not None
            network = ResNet18Network(channels, n_classes=1)
            load_imagenet_weights(network, self.path)  # ConfigError naming the file
            self._network = network.eval()
            self.weights_sha256 = file_digest(self.path)

    @property
    def id(self) -> str:
        """What the exported model records: the kind, and the weights' hash for a backbone."""
        if self.kind == "pixels":
            return "pixels"
        return f"{self.kind}:sha256={self.weights_sha256}"

    def encoder_state(self) -> dict[str, np.ndarray]:
        """The trained encoder's arrays (what an exported model carries); empty for other
        kinds."""
        if self.encoder is None or not self.encoder.fitted:
            return {}
        return self.encoder.state_arrays()

    def encoder_cached(self, images: np.ndarray) -> bool:
        """Whether fitting on ``images`` (``uint8 [N, H, W, C]``) loads its encoder from the
        cache rather than training one (always True for kinds that train nothing)."""
        if self.encoder is None:
            return self.kind != "vae"
        if self.cache_dir is None:
            return False
        from activegen.features.self_supervised import encoder_cache, encoder_cache_key

        cache = encoder_cache(Path(self.cache_dir))
        key = encoder_cache_key(_model_scale(images), self.encoder.config)
        return (cache.entry(key) / cache.main_file).is_file()

    def load_encoder_state(self, state: dict[str, np.ndarray], size: int) -> None:
        """Use an encoder given as arrays (from a model file) instead of training one.

        Raises:
            ConfigError: the arrays are not those of the settings' encoder at ``size``.
        """
        assert self.encoder is not None
        self.encoder.load_state_arrays(state, (self.channels, size, size))
        self.weights_sha256 = arrays_digest(state)

    def vae_state(self) -> dict[str, np.ndarray]:
        """The trained VAE's arrays (what an exported model carries); empty for other kinds."""
        if self._vae is None:
            return {}
        return {k: v.detach().cpu().numpy() for k, v in self._vae.state_dict().items()}

    def load_vae_state(self, state: dict[str, np.ndarray], size: int) -> None:
        """Use a VAE given as arrays (from a model file) instead of training one.

        Raises:
            ConfigError: the arrays are not those of :data:`VAE_SETTINGS`'s VAE at ``size``.
        """
        from activegen.generative.vae import ConvVAE

        network = ConvVAE(self.channels, (size, size), VAE_SETTINGS.latent_dim,
                          VAE_SETTINGS.width)
        try:
            network.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in
                                     state.items()}, strict=True)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise ConfigError(f"the VAE arrays do not fit a VAE for {size}x{size} images with "
                              f"{self.channels} channels: {str(exc)[:300]}") from None
        self._vae = network.eval()
        self.weights_sha256 = arrays_digest(state)

    def _train_vae(self, images: np.ndarray) -> None:
        from activegen.generative.vae import load_or_train_vae

        x = np.ascontiguousarray(images.astype(np.float32).transpose(0, 3, 1, 2) / 255.0)
        from activegen.features._progress import EpochProgress

        # a bar on a terminal, lines elsewhere, and the caller's callback (the labeling app)
        with EpochProgress("VAE features", VAE_SETTINGS.epochs, self.on_progress,
                           self.display) as progress:
            self._vae = load_or_train_vae(x, self.cache_dir, VAE_SETTINGS, self.seed,
                                          on_epoch=progress.epoch_done).eval()
        self.weights_sha256 = arrays_digest(self.vae_state())

    def raw(self, images: np.ndarray) -> np.ndarray:
        """Unstandardised features of ``uint8 [N, H, W, C]`` images."""
        x = images.astype(np.float32) / np.float32(255.0)
        if self.kind == "self-supervised":
            assert self.encoder is not None
            if not self.encoder.fitted:
                raise RuntimeError("FeatureExtractor('self-supervised'): fit it, or load an "
                                   "encoder, first")
            if len(x) == 0:
                return np.empty((0, self.encoder.dim), dtype=np.float32)
            return self.encoder.transform(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        if self.kind == "pixels":
            return x.reshape(len(x), int(np.prod(x.shape[1:])))  # -1 fails for 0 images
        if self.kind == "vae":
            from activegen.generative.vae import encode

            if self._vae is None:
                raise RuntimeError("FeatureExtractor('vae'): fit it, or load a VAE, first")
            if len(x) == 0:
                return np.empty((0, VAE_SETTINGS.latent_dim), dtype=np.float32)
            return encode(self._vae, np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
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
        """Fit the standardisation (and a ``vae``'s VAE) on ``images``; return their features."""
        if self.kind == "vae" and self._vae is None:
            self._train_vae(images)
        if self.encoder is not None and not self.encoder.fitted:
            self.encoder.fit(_model_scale(images))
            self.weights_sha256 = arrays_digest(self.encoder_state())
        return self.fit_raw(self.raw(images))

    def fit_raw(self, raw: np.ndarray) -> np.ndarray:
        """:meth:`fit` from raw features already computed (e.g. read from a cache)."""
        self.mean = raw.mean(axis=0)
        std = raw.std(axis=0)
        self.scale = np.where(std > 1e-6, std, 1.0).astype(np.float32)
        return self._standardise(raw)

    def standardise(self, raw: np.ndarray) -> np.ndarray:
        """Standardised features of raw ones (after a fit)."""
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
