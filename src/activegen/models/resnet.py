"""ResNet-18 for small images (28×28 grey, 32×32 colour), the VAE paper's task model.

As usual for CIFAR-sized inputs, the stem is a 3×3 stride-1 convolution without max-pooling
(ImageNet's 7×7 stride-2 stem and pool would shrink a 28×28 image to 7×7 before the first
block). Layer names follow torchvision, so ImageNet weights load from a local torchvision
``state_dict`` file (``pretrained_path``); there is no download. Adapting them: the 7×7 stem
kernel is cut to its centre 3×3, its RGB input channels are summed for grey images (the
response to a grey image ``(g, g, g)`` is unchanged), and the 1000-class ``fc`` is not loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch
from pydantic import Field, field_validator
from torch import nn
from torch.nn import functional as F

from activegen.errors import ConfigError
from activegen.models.torch_learner import (
    LossHead,
    Posterior,
    StagedNetwork,
    TorchLearner,
    TorchSettings,
)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a residual connection (torchvision's names)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class ResNet18Network(StagedNetwork):
    """ResNet-18 with a small-image stem; features = the 512-d pooled output of ``layer4``."""

    def __init__(self, in_channels: int, n_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        planes = (64, 128, 256, 512)
        previous = 64
        for i, p in enumerate(planes):
            stride = 1 if i == 0 else 2
            layer = nn.Sequential(BasicBlock(previous, p, stride), BasicBlock(p, p, 1))
            setattr(self, f"layer{i + 1}", layer)
            previous = p
        self.stage_channels = planes
        self.feature_dim = 512
        self.head_dropout: nn.Module = nn.Identity()
        self.fc = nn.Linear(512, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        x = F.relu(self.bn1(self.conv1(x)))
        maps = []
        for name in ("layer1", "layer2", "layer3", "layer4"):
            x = getattr(self, name)(x)
            maps.append(x)
        features = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(self.head_dropout(features)), features, maps


def load_imagenet_weights(network: ResNet18Network, path: Path) -> None:
    """Load a torchvision ResNet-18 ``state_dict`` into ``network`` (adapted; see module doc).

    Raises:
        ConfigError: the file is missing, unreadable, or not a ResNet-18 state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"pretrained_path {path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file; name the file
        raise ConfigError(f"pretrained_path {path}: not a readable torch state dict ({exc})"
                          ) from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ConfigError(f"pretrained_path {path}: expected a state dict, got {type(state)}")
    own = network.state_dict()
    wanted = {k for k in own if not k.startswith("fc.")}
    missing = sorted(wanted - set(state))
    if missing:
        raise ConfigError(
            f"pretrained_path {path}: not a torchvision ResNet-18 state dict; missing "
            f"{len(missing)} keys such as {missing[:3]}"
        )
    adapted: dict[str, torch.Tensor] = {}
    for key in wanted:
        value = state[key]
        if key == "conv1.weight":
            if value.dim() != 4 or value.shape[0] != 64 or value.shape[2] < 3:
                raise ConfigError(f"pretrained_path {path}: conv1.weight has shape "
                                  f"{list(value.shape)}, not [64, C, k, k]")
            k = value.shape[2]
            c0 = (k - 3) // 2
            value = value[:, :, c0:c0 + 3, c0:c0 + 3]
            in_channels = own[key].shape[1]
            if in_channels == 1 and value.shape[1] != 1:
                value = value.sum(dim=1, keepdim=True)
            elif in_channels != value.shape[1]:
                raise ConfigError(f"pretrained_path {path}: conv1 has {value.shape[1]} input "
                                  f"channels; the images have {in_channels}")
        if value.shape != own[key].shape:
            raise ConfigError(f"pretrained_path {path}: {key} has shape {list(value.shape)}, "
                              f"expected {list(own[key].shape)}")
        adapted[key] = value.to(own[key].dtype)
    network.load_state_dict(adapted, strict=False)


class ResNet18Settings(TorchSettings):
    """ResNet-18's weights and training settings."""

    pretrained_path: Path | None = Field(None, description=(
        "a local torchvision ImageNet ResNet-18 state dict to start from"))

    @field_validator("pretrained_path")
    @classmethod
    def _exists(cls, path: Path | None) -> Path | None:
        if path is not None:
            path = path.expanduser()
            if not path.is_file():
                raise ValueError(f"{path}: no such file")
        return path


class ResNet18(TorchLearner):
    """ResNet-18 (small-image stem), optionally from local ImageNet weights; the paper's model."""

    name: ClassVar[str] = "resnet18"
    Settings = ResNet18Settings
    settings: ResNet18Settings

    def build_network(self, in_channels: int, image_size: tuple[int, int]) -> ResNet18Network:
        network = ResNet18Network(in_channels, self.n_classes)
        if self.settings.pretrained_path is not None:
            load_imagenet_weights(network, self.settings.pretrained_path)
        return network


class ResNet18WithLossHead(LossHead, ResNet18):
    """ResNet-18 with a loss-prediction head (Yoo & Kweon's setting)."""


class ResNet18WithPosterior(Posterior, ResNet18):
    """ResNet-18 with MC dropout or a deep ensemble."""


class ResNet18WithBoth(LossHead, Posterior, ResNet18):
    """ResNet-18 with a loss head and MC dropout."""


ResNet18.variants = {(False, False): ResNet18, (True, False): ResNet18WithLossHead,
                     (False, True): ResNet18WithPosterior, (True, True): ResNet18WithBoth}
