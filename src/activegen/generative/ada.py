"""Adaptive discriminator augmentation (ADA, Karras et al. 2020, "Training Generative
Adversarial Networks with Limited Data").

Each image entering the discriminator is augmented with probability ``p``. Every ``interval``
discriminator steps, the overfitting heuristic ``r_t = E[sign(D(real))]`` over those steps is
compared with a target (0.6 in the paper): above it the discriminator is too sure of the
reals, so ``p`` rises; below it ``p`` falls; ``p`` stays in ``[0, 1]``. The step is sized so
that ``p`` could go from 0 to 1 within ``images_to_one`` real images (the paper: 500k images
on its datasets; here 50k by default, for pools of a few thousand images). A discriminator
that does not overfit leaves ``p`` at 0, so no augmentation happens at all.
"""

from __future__ import annotations

import torch

from activegen.generative.augment import diff_augment


class AdaptiveAugment:
    """The augmentation probability ``p`` and its update from real logits."""

    def __init__(self, target: float = 0.6, interval: int = 4,
                 images_to_one: int = 50_000) -> None:
        if not 0.0 < target < 1.0:
            raise ValueError(f"ADA target must be in (0, 1), got {target}")
        if interval < 1 or images_to_one < 1:
            raise ValueError("ADA interval and images_to_one must be >= 1")
        self.target = target
        self.interval = interval
        self.images_to_one = images_to_one
        self.p = 0.0
        self._sum = 0.0
        self._count = 0
        self._steps = 0
        #: the heuristic ``r_t`` at every update, and ``p`` after it (for reports and tests)
        self.history: list[tuple[float, float]] = []

    def observe(self, real_logits: torch.Tensor) -> None:
        """Account one discriminator step's logits on (augmented) real images."""
        self._sum += float(torch.sign(real_logits).sum())
        self._count += int(real_logits.numel())
        self._steps += 1
        if self._steps % self.interval == 0:
            r_t = self._sum / max(self._count, 1)
            step = self._count / self.images_to_one
            sign = 1.0 if r_t > self.target else (-1.0 if r_t < self.target else 0.0)
            self.p = min(1.0, max(0.0, self.p + sign * step))
            self.history.append((r_t, self.p))
            self._sum, self._count = 0.0, 0

    def apply(self, x: torch.Tensor, ops: tuple[str, ...], gen: torch.Generator
              ) -> torch.Tensor:
        """Augment each image of ``x`` with probability ``p`` (differentiable in ``x``)."""
        if self.p <= 0.0 or not ops:
            return x
        keep = torch.rand(len(x), generator=gen).to(x.device) >= self.p
        augmented = diff_augment(x, ops, gen)
        return torch.where(keep[:, None, None, None], x, augmented)
