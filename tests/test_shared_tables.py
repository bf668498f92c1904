"""A config's shared ``[generator]`` and ``[synthesis]`` tables: the defaults of every
strategy's own tables of the same name (a mixed schedule's primary included), which a
strategy's keys override; refused when no strategy reads them. A preset name and a
``{ preset = ..., key = ... }`` table both work. The fingerprint sees what a config says, not
how it is written. Bad keys and presets are refused by name before anything runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from _config_tables import small_gaal_config
from activegen.cli import main
from activegen.errors import ConfigError
from activegen.experiments.config import ExperimentConfig, parse_config
from activegen.generative import GeneratorSettings
from activegen.strategies.synthesis import SynthesisSettings


def _dump(model: Any) -> dict[str, Any]:
    return model.model_dump(mode="json")


def _params(config: ExperimentConfig) -> dict[str, dict[str, Any]]:
    return {s.display: s.params for s in config.strategies}


def test_shared_tables_are_defaults_each_strategys_own_table_overrides() -> None:
    config = parse_config(small_gaal_config(
        generator={"epochs": 7, "width": 16},
        synthesis={"optimizer": "lbfgs", "diversity": 1.0},
        strategies=[
            {"name": "gaal", "synthesis": {"band": 0.5}},
            {"name": "gaal", "label": "short", "generator": {"epochs": 3}},
            {"name": "gaal-retrieve"},
            {"name": "mixed", "primary": {"name": "gaal", "synthesis": {"steps": 2}}},
            {"name": "mixed", "label": "mixed-default"},  # its default primary: gaal
            {"name": "simple-gan"},
            {"name": "random"},
        ]))
    shared_gen = GeneratorSettings(epochs=7, width=16)
    shared_syn = SynthesisSettings(optimizer="lbfgs", diversity=1.0)
    p = _params(config)
    assert p["gaal"] == {"generator": _dump(shared_gen),
                         "synthesis": _dump(shared_syn.updated(band=0.5))}
    assert p["short"] == {"generator": _dump(shared_gen.updated(epochs=3)),
                          "synthesis": _dump(shared_syn)}
    assert p["gaal-retrieve"]["generator"] == _dump(shared_gen)
    assert p["gaal-retrieve"]["synthesis"] == _dump(shared_syn)
    assert p["mixed"]["primary"] == {"name": "gaal", "generator": _dump(shared_gen),
                                     "synthesis": _dump(shared_syn.updated(steps=2))}
    assert p["mixed-default"]["primary"] == {"name": "gaal", "generator": _dump(shared_gen),
                                             "synthesis": _dump(shared_syn)}
    assert p["simple-gan"] == {"generator": _dump(shared_gen)}  # no latent search to set
    assert p["random"] == {}


def test_a_preset_name_and_a_preset_table_both_work() -> None:
    stable = GeneratorSettings.model_validate("stable")
    config = parse_config(small_gaal_config(
        generator="stable",
        synthesis={"preset": "boundary", "steps": 9},
        strategies=[
            {"name": "gaal"},
            {"name": "gaal", "label": "long", "generator": {"preset": "stable", "epochs": 300}},
            {"name": "gaal", "label": "labelable", "synthesis": "labelable"},
            # a preset is a whole recipe: over the shared boundary table, the paper's search
            {"name": "gaal", "label": "paper", "synthesis": "paper", "generator": "paper"},
        ]))
    p = _params(config)
    boundary = SynthesisSettings.model_validate("boundary")
    assert p["gaal"] == {"generator": _dump(stable), "synthesis": _dump(boundary.updated(steps=9))}
    assert p["long"]["generator"] == _dump(stable.updated(epochs=300))
    labelable = SynthesisSettings.model_validate("labelable")
    assert p["labelable"]["synthesis"] == _dump(labelable.updated(steps=9))  # shared steps kept
    assert p["paper"] == {"generator": _dump(GeneratorSettings()),
                          "synthesis": _dump(SynthesisSettings(steps=9))}


@pytest.mark.parametrize(("table", "strategies", "message"), [
    ("generator", [{"name": "random"}], "generator: set, but no strategy trains a generator"),
    ("synthesis", [{"name": "simple-gan"}],  # a generator, but no latent search
     "synthesis: set, but no strategy searches the latent space"),
])
def test_a_shared_table_no_strategy_reads_is_refused_by_name(table: str, strategies: list,
                                                             message: str) -> None:
    data = small_gaal_config(**{table: {"epochs": 3} if table == "generator" else {"band": 0.5}},
                             strategies=[*strategies, {"name": "mixed",
                                                       "primary": {"name": "margin"}}])
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


def _fingerprint(**extra: object) -> str:
    return parse_config(small_gaal_config(**extra)).fingerprint()


def test_the_fingerprint_sees_what_a_config_says_not_how_it_is_written() -> None:
    strategies = [{"name": "gaal"}, {"name": "mixed"}, {"name": "random"}]
    gen, syn = {"epochs": 7}, {"optimizer": "lbfgs"}
    shared = _fingerprint(generator=gen, synthesis=syn, strategies=strategies)
    per_strategy = _fingerprint(strategies=[
        {"name": "gaal", "generator": gen, "synthesis": syn},
        {"name": "mixed", "primary": {"name": "gaal", "generator": gen, "synthesis": syn}},
        {"name": "random"}])
    assert shared == per_strategy
    preset = _fingerprint(generator="stable", synthesis="labelable")
    spelled = _fingerprint(generator=dict(GeneratorSettings.PRESETS["stable"]),
                           synthesis=dict(SynthesisSettings.PRESETS["labelable"]))
    assert preset == spelled
    assert _fingerprint(generator="stable", synthesis={"preset": "labelable", "band": 0.5}) \
        != preset
    assert _fingerprint(generator=gen, synthesis={"optimizer": "sgd"},
                        strategies=strategies) != shared


@pytest.mark.parametrize(("extra", "message"), [
    ({"generator": {"epoch": 3}}, "generator: epoch: unknown setting; the settings are: "
                                  "batch_size"),
    ({"synthesis": "fast"}, "synthesis: .*unknown preset 'fast'; known: paper, boundary, edit, "
                            "labelable"),
    ({"strategies": [{"name": "gaal", "generator": {"preset": "fast"}}]},
     r"strategies\[0\]: strategy 'gaal': generator: unknown preset 'fast'; known: paper, "
     "stable"),
    # options that are gone are refused, not ignored
    ({"generator": {"augment": "translation"}}, "generator: augment: unknown setting"),
    ({"strategies": [{"name": "gaal", "synthesis": {"constraint": "tanh"}}]},
     r"strategies\[0\]: strategy 'gaal': synthesis\.constraint: unknown setting"),
    ({"strategies": [{"name": "mixed", "primary": {"name": "gaal",
                                                   "synthesis": {"restarts": 2}}}]},
     r"synthesis\.restarts: unknown setting"),
])
def test_an_unknown_key_or_preset_is_refused_naming_it(extra: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        parse_config(small_gaal_config(**extra), "x.toml")
    assert str(err.value).startswith("x.toml: invalid configuration: ")


def test_run_refuses_a_bad_table_before_writing(tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        'seeds = [0]\n[data]\nclasses = [3, 8]\ntest_fraction = 0.3\n'
        '[loop]\ninitial = 4\nbatch = 2\nbudget = 8\n[synthesis]\noptimizer = "newton"\n'
        '[[strategies]]\nname = "gaal"\n'
    )
    assert main(["run", str(config), "--out", str(tmp_path / "o")]) != 0
    assert "synthesis: optimizer: Input should be 'sgd' or 'lbfgs'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
