"""Settings of a labeling session: a TOML file like an experiment's, with one strategy, one
seed and a ``[labeling]`` table instead of ``seeds``, ``strategies`` and ``[loop]``.

A labeling session is not an experiment (one person, one strategy, no ground truth for the
pool), so it gets its own small model; it reuses the experiment's ``[data]``, ``[[test_sets]]``
and component tables unchanged, so a benchmark's data and learner sections can be pasted in.
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
    ValidationError,
    field_validator,
    model_validator,
)

from activegen.errors import ConfigError
from activegen.experiments.config import (
    ComponentConfig,
    DataConfig,
    TestSetConfig,
    check_device_name,
    read_toml,
)
from activegen.server.images_config import ImagesConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelingConfig(_Strict):
    """How the session asks and where it listens.

    Attributes:
        host, port: where the web app listens (anything but loopback requires a token).
        initial: size of the first batch, drawn at random (seeded) because nothing is labeled
            yet; default: ``batch``.
        batch: queries per round after the first.
        budget: queries a person answers in this session (a "can't tell" counts; imported
            labels do not).
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
    initial: int | None = Field(default=None, ge=1)
    batch: int = Field(default=10, ge=1)
    budget: int = Field(ge=1)
    lease_size: int | None = Field(default=None, ge=1)
    lease_seconds: float = Field(default=300.0, gt=0)
    store: Path | None = None
    background: bool = True

    @property
    def first_batch(self) -> int:
        return self.initial if self.initial is not None else self.batch

    @model_validator(mode="after")
    def _budget_fits(self) -> LabelingConfig:
        if self.budget < self.first_batch:
            raise ValueError(
                f"budget ({self.budget}) is below the first batch ({self.first_batch})"
            )
        return self


class LabelStoppingConfig(_Strict):
    """``[stopping]`` of a labeling session: one criterion of :mod:`activegen.stopping`,
    evaluated after each refit on ``stop_set`` seeded pool points; the page says "you can stop
    here" once it fires."""

    criterion: str
    params: dict[str, Any] = {}
    stop_set: int = Field(default=500, ge=1)


class LabelConfig(_Strict):
    """One labeling session: a pool, a learner, a strategy, a person."""

    name: str = "labeling session"
    seed: int = Field(default=0, ge=0)
    data: DataConfig = DataConfig()
    test_sets: list[TestSetConfig] = []
    learner: ComponentConfig = ComponentConfig(name="linear-svm")
    strategy: ComponentConfig = ComponentConfig(name="uncertainty")
    labeling: LabelingConfig
    device: str = "auto"
    cache_dir: Path | None = None
    #: an unlabeled image folder and the user's classes (replaces ``data``; issue 13)
    images: ImagesConfig | None = None
    #: the "you can stop here" criterion (None: no notice)
    stopping: LabelStoppingConfig | None = None

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        return check_device_name(device)

    def fingerprint(self) -> str:
        """A hash of what decides which queries are asked (not where the app listens)."""
        payload = self.model_dump(
            mode="json",
            exclude={"name": True, "cache_dir": True, "device": True, "stopping": True,
                     "labeling": {"host", "port", "store", "lease_size", "lease_seconds",
                                  "background"}},
        )
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def parse_label_config(data: dict[str, Any], source: str = "config") -> LabelConfig:
    """Validate a labeling-session dictionary; raise :class:`ConfigError` naming each bad key."""
    from activegen.experiments.config import (
        LEARNER_CONTEXT,
        _format_validation_error,
        build_probe_learner,
    )
    from activegen.models import LEARNERS
    from activegen.models.capabilities import check_compatible
    from activegen.strategies import STRATEGIES

    try:
        config = LabelConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, source)) from None
    try:
        # The experiment's checks: names, parameters, values, and strategy × learner.
        LEARNERS.check_params(config.learner.name, config.learner.params, LEARNER_CONTEXT)
        check_compatible(STRATEGIES.build(config.strategy.name, config.strategy.params),
                         build_probe_learner(config.learner.name, config.learner.params))
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    if config.stopping is not None:
        from activegen.stopping import build_criterion

        try:
            build_criterion(config.stopping.criterion, config.stopping.params)
        except ConfigError as exc:
            raise ConfigError(f"{source}: stopping.criterion: {exc}") from None
    return config


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
