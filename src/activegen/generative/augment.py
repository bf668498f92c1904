"""Differentiable augmentation for data-efficient GAN training (DiffAugment, Zhao et al. 2020).

The same random translation and cutout are applied to real and generated images in the
discriminator's step and to generated images in the generator's step, so the discriminator
cannot memorise a small pool and the generator still learns the un-augmented distribution.
Both ops are differentiable in the images (gradients reach the generator). They act on the
discriminator's ``[-1, 1]`` scale and fill with ``-1`` (background); nothing a learner or an
oracle sees is ever augmented.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

POLICIES: tuple[str, ...] = ("translation", "cutout")


def parse_policy(policy: str) -> tuple[str, ...]:
    """``"translation,cutout"`` → ``("translation", "cutout")``; ``""`` → no augmentation."""
    ops = tuple(p.strip() for p in policy.split(",") if p.strip())
    for op in ops:
        if op not in POLICIES:
            raise ValueError(f"unknown augmentation {op!r}; known: {', '.join(POLICIES)}")
    return ops


def translate(x: torch.Tensor, ratio: float, gen: torch.Generator) -> torch.Tensor:
    """Shift each image by up to ``ratio × side`` pixels in each direction (fill ``-1``)."""
    n, _c, h, w = x.shape
    sh, sw = max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))
    dy = torch.randint(-sh, sh + 1, (n, 1), generator=gen).to(x.device)
    dx = torch.randint(-sw, sw + 1, (n, 1), generator=gen).to(x.device)
    padded = F.pad(x, (sw, sw, sh, sh), value=-1.0)
    rows = torch.arange(h, device=x.device)[None, :] + sh + dy  # [N, H]
    cols = torch.arange(w, device=x.device)[None, :] + sw + dx  # [N, W]
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # [N, H, W, C]
    return out.permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, ratio: float, gen: torch.Generator) -> torch.Tensor:
    """Blank one square of side ``ratio × side`` per image at a random place (fill ``-1``)."""
    n, _c, h, w = x.shape
    ch, cw = max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1), generator=gen).to(x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1), generator=gen).to(x.device)
    ys = torch.arange(h, device=x.device)[None, :]
    xs = torch.arange(w, device=x.device)[None, :]
    in_y = ((ys - cy + ch // 2) >= 0) & ((ys - cy + ch // 2) < ch)  # [N, H]
    in_x = ((xs - cx + cw // 2) >= 0) & ((xs - cx + cw // 2) < cw)  # [N, W]
    hole = (in_y[:, :, None] & in_x[:, None, :])[:, None].to(x.dtype)  # [N, 1, H, W]
    return x * (1.0 - hole) - hole


def diff_augment(x: torch.Tensor, ops: tuple[str, ...], gen: torch.Generator) -> torch.Tensor:
    """Apply ``ops`` in order (translation 1/8 of the side, cutout 1/2, as DiffAugment)."""
    for op in ops:
        x = translate(x, 0.125, gen) if op == "translation" else cutout(x, 0.5, gen)
    return x
