"""A small CNN for quick work: four conv stages, so the loss-prediction head applies too.

Each stage is conv3×3 → BatchNorm → ReLU (stride 2 from the second stage on), so a 28×28
image gives maps of 28, 14, 7 and 4 pixels; global average pooling and one hidden linear
layer give the features ``T_f(x)``. The four stage outputs play the role of ResNet-18's four
residual blocks for learning-loss prediction (the small CNN has no residual blocks).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field
from torch import nn

from activegen.models.torch_learner import (
    LossHead,
    Posterior,
    StagedNetwork,
    TorchLearner,
    TorchSettings,
)


class SmallCNNNetwork(StagedNetwork):
    """conv stages of ``width·(1, 2, 4, 4)`` channels, GAP, ``feature_dim`` features, logits."""

    def __init__(self, in_channels: int, n_classes: int, width: int = 16,
                 feature_dim: int = 128) -> None:
        super().__init__()
        channels = (width, 2 * width, 4 * width, 4 * width)
        stages = []
        previous = in_channels
        for i, c in enumerate(channels):
            stages.append(nn.Sequential(
                nn.Conv2d(previous, c, 3, stride=1 if i == 0 else 2, padding=1, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU(inplace=True),
            ))
            previous = c
        self.stages = nn.ModuleList(stages)
        self.stage_channels = channels
        self.feature_dim = feature_dim
        self.hidden = nn.Sequential(nn.Linear(channels[-1], feature_dim), nn.ReLU(inplace=True))
        self.head_dropout: nn.Module = nn.Identity()
        self.fc = nn.Linear(feature_dim, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        maps = []
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        features = self.hidden(x.mean(dim=(2, 3)))
        return self.fc(self.head_dropout(features)), features, maps


class SmallCNNSettings(TorchSettings):
    """The small CNN's size and training settings."""

    width: int = Field(16, ge=1, description="channels of the first stage (x1, 2, 4, 4)")
    feature_dim: int = Field(128, ge=1, description="features T_f(x) before the last layer")


class SmallCNN(TorchLearner):
    """Small 4-stage CNN: fast enough to run the VAE paper's protocol on a CPU."""

    name: ClassVar[str] = "small-cnn"
    Settings = SmallCNNSettings
    settings: SmallCNNSettings

    def build_network(self, in_channels: int, image_size: tuple[int, int]) -> SmallCNNNetwork:
        return SmallCNNNetwork(in_channels, self.n_classes, self.settings.width,
                               self.settings.feature_dim)


class SmallCNNWithLossHead(LossHead, SmallCNN):
    """The small CNN with a loss-prediction head."""


class SmallCNNWithPosterior(Posterior, SmallCNN):
    """The small CNN with MC dropout or a deep ensemble."""


class SmallCNNWithBoth(LossHead, Posterior, SmallCNN):
    """The small CNN with a loss head and MC dropout."""


SmallCNN.variants = {(False, False): SmallCNN, (True, False): SmallCNNWithLossHead,
                     (False, True): SmallCNNWithPosterior, (True, True): SmallCNNWithBoth}
