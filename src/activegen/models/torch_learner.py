"""Shared training code of the deep learners (small CNN, ResNet-18).

A :class:`TorchLearner` trains a network from scratch on every ``fit`` (the loop retrains each
round, as the VAE paper does), with the paper's SGD settings by default (lr 1e-3, momentum
0.9), and one of three epoch schedules:

- ``fixed``: ``epochs`` every round;
- ``grow``: ``epochs`` on the initial labeled set and ``epochs_increment`` more per round —
  the paper's "10 epochs, +5 per labeling iteration". The learner is rebuilt every round and
  is told the round by its :class:`~activegen.models.capabilities.FitContext`;
- ``until-accuracy``: train until the training accuracy reaches ``target_accuracy`` (0.99 in
  the paper, after MedAL), at most ``max_epochs``.

Training is seeded (initial weights from ``seed``, batch order from a ``torch.Generator``) and
so is deterministic on the CPU.

After training, BatchNorm's running statistics are recomputed over the training images
(``bn_recalibrate``, on by default): the running averages (momentum 0.1) need tens of steps to
forget their initial mean 0 / variance 1, and with 50 labels and batch 128 an epoch is one
step, so the network evaluated in eval mode was at chance while the same weights fitted the
training set. One extra forward pass over the training set, no gradient; the weights do not
change.

``zoom = [lo, hi]`` augments each training batch (never the images scored, the pool or a
query): every image is magnified by a factor drawn from ``[lo, hi]`` (its width by a further
factor in ``[1 - ZOOM_ASPECT, 1 + ZOOM_ASPECT]``) and shifted by up to ``ZOOM_SHIFT`` of the
frame, seeded like the batch order. It teaches the network digits larger and thicker than
MNIST's 20-pixel box, such as 8×8 digits resized to 28×28 that fill the frame.

``device`` (the build context's, or ``"auto"``: CUDA when it is there) is where it trains. Optional
``bf16`` autocast and ``channels_last`` memory format speed up CPU training of ResNet-18 about
twofold (KNOWN.md: ≈116 → ≈250 images/s).

With ``loss_head`` set (:class:`LossHeadSettings`) a :class:`LossPredictionModule` is trained
jointly on the network's four stage outputs (Yoo & Kweon: ranking loss weight λ = 1, margin
ξ = 1, stage features detached from the head from epoch ``detach_epoch``), and
:meth:`LossHead.predict_loss` ranks points by predicted loss. ``FitContext.extra`` gives the
head extra per-example features (the VAE-augmented variant).

With ``ensemble = M > 1`` the learner is a deep ensemble (Lakshminarayanan et al. 2017): ``M``
networks trained independently from seeds derived from ``seed``. Its prediction is the mean of
the members' softmax outputs, and its posterior samples for the Bayesian strategies
(:meth:`Posterior.iter_proba_samples`, the ``MCDropout`` capability) are the ``M`` members'
outputs. Its embedding is the first member's features.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar, Literal, Self

import numpy as np
import torch
from pydantic import Field, field_validator, model_validator
from scipy.special import softmax
from torch import nn
from torch.nn import functional as F

from activegen._device import resolve_device
from activegen._settings import BuildContext, Settings, resolve
from activegen.errors import ConfigError
from activegen.models.base import WithEmbedding, WithMargins, WithProba, WithTorchDecision
from activegen.models.capabilities import FitContext
from activegen.models.loss_prediction import LossPredictionModule, margin_ranking_loss

#: Images per forward pass at inference (bounds memory on big pools).
INFERENCE_BATCH = 512
#: ``zoom`` augmentation: the width's extra relative scale and the largest shift (a fraction of
#: the half-frame, in ``affine_grid``'s [-1, 1] coordinates).
ZOOM_ASPECT = 0.2
ZOOM_SHIFT = 0.1


def zoom_batch(x: torch.Tensor, zoom: tuple[float, float], generator: torch.Generator
               ) -> torch.Tensor:
    """Each image of ``x`` ``[n, C, H, W]`` magnified by a factor in ``zoom`` (width by a further
    ``1 ± ZOOM_ASPECT``) and shifted by up to ``ZOOM_SHIFT``, bilinear, zeros outside."""
    n = len(x)
    lo, hi = zoom
    scale = torch.empty(n).uniform_(lo, hi, generator=generator)
    aspect = torch.empty(n).uniform_(1 - ZOOM_ASPECT, 1 + ZOOM_ASPECT, generator=generator)
    shift = torch.empty(n, 2).uniform_(-ZOOM_SHIFT, ZOOM_SHIFT, generator=generator)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = 1 / (scale * aspect)
    theta[:, 1, 1] = 1 / scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class StagedNetwork(nn.Module):
    """A classifier whose forward returns ``(logits, features, stage_maps)``.

    ``features`` is ``T_f(x)``, the input of the last (classification) layer; ``stage_maps``
    are the outputs of its four stages, read by the loss-prediction head.
    """

    stage_channels: tuple[int, ...]
    feature_dim: int
    #: applied to the features before the classification layer (``dropout = p`` swaps in
    #: ``nn.Dropout(p)``; the identity keeps results unchanged when it is off).
    head_dropout: nn.Module


def resolve_torch_device(device: str | torch.device) -> torch.device:
    """``auto`` → CUDA when visible, else CPU; anything else as given (checked by
    :mod:`activegen._device`, whose ConfigError is a clear ValueError-like refusal)."""
    if isinstance(device, torch.device):
        return device
    try:
        return torch.device(resolve_device(device))
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


class LossHeadSettings(Settings):
    """Yoo & Kweon's loss-prediction head, trained jointly with the network."""

    weight: float = Field(1.0, ge=0, description="λ, the ranking loss's weight")
    margin: float = Field(1.0, ge=0, description="ξ, the ranking loss's margin")
    hidden: int = Field(128, ge=1, description="units of each stage's FC layer")
    detach_epoch: int | None = Field(None, ge=0, description=(
        "epoch from which the stage features are detached from the head (default: 60% of "
        "the epochs, Yoo & Kweon's 120 of 200)"))


class TorchSettings(Settings):
    """Training settings shared by the deep learners (the VAE paper's SGD by default)."""

    schedule: Literal["fixed", "grow", "until-accuracy"] = Field("grow", description=(
        "fixed: epochs every round; grow: epochs + epochs_increment per round; "
        "until-accuracy: until the training accuracy reaches target_accuracy"))
    epochs: int = Field(10, ge=1, description="epochs (of the first round, with grow)")
    epochs_increment: int = Field(5, ge=0, description="more epochs per round (grow)")
    target_accuracy: float = Field(0.99, gt=0, le=1, description="until-accuracy's target")
    max_epochs: int = Field(200, ge=1, description="until-accuracy's limit")
    lr: float = Field(1e-3, gt=0, description="SGD learning rate")
    momentum: float = Field(0.9, ge=0, description="SGD momentum")
    weight_decay: float = Field(0.0, ge=0, description="SGD weight decay")
    batch_size: int = Field(128, ge=1, description="training batch size")
    bf16: bool = Field(False, description="bfloat16 autocast (about 2x on CPUs with AVX-512)")
    channels_last: bool = Field(False, description="channels-last memory format")
    bn_recalibrate: bool = Field(True, description=(
        "recompute BatchNorm statistics over the training images after training"))
    zoom: tuple[float, float] | None = Field(None, description=(
        "[lo, hi]: magnify training batches by a factor in this range (augmentation)"))
    loss_head: LossHeadSettings | None = Field(None, description=(
        "train a loss-prediction head (learning-loss strategies need it); {} for defaults"))
    dropout: float = Field(0.0, ge=0, lt=1, description=(
        "dropout before the last layer; > 0 gives MC-dropout posterior samples (BALD)"))
    ensemble: int = Field(1, ge=1, description=(
        "M > 1 trains a deep ensemble whose members are the posterior samples"))

    @field_validator("zoom")
    @classmethod
    def _zoom_range(cls, zoom: tuple[float, float] | None) -> tuple[float, float] | None:
        if zoom is not None and not 0 < zoom[0] <= zoom[1]:
            raise ValueError(f"zoom must be [lo, hi] with 0 < lo <= hi, got {list(zoom)}")
        return zoom

    @model_validator(mode="after")
    def _ensemble_alone(self) -> TorchSettings:
        if self.ensemble > 1 and (self.dropout > 0 or self.loss_head is not None):
            raise ValueError(f"ensemble = {self.ensemble} is its own posterior: set dropout = 0 "
                             "and no loss_head with it")
        return self


class TorchLearner(WithProba, WithMargins, WithEmbedding, WithTorchDecision):
    """A deep learner trained with SGD; subclasses build the network.

    What it can do beyond probabilities, margins, features and synthesis depends on its
    settings, and so does its class: building one with ``loss_head`` set gives an instance
    of a subclass that also predicts losses (:class:`LossHead`), with ``dropout > 0`` or
    ``ensemble > 1`` one that also yields posterior samples (:class:`Posterior`). A class
    has exactly the capabilities its instances can honour.
    """

    name: ClassVar[str] = "torch-learner"
    needs_images: ClassVar[bool] = True
    Settings: ClassVar[type[Settings]] = TorchSettings
    settings: TorchSettings
    #: the subclasses that add a loss head, posterior samples, or both (set per network)
    variants: ClassVar[dict[tuple[bool, bool], type[TorchLearner]]] = {}

    def __new__(cls, n_classes: int = 2, seed: int = 0, settings: Any = None, *,
                device: str | torch.device = "auto", **values: Any) -> TorchLearner:
        # Only the plain network class dispatches (a variant, or a copy being restored by
        # pickle or deepcopy, is built as the class it names).
        if cls.variants.get((False, False)) is not cls:
            return super().__new__(cls)
        resolved = resolve(cls.Settings, settings, values, f"learner {cls.name!r}")
        key = (resolved.loss_head is not None,  # type: ignore[attr-defined]
               resolved.dropout > 0 or resolved.ensemble > 1)  # type: ignore[attr-defined]
        return super().__new__(cls.variants[key])

    def __init__(self, n_classes: int, seed: int = 0, settings: Any = None, *,
                 device: str | torch.device = "auto", **values: Any) -> None:
        super().__init__(n_classes, seed, settings, **values)
        self.device = resolve_torch_device(device)
        self.network: StagedNetwork | None = None
        #: every member when ``ensemble > 1`` (``network`` is the first)
        self.members: list[StagedNetwork] = []
        self.loss_head: LossPredictionModule | None = None
        self.history: list[dict[str, float]] = []

    @classmethod
    def from_settings(cls, settings: Settings, context: BuildContext) -> Self:
        return cls(context.n_classes, context.seed, settings, device=context.device)

    # -- the network ----------------------------------------------------------------------
    @abstractmethod
    def build_network(self, in_channels: int, image_size: tuple[int, int]) -> StagedNetwork:
        """A fresh network for ``in_channels``-channel images of ``image_size`` (H, W)."""

    def epochs_for(self, round_: int) -> int:
        """Epochs the ``fixed``/``grow`` schedules train in round ``round_``."""
        if self.settings.schedule != "grow":
            return self.settings.epochs
        return self.settings.epochs + self.settings.epochs_increment * max(0, round_)

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.settings.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _autocast(self) -> Any:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.settings.bf16)

    def member_seeds(self) -> list[int]:
        """The seed of each ensemble member: ``seed`` itself for a single network."""
        if self.settings.ensemble == 1:
            return [self.seed]
        children = np.random.SeedSequence(self.seed).spawn(self.settings.ensemble)
        return [int(c.generate_state(1)[0]) for c in children]

    def _fit(self, X: np.ndarray, y: np.ndarray, context: FitContext) -> None:
        members, histories = [], []
        for seed in self.member_seeds():
            self._fit_network(X, y, context, seed)
            assert self.network is not None
            members.append(self.network)
            histories.append(self.history)
        self.members = members if self.settings.ensemble > 1 else []
        self.network, self.history = members[0], histories[0]

    def _fit_network(self, X: np.ndarray, y: np.ndarray, context: FitContext,
                     seed: int) -> None:
        """Train one network from ``seed`` (into ``network``, ``loss_head``, ``history``)."""
        extra = context.extra
        if extra is not None:
            if self.settings.loss_head is None:
                raise ValueError(f"{self.name}: extra features need a loss_head")
            extra = np.asarray(extra, dtype=np.float32)
            if extra.ndim != 2:
                raise ValueError(f"extra features must be [{len(X)}, e], got {extra.shape}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            network = self.build_network(X.shape[1], (X.shape[2], X.shape[3]))
            if self.settings.dropout > 0:  # no parameters: the initial weights do not change
                network.head_dropout = nn.Dropout(self.settings.dropout)
            head = None
            if self.settings.loss_head is not None:
                head = LossPredictionModule(network.stage_channels,
                                            self.settings.loss_head.hidden,
                                            extra_dim=0 if extra is None else extra.shape[1])
        network.to(self.device)
        if self.settings.channels_last:
            network.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        params = list(network.parameters())
        if head is not None:
            head.to(self.device)
            params += list(head.parameters())
        optimizer = torch.optim.SGD(params, lr=self.settings.lr, momentum=self.settings.momentum,
                                    weight_decay=self.settings.weight_decay)
        X_t = torch.from_numpy(np.ascontiguousarray(X))
        y_t = torch.from_numpy(y)
        E_t = None if extra is None else torch.from_numpy(extra)
        generator = torch.Generator().manual_seed(seed)
        n = len(y)
        planned = (self.settings.max_epochs if self.settings.schedule == "until-accuracy"
                   else self.epochs_for(context.round))
        loss_head = self.settings.loss_head
        detach_at = (loss_head.detach_epoch if loss_head is not None
                     and loss_head.detach_epoch is not None
                     else math.ceil(0.6 * planned))  # Yoo & Kweon: 120 of 200 epochs
        self.history = []
        for epoch in range(planned):
            network.train()
            if head is not None:
                head.train()
            order = torch.randperm(n, generator=generator)
            correct, task_sum, rank_sum, batches = 0, 0.0, 0.0, 0
            for start in range(0, n, self.settings.batch_size):
                idx = order[start:start + self.settings.batch_size]
                zoom = self.settings.zoom
                xb = X_t[idx] if zoom is None else zoom_batch(X_t[idx], zoom, generator)
                xb, yb = self._to_device(xb), y_t[idx].to(self.device)
                with self._autocast():
                    logits, _features, stages = network(xb)
                    losses = F.cross_entropy(logits.float(), yb, reduction="none")
                    loss = losses.mean()
                    if head is not None:
                        if epoch >= detach_at:
                            stages = [s.detach() for s in stages]
                        eb = None if E_t is None else E_t[idx].to(self.device)
                        predicted = head(stages, eb).float()
                        assert loss_head is not None
                        rank = margin_ranking_loss(predicted, losses, loss_head.margin)
                        loss = loss + loss_head.weight * rank
                        rank_sum += float(rank.detach())
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                correct += int((logits.argmax(1) == yb).sum())
                task_sum += float(losses.detach().mean())
                batches += 1
            record = {"epoch": epoch, "train_accuracy": correct / n,
                      "task_loss": task_sum / batches}
            if head is not None:
                record["ranking_loss"] = rank_sum / batches
            self.history.append(record)
            if (self.settings.schedule == "until-accuracy"
                    and correct / n >= self.settings.target_accuracy):
                break
        if self.settings.bn_recalibrate:
            self._recalibrate_batchnorm(network, X_t)
        network.eval()
        if head is not None:
            head.eval()
        self.network, self.loss_head = network, head

    def _recalibrate_batchnorm(self, network: nn.Module, X_t: torch.Tensor) -> None:
        """Set every BatchNorm's running mean and variance to their average over the training
        images (even batches of at most :data:`INFERENCE_BATCH`, train mode, no gradient, no
        augmentation), so that eval mode normalises as the trained weights expect however few
        steps ran."""
        norms = [m for m in network.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not norms:
            return
        saved = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches below
        network.train()
        chunks = torch.tensor_split(X_t, math.ceil(len(X_t) / INFERENCE_BATCH))  # none of 1
        try:
            with torch.no_grad(), self._autocast():
                for chunk in chunks:
                    network(self._to_device(chunk))
        finally:
            for m, momentum in zip(norms, saved, strict=True):
                m.momentum = momentum

    # -- inference ------------------------------------------------------------------------
    def _forward_all(self, X: np.ndarray, extra: np.ndarray | None = None,
                     want_loss: bool = False
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Logits, features and (``want_loss``) predicted losses, in bounded batches."""
        assert self.network is not None
        logits, feats, preds = [], [], []
        X_t = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
        with torch.inference_mode():
            for start in range(0, len(X_t), INFERENCE_BATCH):
                xb = self._to_device(X_t[start:start + INFERENCE_BATCH])
                with self._autocast():
                    out, feat, stages = self.network(xb)
                    if want_loss:
                        assert self.loss_head is not None
                        eb = None if extra is None else torch.from_numpy(
                            extra[start:start + INFERENCE_BATCH]).to(self.device)
                        preds.append(self.loss_head(stages, eb).float().cpu())
                logits.append(out.float().cpu())
                feats.append(feat.float().reshape(len(xb), -1).cpu())
        pred = torch.cat(preds).numpy() if preds else None
        return torch.cat(logits).numpy(), torch.cat(feats).numpy(), pred

    def _member_proba(self, X: np.ndarray) -> np.ndarray:
        """``[n, M, K]``: every ensemble member's softmax output."""
        single = self.network
        try:
            parts = []
            for member in self.members:
                self.network = member
                parts.append(softmax(self._forward_all(X)[0].astype(np.float64), axis=1))
        finally:
            self.network = single
        return np.stack(parts, axis=1)

    def _decision_function(self, X: np.ndarray) -> np.ndarray:
        if self.members:  # log of the ensemble's mean prediction
            logits = np.log(np.clip(self._member_proba(X).mean(axis=1), 1e-300, None))
        else:
            logits = self._forward_all(X)[0].astype(np.float64)
        return logits[:, 1] - logits[:, 0] if self.n_classes == 2 else logits

    def _predict_proba(self, X: np.ndarray) -> np.ndarray:
        if self.members:
            return self._member_proba(X).mean(axis=1)
        return softmax(self._forward_all(X)[0].astype(np.float64), axis=1)

    def _embed(self, X: np.ndarray) -> np.ndarray:
        """``T_f(x)``: the network's penultimate features."""
        self._check_fitted()
        if self.network is None:  # one class only: no network was trained
            return X.reshape(len(X), -1).astype(np.float32)
        return self._forward_all(X)[1]

    def _torch_decision(self, x: torch.Tensor) -> torch.Tensor:
        assert self.network is not None
        if self.members:  # log of the mean softmax, differentiable through every member
            x = self._to_device(x)
            probs = torch.stack([torch.softmax(m(x)[0].float(), dim=1) for m in self.members])
            logits = probs.mean(dim=0).clamp_min(1e-30).log()
        else:
            logits = self.network(self._to_device(x))[0].float()
        return logits[:, 1] - logits[:, 0] if self.n_classes == 2 else logits

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self._predict_proba(X).argmax(axis=1)

    def torch_features(self, x: torch.Tensor) -> torch.Tensor:
        """``T_f(x)``, differentiable: the penultimate features (GAAL's manifold diversity
        spreads a batch here); an ensemble's first member's, as :meth:`embed`."""
        self._check_fitted()
        if self.network is None:  # one class only: no network was trained
            return x.reshape(x.shape[0], -1)
        return self.network(self._to_device(x))[1].float().reshape(x.shape[0], -1)


class Posterior(TorchLearner):
    """A deep learner with posterior samples: dropout before the last layer (MC dropout) or a
    deep ensemble (:class:`~activegen.models.capabilities.MCDropout`)."""

    def iter_proba_samples(self, X: np.ndarray, n_samples: int, rng: np.random.Generator,
                           chunk_size: int = INFERENCE_BATCH) -> Iterator[np.ndarray]:
        """MC dropout posterior samples, one chunk of rows at a time: ``[n, T, K]`` each.

        Dropout sits before the last linear layer, so the features are computed once per
        chunk (BatchNorm in eval mode) and the ``T`` dropout masks go through ``fc`` in one
        batched product. Masks come from ``rng`` (seeded, reproducible). Memory: one chunk's
        ``[n, T, d]`` masks and ``[n, T, K]`` probabilities.

        A deep ensemble (``ensemble = M > 1``) yields its members' outputs ``[n, M, K]``
        instead: its posterior has exactly ``M`` samples, so ``n_samples`` is not used.
        """
        self._check_fitted()
        if n_samples < 1 or chunk_size < 1:
            raise ValueError(f"need n_samples >= 1 and chunk_size >= 1, got {n_samples}, "
                             f"{chunk_size}")
        X = np.asarray(X, dtype=np.float32)
        if self.settings.ensemble > 1:
            n_samples = self.settings.ensemble
        if self._constant is not None:  # one class only: every sample is certain
            for start in range(0, len(X), chunk_size):
                out = np.zeros((len(X[start:start + chunk_size]), n_samples, self.n_classes))
                out[:, :, self._constant] = 1.0
                yield out
            return
        assert self.network is not None
        if self.members:
            for start in range(0, len(X), chunk_size):
                yield self._member_proba(X[start:start + chunk_size])
            return
        generator = torch.Generator().manual_seed(int(rng.integers(2**63 - 1)))
        keep = 1.0 - self.settings.dropout
        fc = self.network.fc  # type: ignore[attr-defined]
        for start in range(0, len(X), chunk_size):
            feats = torch.from_numpy(self._forward_all(X[start:start + chunk_size])[1])
            mask = torch.rand((len(feats), n_samples, feats.shape[1]), generator=generator)
            dropped = feats[:, None, :] * (mask < keep).float() / keep
            with torch.inference_mode():
                logits = fc(dropped.to(self.device)).float().cpu().double()
            yield torch.softmax(logits, dim=2).numpy()

    def predict_proba_samples(self, X: np.ndarray, n_samples: int, rng: np.random.Generator,
                              chunk_size: int = INFERENCE_BATCH) -> np.ndarray:
        """All MC dropout samples ``[N, T, K]`` (see :meth:`iter_proba_samples`)."""
        parts = list(self.iter_proba_samples(X, n_samples, rng, chunk_size))
        return (np.concatenate(parts) if parts
                else np.empty((0, n_samples, self.n_classes)))


class LossHead(TorchLearner):
    """A deep learner trained with a loss-prediction head
    (:class:`~activegen.models.capabilities.LossPredicting`)."""

    def predict_loss(self, X: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
        """Predicted loss ``[N]`` of each image (higher = the learner expects to be wronger).

        ``extra`` must be given exactly when the learner was fitted with extra features.
        """
        self._check_fitted()
        if self.loss_head is None:  # one class only: every point is equally uncertain
            return np.zeros(len(X))
        if (extra is None) != (self.loss_head.extra_dim == 0):
            raise ValueError(f"this loss head takes {self.loss_head.extra_dim} extra features; "
                             f"got {'none' if extra is None else extra.shape}")
        if extra is not None:
            extra = np.asarray(extra, dtype=np.float32)
            if extra.shape != (len(X), self.loss_head.extra_dim):
                raise ValueError(f"extra must be [{len(X)}, {self.loss_head.extra_dim}], "
                                 f"got {extra.shape}")
        pred = self._forward_all(np.asarray(X, dtype=np.float32), extra, want_loss=True)[2]
        assert pred is not None
        return pred.astype(np.float64)
