"""One GAAL round (10 synthesized queries) against one SVMactive round, in the same run.

Variants of the synthesis (:class:`~activegen.strategies.synthesis.SynthesisSettings`), all on
the mnist5k 5-vs-7 pool (800 images, 28x28) with one DCGAN (the ``paper`` generator preset,
``--epochs`` epochs), every query's starts in one batch: SGD (the ``paper`` preset: 10 × 4
starts × 50 steps; and 20 steps), batched L-BFGS (``optimizer = "lbfgs"``: 5 and 3
iterations; 2 starts instead of 4), SGD with band 0.5 (the shipped synthesis before the
re-screen), the ``boundary`` preset (L-BFGS with manifold diversity 1.0, the re-screen's choice
and the shipped configs'; the pool and the learner's features passed as a GAAL round passes
them), L-BFGS with the realism term (the trained discriminator's verdict, weight 1.0), and the
``labelable`` preset (L-BFGS, band 1.0, realism 1.0, manifold diversity 0.3); and
``gaal-retrieve``'s retrieval step alone, after the ``boundary`` synthesis (the nearest pool
image, m = 1; of the 30 nearest, the one nearest the boundary, m = 30: the default). Each is
reported as seconds, as a ratio to one SVMactive round (fit the linear SVM on 50 labels, rank
the pool, take the top 10), and by the median |margin| of its 10 picks (smaller is closer to
the boundary; median over the repeats' seeds; for the retrieval rows, of the pool images it
picks).

The rows of options the synthesis no longer has (restarts run one after another, the realism
term as the distance to the nearest pool image) are gone; their figures stay in
``research/gaal/study.md``.

    PYTHONPATH=src python benchmarks/bench_gaal_round.py [--threads 1] [--repeats 5] [--epochs 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from activegen.data.registry import load_dataset
from activegen.generative import GeneratorSettings
from activegen.generative.training import train_gan
from activegen.loop import initial_labeled_indices
from activegen.models import LinearSVM
from activegen.strategies import QueryState, SVMActive
from activegen.strategies.gaal import nearest_distinct, pool_margins_of, synthesize
from activegen.strategies.synthesis import SynthesisSettings


def _median_seconds(fn: Callable[[int], object], repeats: int) -> tuple[float, float]:
    """Median seconds of ``fn(seed)`` over ``repeats`` seeds and the median of what it returns
    (a median |margin|, or NaN)."""
    fn(0)  # warm-up
    out, values = [], []
    for seed in range(repeats):
        t0 = time.perf_counter()
        value = fn(seed)
        out.append(time.perf_counter() - t0)
        values.append(float(value) if value is not None else float("nan"))  # type: ignore[arg-type]
    return statistics.median(out), statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pool, _ = load_dataset("mnist5k").select_classes([5, 7]).split(0.2, 0)
    X = pool.to_float()
    gen, disc, _ = train_gan(X, GeneratorSettings(epochs=args.epochs), seed=0)
    labeled = initial_labeled_indices(pool.y, 50, 0)
    learner = LinearSVM(2).fit(X[labeled], pool.y[labeled])
    ref = torch.from_numpy(X)
    # what a GAAL round passes: the pool and the learner's features (manifold diversity), the
    # discriminator on the generator's [-1, 1] scale (realism)
    inputs = dict(reference=ref, feature_fn=learner.torch_features,
                  discriminator=lambda x: disc(x * 2.0 - 1.0))

    def run(settings: SynthesisSettings) -> Callable[[int], float]:
        def one(seed: int) -> float:
            result = synthesize(gen, learner.torch_decision, 10, settings,
                                torch_generator=torch.Generator().manual_seed(seed),
                                **inputs)  # type: ignore[arg-type]
            return float(np.median(result.margins))
        return one

    def svm_active_round(_seed: int) -> None:
        fitted = LinearSVM(2).fit(X[labeled], pool.y[labeled])
        queried = np.zeros(len(X), dtype=bool)
        queried[labeled] = True
        SVMActive().query(QueryState(X, queried, labeled, fitted, 2,
                                     np.random.default_rng(0)), 10)

    boundary = SynthesisSettings.model_validate("boundary")
    available = np.flatnonzero(~np.isin(np.arange(len(X)), labeled))

    # the synthesized batches the retrieval starts from (the synthesis is timed above)
    batches = [synthesize(gen, learner.torch_decision, 10, boundary,
                          torch_generator=torch.Generator().manual_seed(seed),
                          **inputs).images  # type: ignore[arg-type]
               for seed in range(args.repeats)]

    def retrieve(neighbors: int, seed: int) -> np.ndarray:
        margins = (pool_margins_of(learner.torch_decision, X, available)
                   if neighbors > 1 else None)
        return nearest_distinct(batches[seed], X, available, neighbors=neighbors,
                                candidate_margins=margins)

    pool_round, _ = _median_seconds(svm_active_round, args.repeats)
    rows = [
        ("SGD, 10 × 4 starts × 50 steps (the paper preset)", run(SynthesisSettings())),
        ("SGD, 10 × 4 starts × 20 steps", run(SynthesisSettings(steps=20))),
        ("L-BFGS, 10 × 4 starts × 5 iterations",
         run(SynthesisSettings(optimizer="lbfgs", steps=5))),
        ("L-BFGS, 10 × 4 starts × 3 iterations",
         run(SynthesisSettings(optimizer="lbfgs", steps=3))),
        ("L-BFGS, 10 × 2 starts × 5 iterations",
         run(SynthesisSettings(optimizer="lbfgs", steps=5, starts=2))),
        ("SGD, 50 steps, band 0.5 (the shipped synthesis before the re-screen)",
         run(SynthesisSettings(band=0.5))),
        ("L-BFGS, 5 iterations, manifold diversity 1.0 (the boundary preset)", run(boundary)),
        ("L-BFGS, 5 iterations, realism 1.0 (the discriminator's verdict)",
         run(SynthesisSettings(optimizer="lbfgs", realism=1.0))),
        ("L-BFGS, band 1.0, realism 1.0, manifold diversity 0.3 (the labelable preset)",
         run(SynthesisSettings.model_validate("labelable"))),
    ]
    print(f"pool: {len(X)} images of 28x28, torch threads: {args.threads}, "
          f"repeats: {args.repeats} (medians)")
    print("| GAAL round of 10 queries | seconds | ratio to SVMactive's round "
          "| median \\|margin\\| of the picks |")
    print("| --- | --- | --- | --- |")
    for name, fn in rows:
        s, m = _median_seconds(fn, args.repeats)
        print(f"| {name} | {s:.3f} | {s / pool_round:.1f}× | {m:.2e} |")
    for neighbors in (1, 30):
        def timed(seed: int, m: int = neighbors) -> None:
            retrieve(m, seed)

        s, _ = _median_seconds(timed, args.repeats)
        picked = statistics.median(
            float(np.median(np.abs(learner.decision_function(X[retrieve(neighbors, seed)]))))
            for seed in range(args.repeats))
        print(f"| gaal-retrieve's retrieval alone, retrieve_neighbors = {neighbors} "
              f"| {s:.4f} | {s / pool_round:.1f}× | {picked:.2e} |")
    print(f"| SVMactive round (fit on 50, rank {len(X) - 50}, top 10) | {pool_round:.4f} | 1× "
          "| |")


if __name__ == "__main__":
    main()
