"""The shared-settings tables (``[generator]``, ``[synthesis]``): bad ones are refused when
the file is read, naming the key, before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from _config_tables import small_gaal_config
from activegen.cli import main
from activegen.errors import ConfigError
from activegen.experiments.config import parse_config


@pytest.mark.parametrize(
    ("table", "value", "message"),
    [
        ("generator", {"gan_epoch": 3}, "generator.gan_epoch: unknown key"),
        ("generator", {"band": 0.5}, "generator.band: unknown key"),  # a synthesis setting
        ("generator", {"gan": "vae"}, "generator: unknown gan 'vae'"),
        ("generator", {"gan_epochs": "many"},
         "generator: parameter 'gan_epochs' = 'many' is not a valid int"),
        ("generator", "dcgan", "generator: a table of generator settings"),
        ("synthesis", {"optimiser": "lbfgs"}, "synthesis.optimiser: unknown key"),
        ("synthesis", {"gan_epochs": 3}, "synthesis.gan_epochs: unknown key"),  # the generator's
        ("synthesis", {"optimizer": "adam"}, "synthesis: unknown optimizer 'adam'"),
        ("synthesis", {"band": -1.0},
         "synthesis: need realism >= 0 and band >= 0, got 0.0, -1.0"),
        ("synthesis", {"steps": "many"},
         "synthesis: parameter 'steps' = 'many' is not a valid int"),
        ("synthesis", "lbfgs", "synthesis: a table of synthesis settings"),
    ],
)
def test_a_bad_table_is_refused_naming_the_key(table: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match="invalid configuration") as err:
        parse_config(small_gaal_config(**{table: value}), "x.toml")
    assert message in str(err.value) and str(err.value).startswith("x.toml: ")


@pytest.mark.parametrize(
    ("table", "value", "strategies", "message"),
    [
        ("generator", {"gan_epochs": 3}, [{"name": "random"}],
         "generator: set, but no strategy trains a generator"),
        ("synthesis", {"band": 0.5}, [{"name": "simple-gan"}],  # a generator, no synthesis
         "synthesis: set, but no strategy synthesizes"),
    ],
)
def test_a_table_no_strategy_uses_is_refused(table: str, value: dict, strategies: list,
                                             message: str) -> None:
    data = small_gaal_config(**{table: value},
                 strategies=[*strategies, {"name": "mixed", "primary": "margin"}])
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


@pytest.mark.parametrize(
    ("table", "line", "message"),
    [("generator", "gan_epochz = 2", "generator.gan_epochz: unknown key"),
     ("synthesis", 'optimizer = "newton"', "synthesis: unknown optimizer 'newton'")],
)
def test_run_refuses_a_bad_table_before_writing(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                table: str, line: str, message: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        'seeds = [0]\n[data]\nclasses = [3, 8]\ntest_fraction = 0.3\n'
        f'[loop]\ninitial = 4\nbatch = 2\nbudget = 8\n[{table}]\n{line}\n'
        '[[strategies]]\nname = "gaal"\n'
    )
    assert main(["run", str(config), "--out", str(tmp_path / "o")]) != 0
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
