"""The ``[generator]`` table: generator settings written once, read as if written per strategy."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from _config_tables import small_gaal_config, written_per_strategy
from activegen.experiments.config import load_config, parse_config
from activegen.strategies import STRATEGIES

REPO = Path(__file__).resolve().parents[1]
GENERATOR_STRATEGIES = {"gaal", "simple-gan", "gaal-retrieve"}
CONVERTED = sorted(p for p in REPO.glob("configs/*.toml") if "[generator]" in p.read_text())


def test_the_shipped_gaal_configs_use_the_table() -> None:
    names = {p.name for p in CONVERTED}
    assert {"gaal-mnist10k.toml", "gaal-mnist-usps.toml", "gaal-digits-10class.toml"} <= names


@pytest.mark.parametrize("path", CONVERTED, ids=lambda p: p.name)
def test_a_converted_config_is_the_config_written_per_strategy(path: Path) -> None:
    data = tomllib.loads(path.read_text())
    table_form = load_config(path)
    by_hand = parse_config(written_per_strategy(data, "generator", GENERATOR_STRATEGIES), str(path))
    assert table_form.fingerprint() == by_hand.fingerprint()
    assert table_form.model_dump() == by_hand.model_dump()
    for ours, theirs in zip(table_form.strategies, by_hand.strategies, strict=True):
        built = STRATEGIES.build(ours.name, ours.params)
        if hasattr(built, "gan_settings"):  # the generator's cache key is made from these
            assert built.gan_settings == STRATEGIES.build(theirs.name, theirs.params).gan_settings


def test_a_strategys_own_key_wins_and_others_are_untouched() -> None:
    data = small_gaal_config(
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
