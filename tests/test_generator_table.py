"""The ``[generator]`` table: generator settings written once, read as if written per strategy."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import pytest

from activegen.cli import main
from activegen.errors import ConfigError
from activegen.experiments.config import load_config, parse_config
from activegen.strategies import STRATEGIES

REPO = Path(__file__).resolve().parents[1]
GENERATOR_STRATEGIES = {"gaal", "simple-gan", "gaal-retrieve"}
CONVERTED = sorted(
    p for p in [*REPO.glob("configs/*.toml"), *REPO.glob("docs/gaal/*_config.toml")]
    if "[generator]" in p.read_text()
)


def _written_per_strategy(data: dict) -> dict:
    """The same config with the table's keys copied into each generator strategy by hand
    (what a config looked like before the table existed)."""
    data = copy.deepcopy(data)
    generator = data.pop("generator")
    for entry in data["strategies"]:
        if entry["name"] in GENERATOR_STRATEGIES:
            for key, value in generator.items():
                entry.setdefault(key, value)
        elif entry["name"] == "mixed" and entry.get("primary", "gaal") in GENERATOR_STRATEGIES:
            entry["primary_params"] = {**generator, **entry.get("primary_params", {})}
    return data


def _base(**extra: object) -> dict:
    data = {
        "seeds": [0],
        "data": {"dataset": "digits", "classes": [3, 8], "test_fraction": 0.3},
        "loop": {"initial": 4, "batch": 2, "budget": 8},
        "strategies": [{"name": "gaal"}, {"name": "random"}],
    }
    data.update(extra)
    return data


def test_the_shipped_gaal_configs_use_the_table() -> None:
    names = {p.name for p in CONVERTED}
    assert {"gaal-mnist10k.toml", "gaal-mnist-usps.toml", "gaal-digits-10class.toml"} <= names


@pytest.mark.parametrize("path", CONVERTED, ids=lambda p: p.name)
def test_a_converted_config_is_the_config_written_per_strategy(path: Path) -> None:
    data = tomllib.loads(path.read_text())
    table_form = load_config(path)
    by_hand = parse_config(_written_per_strategy(data), str(path))
    assert table_form.fingerprint() == by_hand.fingerprint()
    assert table_form.model_dump() == by_hand.model_dump()
    for ours, theirs in zip(table_form.strategies, by_hand.strategies, strict=True):
        built = STRATEGIES.build(ours.name, ours.params)
        if hasattr(built, "gan_settings"):  # the generator's cache key is made from these
            assert built.gan_settings == STRATEGIES.build(theirs.name, theirs.params).gan_settings


def test_a_recorded_runs_config_keeps_its_fingerprint() -> None:
    # docs/gaal/mnist10k-final_config.toml's runs are in docs/gaal.md; its fingerprint before
    # the conversion (computed from the per-strategy file at commit 81c073f) must not move,
    # or its output folders would no longer resume.
    assert load_config(REPO / "docs/gaal/mnist10k-final_config.toml").fingerprint() == (
        "4449022fa00ceac4"
    )


def test_a_strategys_own_key_wins_and_others_are_untouched() -> None:
    data = _base(
        generator={"gan_epochs": 7, "gan_width": 16},
        strategies=[
            {"name": "gaal", "band": 0.5},
            {"name": "gaal", "label": "short", "gan_epochs": 3},
            {"name": "mixed", "primary_params": {"band": 0.5}},
            {"name": "random"},
        ],
    )
    config = parse_config(data)
    gaal, short, mixed, random = (s.params for s in config.strategies)
    assert gaal == {"gan_epochs": 7, "gan_width": 16, "band": 0.5}
    assert short == {"gan_epochs": 3, "gan_width": 16}
    assert mixed == {"primary_params": {"gan_epochs": 7, "gan_width": 16, "band": 0.5}}
    assert random == {}
    assert "generator" not in config.model_dump()


@pytest.mark.parametrize(
    ("generator", "message"),
    [
        ({"gan_epoch": 3}, "generator.gan_epoch: unknown key"),
        ({"band": 0.5}, "generator.band: unknown key"),  # a synthesis setting, not the generator's
        ({"gan": "vae"}, "generator: unknown gan 'vae'"),
        ({"gan_epochs": "many"}, "generator: parameter 'gan_epochs' = 'many' is not a valid int"),
        ("dcgan", "generator: a table of generator settings"),
    ],
)
def test_a_bad_table_is_refused_naming_the_key(generator: object, message: str) -> None:
    with pytest.raises(ConfigError, match="invalid configuration") as err:
        parse_config(_base(generator=generator), "x.toml")
    assert message in str(err.value) and str(err.value).startswith("x.toml: ")


def test_a_table_no_strategy_uses_is_refused() -> None:
    data = _base(generator={"gan_epochs": 3},
                 strategies=[{"name": "random"}, {"name": "mixed", "primary": "margin"}])
    with pytest.raises(ConfigError, match="generator: set, but no strategy trains a generator"):
        parse_config(data)


def test_run_refuses_a_bad_table_before_writing(tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        'seeds = [0]\n[data]\nclasses = [3, 8]\ntest_fraction = 0.3\n'
        '[loop]\ninitial = 4\nbatch = 2\nbudget = 8\n[generator]\ngan_epochz = 2\n'
        '[[strategies]]\nname = "gaal"\n'
    )
    assert main(["run", str(config), "--out", str(tmp_path / "o")]) != 0
    assert "generator.gan_epochz: unknown key" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
