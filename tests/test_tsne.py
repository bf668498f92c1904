"""The t-SNE pictures of core-set picks with and without VAE features (paper Figs 5-6)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from activegen.cli import main
from activegen.errors import ConfigError
from activegen.experiments.config import parse_config
from activegen.experiments.tsne import tsne_selection
from activegen.generative.vae import VAESettings

CONFIG = {
    "data": {"dataset": "digits", "test_fraction": 0.3},
    "learner": {"name": "small-cnn", "schedule": "fixed", "epochs": 2, "width": 4,
                "lr": 0.05, "batch_size": 32},
    "strategies": [{"name": "coreset"}],
    "loop": {"initial": 50, "batch": 10, "budget": 60},
}


def test_tsne_pictures_show_the_two_selections(tmp_path: Path) -> None:
    config = parse_config(CONFIG)
    # alpha: the 2-epoch VAE's means barely spread, while the CNN's features (BatchNorm
    # recalibrated after training) do; at alpha = 300 both pick sets were equal.
    result = tsne_selection(config, tmp_path, n_labeled=80, candidate_fraction=0.1, n_picks=12,
                            alpha=3e4, vae=VAESettings(latent_dim=4, width=4,
                                                              epochs=2))
    assert [p.name for p in result.images] == ["tsne_coreset_plain.png", "tsne_coreset_vae.png"]
    for path in result.images:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(result.labeled) == 80 and len(result.picks_plain) == len(result.picks_vae) == 12
    # Picks come from the candidates only, never from the labeled set.
    assert set(result.picks_plain) <= set(result.candidates)
    assert set(result.picks_vae) <= set(result.candidates)
    assert not set(result.candidates) & set(result.labeled)
    assert not np.array_equal(np.sort(result.picks_plain), np.sort(result.picks_vae))


def test_tsne_refuses_impossible_sizes(tmp_path: Path) -> None:
    config = parse_config(CONFIG)
    with pytest.raises(ConfigError, match="n_picks"):
        tsne_selection(config, tmp_path, n_labeled=80, candidate_fraction=0.01, n_picks=50)
    config_path = tmp_path / "c.toml"
    config_path.write_text('[loop]\ninitial=1\nbatch=1\nbudget=1\n[[strategies]]\nname="x"\n')
    assert main(["tsne", str(config_path), "--out", str(tmp_path)]) == 2
