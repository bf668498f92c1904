"""Inverting a generator: the latent ``z`` whose ``G(z)`` reconstructs a given image.

A query synthesized from a real image's latent starts from something a person recognises;
the search then moves it the short way to the learner's boundary instead of from a random
draw (:func:`~activegen.strategies.synthesis.synthesize` with ``initial`` latents).

:func:`invert` minimises the mean squared pixel error ``‖G(z) − x‖² / D`` plus a small pull
to the prior's centre, ``prior · ‖z‖² / d`` (a DCGAN's off-prior latents reconstruct an image
with strokes the generator never draws from its prior), by batched L-BFGS from ``starts``
random draws per image, all in one batch, inside the ``±3σ`` box the synthesis uses; each
image keeps its best start.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from activegen.generative.dcgan import Generator
from activegen.strategies.synthesis import _Frozen, batched_lbfgs

#: L-BFGS iterations of an inversion: past ~30 the error of the 28×28 generators barely falls
INVERT_ITERATIONS = 30
#: weight of ‖z‖² / d against the mean squared pixel error
INVERT_PRIOR = 1e-3


@dataclass(frozen=True)
class Inversion:
    """Latents ``[N, d]`` and the mean squared pixel error of ``G(latents)`` to each image."""

    latents: torch.Tensor
    errors: torch.Tensor


def invert(generator: Generator, images: torch.Tensor, *, starts: int = 4,
           iterations: int = INVERT_ITERATIONS, prior: float = INVERT_PRIOR,
           torch_generator: torch.Generator | None = None) -> Inversion:
    """The latents whose images are nearest ``images`` (``[N, C, H, W]`` in ``[0, 1]``)."""
    if len(images) == 0:
        raise ValueError("invert needs at least one image")
    device = next(generator.parameters()).device
    bound = generator.latent_bound
    n = len(images)
    target = images.to(device).reshape(n, -1).float().repeat(starts, 1)  # row i: image i % n
    best_obj = torch.full((n * starts,), float("inf"), device=device)
    best_z = torch.zeros(n * starts, generator.latent_dim, device=device)

    def objective(z: torch.Tensor) -> torch.Tensor:
        nonlocal best_obj, best_z
        error = (generator(z).reshape(len(z), -1) - target).pow(2).mean(dim=1)
        value = error + prior * z.pow(2).mean(dim=1)
        with torch.no_grad():
            better = value.detach() < best_obj
            best_obj = torch.where(better, value.detach(), best_obj)
            best_z = torch.where(better[:, None], z.detach(), best_z)
        return value

    def project(u: torch.Tensor) -> None:
        u.clamp_(-bound, bound)

    with _Frozen([generator]):
        z0 = generator.sample_latent(n * starts, torch_generator, device).clamp(-bound, bound)
        batched_lbfgs(objective, z0, iterations, project)
        chosen = best_obj.view(starts, n).argmin(dim=0) * n + torch.arange(n, device=device)
        latents = best_z[chosen]
        with torch.no_grad():
            errors = (generator(latents).reshape(n, -1) - target[:n]).pow(2).mean(dim=1)
    return Inversion(latents=latents, errors=errors)


def nearest_boundary(margins: np.ndarray, count: int) -> np.ndarray:
    """Positions of the ``count`` smallest ``margins`` (ties: the lower position), nearest
    first: the real images a minimal edit starts from."""
    count = min(count, len(margins))
    return np.argsort(margins, kind="stable")[:count]
