"""``self-supervised``: features learned on the unlabeled pool itself with SimCLR.

SimCLR (Chen et al. 2020) trains an encoder so that two random views of one image
(:mod:`activegen.features.augment`) land close together and views of other images far apart
(NT-Xent, :mod:`activegen.features.contrastive`); the features are the encoder's pooled
output, before the projection head. The encoder is a small ResNet sized to the image
(:mod:`activegen.features.encoder`) so that a pool of 10,000 28×28 images trains in minutes on
a laptop-class CPU.

Training happens once per pool and settings: the encoder is an entry of the one artifact cache
(:mod:`activegen._cache`, kind ``encoders``), keyed by the pool's :func:`data_fingerprint`, the
settings and :data:`ENCODER_VERSION`, with its state dict saved with a SHA-256 that is checked
on load (:mod:`activegen.generative.checked_state`).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from activegen._cache import ArtifactCache, content_key, data_fingerprint
from activegen.errors import ConfigError, DataError
from activegen.features._progress import EpochProgress, ProgressCallback
from activegen.features._threads import torch_threads
from activegen.features.augment import Augment
from activegen.features.base import FeatureSource, check_images
from activegen.features.contrastive import nt_xent
from activegen.features.encoder import ProjectionHead, SmallResNet
from activegen.features.settings import SelfSupervisedSettings
from activegen.generative.checked_state import load_state, state_bytes, state_digest

#: Bump when the encoder, its training or its augmentations change (invalidates cached ones).
ENCODER_VERSION = 1


@dataclass
class TrainingRecord:
    """How an encoder was obtained: the loss of each epoch, the time and the threads used
    (``from_cache``: loaded, not trained, in this process)."""

    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    images: int = 0
    threads: int = 0
    from_cache: bool = False

    @property
    def images_per_second(self) -> float:
        """Pool images per second of training (each image gives two views per epoch)."""
        return self.images * len(self.losses) / self.seconds if self.seconds else float("nan")

    def to_json(self) -> str:
        return json.dumps({"losses": self.losses, "seconds": self.seconds,
                           "images": self.images, "threads": self.threads})


def build_encoder(settings: SelfSupervisedSettings, image_shape: tuple[int, int, int]
                  ) -> SmallResNet:
    """The (untrained) encoder for images ``(C, H, W)``."""
    c, h, w = image_shape
    if c not in (1, 3):
        raise DataError(f"self-supervised features take grey or RGB images, got {c} channels")
    return SmallResNet(c, (h, w), settings.width, settings.blocks, settings.stem_stride)


def _lr_at(step: int, total: int, peak: float) -> float:
    """Linear warm-up over the first 5% of steps (at least one), then cosine decay."""
    warm = max(1, total // 20)
    if step < warm:
        return peak * (step + 1) / warm
    return 0.5 * peak * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def train_encoder(X: np.ndarray, settings: SelfSupervisedSettings | None = None,
                  threads: int | None = None, on_progress: ProgressCallback | None = None,
                  display: str = "auto") -> tuple[SmallResNet, TrainingRecord]:
    """Train an encoder with SimCLR on ``X`` (``float32 [N, C, H, W]`` in ``[0, 1]``).

    Seeded: the same data, settings and thread count give the same encoder on one machine.
    ``threads`` sets torch's thread count for the training (None: the idle cores, see
    :func:`activegen.features._threads.idle_cores`).
    """
    settings = settings if settings is not None else SelfSupervisedSettings()
    X = check_images(X, "self-supervised training")
    if len(X) < 2:
        raise DataError("self-supervised training needs at least 2 images")
    shape = tuple(X.shape[1:])
    batch = min(settings.batch_size, len(X))
    steps_per_epoch = len(X) // batch  # full batches only: every step sees 2·batch-2 negatives
    total = steps_per_epoch * settings.epochs
    record = TrainingRecord(images=len(X))
    contrastive_loss = {"simclr": nt_xent}[settings.method]  # the one method so far
    with torch_threads(threads) as n_threads, torch.random.fork_rng(devices=[]):
        record.threads = n_threads
        torch.manual_seed(settings.seed)
        encoder = build_encoder(settings, shape)  # type: ignore[arg-type]
        head = ProjectionHead(encoder.feature_dim, settings.projection_dim,
                              settings.projection_hidden)
        augment = Augment(shape[0], shape[1:], settings.min_crop_scale, settings.rotation,
                          settings.translate, settings.flip, settings.jitter)
        params = [*encoder.parameters(), *head.parameters()]
        optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
        data = torch.from_numpy(X)
        encoder.train()
        head.train()
        step = 0
        start = time.perf_counter()
        with EpochProgress("self-supervised features", settings.epochs, on_progress,
                           display) as progress:
            for epoch in range(settings.epochs):
                order = torch.randperm(len(data))
                total_loss = 0.0
                for s in range(steps_per_epoch):
                    x = data[order[s * batch:(s + 1) * batch]]
                    with torch.no_grad():
                        views = torch.cat([augment(x), augment(x)])
                    z = head(encoder(views))
                    loss = contrastive_loss(z[:batch], z[batch:], settings.temperature)
                    for group in optimizer.param_groups:
                        group["lr"] = _lr_at(step, total, settings.lr)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    total_loss += float(loss.detach())
                    step += 1
                record.losses.append(total_loss / steps_per_epoch)
                progress.epoch_done(epoch + 1, record.losses[-1])
        record.seconds = time.perf_counter() - start
    return encoder.eval(), record


def encode(encoder: SmallResNet, X: np.ndarray, threads: int | None = None) -> np.ndarray:
    """Features ``float32 [len(X), feature_dim]`` of a batch, in inference mode."""
    with torch_threads(threads), torch.inference_mode():
        return encoder.eval()(torch.from_numpy(np.ascontiguousarray(X))).numpy()


def encoder_cache_key(X: np.ndarray, settings: SelfSupervisedSettings) -> str:
    """The key of the encoder trained on ``X`` with ``settings``."""
    return content_key({"data": data_fingerprint(X), "settings": settings.model_dump(),
                        "version": ENCODER_VERSION})


def encoder_cache(cache_dir: Path, on_damaged: Literal["rebuild", "refuse"] = "rebuild"
                  ) -> ArtifactCache:
    """The ``encoders`` cache under ``cache_dir``. A damaged entry is rebuilt by default: an
    encoder is a pure function of the pool and the settings, so training it again gives the
    same features (a warning names the damaged file)."""
    return ArtifactCache(Path(cache_dir), "encoders", what="self-supervised encoder",
                         main_file="model.pt", on_damaged=on_damaged)


def load_or_train_encoder(X: np.ndarray, cache_dir: Path | None,
                          settings: SelfSupervisedSettings | None = None,
                          threads: int | None = None,
                          on_progress: ProgressCallback | None = None, display: str = "auto",
                          on_damaged: Literal["rebuild", "refuse"] = "rebuild"
                          ) -> tuple[SmallResNet, TrainingRecord]:
    """The encoder of pool ``X``: loaded from ``cache_dir`` when trained before (its SHA-256
    checked), else trained and saved there; ``cache_dir=None`` trains without caching."""
    settings = settings if settings is not None else SelfSupervisedSettings()
    X = check_images(X, "self-supervised training")
    if cache_dir is None:
        return train_encoder(X, settings, threads, on_progress, display)
    shape = tuple(X.shape[1:])

    def build(folder: Path) -> tuple[SmallResNet, TrainingRecord]:
        encoder, record = train_encoder(X, settings, threads, on_progress, display)
        (folder / "model.pt").write_bytes(state_bytes(encoder.state_dict()))
        (folder / "training.json").write_text(record.to_json())
        (folder / "settings.json").write_text(json.dumps(
            {"settings": settings.model_dump(), "image_shape": list(shape),
             "version": ENCODER_VERSION}, indent=2))
        return encoder, record

    def load(entry: Path) -> tuple[SmallResNet, TrainingRecord]:
        encoder = build_encoder(settings, shape)  # type: ignore[arg-type]
        encoder.load_state_dict(load_state(entry / "model.pt"))  # checks the SHA-256
        saved = json.loads((entry / "training.json").read_text())
        record = TrainingRecord(saved["losses"], saved["seconds"], saved["images"],
                                saved["threads"], from_cache=True)
        return encoder.eval(), record

    cache = encoder_cache(Path(cache_dir), on_damaged)
    return cache.load_or_build(encoder_cache_key(X, settings), build, load)[0]


class SelfSupervisedSource(FeatureSource):
    """SimCLR features learned on the pool (see the module docstring).

    Args:
        settings: the encoder's settings (defaults: :class:`SelfSupervisedSettings`).
        cache_dir: the artifact cache root (None: train in memory, every time).
        threads: torch threads for training and extraction (None: the idle cores, see
            :func:`activegen.features._threads.idle_cores`).
        on_progress: ``(epoch, epochs, loss)`` after each training epoch, e.g. for a server
            to show "preparing features: epoch 3 of 20".
        display: progress display while training (``auto``, ``bar``, ``lines``, ``none``).
        batch_size: images per forward pass when extracting.
        on_damaged: what a damaged cache entry gets (``rebuild`` or ``refuse``).
    """

    kind: ClassVar[str] = "self-supervised"
    needs_fit: ClassVar[bool] = True

    def __init__(self, settings: SelfSupervisedSettings | None = None,
                 cache_dir: Path | None = None, threads: int | None = None,
                 on_progress: ProgressCallback | None = None, display: str = "auto",
                 batch_size: int = 512,
                 on_damaged: Literal["rebuild", "refuse"] = "rebuild") -> None:
        super().__init__(batch_size)
        self.config = settings if settings is not None else SelfSupervisedSettings()
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.threads, self.on_progress, self.display = threads, on_progress, display
        self.on_damaged = on_damaged
        self.encoder: SmallResNet | None = None
        self.weights_sha256: str | None = None
        self.training: TrainingRecord | None = None

    def _fit(self, X_pool: np.ndarray) -> None:
        self.encoder, self.training = load_or_train_encoder(
            X_pool, self.cache_dir, self.config, self.threads, self.on_progress, self.display,
            self.on_damaged)
        self.weights_sha256 = state_digest(self.encoder.state_dict())

    def _features(self, X: np.ndarray) -> np.ndarray:
        assert self.encoder is not None
        return encode(self.encoder, X, self.threads)

    @property
    def dim(self) -> int:
        return 4 * self.config.width

    def settings(self) -> dict[str, Any]:
        return {"kind": self.kind, "settings": self.config.model_dump(),
                "image_shape": list(self.image_shape) if self.image_shape else None,
                "weights_sha256": self.weights_sha256, "version": ENCODER_VERSION}

    # -- as plain arrays, for a model file without pickle ---------------------------------
    def state_arrays(self) -> dict[str, np.ndarray]:
        """The trained encoder's tensors as arrays (what a model file carries)."""
        if self.encoder is None:
            raise DataError("self-supervised: fit(pool) or load_state_arrays(...) first")
        return {k: v.detach().cpu().numpy() for k, v in self.encoder.state_dict().items()}

    def load_state_arrays(self, arrays: dict[str, np.ndarray],
                          image_shape: tuple[int, int, int]) -> None:
        """Use an encoder given as arrays (from a model file) instead of training one.

        Raises:
            ConfigError: the arrays are not those of this settings' encoder for the shape.
        """
        encoder = build_encoder(self.config, image_shape)
        try:
            encoder.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in
                                     arrays.items()}, strict=True)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise ConfigError(f"the encoder arrays do not fit a {self.config.width}-wide "
                              f"encoder for images {image_shape}: {str(exc)[:300]}") from None
        self.encoder = encoder.eval()
        self.image_shape = tuple(image_shape)  # type: ignore[assignment]
        self.weights_sha256 = state_digest(encoder.state_dict())
        self.fitted = True
