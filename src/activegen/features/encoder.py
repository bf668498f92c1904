"""A small ResNet sized to the image, the encoder that self-supervised training learns.

ResNet-18 costs ≈0.56 GMAC per 28×28 image with a stride-1 stem, far too much for minutes of
CPU training; this network keeps the residual design at a fraction of it: a 3×3 stem, three
stages of ``blocks`` basic blocks of ``width·(1, 2, 4)`` channels, and global average pooling,
so the features have ``4·width`` dimensions. The stem's stride and the stages' strides follow
the image size (:func:`strides_for`), so that every size ends on a map of a few pixels: 8×8
images are not downsampled before the last stage; 28–32 px images go to half size in the stem
(the first stage at full 28×28 made a SimCLR step 3-4x slower, on a CPU where the number of
steps decided the accuracy reached in minutes); 64 px images are halved in every stage too.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class _Block(nn.Module):
    """Two 3×3 convolutions with a residual connection (a 1×1 projection when the shape
    changes)."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride,
                                                    bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def strides_for(size: int, stem_stride: int | None = None
                ) -> tuple[int, tuple[int, int, int]]:
    """``(stem stride, stage strides)`` for images of side ``size`` (the smaller side);
    ``stem_stride`` overrides the stem's."""
    if size <= 12:
        stem, stages = 1, (1, 1, 2)
    elif size < 24:
        stem, stages = 1, (1, 2, 2)
    elif size < 48:
        stem, stages = 2, (1, 2, 2)
    else:
        stem, stages = 2, (2, 2, 2)
    return (stem if stem_stride is None else stem_stride), stages


class SmallResNet(nn.Module):
    """Encoder ``[N, C, H, W]`` → ``[N, 4·width]``.

    Args:
        in_channels: 1 (grey) or 3 (RGB).
        image_size: ``(H, W)``; decides the strides (:func:`strides_for`).
        width: channels of the first stage.
        blocks: basic blocks per stage.
        stem_stride: the stem's stride (None: by image size).
    """

    def __init__(self, in_channels: int, image_size: tuple[int, int], width: int = 32,
                 blocks: int = 1, stem_stride: int | None = None) -> None:
        super().__init__()
        if width < 1 or blocks < 1:
            raise ValueError(f"width and blocks must be >= 1, got {width}, {blocks}")
        stem_stride, strides = strides_for(min(image_size), stem_stride)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=stem_stride, padding=1, bias=False),
            nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        stages: list[nn.Module] = []
        previous = width
        for i, stride in enumerate(strides):
            planes = width * 2 ** i
            layers = [_Block(previous, planes, stride)]
            layers += [_Block(planes, planes, 1) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*layers))
            previous = planes
        self.stages = nn.Sequential(*stages)
        self.feature_dim = previous

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(self.stages(self.stem(x)), 1), 1)


class ProjectionHead(nn.Module):
    """SimCLR's MLP ``g``: the loss is computed on ``g(h)``, the features are ``h`` (Chen et
    al. 2020 found the layer before the head far better for downstream tasks)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or in_dim
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden),
                                 nn.ReLU(inplace=True), nn.Linear(hidden, out_dim))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)
