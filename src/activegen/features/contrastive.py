"""SimCLR's NT-Xent loss (Chen et al. 2020, "normalized temperature-scaled cross entropy").

Written here in a few lines because the libraries that ship it (lightly) need torchvision,
which does not import beside a CPU-only torch built outside PyTorch's own index.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean NT-Xent loss of ``B`` positive pairs ``(z1[i], z2[i])``, each ``[B, p]``.

    Every one of the ``2B`` projections is a query whose positive is its pair and whose
    negatives are the other ``2B - 2`` projections; similarities are cosines divided by
    ``temperature``.
    """
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(f"nt_xent takes two [B, p] batches, got {tuple(z1.shape)} and "
                         f"{tuple(z2.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    b = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.T / temperature
    # A projection is never its own negative: its self-similarity is masked out.
    logits = logits.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device),
                                float("-inf"))
    positives = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(logits, positives)
