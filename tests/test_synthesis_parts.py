"""GAAL's latent search, part by part (activegen.strategies.synthesis): each objective term
against a hand computation or brute force, and both optimizers on problems whose minimum is
known."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch

from _trained_gan import trained_gan
from activegen.generative import Generator
from activegen.strategies.inversion import invert, nearest_boundary
from activegen.strategies.labelability import PRIOR_WEIGHT, Labelability
from activegen.strategies.synthesis import (
    HUBER,
    DiversityTerm,
    LabelabilityTerm,
    MarginTerm,
    NearestReference,
    RealismTerm,
    SynthesisSettings,
    batched_lbfgs,
    sgd_descent,
    synthesize,
)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


# -- MarginTerm -----------------------------------------------------------------------------
def test_margin_is_abs_for_binary_and_the_top_two_gap_for_several_classes() -> None:
    term = MarginTerm(_identity, band=0.0, smooth=False)
    assert torch.equal(term.margins(torch.tensor([-2.0, 0.5, 0.0])), torch.tensor([2.0, 0.5, 0.0]))
    scores = torch.tensor([[1.0, 3.0, 2.5], [0.0, -1.0, 4.0], [2.0, 2.0, -5.0]])
    torch.testing.assert_close(term.margins(scores), torch.tensor([0.5, 4.0, 0.0]))
    m = torch.tensor([0.3, 2.0])
    assert torch.equal(term(m), m)  # no band, no smoothing: the margin itself


def test_the_band_makes_every_margin_within_epsilon_free() -> None:
    term = MarginTerm(_identity, band=1.0, smooth=False)
    m = torch.tensor([0.0, 0.5, 0.99, 1.7, 3.0], requires_grad=True)
    value = term(m)
    torch.testing.assert_close(value, torch.tensor([0.0, 0.0, 0.0, 0.7, 2.0]))
    grad, = torch.autograd.grad(value.sum(), m)
    assert torch.equal(grad, torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0]))  # flat inside the band


def test_the_pseudo_huber_margin_is_abs_beyond_delta_and_smooth_at_zero() -> None:
    term = MarginTerm(_identity, band=0.0, smooth=True)
    m = torch.tensor([0.0, 0.5, 1.0, 2.0, 4.0], requires_grad=True)
    value = term(m)
    delta = HUBER * 1.0  # δ: HUBER × the median margin of the first call
    assert term.huber == pytest.approx(delta)
    torch.testing.assert_close(value, (m.detach() ** 2 + delta**2).sqrt() - delta)
    assert float(value[0].detach()) == 0.0
    # beyond δ it is |m| − δ to within δ² / 2|m| (float32 rounding aside): the other terms
    # weigh against |m| as they do with SGD
    far = m.detach()[1:]
    assert torch.all((value[1:].detach() - (far - delta)).abs() <= delta**2 / far)
    # smooth at 0: the slope goes to 0 there (|m|'s is 1 right of 0), and is 1 far from it
    near = torch.tensor([delta / 100, 4.0], requires_grad=True)
    slope, = torch.autograd.grad(term(near).sum(), near)
    assert float(slope[0]) < 0.011 and float(slope[1]) == pytest.approx(1.0, abs=1e-5)
    term(m.detach() * 100)
    assert term.huber == pytest.approx(delta)  # δ is fixed by the first call


# -- RealismTerm ----------------------------------------------------------------------------
def test_realism_is_lower_for_real_images_than_for_noise(pool_5v7, cache) -> None:
    """The trained discriminator's verdict: real digits score ~4x lower than uniform noise on
    every training measured (60 epochs; seeds 0-3 gave ratios 3.5-4.3)."""
    _gen, disc = trained_gan(pool_5v7, cache)
    term = RealismTerm(lambda x: disc(x * 2 - 1), weight=1.0)
    real = torch.from_numpy(pool_5v7.to_float()[:64])
    noise = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        on_real, on_noise = term(real), term(noise)
    assert float(on_noise.mean()) > 2.0 * float(on_real.mean()), (on_real.mean(), on_noise.mean())


def test_realism_is_the_weighted_softplus_over_its_median_at_the_first_call() -> None:
    def logit(x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).mean(1)

    term = RealismTerm(logit, weight=2.0)
    first = torch.tensor([-1.0, 0.0, 2.0]).reshape(3, 1, 1, 1)
    second = torch.tensor([5.0, -3.0]).reshape(2, 1, 1, 1)

    def softplus(v: float) -> float:
        return math.log1p(math.exp(v))

    scale = softplus(-0.0)  # the median of softplus(−D) over the first call: D = 0
    torch.testing.assert_close(term(first), torch.tensor(
        [2.0 * softplus(1.0) / scale, 2.0, 2.0 * softplus(-2.0) / scale]))
    torch.testing.assert_close(term(second), torch.tensor(  # the first call's scale, kept
        [2.0 * softplus(-5.0) / scale, 2.0 * softplus(3.0) / scale]))
    assert term.scale == pytest.approx(scale)


# -- DiversityTerm --------------------------------------------------------------------------
def _by_hand(flat: np.ndarray, slots: np.ndarray, starts: int, bandwidth: float) -> np.ndarray:
    """Σ over starts of other queries of exp(−‖a − b‖² / 2h²), over ``starts``, per start."""
    out = np.zeros(len(flat))
    for i in range(len(flat)):
        for j in range(len(flat)):
            if slots[i] != slots[j]:
                out[i] += math.exp(-((flat[i] - flat[j]) ** 2).sum() / (2 * bandwidth**2))
    return out / starts


def _median_distance(flat: np.ndarray) -> float:
    d = np.sqrt(((flat[:, None] - flat[None]) ** 2).sum(-1))
    return float(np.median(d[d > 0]))


def _dyadic(rng: np.random.Generator, *shape: int) -> np.ndarray:
    """Pixels in eighths: every distance below is exact in float32 on any CPU, so a copy is at
    distance 0 (the bandwidth's median leaves zeros out)."""
    return (rng.integers(0, 9, size=shape) / 8).astype(np.float32)


def test_rbf_diversity_penalises_a_copy_in_another_query_not_in_its_own() -> None:
    rng = np.random.default_rng(0)
    a, b, c, d = (_dyadic(rng, 1, 1, 3, 3) for _ in range(4))
    slots = torch.tensor([0, 1, 0, 1])  # k = 2 queries, 2 starts each: start i serves i % 2
    # rows 0 and 1 are the same image in two queries; rows 0 and 2 (one query) are distinct
    images = torch.from_numpy(np.concatenate([a, a, b, c]))
    term = DiversityTerm(0.5, "rbf", slots, starts=2)
    value = term(images)
    flat = images.flatten(1).numpy().astype(np.float64)
    h = _median_distance(flat)
    assert term.bandwidth == pytest.approx(h, rel=1e-5)
    np.testing.assert_allclose(value.numpy(), 0.5 * _by_hand(flat, slots.numpy(), 2, h),
                               rtol=1e-4)
    assert value[0] > value[2] and value[1] > value[3]
    # the same copy inside one query (rows 0 and 2) costs nothing: starts of a query may agree
    own = DiversityTerm(0.5, "rbf", slots, starts=2)(torch.from_numpy(
        np.concatenate([a, c, a, d])))
    assert own[0] < value[0]
    # a labeled image: each start also pays its largest similarity to one
    labeled = DiversityTerm(0.5, "rbf", slots, starts=2, labeled=torch.from_numpy(b))
    torch.testing.assert_close(labeled(images) - value,
                               0.5 * torch.exp(-((images - torch.from_numpy(b)) ** 2)
                                               .flatten(1).sum(1) / (2 * h**2)), rtol=1e-4,
                               atol=1e-6)


def test_the_bandwidth_is_the_median_distance_between_distinct_starts() -> None:
    """Self-distances are left out by position: computed as ‖a‖² + ‖a‖² − 2a·a, some round to
    0 and others to ~1e-3, as a machine's float kernels have it."""
    images = torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    term = DiversityTerm(1.0, "rbf", torch.arange(12) % 3, starts=4)
    term(images)
    flat = images.flatten(1).double()
    d = torch.cdist(flat, flat)[~torch.eye(12, dtype=torch.bool)]
    assert term.bandwidth == pytest.approx(float(d.median()), rel=1e-5)


def test_manifold_diversity_measures_the_spread_in_the_learners_features() -> None:
    """Features that ignore where the ink is (its total per image): two images of equal ink
    but different pixels are one point in feature space, so they are penalised as copies."""
    a = np.zeros((1, 1, 3, 3), dtype=np.float32)
    a[..., 0, :] = 1.0  # ink along the top row
    moved = np.ascontiguousarray(a[..., ::-1, :])  # the same ink along the bottom row
    faint, full = np.full_like(a, 0.125), np.ones_like(a)
    images = torch.from_numpy(np.concatenate([a, moved, faint, full]))
    slots = torch.tensor([0, 1, 0, 1])

    def ink(x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).sum(1, keepdim=True)

    reference = torch.from_numpy(_dyadic(np.random.default_rng(1), 20, 1, 3, 3))
    nearest = NearestReference(reference)
    manifold = DiversityTerm(1.0, "manifold", slots, 2, feature_fn=ink, nearest=nearest)
    value = manifold(images)
    features = ink(images).numpy().astype(np.float64)
    expected = _by_hand(features, slots.numpy(), 2, _median_distance(features))
    np.testing.assert_allclose((value - nearest(images)).numpy(), expected, rtol=1e-4)
    # in pixels the two are apart: measured there, the spread would be another
    flat = images.flatten(1).numpy().astype(np.float64)
    in_pixels = _by_hand(flat, slots.numpy(), 2, _median_distance(flat))
    assert not np.allclose(expected, in_pixels, rtol=0.1)
    assert expected[0] > in_pixels[0] + 0.15  # a copy in features, apart in pixels
    with pytest.raises(ValueError, match="needs the learner's features"):
        DiversityTerm(1.0, "manifold", slots, 2, nearest=nearest)


# -- NearestReference -----------------------------------------------------------------------
def test_nearest_reference_is_the_brute_force_nearest_pool_distance() -> None:
    rng = np.random.default_rng(2)
    pool = rng.random((30, 1, 4, 4))
    queries = rng.random((6, 1, 4, 4))
    nearest = NearestReference(torch.from_numpy(pool.astype(np.float32)))
    flat_pool, flat_q = pool.reshape(30, -1), queries.reshape(6, -1)
    nn = [min(((flat_pool[i] - flat_pool[j]) ** 2).sum() for j in range(30) if j != i)
          for i in range(30)]
    scale = float(np.median(nn))
    want = [min(((q - p) ** 2).sum() for p in flat_pool) / scale for q in flat_q]
    got = nearest(torch.from_numpy(queries.astype(np.float32)))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-4)
    assert float(nearest(torch.from_numpy(pool[:3].astype(np.float32))).abs().max()) < 1e-5
    with pytest.raises(ValueError, match="at least 2 pool images"):
        NearestReference(torch.zeros(1, 1, 4, 4))


# -- Labelability and its term ---------------------------------------------------------------
def test_labelability_is_the_kernel_estimate_by_brute_force() -> None:
    rng = np.random.default_rng(4)
    named, refused = rng.random((5, 1, 3, 3)), rng.random((3, 1, 3, 3))
    queries = rng.random((4, 1, 3, 3))
    model = Labelability(torch.from_numpy(named).float(), torch.from_numpy(refused).float())
    answers = np.concatenate([named, refused]).reshape(8, -1)
    pairs = [np.sqrt(((answers[i] - answers[j]) ** 2).sum())
             for i in range(8) for j in range(8) if i != j]
    h = float(np.sort(pairs)[(len(pairs) - 1) // 2])  # torch's median: the lower middle
    rate = (5 + 1) / (8 + 2)
    want = []
    for q in queries.reshape(4, -1):
        k = np.exp(-((answers - q) ** 2).sum(1) / (2 * h * h))
        want.append(np.log((k[:5].sum() + PRIOR_WEIGHT * rate) / (k.sum() + PRIOR_WEIGHT)))
    assert model.bandwidth == pytest.approx(h, rel=1e-5)
    got = model.log_prob(torch.from_numpy(queries).float())
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-4)


def test_labelability_is_high_by_named_images_low_by_refused_and_the_rate_far_away() -> None:
    named, refused = torch.zeros(4, 1, 2, 2), torch.ones(4, 1, 2, 2)
    model = Labelability(named, refused)
    p = model.log_prob(torch.stack([named[0], refused[0], torch.full((1, 2, 2), 50.0)])).exp()
    assert float(p[0]) > model.rate + 0.1 and float(p[1]) < model.rate - 0.1
    assert float(p[2]) == pytest.approx(model.rate) and model.rate == pytest.approx(0.5)


def test_labelability_needs_a_refusal_and_two_answers() -> None:
    one = torch.zeros(1, 1, 2, 2)
    assert Labelability.from_answers(torch.zeros(3, 1, 2, 2), one[:0]) is None  # none refused
    assert Labelability.from_answers(None, None) is None
    assert Labelability.from_answers(None, one) is None  # one answer: no bandwidth
    only_refused = Labelability.from_answers(None, torch.rand(3, 1, 2, 2))
    assert only_refused is not None and only_refused.rate == pytest.approx(1 / 5)


def test_the_labelability_term_is_minus_the_weighted_log_probability() -> None:
    images = torch.rand(3, 1, 2, 2)
    term = LabelabilityTerm(lambda x: -x.flatten(1).sum(1), weight=2.5)
    torch.testing.assert_close(term(images), 2.5 * images.flatten(1).sum(1))


# -- inversion and starts from given latents ------------------------------------------------
def test_inversion_reconstructs_pool_images_better_than_random_latents(pool_5v7, cache) -> None:
    """The mean squared pixel error of the inversions of 32 digits: measured 0.041-0.046 on
    four trainings, against 0.11-0.12 for a random latent and 0.056-0.062 for the best of 512
    random latents per image."""
    gen, _disc = trained_gan(pool_5v7, cache)
    images = torch.from_numpy(pool_5v7.to_float()[:32])
    flat = images.flatten(1)
    inverted = invert(gen, images, torch_generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        again = (gen(inverted.latents).flatten(1) - flat).pow(2).mean(1)
        random = (gen(gen.sample_latent(32, torch.Generator().manual_seed(1))).flatten(1)
                  - flat).pow(2).mean(1)
        draws = gen(gen.sample_latent(512, torch.Generator().manual_seed(2))).flatten(1)
        best_draw = torch.cdist(flat, draws).pow(2).min(dim=1).values / flat.shape[1]
    torch.testing.assert_close(inverted.errors, again)  # the errors are those of the latents
    assert float(inverted.errors.mean()) < 0.6 * float(random.mean())
    assert float(inverted.errors.mean()) < 0.9 * float(best_draw.mean())
    assert float(inverted.latents.abs().max()) <= gen.latent_bound
    with pytest.raises(ValueError, match="at least one image"):
        invert(gen, images[:0])


def test_nearest_boundary_is_the_smallest_margins_nearest_first() -> None:
    margins = np.array([0.5, 0.1, 0.9, 0.1, 0.05])
    np.testing.assert_array_equal(nearest_boundary(margins, 3), [4, 1, 3])
    np.testing.assert_array_equal(nearest_boundary(margins, 9), [4, 1, 3, 0, 2])


def test_the_search_starts_from_the_given_latents() -> None:
    """With steps too small to move, each query is its start: given latents for the first
    rows, random draws for the rest."""
    torch.manual_seed(0)
    gen = Generator((1, 8, 8), latent_dim=4, width=8).eval()
    initial = torch.tensor([[0.5, -1.0, 2.0, 0.0], [1.5, 0.0, -0.5, 1.0]])
    tiny = SynthesisSettings(steps=1, lr=1e-9, starts=1, start="pool")
    result = synthesize(gen, lambda x: x.flatten(1).sum(1), 3, tiny, initial=initial,
                        torch_generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(result.latents[:2], initial.numpy(), atol=1e-6)
    assert not np.allclose(result.latents[2], 0.0)
    with pytest.raises(ValueError, match="need their latents"):
        synthesize(gen, lambda x: x.flatten(1).sum(1), 2, tiny)
    with pytest.raises(ValueError, match="do not fit"):
        synthesize(gen, lambda x: x.flatten(1).sum(1), 1, tiny, initial=initial)


# -- the optimizers -------------------------------------------------------------------------
N, D = 5, 6
A = 0.5 + 4.0 * torch.rand(N, D, generator=torch.Generator().manual_seed(0))
C = torch.randn(N, D, generator=torch.Generator().manual_seed(1))


def _quadratic(a: torch.Tensor, c: torch.Tensor,
               seen: list[torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Σ_d a_d (u_d − c_d)² per row, recording every point it is evaluated at."""
    def objective(u: torch.Tensor) -> torch.Tensor:
        seen.append(u.detach().clone())
        return (a * (u - c) ** 2).sum(1)
    return objective


def _values(seen: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack([(A * (u - C) ** 2).sum(1) for u in seen])


def _sgd(objective, project) -> None:  # type: ignore[no-untyped-def]
    sgd_descent(objective, torch.zeros(N, D), 300, lr=0.01, momentum=0.5, project=project)


def _lbfgs(objective, project) -> None:  # type: ignore[no-untyped-def]
    batched_lbfgs(objective, torch.zeros(N, D), 30, project)


def _free(u: torch.Tensor) -> None:
    pass


def _path(seen: list[torch.Tensor], row: int) -> list[torch.Tensor]:
    """The points one row was evaluated at, a repeated evaluation once (L-BFGS evaluates an
    accepted row again while other rows' line searches go on)."""
    points: list[torch.Tensor] = []
    for u in seen:
        if not points or not torch.equal(points[-1], u[row]):
            points.append(u[row])
    return points


@pytest.mark.parametrize("run,tol", [(_sgd, 1e-3), (_lbfgs, 1e-8)], ids=["sgd", "lbfgs"])
def test_the_optimizers_reach_the_minimum_of_each_rows_quadratic(run, tol) -> None:
    seen: list[torch.Tensor] = []
    run(_quadratic(A, C, seen), _free)
    start = _values(seen[:1])[0]
    assert torch.all(start > 1.0)
    assert torch.all(_values(seen).min(dim=0).values < tol)  # every row, at its own minimum


@pytest.mark.parametrize("run", [_sgd, _lbfgs], ids=["sgd", "lbfgs"])
def test_each_row_is_its_own_problem(run) -> None:
    """Another problem in row 2 (ten times farther, other curvature) leaves every other row's
    path point for point as it was."""
    seen: list[torch.Tensor] = []
    run(_quadratic(A, C, seen), _free)
    a2, c2 = A.clone(), C.clone()
    a2[2], c2[2] = A[2].flip(0) * 3.0, C[2] * 10.0
    changed: list[torch.Tensor] = []
    run(_quadratic(a2, c2, changed), _free)
    for row in range(N):
        same = len(_path(seen, row)) == len(_path(changed, row)) and all(
            torch.equal(p, q) for p, q in zip(_path(seen, row), _path(changed, row),
                                              strict=False))
        assert same == (row != 2), row


@pytest.mark.parametrize("run,tol", [(_sgd, 0.01), (_lbfgs, 1e-3)], ids=["sgd", "lbfgs"])
def test_the_optimizers_stay_in_the_projection_and_reach_its_minimum(run, tol) -> None:
    """Minima outside the box [−0.5, 0.5]: every point evaluated is in the box, and the best
    comes near the box's minimum (the clipped centre, the problem being separable)."""
    seen: list[torch.Tensor] = []
    run(_quadratic(A, C, seen), lambda u: u.clamp_(-0.5, 0.5))
    assert max(float(u.abs().max()) for u in seen) <= 0.5
    assert float(C.abs().max()) > 1.0  # the unconstrained minimum lies outside
    floor = (A * (C.clamp(-0.5, 0.5) - C) ** 2).sum(1)
    gained = (_values(seen).min(dim=0).values - floor) / (_values(seen[:1])[0] - floor)
    assert torch.all(gained < tol), gained  # within tol of the way from start to minimum
