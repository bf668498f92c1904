"""The realism term keeps GAAL's queries labelable: fewer abstentions of the expert oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from activegen.data.registry import load_dataset
from activegen.generative import GeneratorSettings, train_generator
from activegen.models import LinearSVM
from activegen.oracles import ABSTAIN, ORACLES
from activegen.strategies import Query
from activegen.strategies.gaal import synthesize


@pytest.fixture(scope="module")
def setup(tmp_path_factory):  # type: ignore[no-untyped-def]
    ds = load_dataset("digits").select_classes([5, 7])
    X = ds.to_float()
    gen, _ = train_generator(X, GeneratorSettings(epochs=60, width=16, latent_dim=8,
                                                  batch_size=32))
    oracle = ORACLES.build("expert", {"threshold": 0.8}, pool=ds,
                           cache_dir=tmp_path_factory.mktemp("expert"))
    return ds, X, gen, oracle


def _abstention(setup, seeds, **kwargs) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    ds, X, gen, oracle = setup
    rates, shrink = [], []
    for s in seeds:
        labeled = np.random.default_rng(s).choice(len(X), 10, replace=False)
        learner = LinearSVM(2).fit(X[labeled], ds.y[labeled])
        res = synthesize(gen, learner.torch_decision, 10, reference=torch.from_numpy(X),
                         torch_generator=torch.Generator().manual_seed(s), **kwargs)
        labels = oracle.label(Query.synthesized(res.images, res.latents, None))
        rates.append(float((labels == ABSTAIN).mean()))
        shrink.append(float(np.median(res.margins) / np.median(res.start_margins)))
    return float(np.mean(rates)), float(np.median(shrink))


def test_realism_term_lowers_the_experts_abstention_rate(setup) -> None:
    seeds = range(5)
    plain, plain_shrink = _abstention(setup, seeds, optimizer="sgd")
    real, real_shrink = _abstention(setup, seeds, realism_weight=0.3, realism="nearest",
                                    optimizer="sgd")
    assert real <= plain - 0.2, (plain, real)
    # the queries are still near the boundary: margins far below those of random draws
    assert plain_shrink < 0.05 and real_shrink < 0.2, (plain_shrink, real_shrink)


def test_margin_band_and_realism_settings_are_checked(setup) -> None:
    _, _, gen, _ = setup
    f = lambda x: x.flatten(1).sum(1) - 10.0  # noqa: E731
    with pytest.raises(ValueError, match="realism"):
        synthesize(gen, f, 2, realism_weight=-1.0)
    with pytest.raises(ValueError, match="unknown realism"):
        synthesize(gen, f, 2, realism_weight=1.0, realism="critic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs the generator's discriminator"):
        synthesize(gen, f, 2, realism_weight=1.0, realism="discriminator")
    with pytest.raises(ValueError, match="reference images"):
        synthesize(gen, f, 2, realism_weight=1.0, realism="nearest")
    # inside the band the margin term is flat: a wide band leaves margins larger than none
    tight = synthesize(gen, f, 4, optimizer="sgd", torch_generator=torch.Generator().manual_seed(0))
    wide = synthesize(gen, f, 4, band=2.0, realism_weight=1.0, realism="prior", optimizer="sgd",
                      torch_generator=torch.Generator().manual_seed(0))
    assert np.all(wide.margins <= 2.0 + 0.5) and np.median(tight.margins) < np.median(wide.margins)
