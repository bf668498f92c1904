"""The views self-supervised training compares: random augmentations sized to small images,
built from ``kornia`` (pure torch, batched, seeded by torch's generator).

Small images lose their content under SimCLR's ImageNet recipe (crops down to 8% of the area,
blur), so the crop keeps at least ``min_crop_scale`` of the area, and a small rotation and
translation add the variation a 28-pixel digit or garment really shows. Colour jitter and
random greyscale apply to RGB images only; grey images get brightness and contrast jitter.
Horizontal flips are a setting, since they change what a digit means but not a garment.
Every output keeps the input's shape and stays in ``[0, 1]``.
"""

from __future__ import annotations

import torch
from torch import nn

from activegen.errors import ConfigError


class Augment(nn.Module):
    """Random views of a batch ``[N, C, H, W]`` in ``[0, 1]`` (same shape out).

    Args:
        channels: 1 or 3.
        size: ``(H, W)``.
        min_crop_scale: smallest area fraction a random resized crop keeps (1: no crop).
        rotation: largest rotation in degrees (0: none).
        translate: largest shift as a fraction of the side (0: none).
        flip: random horizontal flips.
        jitter: strength of brightness/contrast (and, for RGB, saturation and hue) jitter.
    """

    def __init__(self, channels: int, size: tuple[int, int], min_crop_scale: float = 0.5,
                 rotation: float = 10.0, translate: float = 0.1, flip: bool = False,
                 jitter: float = 0.4) -> None:
        super().__init__()
        try:
            import kornia.augmentation as K
        except ImportError:
            raise ConfigError("self-supervised features need kornia's augmentations (a "
                              "dependency of activegen that is missing here): "
                              "pip install 'kornia>=0.7'") from None

        if not 0 < min_crop_scale <= 1:
            raise ValueError(f"min_crop_scale must be in (0, 1], got {min_crop_scale}")
        if rotation < 0 or translate < 0 or jitter < 0:
            raise ValueError("rotation, translate and jitter must be >= 0")
        ops: list[nn.Module] = []
        if min_crop_scale < 1:
            ops.append(K.RandomResizedCrop(size, scale=(min_crop_scale, 1.0)))
        if rotation > 0 or translate > 0:
            ops.append(K.RandomAffine(degrees=rotation, translate=(translate, translate),
                                      p=1.0))
        if flip:
            ops.append(K.RandomHorizontalFlip())
        if jitter > 0:
            if channels == 3:
                ops.append(K.ColorJitter(jitter, jitter, jitter, min(jitter / 4, 0.5), p=0.8))
                ops.append(K.RandomGrayscale(p=0.2))
            else:
                ops.append(K.ColorJitter(jitter, jitter, 0.0, 0.0, p=0.8))
        self.ops = nn.Sequential(*ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ops(x).clamp_(0.0, 1.0)
