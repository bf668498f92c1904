"""The discriminator saved with the generator, and the discriminator-logit realism term."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from activegen.data.registry import load_dataset
from activegen.errors import ActivegenError
from activegen.generative import GeneratorSettings, load_or_train
from activegen.generative.cache import DISCRIMINATOR_FILE, MissingDiscriminatorError
from activegen.generative.training import train_gan
from activegen.models import LinearSVM
from activegen.oracles import ABSTAIN, ORACLES
from activegen.strategies import STRATEGIES, PrepareContext, Query, QueryState
from activegen.strategies.gaal import synthesize

TINY = GeneratorSettings(epochs=2, width=8, latent_dim=8, batch_size=32, seed=3)


@pytest.fixture(scope="module")
def digits57():  # type: ignore[no-untyped-def]
    return load_dataset("digits").select_classes([5, 7])


def test_cache_entry_holds_the_discriminator_trained_with_the_generator(digits57,
                                                                        tmp_path) -> None:
    X = digits57.to_float()
    cached = load_or_train(X, TINY, tmp_path)
    assert (cached.path / DISCRIMINATOR_FILE).is_file()
    _, disc, _ = train_gan(X, TINY)  # training is seeded: the same discriminator
    saved = cached.discriminator()
    x = torch.from_numpy(X[:16]) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(saved(x), disc(x), atol=1e-6)
    # checksummed like the generator: changed tensor bytes are refused by name
    path = cached.path / DISCRIMINATOR_FILE
    payload = torch.load(path, weights_only=True)
    assert payload["sha256"] and set(payload["state"]) == set(disc.state_dict())
    name = next(k for k, v in payload["state"].items() if v.dtype == torch.float32)
    payload["state"][name] = payload["state"][name] + 1.0  # digest kept: the old one
    torch.save(payload, path)
    with pytest.raises(MissingDiscriminatorError, match="damaged discriminator"):
        cached.discriminator()


def test_old_entry_without_discriminator_serves_other_kinds_and_refuses_discriminator(
        digits57, tmp_path) -> None:
    X = digits57.to_float()
    first = load_or_train(X, TINY, tmp_path)
    # An entry written before discriminators were saved (and before the cache's manifests:
    # with a manifest, a missing file is damage and the entry is retrained whole).
    (first.path / DISCRIMINATOR_FILE).unlink()
    (first.path / "manifest.json").unlink()
    from activegen.generative import cache as cache_module

    cache_module._MEMORY.clear()
    params = dict(gan_epochs=TINY.epochs, gan_width=8, latent_dim=8, gan_batch_size=32)
    context = PrepareContext(pool=digits57, cache_dir=tmp_path, artifact_seed=TINY.seed)
    near = STRATEGIES.build("gaal", {**params, "realism": 0.3, "realism_kind": "nearest"})
    near.prepare(context)  # still loadable for the other realism kinds
    assert near.generator_key == first.key
    disc = STRATEGIES.build("gaal", {**params, "realism": 0.3,
                                     "realism_kind": "discriminator"})
    with pytest.raises(MissingDiscriminatorError, match=r"no discriminator\.pt") as info:
        disc.prepare(context)
    assert isinstance(info.value, ActivegenError) and str(first.path) in str(info.value)


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """The fixed small generator of these tests is the one trained with one torch thread: a
    different thread count sums in another order and trains another generator (on a
    2-thread run the discriminator term lowered SGD's abstention from 0.56 to 0.38 and
    L-BFGS's from 0.70 to 0.66: the effect's size depends on the generator)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained(digits57, tmp_path_factory):  # type: ignore[no-untyped-def]
    X = digits57.to_float()
    with _one_torch_thread():
        gen, disc, _ = train_gan(X, GeneratorSettings(epochs=60, width=16, latent_dim=8,
                                                      batch_size=32))
    oracle = ORACLES.build("expert", {"threshold": 0.8}, pool=digits57,
                           cache_dir=tmp_path_factory.mktemp("expert"))
    return X, gen, disc, oracle


def _abstention(digits57, trained, **kwargs) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    """Over 5 learners: the expert's abstention rate on the 10 queries of each, the median
    margin shrink (final / start) and the discriminator's mean verdict on the queries."""
    X, gen, disc, oracle = trained
    rates, shrink, verdicts = [], [], []
    for s in range(5):
        labeled = np.random.default_rng(s).choice(len(X), 10, replace=False)
        learner = LinearSVM(2).fit(X[labeled], digits57.y[labeled])
        res = synthesize(gen, learner.torch_decision, 10, discriminator=lambda x: disc(x * 2 - 1),
                         torch_generator=torch.Generator().manual_seed(s), **kwargs)
        labels = oracle.label(Query.synthesized(res.images, res.latents, None))
        rates.append(float((labels == ABSTAIN).mean()))
        shrink.append(float(np.median(res.margins) / np.median(res.start_margins)))
        with torch.no_grad():
            verdicts.append(float(disc(torch.from_numpy(res.images) * 2 - 1).mean()))
    return float(np.mean(rates)), float(np.median(shrink)), float(np.mean(verdicts))


def test_discriminator_realism_lowers_the_experts_abstention_rate(digits57, trained) -> None:
    with _one_torch_thread():
        plain, _, _ = _abstention(digits57, trained, optimizer="sgd")
        real, shrink, _ = _abstention(digits57, trained, optimizer="sgd", realism_weight=1.0,
                                      realism="discriminator")
    assert real <= plain - 0.2, (plain, real)  # 0.68 -> 0.42 on an AVX2 AMD EPYC
    assert shrink < 0.2, shrink  # still near the boundary


def test_discriminator_realism_with_lbfgs_raises_the_verdict_near_the_boundary(
        digits57, trained) -> None:
    """L-BFGS optimises the term (the discriminator's verdict rises) and stays at the
    boundary, but the expert's abstention does not reliably fall with it: 0.70 -> 0.66 with
    this generator trained on 2 threads, 0.62 -> 0.68 on 1 thread of an AVX2 AMD EPYC (the
    discriminator's realism is not the expert's confidence). So only the SGD test above
    asserts the abstention; the shipped ``gaal-labelable`` adds a band and manifold diversity,
    measured in the GAAL study (docs/gaal.md gives its figures)."""
    with _one_torch_thread():
        _, _, plain = _abstention(digits57, trained, optimizer="lbfgs")
        _, shrink, real = _abstention(digits57, trained, optimizer="lbfgs", realism_weight=1.0,
                                      realism="discriminator")
    assert real >= plain + 0.5, (plain, real)  # -0.23 -> 0.60 on the AVX2 AMD EPYC
    assert shrink < 0.2, shrink


def test_gaal_strategy_uses_the_saved_discriminator(digits57, tmp_path) -> None:
    params = dict(gan_epochs=2, gan_width=8, latent_dim=8, gan_batch_size=32,
                  realism=1.0, realism_kind="discriminator")
    gaal = STRATEGIES.build("gaal", params)
    gaal.prepare(PrepareContext(pool=digits57, cache_dir=tmp_path))
    X = digits57.to_float()
    labeled = np.arange(10)
    learner = LinearSVM(2).fit(X[labeled], digits57.y[labeled])
    queried = np.zeros(len(X), dtype=bool)
    queried[labeled] = True
    query = gaal.query(QueryState(X, queried, labeled, learner, 2, np.random.default_rng(0)), 4)
    assert query.samples.shape == (4, 1, 8, 8)
    assert gaal.synthesis["realism"] == "discriminator"
