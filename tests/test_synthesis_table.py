"""The ``[synthesis]`` table: GAAL's latent-search settings written once, read as if written
per strategy (the same fingerprint, so converted configs resume their runs)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from _config_tables import small_gaal_config, written_per_strategy
from activegen.experiments.config import load_config, parse_config
from activegen.strategies import STRATEGIES
from activegen.strategies.gaal import GENERATOR_SETTINGS, SYNTHESIS_SETTINGS

REPO = Path(__file__).resolve().parents[1]
SYNTHESIZERS = {"gaal", "gaal-retrieve"}
CONVERTED = sorted(p for p in REPO.glob("configs/*.toml") if "[synthesis]" in p.read_text())

#: The fingerprints of the shipped configs written with the table: an output folder made with
#: one must still resume, so a change here is one users see (their folders refuse the config).
FINGERPRINTS = {
    "gaal-cifar10-horse-auto.toml": "7365561dd5ca63eb",
    "gaal-digits-10class.toml": "0bcf380ef4d1e03b",
    "gaal-mixed-mnist-usps.toml": "d905ef97c98a9416",
    "gaal-mnist-mnist.toml": "c91e4dede13d985b",
    "gaal-mnist-usps.toml": "ba55936f15cff48e",
    "gaal-mnist10k.toml": "701f66366adeff2b",
    "gaal-mnist5k-cnn.toml": "6ab7d1351edba3e1",
    "gaal-mnist5k.toml": "2ac9fc45500b68a8",
}


def test_the_settings_are_gaals_own_and_not_the_generators() -> None:
    assert {"optimizer", "band", "diversity", "diversity_kind", "realism", "steps"} <= set(
        SYNTHESIS_SETTINGS)
    assert not set(SYNTHESIS_SETTINGS) & set(GENERATOR_SETTINGS)


def test_the_shipped_gaal_configs_use_the_table() -> None:
    assert {p.name for p in CONVERTED} == set(FINGERPRINTS)


@pytest.mark.parametrize("path", CONVERTED, ids=lambda p: p.name)
def test_a_converted_config_is_the_config_written_per_strategy(path: Path) -> None:
    data = tomllib.loads(path.read_text())
    table_form = load_config(path)
    by_hand = parse_config(written_per_strategy(data, "synthesis", SYNTHESIZERS), str(path))
    assert table_form.model_dump() == by_hand.model_dump()
    assert table_form.fingerprint() == by_hand.fingerprint() == FINGERPRINTS[path.name]
    for ours in table_form.strategies:
        built = STRATEGIES.build(ours.name, ours.params)
        if ours.name in SYNTHESIZERS:  # what the latent search actually runs with
            assert built.synthesis["optimizer"] == data["synthesis"].get("optimizer", "sgd")


def test_a_strategys_own_key_wins_and_others_are_untouched() -> None:
    data = small_gaal_config(
        generator={"gan_epochs": 7},
        synthesis={"optimizer": "lbfgs", "diversity": 1.0},
        strategies=[
            {"name": "gaal"},
            {"name": "gaal", "label": "plain", "optimizer": "sgd", "diversity": 0.0},
            {"name": "gaal-retrieve", "band": 0.5},
            {"name": "mixed", "primary_params": {"band": 0.5}},
            {"name": "simple-gan"},  # trains a generator, synthesizes nothing
            {"name": "random"},
        ],
    )
    config = parse_config(data)
    gaal, plain, retrieve, mixed, simple, random = (s.params for s in config.strategies)
    assert gaal == {"gan_epochs": 7, "optimizer": "lbfgs", "diversity": 1.0}
    assert plain == {"gan_epochs": 7, "optimizer": "sgd", "diversity": 0.0}
    assert retrieve == {"gan_epochs": 7, "optimizer": "lbfgs", "diversity": 1.0, "band": 0.5}
    assert mixed == {"primary_params": {"gan_epochs": 7, "optimizer": "lbfgs",
                                        "diversity": 1.0, "band": 0.5}}
    assert simple == {"gan_epochs": 7}
    assert random == {}
    assert "synthesis" not in config.model_dump()
