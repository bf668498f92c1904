"""Generator variants on the mnist5k 5-vs-7 pool (800 images), by Fréchet distance over epochs.

Usage: python scripts/gaal_generator_variants.py VARIANT [EPOCHS]
VARIANT: plain | aug | aug+ema | aug+sn+ema | ema. Each trains a DCGAN (the default settings,
seed 0) with the Fréchet evaluation every 10 epochs on 10% of the pool held out (PCA-32 fitted
on the other 90%), prints the distances, the checkpoint chosen and the real-vs-real floor, and
saves 64 samples of the chosen checkpoint to /tmp/gaal-variant-VARIANT.png.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from activegen.data.registry import load_dataset
from activegen.generative import GeneratorSettings, train_generator

VARIANTS: dict[str, dict[str, object]] = {
    "plain": {},
    "aug": {"augment": "translation,cutout"},
    "aug+ema": {"augment": "translation,cutout", "ema": 0.99},
    "aug+sn+ema": {"augment": "translation,cutout", "spectral_norm": True, "ema": 0.99},
    "ema": {"ema": 0.99},
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in VARIANTS:
        sys.exit(__doc__)
    name = sys.argv[1]
    epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    torch.set_num_threads(1)
    pool, _ = load_dataset("mnist5k").select_classes([5, 7]).split(0.2, 0)
    settings = replace(GeneratorSettings(epochs=epochs, eval_every=10), **VARIANTS[name])
    t0 = time.time()
    _, report = train_generator(pool.to_float(), settings,
                                sample_path=Path(f"/tmp/gaal-variant-{name}.png"))
    print(name, json.dumps({
        "evals": [round(e["frechet"], 2) for e in report.evaluations],
        "chosen": report.chosen_epoch, "floor": round(report.frechet_floor or 0.0, 2),
        "s": round(time.time() - t0)}))


if __name__ == "__main__":
    main()
