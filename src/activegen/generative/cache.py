"""A generator cache keyed by data and settings: one trained generator serves every strategy
and seed of an experiment, and parallel runs never corrupt it.

The key is the SHA-256 of the pool's pixels (shape, dtype and bytes; labels never enter), the
training settings, the seed and :data:`CACHE_VERSION` (bumped when the networks or the
training change).
An entry is a folder ``<cache_dir>/generators/<key>/`` holding ``model.pt`` (state dict with
its SHA-256, :mod:`activegen.generative.checked_state`), ``discriminator.pt`` (the
discriminator trained with it, checksummed the same way: the realism term reads it),
``settings.json``
(settings, key, training report and ``trained_on``: the machine that trained it, whose float
kernels its weights carry; loading an entry trained on another kind of machine is named in a
warning), ``samples.png`` and the cache's ``manifest.json``. It is an
entry of the one artifact cache (:class:`activegen._cache.ArtifactCache`): built in a temporary
folder and renamed into place under an exclusive file lock, every file checked against its
SHA-256 on load; a damaged entry is named in a warning, removed and trained again.

Besides the experiment's own cache, a shared cache (:func:`shared_cache_dir`:
``$ACTIVEGEN_CACHE`` or ``~/.cache/activegen``; ``ACTIVEGEN_CACHE=off`` disables it) holds a
copy of every generator trained, under the same key: a second config with the same pool and
settings copies it into its own cache instead of training again, so each output folder stays
self-contained.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from activegen._atomic import atomic_write_text
from activegen._cache import ArtifactCache, content_key, data_fingerprint, untrusted_entry
from activegen._machine import describe, is_machine_record, machine_record, same_kind
from activegen.errors import ActivegenError
from activegen.generative.checked_state import load_state, state_bytes
from activegen.generative.dcgan import Discriminator, Generator
from activegen.generative.training import (
    GeneratorSettings,
    TrainReport,
    build_networks,
    train_gan,
)

log = logging.getLogger(__name__)

#: Bump when the architecture, the training procedure or the settings change (invalidates
#: every entry).
CACHE_VERSION = 2

_MEMORY: dict[tuple[str, str], Generator] = {}

#: The discriminator's file in an entry.
DISCRIMINATOR_FILE = "discriminator.pt"

#: Names the shared generator cache; ``off`` (or empty) disables it.
SHARED_ENV = "ACTIVEGEN_CACHE"


def shared_cache_dir() -> Path | None:
    """The shared cache folder (``$ACTIVEGEN_CACHE``, default ``~/.cache/activegen``)."""
    value = os.environ.get(SHARED_ENV)
    if value is None:
        return Path.home() / ".cache" / "activegen"
    if value.strip().lower() in ("", "off", "none", "0"):
        return None
    return Path(value).expanduser()


def cache_key(X: np.ndarray, settings: GeneratorSettings, seed: int = 0) -> str:
    """The key of the generator trained on ``X`` with ``settings`` and ``seed``."""
    return content_key({"data": data_fingerprint(X), "settings": settings.model_dump(),
                        "seed": seed, "version": CACHE_VERSION})


@dataclass(frozen=True)
class CachedGenerator:
    """A generator with its identity and how it was trained."""

    generator: Generator
    key: str
    path: Path
    report: dict[str, Any]
    loaded_from_cache: bool
    settings: GeneratorSettings | None = None
    image_shape: tuple[int, ...] | None = None

    def discriminator(self, device: str = "cpu") -> Discriminator:
        """The discriminator trained with this generator (eval mode; its SHA-256 checked).

        Raises :class:`MissingDiscriminatorError` when ``discriminator.pt`` is missing or
        damaged."""
        path = self.path / DISCRIMINATOR_FILE
        untrusted = untrusted_entry(self.path)
        if untrusted is not None:
            raise MissingDiscriminatorError(
                f"{untrusted[0]}: {untrusted[1]}; the discriminator of this generator cache "
                "entry is not used (a cache is trusted no more than its owner)")
        if not path.is_file():
            raise MissingDiscriminatorError(
                f"generator cache entry {self.path} has no {DISCRIMINATOR_FILE}; delete that "
                "folder (and its copy in the shared cache) so the generator is trained again")
        if self.settings is None or self.image_shape is None:
            raise MissingDiscriminatorError(f"{self.path}: the settings and image shape of "
                                            "this generator are unknown")
        _gen, disc = build_networks(self.image_shape, self.settings)  # type: ignore[arg-type]
        try:
            disc.load_state_dict(load_state(path, device))
        except Exception as exc:  # a damaged file: checksum, pickle or shape errors
            raise MissingDiscriminatorError(
                f"{path}: damaged discriminator file ({exc}); delete the entry {self.path} so "
                "the generator is trained again") from exc
        return disc.to(device).eval()


class MissingDiscriminatorError(ActivegenError):
    """A generator cache entry without a usable discriminator was asked for one."""


def _load(entry: Path, image_shape: tuple[int, int, int], settings: GeneratorSettings,
          device: str) -> Generator:
    gen = Generator(image_shape, settings.latent_dim, settings.width)
    gen.load_state_dict(load_state(entry / "model.pt", device))
    return gen.to(device).eval()


def load_or_train(
    X: np.ndarray,
    settings: GeneratorSettings,
    cache_dir: Path,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
    shared_dir: Path | None = None,
) -> CachedGenerator:
    """The generator for pool images ``X`` (``float32 [N, C, H, W]`` in ``[0, 1]``).

    Loads it from ``cache_dir`` when an entry with the same key exists; else copies it from
    ``shared_dir`` when that has the key; else trains it (on the pool only), stores it
    atomically and publishes a copy to ``shared_dir`` (a failure to publish is logged, not
    raised). Within one process the loaded generator is reused from memory.
    """
    X = np.asarray(X, dtype=np.float32)
    key = cache_key(X, settings, seed)
    cache = ArtifactCache(Path(cache_dir), "generators", what="generator", main_file="model.pt",
                          shared=Path(shared_dir) if shared_dir is not None else None)
    entry = cache.entry(key)
    memo = (str(entry.resolve()), device)
    image_shape: tuple[int, int, int] = tuple(X.shape[1:])  # type: ignore[assignment]
    if memo in _MEMORY and (entry / "model.pt").is_file():
        return CachedGenerator(_MEMORY[memo], key, entry, _read_report(entry), True, settings,
                               image_shape)

    def build(folder: Path) -> None:
        log.info("training a generator on %d pool images (cache key %s)", len(X), key)
        gen, disc, report = train_gan(X, settings, seed, device=device, progress=progress,
                                      sample_path=folder / "samples.png")
        (folder / "model.pt").write_bytes(state_bytes(gen.state_dict()))
        (folder / DISCRIMINATOR_FILE).write_bytes(state_bytes(disc.state_dict()))
        _write_meta(folder / "settings.json", key, settings, seed, report, X,
                    machine_record(device))
        return None  # loaded back from the entry, as every later run loads it

    gen, loaded = cache.load_or_build(key, build,
                                      lambda e: _load(e, image_shape, settings, device))
    _MEMORY[memo] = gen
    meta = _read_report(entry)
    if loaded:
        _warn_if_trained_elsewhere(key, meta, machine_record(device))
    return CachedGenerator(gen, key, entry, meta, loaded, settings, image_shape)


def trained_on(meta: dict[str, Any]) -> dict[str, str] | None:
    """The machine that trained a cached generator (its ``settings.json``'s ``trained_on``),
    or ``None`` for an entry written before generators recorded it (or with an unusable
    record)."""
    record = meta.get("trained_on")
    return record if is_machine_record(record) else None


#: Generator keys already named as trained on another kind of machine (once per process).
_WARNED: set[str] = set()


def _warn_if_trained_elsewhere(key: str, meta: dict[str, Any], here: dict[str, str]) -> None:
    """A generator is a function of its key only on one kind of machine and thread count:
    trained with others (a shared or copied cache, another ``execution.threads``), its
    weights, and the runs that use it, carry their float results. Said once per key, since
    nothing is wrong with using it."""
    record = trained_on(meta)
    if record is None or same_kind(record, here) or key in _WARNED:
        return
    _WARNED.add(key)
    log.warning("generator %s was trained on another kind of machine or with another thread "
                "count (%s); this process: %s. Runs that use it compute what neither setting "
                "computes alone from scratch", key, describe(record), describe(here))


def _write_meta(path: Path, key: str, settings: GeneratorSettings, seed: int,
                report: TrainReport, X: np.ndarray, machine: dict[str, str]) -> None:
    meta = {"key": key, "version": CACHE_VERSION, "settings": settings.model_dump(),
            "seed": seed,
            "data": {"fingerprint": data_fingerprint(X), "shape": list(X.shape)},
            "report": asdict(report), "trained_on": machine}
    atomic_write_text(path, json.dumps(meta, indent=2))


def _read_report(entry: Path) -> dict[str, Any]:
    if untrusted_entry(entry) is not None:  # another user's entry kept its place: not read
        return {}
    try:
        return json.loads((entry / "settings.json").read_text())
    except FileNotFoundError:
        return {}
