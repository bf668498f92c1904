"""Re-measure a generator saved by ``benchmarks/bench_gaal_train.py --save`` on fresh samples.

The benchmark keeps the checkpoint with the lowest Fréchet distance over its evaluations, all
on the same 500 samples (seed 0) and the same 193 held-out images, so its figure there is
optimistic. This prints the distance with seed 0 and with fresh sample seeds 1-4, as saved and
with standing batch-norm statistics recomputed (``generative.training.standing_statistics``).

    PYTHONPATH=src python scripts/gaal_generator_recheck.py GENERATOR.pt [WIDTH]
"""
import copy
import sys

import numpy as np
import torch

from activegen.data.registry import load_dataset
from activegen.generative.dcgan import Generator
from activegen.generative.training import frechet_quality, standing_statistics

torch.set_num_threads(1)
path, width = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 32
X = load_dataset("mnist10k").select_classes([5, 7]).to_float()
order = np.random.default_rng(0).permutation(len(X))
n_hold = round(0.1 * len(X))
hold, train = X[order[:n_hold]], X[order[n_hold:]]
gen = Generator((1, 28, 28), 100, "normal", width)
gen.load_state_dict(torch.load(path))
gen.eval()
stand = standing_statistics(copy.deepcopy(gen), 64, 0)
for label, g in (("as saved", gen), ("standing stats", stand)):
    values = []
    for seed in range(5):
        measure, floor = frechet_quality(hold, train, seed=seed)
        values.append(measure(g, 0))
    print(f"{label}: FD seed0 {values[0]:.3f} ({values[0]/floor:.2f}x), fresh seeds 1-4 mean "
          f"{np.mean(values[1:]):.3f} ({np.mean(values[1:])/floor:.2f}x), "
          f"{', '.join(f'{v:.3f}' for v in values[1:])}")
