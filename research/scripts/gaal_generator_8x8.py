"""Does issue 10's generator recipe help at 8x8? (``configs/gaal-digits-10class.toml``)

Trains the config's generator (latent 16, 300 epochs) on the config's own pool (1,078 images of
the ten digits) with ``eval_every = 10`` (10% of the pool held out, Fréchet distance of 500
samples in PCA-32), plain and with the recipe chosen on mnist10k; prints every evaluation, the
best, both floors and the seconds, and writes them to ``--json`` (default: none).

    PYTHONPATH=src python scripts/gaal_generator_8x8.py plain chosen [--json FILE]
"""
import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch

from activegen.experiments.config import load_config
from activegen.experiments.runner import load_experiment_data
from activegen.generative import GeneratorSettings, train_generator

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("variants", nargs="+", choices=["plain", "chosen"])
parser.add_argument("--json", type=Path)
args = parser.parse_args()
torch.set_num_threads(1)
pool, _ = load_experiment_data(load_config("configs/gaal-digits-10class.toml"))
X = pool.to_float()
base = GeneratorSettings(latent_dim=16, epochs=300, eval_every=10)
variants = {
    "plain": base,
    "chosen": replace(base, spectral_norm=True, ema=0.999, loss="hinge", lr=1e-4,
                                 d_lr=4e-4, beta1=0.0, beta2=0.9, batch_size=16,
                                 bn_stats="standing"),
}
out = {}
for name in args.variants:
    _, rep = train_generator(X, variants[name])
    best = min(rep.evaluations, key=lambda e: e["frechet"])
    out[name] = {"evaluations": rep.evaluations, "floor": rep.frechet_floor,
                 "floor_matched": rep.frechet_floor_matched, "seconds": rep.seconds,
                 "best": best}
    print(name, f"pool {len(X)}; best FD {best['frechet']:.3f} at {best['epoch']} = "
          f"{best['frechet'] / rep.frechet_floor:.2f}x floor {rep.frechet_floor:.3f}, "
          f"{best['frechet'] / rep.frechet_floor_matched:.2f}x matched "
          f"{rep.frechet_floor_matched:.3f}; {rep.seconds:.0f} s; evals "
          + ", ".join(f"{e['epoch']}:{e['frechet']:.2f}" for e in rep.evaluations), flush=True)
if args.json:
    args.json.write_text(json.dumps(out, indent=1))
