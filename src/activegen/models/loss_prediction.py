"""Learning-loss prediction (Yoo & Kweon, CVPR 2019): a small head that ranks losses.

The head reads the outputs of the task network's four stages (residual blocks in ResNet-18),
global-average-pools each, maps each to ``hidden`` units with its own linear layer and ReLU,
concatenates them into ``c`` and maps ``c`` to one number, the predicted loss. It is trained
jointly with the task network by a margin ranking loss on pairs of the batch, so it learns
which of two points the network gets more wrong, not the (drifting) loss value itself.

The VAE-augmented variant (Godwin et al. 2022) concatenates extra features (``alpha`` times
the VAE's encoding) to ``c`` before the last layer. The last layer is held as two linear maps
``W_c c + W_e e + b`` — the same function as one layer on ``[c ⌢ e]`` — so that the extra map
is created after everything else: with ``e = 0`` the network, its random initialisation and
its predictions are exactly those of the plain head.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F


class LossPredictionModule(nn.Module):
    """Predicts a per-example loss from the feature maps of four network stages.

    Args:
        stage_channels: channels of each stage's output feature map.
        hidden: units per stage after its linear layer (128 in the paper).
        extra_dim: size of an extra feature vector concatenated before the last layer (0: none).
    """

    def __init__(self, stage_channels: Sequence[int], hidden: int = 128,
                 extra_dim: int = 0) -> None:
        super().__init__()
        if hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {hidden}")
        if extra_dim < 0:
            raise ValueError(f"extra_dim must be >= 0, got {extra_dim}")
        self.stage_fcs = nn.ModuleList(nn.Linear(c, hidden) for c in stage_channels)
        self.out = nn.Linear(hidden * len(stage_channels), 1)
        self.extra_dim = extra_dim
        # Created last: see the module docstring (alpha = 0 reproduces the plain head exactly).
        self.extra_out = nn.Linear(extra_dim, 1, bias=False) if extra_dim else None

    def forward(self, stages: Sequence[torch.Tensor], extra: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Predicted losses ``[B]`` from the stage maps ``[B, C_i, H_i, W_i]``."""
        if len(stages) != len(self.stage_fcs):
            raise ValueError(f"expected {len(self.stage_fcs)} stage outputs, got {len(stages)}")
        pooled = [F.relu(fc(s.mean(dim=(2, 3)))) for fc, s in zip(self.stage_fcs, stages)]
        pred = self.out(torch.cat(pooled, dim=1))
        if self.extra_out is not None:
            if extra is None:
                raise ValueError(f"this loss head needs {self.extra_dim} extra features")
            if extra.shape != (pred.shape[0], self.extra_dim):
                raise ValueError(
                    f"extra features must be [{pred.shape[0]}, {self.extra_dim}], "
                    f"got {list(extra.shape)}"
                )
            pred = pred + self.extra_out(extra.to(pred.dtype))
        elif extra is not None:
            raise ValueError("this loss head takes no extra features (extra_dim = 0)")
        return pred[:, 0]


def margin_ranking_loss(predicted: torch.Tensor, target: torch.Tensor, margin: float = 1.0
                        ) -> torch.Tensor:
    """Yoo & Kweon's pair loss, averaged over the pairs ``(i, B-1-i)`` of a batch.

    ``L = max(0, -sign(l_i - l_j) · (l̂_i - l̂_j) + ξ)`` with sign = +1 when ``l_i > l_j`` and
    -1 otherwise, as in the paper. The targets are detached: the head learns to rank the
    task losses; it does not push them. An odd batch leaves its middle element unpaired.
    """
    if predicted.shape != target.shape or predicted.dim() != 1:
        raise ValueError(
            f"predicted and target must be equal 1-d shapes, got {list(predicted.shape)} "
            f"and {list(target.shape)}"
        )
    half = len(predicted) // 2
    if half == 0:
        return predicted.sum() * 0.0
    pred_diff = (predicted - predicted.flip(0))[:half]
    target_diff = (target - target.flip(0))[:half].detach()
    sign = torch.where(target_diff > 0, 1.0, -1.0).to(pred_diff.dtype)
    return torch.clamp(margin - sign * pred_diff, min=0).mean()
