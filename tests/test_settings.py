"""Settings with one home: a component's keyword values, a config table and the docs all go
through its settings model; presets and shared tables are defaults; the build context (not a
parameter name) gives a component its device; the config's JSON schema and
``activegen strategies --settings`` are generated from the models."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import Field

from activegen._settings import BuildContext, PresetSettings, Settings, over, resolve
from activegen.cli import main
from activegen.errors import ConfigError
from activegen.models import LEARNERS
from activegen.strategies import STRATEGIES

ROOT = Path(__file__).resolve().parents[1]


class _Widget(PresetSettings):
    PRESETS: ClassVar[dict[str, dict[str, object]]] = {"big": {"size": 9, "rate": 0.5}}
    size: int = Field(3, ge=1)
    rate: float = 0.1


def test_values_are_validated_once_naming_the_owner_and_the_key() -> None:
    assert resolve(_Widget, None, {"size": 4}, "widget").size == 4
    assert resolve(_Widget, {"size": 5}, {}, "widget").size == 5
    with pytest.raises(ValueError, match=r"widget: size: Input should be greater than or "
                                         r"equal to 1"):
        resolve(_Widget, None, {"size": 0}, "widget")
    with pytest.raises(ValueError, match=r"widget: sise: unknown setting; the settings are: "
                                         r"rate, size"):
        resolve(_Widget, None, {"sise": 2}, "widget")
    with pytest.raises(TypeError, match="not both"):
        resolve(_Widget, {"size": 5}, {"rate": 1.0}, "widget")


def test_a_preset_is_a_set_of_values_the_keys_beside_it_override() -> None:
    assert _Widget.model_validate("big") == _Widget(size=9, rate=0.5)
    assert _Widget.model_validate({"preset": "big", "rate": 0.2}) == _Widget(size=9, rate=0.2)
    with pytest.raises(ValueError, match="unknown preset 'huge'; known: big"):
        _Widget.model_validate("huge")


def test_a_shared_table_gives_the_fields_a_strategy_does_not_set() -> None:
    shared = _Widget(size=7, rate=0.3)
    assert _Widget.model_validate(over(_Widget, shared, {"rate": 0.9})) == \
        _Widget(size=7, rate=0.9)
    assert _Widget.model_validate(over(_Widget, shared, None)) == shared
    assert _Widget.model_validate(over(_Widget, shared, "big")) == _Widget(size=9, rate=0.5)
    assert _Widget.model_validate(over(_Widget, None, {"size": 2})) == _Widget(size=2)


def test_the_build_context_gives_the_device_and_the_classes() -> None:
    context = BuildContext(n_classes=5, seed=3, device="cpu")
    learner = LEARNERS.build("small-cnn", {"epochs": 1}, context)
    assert (learner.n_classes, learner.seed, str(learner.device)) == (5, 3, "cpu")
    coreset = STRATEGIES.build("coreset", {}, context)
    assert coreset.device == "cpu"
    with pytest.raises(ConfigError, match="learner 'small-cnn': device: unknown setting"):
        LEARNERS.build("small-cnn", {"device": "cpu"}, context)


def test_every_component_keeps_its_settings_in_its_model() -> None:
    for registry in (STRATEGIES, LEARNERS):
        for name, cls in registry.items():
            if not cls.__module__.startswith("activegen."):
                continue
            model = cls.Settings
            assert issubclass(model, Settings)
            built = registry.build(name, {} if name != "torch-module" else
                                   {"module": "label_support.tiny_net",
                                    "allow_imports": ["label_support"]})
            assert isinstance(built.settings, model), name


def test_strategies_settings_prints_the_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["strategies", "--settings", "gaal"]) == 0
    out = capsys.readouterr().out
    for line in ("generator.epochs", "synthesis.optimizer", "sgd | lbfgs", "labelable"):
        assert line in out
    assert main(["strategies", "--settings", "small-cnn"]) == 0
    assert "loss_head.weight" in capsys.readouterr().out
    assert main(["strategies", "--settings", "nope"]) == 2
    assert "no strategy, learner or oracle 'nope'" in capsys.readouterr().err


def test_the_json_schema_accepts_the_shipped_configs_and_refuses_a_bad_key(
        tmp_path: Path) -> None:
    import jsonschema

    assert main(["schema", "--out", str(tmp_path / "schema.json")]) == 0
    schema = json.loads((tmp_path / "schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for path in [*sorted((ROOT / "configs").glob("*.toml")),
                 ROOT / "src" / "activegen" / "configs" / "demo.toml"]:
        errors = list(validator.iter_errors(tomllib.loads(path.read_text())))
        assert errors == [], (path.name, errors[:1])
    bad = tomllib.loads((ROOT / "configs" / "gaal-digits.toml").read_text())
    bad["strategies"][0]["synthesis"] = {"stepz": 3}
    assert list(validator.iter_errors(bad))
    from activegen.experiments.schema import config_schema
    from activegen.server.config import LabelConfig

    label = config_schema(LabelConfig)
    data = tomllib.loads((ROOT / "src/activegen/configs/label-digits.toml").read_text())
    assert list(jsonschema.Draft202012Validator(label).iter_errors(data)) == []


def test_the_settings_reference_in_the_docs_is_the_generated_one() -> None:
    """docs/settings.md is what the models say (regenerate it with
    ``activegen strategies --markdown > docs/settings.md``)."""
    from activegen.cli import settings_reference

    assert (ROOT / "docs" / "settings.md").read_text() == settings_reference()
