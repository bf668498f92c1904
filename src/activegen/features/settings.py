"""The settings of the feature layer, kept light (pydantic only) so that configs can name them
without importing torch: what a self-supervised encoder is, and which source the examples are
seen through (:class:`FeaturesSettings`, a config's ``[features]`` table)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from activegen._settings import Settings
from activegen.errors import ConfigError


class SelfSupervisedSettings(Settings):
    """Everything that decides a trained encoder (with the pool's bytes).

    The defaults were chosen by measurement on the pools of mnist10k and Fashion-MNIST
    (labels drawn from the pool, accuracy on the rest of the pool; never the test splits) on a
    shared 2-core CPU, one thread (``research/features/README.md``): see each field.
    """

    #: passes over the pool: 40 epochs of 10,000 28×28 images take about 9 minutes on one
    #: quiet core of the 2-core measuring machine (22 minutes measured beside other work, load
    #: average 5); 10 → 30 epochs lifted label spreading at 100 mnist10k labels from 89.8% to
    #: 94.5% (pool-only tuning), so more epochs still pay where there is time
    epochs: int = Field(40, ge=1, description="passes over the pool")
    #: pairs per step (2·batch_size - 2 negatives per view): in minutes of CPU the number of
    #: steps decided the accuracy; 256 → 128 → 64 gave 81 → 84 → 87% (probe, 100 labels,
    #: 10 epochs), 32 no better than 64 and slower per image
    batch_size: int = Field(64, ge=2, description=(
        "pairs per step (2·batch_size - 2 negatives per view)"))
    #: channels of the encoder's first stage; the features have 4·width dimensions. 32 was
    #: better per epoch (+6 points) but cost 3.7x the time of 16
    width: int = Field(16, ge=1, description=(
        "channels of the encoder's first stage; the features have 4·width dimensions"))
    #: residual blocks per stage
    blocks: int = Field(1, ge=1, description="residual blocks per stage")
    #: the encoder stem's stride (None: by image size, see ``encoder.strides_for``)
    stem_stride: int | None = Field(None, ge=1, le=4, description=(
        "the encoder stem's stride (none: by image size)"))
    #: output size of the projection head the loss sees
    projection_dim: int = Field(64, ge=1, description=(
        "output size of the projection head the loss sees"))
    #: hidden units of the projection head (None: the feature dimension); 256 rather than
    #: 64 gained 1-3 points at 20 and 100 labels for a negligible cost
    projection_hidden: int | None = Field(256, ge=1, description=(
        "hidden units of the projection head (none: the feature dimension)"))
    #: NT-Xent temperature (0.2 measured no better)
    temperature: float = Field(0.5, gt=0, description="NT-Xent temperature")
    #: AdamW's peak learning rate (linear warm-up, then cosine decay to zero); 5e-3 beat 2e-3
    lr: float = Field(5e-3, gt=0, description=(
        "AdamW's peak learning rate (linear warm-up, then cosine decay to zero)"))
    weight_decay: float = Field(1e-4, ge=0, description="AdamW's weight decay")
    #: smallest area fraction a random crop keeps (0.3 with 15° rotations: no better)
    min_crop_scale: float = Field(0.5, gt=0, le=1, description=(
        "smallest area fraction a random crop keeps"))
    #: largest rotation, degrees
    rotation: float = Field(10.0, ge=0, le=180, description="largest rotation, degrees")
    #: largest translation, fraction of the side
    translate: float = Field(0.1, ge=0, le=0.5, description=(
        "largest translation, fraction of the side"))
    #: random horizontal flips (off: a flipped digit is another symbol, and on
    #: Fashion-MNIST flips measured no better)
    flip: bool = Field(False, description="random horizontal flips")
    #: brightness/contrast (and RGB colour) jitter strength
    jitter: float = Field(0.4, ge=0, le=1, description=(
        "brightness/contrast (and RGB colour) jitter strength"))
    seed: int = Field(0, description="seeds the encoder's initialisation and training")
    method: Literal["simclr"] = Field("simclr", description="the contrastive method")

    def estimated_seconds(self, n_images: int, image_shape: tuple[int, int, int]) -> float:
        """About how long training takes on one CPU core: what a run says before it starts.

        Scaled from two measurements (``research/features/README.md``): 40 epochs of 10,000
        28×28 grey images at the defaults took about 530 s on one quiet core of a 2-core AMD
        EPYC (1.3 ms per image and epoch), and 2,000 64×64 RGB images about 4 ms per image and
        epoch (840 s at load 5-8, over the 2.6× slowdown the 28×28 runs showed at that load).
        The network's part grows with the first stage's area, the square of the width and the
        blocks; the augmentations' and the stem's with the input's pixels. A loaded machine
        takes 2-3 times longer.
        """
        from activegen.features.encoder import strides_for

        channels, h, w = image_shape
        stem, stages = strides_for(min(h, w), self.stem_stride)
        area = (h // (stem * stages[0])) * (w // (stem * stages[0]))
        network = 1.168e-3 * (area / 196) * (self.width / 16) ** 2 * self.blocks
        per_pixel = 0.157e-3 * (h * w * channels) / 784
        return self.epochs * n_images * (network + per_pixel)


#: the sources a spec may name (pretrained ones also take ``@<weights file>``)
SOURCES = ("pixels", "self-supervised", "vae", "backbone:<path>", "timm:NAME",
           "open_clip:ARCH[:TAG]", "torchvision:NAME")


def check_spec(spec: str) -> str:
    """``spec`` if it names a feature source (a weights file must exist); else ValueError."""
    if spec in ("pixels", "self-supervised", "vae"):
        return spec
    if spec.startswith("backbone:"):
        path = Path(spec[len("backbone:"):]).expanduser()
        if not path.is_file():
            raise ValueError(f"features {spec!r}: no such weights file {path}")
        return spec
    from activegen.features.pretrained import LIBRARIES, parse_pretrained_spec

    if spec.partition(":")[0] in LIBRARIES:
        try:
            parsed = parse_pretrained_spec(spec)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        if parsed.path is not None and not parsed.path.is_file():
            raise ValueError(f"features {spec!r}: no such weights file {parsed.path}")
        return spec
    raise ValueError(f"features {spec!r}: use one of {', '.join(SOURCES)}")


class FeaturesSettings(Settings):
    """What every learner and strategy of a run sees of an example: the images themselves
    (``pixels``), or the feature vectors ``[N, d]`` of a source fitted once on the unlabeled
    pool (cached)."""

    source: str = Field("pixels", description=(
        "pixels (the images), self-supervised (SimCLR on the pool), vae, backbone:<path>, "
        "timm:NAME[@weights], open_clip:ARCH[:TAG][@weights], torchvision:NAME[@weights]"))
    self_supervised: SelfSupervisedSettings = Field(
        default_factory=lambda: SelfSupervisedSettings(),
        description="the encoder of source = self-supervised")
    image_size: int | None = Field(None, ge=8, description=(
        "the input size a pretrained backbone is fed (default: its own)"))

    @field_validator("source")
    @classmethod
    def _known(cls, spec: str) -> str:
        return check_spec(spec)

    @property
    def is_pixels(self) -> bool:
        return self.source == "pixels"


__all__ = ["SOURCES", "FeaturesSettings", "SelfSupervisedSettings", "check_spec"]
