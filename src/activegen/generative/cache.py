"""A generator cache keyed by data and settings: one trained generator serves every strategy
and seed of an experiment, and parallel runs never corrupt it.

The key is the SHA-256 of the pool's pixels (shape, dtype and bytes; labels never enter), the
training settings and :data:`CACHE_VERSION` (bumped when the networks or the training change).
An entry is a folder ``<cache_dir>/generators/<key>/`` holding ``model.pt`` (state dict),
``settings.json`` (settings, key, training report) and ``samples.png``. It is written in a
temporary folder and renamed into place, under an exclusive file lock, so a second process
waits for the first to finish training instead of training again or reading half a file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from activegen._atomic import atomic_write_text, exclusive_lock
from activegen.generative.dcgan import Generator
from activegen.generative.training import GeneratorSettings, TrainReport, train_generator

log = logging.getLogger(__name__)

#: Bump when the architecture or the training procedure changes (invalidates every entry).
CACHE_VERSION = 1

_MEMORY: dict[tuple[str, str], Generator] = {}


def data_fingerprint(X: np.ndarray) -> str:
    """SHA-256 of an image array's shape, dtype and bytes (labels are never part of it)."""
    X = np.ascontiguousarray(X)
    digest = hashlib.sha256()
    digest.update(json.dumps([list(X.shape), str(X.dtype)]).encode())
    digest.update(memoryview(X).cast("B"))
    return digest.hexdigest()


def cache_key(X: np.ndarray, settings: GeneratorSettings) -> str:
    """The key of the generator trained on ``X`` with ``settings``."""
    payload = json.dumps({"data": data_fingerprint(X), "settings": settings.to_dict(),
                          "version": CACHE_VERSION}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class CachedGenerator:
    """A generator with its identity and how it was trained."""

    generator: Generator
    key: str
    path: Path
    report: dict[str, Any]
    loaded_from_cache: bool




def _load(entry: Path, image_shape: tuple[int, int, int], settings: GeneratorSettings,
          device: str) -> Generator:
    gen = Generator(image_shape, settings.latent_dim, settings.prior,  # type: ignore[arg-type]
                    settings.width)
    state = torch.load(entry / "model.pt", map_location=device, weights_only=True)
    gen.load_state_dict(state)
    return gen.to(device).eval()


def load_or_train(
    X: np.ndarray,
    settings: GeneratorSettings,
    cache_dir: Path,
    device: str = "cpu",
    progress: bool = False,
) -> CachedGenerator:
    """The generator for pool images ``X`` (``float32 [N, C, H, W]`` in ``[0, 1]``).

    Loads it from ``cache_dir`` when an entry with the same key exists, else trains it (on
    the pool only) and stores it atomically. Within one process the loaded generator is
    reused from memory.
    """
    X = np.asarray(X, dtype=np.float32)
    key = cache_key(X, settings)
    root = Path(cache_dir) / "generators"
    entry = root / key
    memo = (str(entry.resolve()), device)
    image_shape = tuple(X.shape[1:])
    if memo in _MEMORY and (entry / "model.pt").is_file():
        return CachedGenerator(_MEMORY[memo], key, entry, _read_report(entry), True)
    with exclusive_lock(root / f"{key}.lock"):
        loaded = (entry / "model.pt").is_file()
        if not loaded:
            log.info("training a %s generator on %d pool images (cache key %s)",
                     settings.kind, len(X), key)
            root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
            try:
                gen, report = train_generator(X, settings, device=device, progress=progress,
                                              sample_path=tmp / "samples.png")
                buffer_path = tmp / "model.pt"
                torch.save({k: v.cpu() for k, v in gen.state_dict().items()}, buffer_path)
                _write_meta(tmp / "settings.json", key, settings, report, X)
                os.chmod(tmp, 0o755)  # mkdtemp makes it private; the entry is shared
                os.replace(tmp, entry)  # atomic: the entry appears whole or not at all
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        gen = _load(entry, image_shape, settings, device)  # type: ignore[arg-type]
    _MEMORY[memo] = gen
    return CachedGenerator(gen, key, entry, _read_report(entry), loaded)


def _write_meta(path: Path, key: str, settings: GeneratorSettings, report: TrainReport,
                X: np.ndarray) -> None:
    meta = {"key": key, "version": CACHE_VERSION, "settings": settings.to_dict(),
            "data": {"fingerprint": data_fingerprint(X), "shape": list(X.shape)},
            "report": asdict(report)}
    atomic_write_text(path, json.dumps(meta, indent=2))


def _read_report(entry: Path) -> dict[str, Any]:
    try:
        return json.loads((entry / "settings.json").read_text())
    except FileNotFoundError:
        return {}
