"""Settings of a labeling session: a TOML file like an experiment's, with one strategy, one
seed and a ``[labeling]`` table (where the app listens) instead of ``seeds`` and
``strategies``, and an optional ``[images]`` table (an unlabeled folder instead of ``[data]``).

A labeling session is not an experiment (one person, one strategy, no ground truth for the
pool), so it gets its own small model; it shares the experiment's models for ``[data]``,
``[[test_sets]]``, the component tables, ``[loop]`` and ``[stopping]``, so a benchmark's
sections can be pasted in.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from activegen.errors import ConfigError
from activegen.experiments.config import (
    FINGERPRINT_VERSION,
    ComponentConfig,
    DataConfig,
    LoopConfig,
    StoppingConfig,
    StrategyConfig,
    TestSetConfig,
    check_device_name,
    read_toml,
)
from activegen.features.settings import FeaturesSettings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImagesConfig(BaseModel):
    """Label a folder of unlabeled images into classes named by the user.

    Attributes:
        folder: the images (flat or nested; any sizes and modes).
        classes: the class names, at least two, distinct.
        size, channels: what every image is resized and converted to for the model.
        features: ``"pixels"``, ``"self-supervised"`` (an encoder learned on the folder, its
            settings the ``[features] self_supervised`` table), ``"vae"`` or
            ``"backbone:<torchvision resnet18 state dict>"``. One that trains on the folder
            does so in the background while the first batch is labeled.
        audit: the random audit sample, a count (>= 1) or a fraction (< 1); 0 = none.
        labels: labels already known, imported first: a CSV ``path,label`` or a Label Studio
            JSON export (tasks matched to files by name).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    folder: Path
    classes: list[str] = Field(min_length=2)
    size: int = Field(default=64, ge=4, le=1024)
    channels: int = Field(default=3, ge=1, le=3)
    features: str = "pixels"
    audit: float = Field(default=30, ge=0)
    labels: Path | None = None

    @field_validator("classes")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        names = [v.strip() for v in value]
        if any(not n for n in names) or len(set(names)) != len(names):
            raise ValueError(f"class names must be non-empty and distinct: {value}")
        return names

    @field_validator("features")
    @classmethod
    def _features(cls, value: str) -> str:
        from activegen.models.features import parse_features_spec

        try:
            parse_features_spec(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("channels")
    @classmethod
    def _channels(cls, value: int) -> int:
        if value not in (1, 3):
            raise ValueError("channels must be 1 (grey) or 3 (RGB)")
        return value


class LabelingConfig(_Strict):
    """Where the session listens and how it hands out its queries.

    Attributes:
        host, port: where the web app listens (anything but loopback requires a token).
        lease_size: queries handed to one labeler at a time (default: the whole batch); smaller
            values let several people share one batch.
        lease_seconds: how long handed-out queries stay reserved for their labeler.
        store: the SQLite file that holds the session (default: ``labels/<config name>.sqlite``).
        background: compute the next round in a background worker, off the request path
            (labelers keep using the app meanwhile); ``false`` computes it inside the request
            that closed the round, holding the store (every labeler waits). Same rounds either
            way.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    lease_size: int | None = Field(default=None, ge=1)
    lease_seconds: float = Field(default=300.0, gt=0)
    store: Path | None = None
    background: bool = True


class LabelConfig(_Strict):
    """One labeling session: a pool, a learner, a strategy, a person. ``[loop]`` and
    ``[stopping]`` are the experiment's models: ``loop.initial`` is the first batch (chosen
    by ``loop.cold_start``, or at random), ``loop.budget`` counts every query asked, the first
    batch included (imported labels do not count)."""

    name: str = "labeling session"
    seed: int = Field(default=0, ge=0)
    data: DataConfig = DataConfig()
    test_sets: list[TestSetConfig] = []
    learner: ComponentConfig = ComponentConfig(name="linear-svm")
    strategy: StrategyConfig = StrategyConfig(name="uncertainty")
    loop: LoopConfig
    labeling: LabelingConfig = LabelingConfig()
    device: str = "auto"
    cache_dir: Path | None = None
    #: an unlabeled image folder and the user's classes (replaces ``data``)
    images: ImagesConfig | None = None
    #: the "you can stop here" criteria (None: no notice)
    stopping: StoppingConfig | None = None
    #: what the learner and the strategy see of each example, as in an experiment
    features: FeaturesSettings = FeaturesSettings()
    #: defaults of the strategy's ``generator`` / ``synthesis`` tables, as in an experiment
    generator: dict[str, Any] | str | None = None
    synthesis: dict[str, Any] | str | None = None

    @field_validator("loop")
    @classmethod
    def _one_batch_size(cls, loop: LoopConfig) -> LoopConfig:
        if not isinstance(loop.batch, int):
            raise ValueError(f"loop.batch: a labeling session asks one batch size per round "
                             f"(a number), not the schedule {loop.batch}")
        return loop

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        return check_device_name(device)

    @model_validator(mode="after")
    def _one_features_key(self) -> LabelConfig:
        if self.images is not None and not self.features.is_pixels:
            raise ValueError(
                f"features.source = {self.features.source!r} with an [images] folder: a "
                "folder's features are images.features (--features); the [features] table "
                "gives only its self_supervised settings")
        return self

    def decisive(self) -> dict[str, Any]:
        """The settings that decide which queries the session asks: a store holds the session
        of one set of them.

        Left out: where the app listens and how it leases (``labeling``), the name, caches and
        device, the stopping notice, and two settings the store's history already answers
        for: ``loop.budget`` decides when the session stops, not what it asks (a raised budget
        continues the stored rounds where they stopped; only the last round of a budget that
        is not a whole number of batches is smaller), and ``images.labels`` names labels
        known from elsewhere, which the store keeps as imports.
        """
        payload = self.model_dump(mode="json", exclude={"name", "cache_dir", "device",
                                                        "stopping", "labeling"})
        payload["loop"].pop("budget")
        if payload.get("images") is not None:
            payload["images"].pop("labels")
        return payload

    def fingerprint(self) -> str:
        """A hash of :meth:`decisive`."""
        payload = self.decisive()
        payload["fingerprint_version"] = FINGERPRINT_VERSION
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def strategies(self) -> list[StrategyConfig]:
        """The session's strategy, as the experiment's checks read them."""
        return [self.strategy]


def parse_label_config(data: dict[str, Any], source: str = "config") -> LabelConfig:
    """Validate a labeling-session dictionary; raise :class:`ConfigError` naming each bad key."""
    from activegen.experiments.config import _parse

    return _parse(LabelConfig, data, source, {"learner": "learner", "strategy": "strategy",
                                              "loop": "strategy"})


def load_label_config(path: str | Path) -> LabelConfig:
    """Read and validate a labeling-session TOML file."""
    data = read_toml(path)
    return parse_label_config(data, str(path))


def default_store_path(config: LabelConfig, config_path: Path | None = None) -> Path:
    """``labeling.store`` if set, else ``labels/<config file stem or session name>.sqlite``."""
    if config.labeling.store is not None:
        return Path(config.labeling.store)
    stem = config_path.stem if config_path is not None else config.name
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in stem).strip("-")
    return Path("labels") / f"{safe or 'session'}.sqlite"
