"""Bring your own network: any ``torch.nn.Module`` classifier as an activegen learner.

:class:`TorchModuleLearner` trains a module that maps ``float32`` examples (images
``[N, C, H, W]`` in ``[0, 1]``, or feature rows ``[N, d]``) to logits ``[N, K]``, from the
same initial weights on every fit (a factory is called under the fit's seed; a module object
is copied), with SGD for ``epochs`` epochs (the ``grow`` schedule adds ``epochs_increment``
per round, read from the fit context). ``embed``
is the output of the submodule named ``embedding`` (a forward hook), or by default the input
of the module's last ``nn.Linear`` layer: the penultimate features. Its decision function is
differentiable, so synthesis strategies (GAAL) can use it. From a config:
``learner = { name = "torch-module", module = "mypackage.nets.make_net", params = {...},
allow_imports = ["mypackage"] }`` (a path outside ``torch.nn`` and ``torchvision.models``
needs its package listed: a config that runs code of its own says so,
:mod:`activegen.models.dotted`).

A module with dropout layers (``nn.Dropout`` and its 1-3d and alpha variants) gives a
:class:`TorchModuleMCDropout` learner, which also yields MC-dropout posterior samples
(:class:`~activegen.models.capabilities.MCDropout`, what BALD and the other Bayesian
strategies read): its dropout layers stay active at query time, everything else (BatchNorm
included) in eval mode. A class has exactly the capabilities its instances honour, so the
module is inspected when the learner is built (a factory is called once to look; a config
being validated calls none, see :func:`has_dropout`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, Literal, Self

import numpy as np
import torch
from pydantic import Field, field_validator
from scipy.special import softmax
from torch import nn
from torch.nn import functional as F

from activegen._device import resolve_device
from activegen._settings import BuildContext, Settings, resolve
from activegen.errors import ConfigError
from activegen.models.base import WithEmbedding, WithMargins, WithProba, WithTorchDecision
from activegen.models.capabilities import FitContext
from activegen.models.dotted import check_arguments, check_prefixes, import_path

INFERENCE_BATCH = 1024


class ModuleFactory:
    """Builds fresh modules: copies a module object, or calls a factory with ``params``
    (a class, not a closure, so that a fitted learner pickles)."""

    def __init__(self, source: Any, params: dict[str, Any], label: str) -> None:
        self.source, self.params, self.label = source, params, label

    def __call__(self) -> nn.Module:
        if isinstance(self.source, nn.Module):
            return copy.deepcopy(self.source)
        built = self.source(**self.params)
        if not isinstance(built, nn.Module):
            raise ConfigError(f"learner 'torch-module': {self.label} built a "
                              f"{type(built).__name__}, not an nn.Module")
        return built


#: where a module's import path may point without ``allow_imports``
DEFAULT_MODULE_PACKAGES = ("torch.nn", "torchvision.models")
_OWNER = "learner 'torch-module'"


def resolve_module(module: Any, params: dict[str, Any] | None = None,
                   allow_imports: Sequence[str] = ()) -> ModuleFactory:
    """A factory of fresh modules from a module object, a callable or a dotted path, checked
    without calling anything (:mod:`activegen.models.dotted`): a path is imported only inside
    ``torch.nn``, ``torchvision.models`` or ``allow_imports``; a class must be an
    ``nn.Module`` whose constructor takes ``params``; a factory is called at fit time.

    Raises:
        ConfigError: the path is not trusted or does not import, or names neither a module
            nor a callable, or a constructor that does not take ``params``.
    """
    obj = module
    if isinstance(module, str):
        obj = import_path(module, DEFAULT_MODULE_PACKAGES, allow_imports, _OWNER, "module")
    if isinstance(obj, nn.Module):
        if params:
            raise ConfigError(f"{_OWNER}: params apply to a factory, not a module")
    elif isinstance(obj, type) and not issubclass(obj, nn.Module):
        raise ConfigError(f"{_OWNER}: {module!r} is a class but not an nn.Module")
    elif not callable(obj):
        raise ConfigError(f"{_OWNER}: {module!r} is neither an nn.Module nor a callable that "
                          "builds one")
    else:
        check_arguments(obj, dict(params or {}), _OWNER, f"module {module!r}")
    return ModuleFactory(obj, dict(params or {}), repr(module))


class TorchModuleSettings(Settings):
    """A user's module and how to train it."""

    module: Any = Field(None, description=(
        "an nn.Module, a callable returning one, or a dotted path to either"))
    params: dict[str, Any] = Field(default_factory=dict,
                                   description="keyword arguments of the factory")
    allow_imports: list[str] = Field(default_factory=list, description=(
        "packages besides torch.nn and torchvision.models that module's path may import "
        "(e.g. [\"mypackage\"]); importing runs their code and fitting calls the factory: "
        "list only code you trust"))
    embedding: str | None = Field(None, description=(
        "name of the submodule whose output is embed (default: the input of the last "
        "nn.Linear)"))
    epochs: int = Field(10, ge=1, description="epochs (of the first round, with grow)")
    epochs_increment: int = Field(0, ge=0, description="more epochs per round (grow)")
    schedule: Literal["fixed", "grow"] = Field("fixed", description=(
        "fixed: epochs every round; grow: epochs + epochs_increment per round"))
    lr: float = Field(0.01, gt=0, description="SGD learning rate")
    momentum: float = Field(0.9, ge=0, description="SGD momentum")
    weight_decay: float = Field(0.0, ge=0, description="SGD weight decay")
    batch_size: int = Field(64, ge=1, description="training batch size")

    @field_validator("allow_imports")
    @classmethod
    def _trusted_prefixes(cls, value: list[str]) -> list[str]:
        return check_prefixes(value)


def dropout_layers(module: nn.Module) -> list[nn.Module]:
    """The dropout layers of ``module`` (every ``nn.Dropout`` kind)."""
    return [m for m in module.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]


def has_dropout(factory: ModuleFactory, probe: bool = False) -> bool:
    """Whether the modules ``factory`` builds have a dropout layer (one is built to look, with
    the global random state left as it was). A ``probe`` (a config being validated) calls
    nothing: a factory may have one (the learner built to run looks, and a strategy that reads
    MC-dropout samples refuses it then if it has none)."""
    if isinstance(factory.source, nn.Module):
        return bool(dropout_layers(factory.source))
    if probe:
        return True
    with torch.random.fork_rng(devices=[]):
        return bool(dropout_layers(factory()))


class TorchModuleLearner(WithProba, WithMargins, WithEmbedding, WithTorchDecision):
    """A user's ``nn.Module`` classifier behind the learner contract (see the module docstring).

    ``seed`` seeds the initial weights (factories) and the batch order; ``device`` is
    ``auto`` (CUDA when present), ``cpu``, ``cuda[:i]`` or ``mps``. Building one over a
    module with dropout layers gives a :class:`TorchModuleMCDropout`.
    """

    name: ClassVar[str] = "torch-module"
    Settings = TorchModuleSettings
    settings: TorchModuleSettings

    def __new__(cls, n_classes: int = 2, seed: int = 0, settings: Any = None, *,
                device: str = "auto", probe: bool = False, **values: Any
                ) -> TorchModuleLearner:
        # Only the plain class dispatches (the variant, or a copy being restored by pickle or
        # deepcopy, is built as the class it names).
        if cls is not TorchModuleLearner:
            return super().__new__(cls)
        resolved = resolve(cls.Settings, settings, values, f"learner {cls.name!r}")
        module = resolved.module  # type: ignore[attr-defined]
        if module is not None:
            factory = resolve_module(module, resolved.params,  # type: ignore[attr-defined]
                                     resolved.allow_imports)  # type: ignore[attr-defined]
            if has_dropout(factory, probe):
                return super().__new__(TorchModuleMCDropout)
        return super().__new__(cls)

    def __init__(self, n_classes: int, seed: int = 0, settings: Any = None, *,
                 device: str = "auto", probe: bool = False, **values: Any) -> None:
        super().__init__(n_classes, seed, settings, **values)
        if self.settings.module is None:
            raise ConfigError("learner 'torch-module' needs module (an nn.Module, a factory "
                              "or a dotted path)")
        self.make_module = resolve_module(self.settings.module, self.settings.params,
                                          self.settings.allow_imports)
        self.device = torch.device(resolve_device(device))
        self.network: nn.Module | None = None

    @classmethod
    def from_settings(cls, settings: Settings, context: BuildContext) -> Self:
        return cls(context.n_classes, context.seed, settings, device=context.device,
                   probe=context.probe)

    def _hook_target(self, network: nn.Module) -> tuple[nn.Module, bool]:
        """The submodule whose output (True) or input (False) is the embedding."""
        if self.settings.embedding is not None:
            found = dict(network.named_modules()).get(self.settings.embedding)
            if found is None:
                raise ConfigError(f"learner 'torch-module': no submodule "
                                  f"{self.settings.embedding!r}")
            return found, True
        linears = [m for m in network.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ConfigError("learner 'torch-module': no nn.Linear layer to embed before; "
                              "name the embedding submodule")
        return linears[-1], False

    def _fit(self, X: np.ndarray, y: np.ndarray, context: FitContext) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            network = self.make_module().to(self.device)
        settings = self.settings
        optimizer = torch.optim.SGD(network.parameters(), lr=settings.lr,
                                    momentum=settings.momentum,
                                    weight_decay=settings.weight_decay)
        X_t, y_t = torch.from_numpy(np.ascontiguousarray(X)), torch.from_numpy(y)
        generator = torch.Generator().manual_seed(self.seed)
        epochs = settings.epochs + (settings.epochs_increment * max(0, context.round)
                                    if settings.schedule == "grow" else 0)
        network.train()
        for _ in range(epochs):
            order = torch.randperm(len(y), generator=generator)
            for start in range(0, len(y), settings.batch_size):
                idx = order[start:start + settings.batch_size]
                logits = network(X_t[idx].to(self.device))
                loss = F.cross_entropy(logits, y_t[idx].to(self.device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        network.eval()
        self.network = network

    def _outputs(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        assert self.network is not None
        target, output = self._hook_target(self.network)
        captured: list[torch.Tensor] = []

        def hook(_m: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            captured.append((out if output else inputs[0]).detach().float().cpu())

        handle = target.register_forward_hook(hook)
        logits = []
        try:
            with torch.inference_mode():
                X_t = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
                for start in range(0, len(X_t), INFERENCE_BATCH):
                    logits.append(self.network(
                        X_t[start:start + INFERENCE_BATCH].to(self.device)).float().cpu())
        finally:
            handle.remove()
        feats = torch.cat([c.reshape(len(c), -1) for c in captured]).numpy()
        return torch.cat(logits).numpy().astype(np.float64), feats

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self._predict_proba(X).argmax(axis=1)

    def _decision_function(self, X: np.ndarray) -> np.ndarray:
        logits = self._outputs(X)[0]
        return logits[:, 1] - logits[:, 0] if self.n_classes == 2 else logits

    def _predict_proba(self, X: np.ndarray) -> np.ndarray:
        return softmax(self._outputs(X)[0], axis=1)

    def _embed(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        if self.network is None:  # one class only: no network was trained
            return X.reshape(len(X), -1).astype(np.float32)
        return self._outputs(X)[1].astype(np.float32)

    def _torch_decision(self, x: torch.Tensor) -> torch.Tensor:
        assert self.network is not None
        logits = self.network(x.to(self.device)).float()
        return logits[:, 1] - logits[:, 0] if self.n_classes == 2 else logits

    def torch_features(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding (:meth:`embed`'s features) as a differentiable function of ``x``."""
        self._check_fitted()
        if self.network is None:  # one class only: no network was trained
            return x.reshape(x.shape[0], -1)
        target, output = self._hook_target(self.network)
        captured: list[torch.Tensor] = []

        def hook(_m: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            captured.append(out if output else inputs[0])

        handle = target.register_forward_hook(hook)
        try:
            self.network(x.to(self.device))
        finally:
            handle.remove()
        return captured[0].float().reshape(x.shape[0], -1)


class TorchModuleMCDropout(TorchModuleLearner):
    """A user's module with dropout layers: also MC-dropout posterior samples
    (:class:`~activegen.models.capabilities.MCDropout`)."""

    def iter_proba_samples(self, X: np.ndarray, n_samples: int, rng: np.random.Generator,
                           chunk_size: int = INFERENCE_BATCH) -> Iterator[np.ndarray]:
        """``n_samples`` forward passes with the dropout layers active, one chunk of rows at a
        time: ``[n, T, K]`` class probabilities each.

        Only the dropout layers are put in train mode; BatchNorm and every other layer stay
        in eval mode, so a sample differs from the prediction by its dropout masks alone. The
        masks are seeded from ``rng`` (one seed per call, offset by the chunk's first row), so
        the same ``rng`` state gives the same samples; the global random state is left as it
        was.
        """
        self._check_fitted()
        if n_samples < 1 or chunk_size < 1:
            raise ValueError(f"need n_samples >= 1 and chunk_size >= 1, got {n_samples}, "
                             f"{chunk_size}")
        X = np.asarray(X, dtype=np.float32)
        if self._constant is not None or self.network is None:  # one class: all certain
            for start in range(0, len(X), chunk_size):
                out = np.zeros((len(X[start:start + chunk_size]), n_samples, self.n_classes))
                out[:, :, self._constant or 0] = 1.0
                yield out
            return
        seed = int(rng.integers(2**62))
        network = self.network
        layers = dropout_layers(network)
        devices = [self.device] if self.device.type == "cuda" else []
        for start in range(0, len(X), chunk_size):
            xb = torch.from_numpy(np.ascontiguousarray(X[start:start + chunk_size]))
            xb = xb.to(self.device)
            with torch.random.fork_rng(devices=devices), torch.inference_mode():
                torch.manual_seed(seed + start)
                for layer in layers:
                    layer.train()
                try:
                    logits = torch.stack([network(xb).float() for _ in range(n_samples)],
                                         dim=1)
                finally:
                    for layer in layers:
                        layer.eval()
            yield torch.softmax(logits.double(), dim=2).cpu().numpy()
