"""Time one VAE training on a config's pool (width 16, latent 32, 20 epochs, as the scaled runs).

Usage: python scripts/time_vae.py [CONFIG]  (default configs/vae-mnist5k.toml)
"""

from __future__ import annotations

import sys
import time

from activegen.experiments.config import load_config
from activegen.experiments.runner import load_experiment_data
from activegen.generative.vae import VAESettings, train_vae


def main(path: str = "configs/vae-mnist5k.toml") -> None:
    pool, _ = load_experiment_data(load_config(path))
    X = pool.to_float()
    t = time.perf_counter()
    _, history = train_vae(X, VAESettings(width=16))
    dt = time.perf_counter() - t
    print(f"VAE width 16, latent 32, 20 epochs on {len(X)} images: {dt:.1f} s "
          f"({20 * len(X) / dt:.0f} images/s); loss first/last epoch "
          f"{history[0]:.1f}/{history[-1]:.1f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
