"""Pretrained backbones through their own libraries' loaders, offline.

Specs (the weights file after ``@`` is optional):

- ``timm:NAME[@/path/weights]``: ``timm.create_model(NAME, pretrained=False, num_classes=0)``;
  features are the pooled pre-classifier features. Normalised with the model's
  ``pretrained_cfg`` mean and standard deviation, at its ``input_size``.
- ``open_clip:ARCH[:TAG][@/path/weights]``: ``open_clip.create_model(ARCH)`` without weights;
  features are ``encode_image``. Normalised and sized by the model's preprocess config.
- ``torchvision:NAME[@/path/weights]``: ``torchvision.models.get_model(NAME, weights=None)``;
  its last ``nn.Linear`` (the classifier) becomes the identity, so the features are the
  penultimate activations. ImageNet normalisation at 224 pixels.

Weights are never fetched. The model is always built empty (``pretrained=False`` or its
equivalent) and its weights are read from a file: the one named after ``@`` (a ``.safetensors``
file or a torch state dict, possibly under a ``state_dict`` key), else the file the library
would have downloaded, looked up in the library's own local cache (Hugging Face's hub cache,
torch hub's ``checkpoints`` folder, open_clip's cache), with ``HF_HUB_OFFLINE=1`` set before
the library is imported. A missing file is an error naming the paths searched. The weights are
loaded strictly, with only the classifier's keys left out, so a file of another model is
refused instead of half-loaded.

Grey images are replicated to three channels, resized to the model's input size (bilinear,
antialiased) and normalised as the model expects; ``image_size`` overrides the size (a 28-px
digit gains little at 224 px, and a CPU pays for every pixel).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from activegen._cache import file_digest
from activegen.errors import ConfigError
from activegen.features._threads import torch_threads
from activegen.features.base import FeatureSource

LIBRARIES = ("timm", "open_clip", "torchvision")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
#: what an open_clip model normalises with when its config names nothing (OpenAI's CLIP)
_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class PretrainedSpec:
    """A parsed ``library:name[:tag][@path]`` spec."""

    library: str
    name: str
    tag: str | None = None
    path: Path | None = None


def parse_pretrained_spec(spec: str) -> PretrainedSpec:
    """Split a spec (see the module docstring); a :class:`ConfigError` for anything else."""
    head, at, path = spec.partition("@")
    library, colon, rest = head.partition(":")
    usage = ("use timm:NAME[@weights], open_clip:ARCH[:TAG][@weights] or "
             "torchvision:NAME[@weights]")
    if library not in LIBRARIES or not colon or not rest:
        raise ConfigError(f"features {spec!r}: {usage}")
    if at and not path:
        raise ConfigError(f"features {spec!r}: nothing after '@' (the weights file)")
    name, tag = rest, None
    if library == "open_clip" and ":" in rest:
        name, _, tag = rest.partition(":")
    if not name or (library != "open_clip" and ":" in name) or tag == "":
        raise ConfigError(f"features {spec!r}: {usage}")
    return PretrainedSpec(library, name, tag, Path(path).expanduser() if path else None)


def import_library(library: str) -> ModuleType:
    """The library, imported with its offline switches set; a :class:`ConfigError` saying
    how to install it when it does not import (timm and open_clip import torchvision, which
    has no CPU build on PyPI for a CPU-only torch: the import fails with an ``nms``
    operator error, not an ImportError, hence the broad catch)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    module_name = {"open_clip": "open_clip", "timm": "timm", "torchvision": "torchvision"}[
        library]
    try:
        module = importlib.import_module(module_name)
        if library == "torchvision":
            importlib.import_module("torchvision.models")
    except Exception as exc:
        extra = {"open_clip": "open_clip"}.get(library, library)
        raise ConfigError(
            f"features {library}: cannot import {module_name} ({type(exc).__name__}: "
            f"{str(exc)[:200]}); install it with `pip install 'activegen[{extra}]'` and a "
            "torchvision built for this torch") from None
    try:  # a hub library imported before these variables were set reads its own constant
        constants = importlib.import_module("huggingface_hub.constants")
        constants.HF_HUB_OFFLINE = True
    except Exception:  # no huggingface_hub: nothing can reach the hub either
        pass
    return module


def read_state(path: Path, spec: str) -> dict[str, torch.Tensor]:
    """A state dict from a ``.safetensors`` file or a torch file (plain, or under
    ``state_dict`` / ``model``; a ``module.`` prefix from DataParallel is removed)."""
    if not path.is_file():
        raise ConfigError(f"features {spec!r}: weights file {path} not found (nothing is "
                          "downloaded)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch/safetensors raise many types for a bad file
        raise ConfigError(f"features {spec!r}: {path} is not a readable weights file "
                          f"({type(exc).__name__}: {str(exc)[:200]})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise ConfigError(f"features {spec!r}: {path} holds no state dict of tensors")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def load_strict(model: nn.Module, state: dict[str, torch.Tensor], path: Path, spec: str,
                skip_prefixes: tuple[str, ...] = ()) -> None:
    """Load ``state`` into ``model`` with every key matched, except keys under
    ``skip_prefixes`` (the classifier the features leave out)."""
    kept = {k: v for k, v in state.items()
            if not any(k == p or k.startswith(p + ".") for p in skip_prefixes)}
    try:
        model.load_state_dict(kept, strict=True)
    except RuntimeError as exc:
        raise ConfigError(f"features {spec!r}: {path} does not hold this model's weights: "
                          f"{str(exc)[:400]}") from None


def _hf_cached(repo: str | None, filenames: tuple[str, ...], searched: list[str]
               ) -> Path | None:
    if not repo:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:
        searched.append(f"no Hugging Face cache (repo {repo}: huggingface_hub is not installed)")
        return None
    for filename in filenames:
        found = try_to_load_from_cache(repo, filename, cache_dir=HF_HUB_CACHE)
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    searched.append(f"{HF_HUB_CACHE} (Hugging Face repo {repo}: {', '.join(filenames)})")
    return None


def _file_cached(folder: Path, url: str | None, searched: list[str]) -> Path | None:
    if not url:
        return None
    path = folder / os.path.basename(url.split("?")[0])
    if path.is_file():
        return path
    searched.append(str(path))
    return None


def _no_cached(spec: str, searched: list[str]) -> ConfigError:
    where = "; ".join(searched) if searched else "the library names no weights for it"
    return ConfigError(f"features {spec!r}: no weights file given and none in the local "
                       f"caches (searched: {where}); pass the weights as "
                       f"{spec.partition('@')[0]}@/path/to/weights (nothing is downloaded)")


class PretrainedSource(FeatureSource):
    """Features of a pretrained backbone (see the module docstring).

    Args:
        spec: ``timm:...``, ``open_clip:...`` or ``torchvision:...``.
        image_size: side the images are resized to (None: the model's input size).
        batch_size: images per forward pass.
        threads: torch threads while extracting (None: the idle cores).
        library: the library module to use instead of importing it (tests).
    """

    kind: ClassVar[str] = "pretrained"

    def __init__(self, spec: str, image_size: int | None = None, batch_size: int = 64,
                 threads: int | None = None, library: ModuleType | None = None) -> None:
        super().__init__(batch_size)
        self.spec = spec
        self.parsed = parse_pretrained_spec(spec)
        self.threads = threads
        module = library if library is not None else import_library(self.parsed.library)
        build = {"timm": self._build_timm, "open_clip": self._build_open_clip,
                 "torchvision": self._build_torchvision}[self.parsed.library]
        model, weights, size, mean, std = build(module)
        self.model = model.eval()
        self.weights_path = weights
        self.weights_sha256 = file_digest(weights)
        self.input_size = int(image_size) if image_size is not None else int(size)
        if self.input_size < 1:
            raise ConfigError(f"features {spec!r}: image_size must be >= 1")
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        try:
            with torch.inference_mode():
                probe = self._forward(torch.zeros(1, 3, self.input_size, self.input_size))
        except RuntimeError as exc:  # e.g. position embeddings fixed to the model's size
            raise ConfigError(f"features {spec!r}: the model does not take "
                              f"{self.input_size}-pixel inputs ({str(exc)[:200]}); leave "
                              f"image_size unset to use its own size ({size})") from None
        self._dim = int(probe.shape[1])

    # -- building, one library each --------------------------------------------------------
    def _weights(self, cached: list[Path | None], searched: list[str]) -> Path:
        if self.parsed.path is not None:
            if not self.parsed.path.is_file():
                raise ConfigError(f"features {self.spec!r}: weights file {self.parsed.path} "
                                  "not found (nothing is downloaded)")
            return self.parsed.path
        for path in cached:
            if path is not None:
                return path
        raise _no_cached(self.spec, searched)

    def _build_timm(self, timm: ModuleType) -> tuple[nn.Module, Path, int, Any, Any]:
        name = self.parsed.name
        try:
            model = timm.create_model(name, pretrained=False, num_classes=0)
        except Exception as exc:  # timm raises RuntimeError("Unknown model ...")
            raise ConfigError(f"features {self.spec!r}: timm has no model {name!r} "
                              f"({str(exc)[:200]})") from None
        cfg = dict(getattr(model, "pretrained_cfg", None) or {})
        searched: list[str] = []
        weights = self._weights(
            [] if self.parsed.path else [
                _hf_cached(cfg.get("hf_hub_id"), (cfg.get("hf_hub_filename") or
                                                  "model.safetensors", "pytorch_model.bin"),
                           searched),
                _file_cached(Path(torch.hub.get_dir()) / "checkpoints", cfg.get("url"),
                             searched),
                Path(cfg["file"]) if cfg.get("file") and Path(cfg["file"]).is_file() else None],
            searched)
        classifier = cfg.get("classifier") or ()
        prefixes = (classifier,) if isinstance(classifier, str) else tuple(classifier)
        load_strict(model, read_state(weights, self.spec), weights, self.spec, prefixes)
        size = (cfg.get("input_size") or (3, 224, 224))[-1]
        return (model, weights, size, cfg.get("mean", _IMAGENET_MEAN),
                cfg.get("std", _IMAGENET_STD))

    def _build_open_clip(self, open_clip: ModuleType) -> tuple[nn.Module, Path, int, Any, Any]:
        arch, tag = self.parsed.name, self.parsed.tag
        try:
            model = open_clip.create_model(arch, pretrained=None, pretrained_image=False,
                                           pretrained_text=False, device="cpu")
        except Exception as exc:
            raise ConfigError(f"features {self.spec!r}: open_clip has no model {arch!r} "
                              f"({str(exc)[:200]})") from None
        searched: list[str] = []
        cached: list[Path | None] = []
        if self.parsed.path is None:
            if tag is None:
                raise ConfigError(f"features {self.spec!r}: name a pretrained tag "
                                  "(open_clip:ARCH:TAG) or a weights file (@path)")
            cfg = dict(open_clip.get_pretrained_cfg(arch, tag) or {})
            if not cfg:
                raise ConfigError(f"features {self.spec!r}: open_clip knows no weights "
                                  f"{tag!r} for {arch!r}")
            cached = [
                _hf_cached(cfg.get("hf_hub", "").rstrip("/") or None,
                           ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"),
                           searched),
                _file_cached(Path.home() / ".cache" / "clip", cfg.get("url"), searched)]
        weights = self._weights(cached, searched)
        load_strict(model, read_state(weights, self.spec), weights, self.spec)
        pre: dict[str, Any] = {}
        getter = getattr(open_clip, "get_model_preprocess_cfg", None)
        if callable(getter):
            pre = dict(getter(model) or {})
        size = pre.get("size", 224)
        size = size[-1] if isinstance(size, (tuple, list)) else size
        return (model, weights, size, pre.get("mean", _CLIP_MEAN), pre.get("std", _CLIP_STD))

    def _build_torchvision(self, torchvision: ModuleType
                           ) -> tuple[nn.Module, Path, int, Any, Any]:
        models = torchvision.models
        name = self.parsed.name
        try:
            model = models.get_model(name, weights=None)
        except Exception as exc:  # ValueError("Unknown model name ...")
            raise ConfigError(f"features {self.spec!r}: torchvision has no model {name!r} "
                              f"({str(exc)[:200]})") from None
        searched: list[str] = []
        cached: list[Path | None] = []
        if self.parsed.path is None:
            try:
                url = models.get_model_weights(name).DEFAULT.url
            except Exception:
                url = None
            cached = [_file_cached(Path(torch.hub.get_dir()) / "checkpoints", url, searched)]
        weights = self._weights(cached, searched)
        head = _last_linear(model)
        if head is None:
            raise ConfigError(f"features {self.spec!r}: no nn.Linear classifier to remove")
        load_strict(model, read_state(weights, self.spec), weights, self.spec)
        _replace(model, head, nn.Identity())
        return model, weights, 224, _IMAGENET_MEAN, _IMAGENET_STD

    # -- features --------------------------------------------------------------------------
    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        clip = self.parsed.library == "open_clip"
        out = self.model.encode_image(x) if clip else self.model(x)
        return torch.flatten(out, 1).float()

    def prepare_inputs(self, X: np.ndarray) -> torch.Tensor:
        """``float32 [N, C, H, W]`` in ``[0, 1]`` → the model's input: three channels, its
        size, its normalisation."""
        x = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] != 3:
            raise ConfigError(f"features {self.spec!r}: images must have 1 or 3 channels, "
                              f"got {x.shape[1]}")
        if x.shape[2:] != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                              align_corners=False, antialias=True)
        return (x - self.mean) / self.std

    def _features(self, X: np.ndarray) -> np.ndarray:
        with torch_threads(self.threads), torch.inference_mode():
            return self._forward(self.prepare_inputs(X)).numpy()

    @property
    def dim(self) -> int:
        return self._dim

    def settings(self) -> dict[str, Any]:
        return {"kind": self.kind, "library": self.parsed.library, "name": self.parsed.name,
                "tag": self.parsed.tag, "weights_sha256": self.weights_sha256,
                "input_size": self.input_size}

    @property
    def id(self) -> str:
        tag = f":{self.parsed.tag}" if self.parsed.tag else ""
        return (f"{self.parsed.library}:{self.parsed.name}{tag}:sha256={self.weights_sha256}"
                f":size={self.input_size}")


def _last_linear(model: nn.Module) -> str | None:
    names = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    return names[-1] if names else None


def _replace(model: nn.Module, qualified: str, new: nn.Module) -> None:
    parent_name, _, child = qualified.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)
