"""DCGAN generator and discriminator sized to the data (8x8x1, 28x28x1, 32x32x3, ...).

The generator ends in ``tanh`` and :class:`Generator` maps that through
:func:`activegen.data.dataset.to_unit_range`, so ``generator(z)`` is in the one model scale
``[0, 1]`` that learners and oracles see: a learner fitted on ``Dataset.to_float()`` pixels is
never fed ``[-1, 1]`` images (a known bug of public GAAL re-implementations).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from activegen.data.dataset import to_unit_range

#: Half-width of the latent box synthesis keeps ``z`` in: ``±3σ`` per coordinate of the
#: ``N(0, I)`` prior, where 99.7% of its mass lies.
LATENT_BOUND = 3.0


def upsampling_plan(size: int) -> tuple[int, int]:
    """``(base, n_up)``: start at ``base x base`` and double ``n_up`` times to reach ``size``.

    Halves while the side is even and at least 8, so 28 → (7, 2), 32 → (4, 3), 8 → (4, 1).
    """
    if size < 4:
        raise ValueError(f"a DCGAN needs images of at least 4x4, got {size}x{size}")
    base, n_up = size, 0
    while base % 2 == 0 and base >= 8:
        base //= 2
        n_up += 1
    if n_up == 0:
        raise ValueError(f"a DCGAN needs an even image side (>= 8), got {size}")
    return base, n_up


def _check_shape(image_shape: tuple[int, int, int]) -> tuple[int, int]:
    channels, height, width = image_shape
    if height != width:
        raise ValueError(f"a DCGAN needs square images, got {height}x{width}")
    if channels not in (1, 3):
        raise ValueError(f"a DCGAN needs 1 or 3 channels, got {channels}")
    return channels, height


class Generator(nn.Module):
    """``z → image``: a linear layer to ``width·2^(n_up-1) x base x base``, then ``n_up``
    stride-2 transposed convolutions (batch norm + ReLU), ``tanh``, mapped to ``[0, 1]``.

    Args:
        image_shape: ``(C, H, W)`` of the images (the model scale's layout).
        latent_dim: size of ``z``, drawn from ``N(0, I)``.
        width: channels of the last hidden layer (doubled at each coarser layer).
    """

    def __init__(self, image_shape: tuple[int, int, int], latent_dim: int = 100,
                 width: int = 32) -> None:
        super().__init__()
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
        channels, size = _check_shape(image_shape)
        base, n_up = upsampling_plan(size)
        self.image_shape = (channels, size, size)
        self.latent_dim = latent_dim
        top = width * 2 ** (n_up - 1)
        self._base, self._top = base, top
        self.project = nn.Sequential(
            nn.Linear(latent_dim, top * base * base), nn.BatchNorm1d(top * base * base), nn.ReLU()
        )
        layers: list[nn.Module] = []
        ch = top
        for i in range(n_up):
            last = i == n_up - 1
            out = channels if last else ch // 2
            layers.append(nn.ConvTranspose2d(ch, out, 4, 2, 1, bias=last))
            layers += [nn.Tanh()] if last else [nn.BatchNorm2d(out), nn.ReLU()]
            ch = out
        self.deconv = nn.Sequential(*layers)

    def raw(self, z: torch.Tensor) -> torch.Tensor:
        """The ``tanh`` output in ``[-1, 1]`` (what the discriminator is trained on)."""
        h = self.project(z).view(-1, self._top, self._base, self._base)
        return self.deconv(h)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Images ``[N, C, H, W]`` in ``[0, 1]``, the scale of ``Dataset.to_float()``."""
        return to_unit_range(self.raw(z))

    @property
    def latent_bound(self) -> float:
        """Half-width of the box synthesis keeps ``z`` in (:data:`LATENT_BOUND`)."""
        return LATENT_BOUND

    def sample_latent(self, n: int, generator: torch.Generator | None = None,
                      device: torch.device | str | None = None) -> torch.Tensor:
        """``n`` draws of ``z`` from ``N(0, I)`` (seeded by ``generator``)."""
        device = device or next(self.parameters()).device
        return torch.randn((n, self.latent_dim), generator=generator, device="cpu").to(device)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` random images in ``[0, 1]`` (eval mode: batch norm uses running statistics)."""
        was_training = self.training
        self.eval()
        try:
            return self(self.sample_latent(n, generator))
        finally:
            self.train(was_training)


class Discriminator(nn.Module):
    """``image → logit``: stride-2 convolutions (LeakyReLU), mirror of :class:`Generator`.

    ``norm="batch"`` for the standard DCGAN; ``norm="none"`` where spectral normalisation
    replaces batch norm.
    """

    def __init__(self, image_shape: tuple[int, int, int], width: int = 32,
                 norm: Literal["batch", "none"] = "batch") -> None:
        super().__init__()
        channels, size = _check_shape(image_shape)
        base, n_down = upsampling_plan(size)
        layers: list[nn.Module] = []
        ch_in, ch = channels, width
        for i in range(n_down):
            layers.append(nn.Conv2d(ch_in, ch, 4, 2, 1))
            if i > 0 and norm == "batch":
                layers.append(nn.BatchNorm2d(ch))
            layers.append(nn.LeakyReLU(0.2))
            ch_in, ch = ch, ch * 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(ch_in * base * base, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[N]`` for images in ``[-1, 1]``."""
        return self.head(self.features(x).flatten(1)).squeeze(1)
