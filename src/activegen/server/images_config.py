"""The ``[images]`` table of a labeling session: an unlabeled folder and the user's classes."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ImagesConfig(BaseModel):
    """Label a folder of unlabeled images into classes named by the user.

    Attributes:
        folder: the images (flat or nested; any sizes and modes).
        classes: the class names, at least two, distinct.
        size, channels: what every image is resized and converted to for the model.
        features: ``"pixels"``, ``"vae"`` or ``"backbone:<torchvision resnet18 state dict>"``.
        audit: the random audit sample, a count (>= 1) or a fraction (< 1); 0 = none.
        labels: labels already known, imported first: a CSV ``path,label`` or a Label Studio
            JSON export (tasks matched to files by name).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    folder: Path
    classes: list[str] = Field(min_length=2)
    size: int = Field(default=64, ge=4, le=1024)
    channels: int = Field(default=3, ge=1, le=3)
    features: str = "pixels"
    audit: float = Field(default=30, ge=0)
    labels: Path | None = None

    @field_validator("classes")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        names = [v.strip() for v in value]
        if any(not n for n in names) or len(set(names)) != len(names):
            raise ValueError(f"class names must be non-empty and distinct: {value}")
        return names

    @field_validator("features")
    @classmethod
    def _features(cls, value: str) -> str:
        from activegen.errors import ConfigError
        from activegen.models.features import parse_features_spec

        try:
            parse_features_spec(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("channels")
    @classmethod
    def _channels(cls, value: int) -> int:
        if value not in (1, 3):
            raise ValueError("channels must be 1 (grey) or 3 (RGB)")
        return value
