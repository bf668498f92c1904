"""A trained image classifier as a file, and predictions from it: no pickle.

The file is an ``.npz`` read with ``allow_pickle=False``: arrays ``coef`` ``[K', D]``,
``intercept`` ``[K']``, ``feature_mean`` and ``feature_scale`` ``[D]`` and ``header`` (the
UTF-8 bytes of a JSON object: format, version, classes, image size, channels, the feature
extractor's spec and id). With ``features = "vae"`` it also holds the VAE's weights as arrays
``vae.<parameter>``, checked to load into exactly that VAE and to hash to the header's id; with
``features = "self-supervised"`` the encoder's weights as arrays ``encoder.<parameter>`` and its
settings in the header (``self_supervised``), checked the same way.
Loading refuses a file with other arrays, another format or version, shapes that do not
agree (with each other, or with the feature size the header's extractor gives), values that
would predict nonsense (a NaN or infinite weight, a feature scale that is not positive),
duplicate or empty class names, or an image size activegen does not read, with a
:class:`ModelFileError` naming the file and what is wrong: a model file may come from anyone.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from activegen._atomic import atomic_write_bytes, atomic_write_text
from activegen.data.unlabeled import UNLABELED_EXTENSIONS, list_image_files, read_images
from activegen.errors import ActivegenError, DataError
from activegen.features.settings import SelfSupervisedSettings
from activegen.models.base import proba_from_margins
from activegen.models.features import FeatureExtractor, parse_features_spec

#: the image sides activegen reads (:func:`activegen.data.unlabeled.read_images`)
MIN_SIZE, MAX_SIZE = 4, 1024
#: the features of a ResNet-18 backbone (its penultimate layer)
BACKBONE_FEATURES = 512

FORMAT = "activegen-image-classifier"
VERSION = 1
_ARRAYS = {"coef", "intercept", "feature_mean", "feature_scale", "header"}
_VAE_PREFIX = "vae."
_ENCODER_PREFIX = "encoder."


class ModelFileError(DataError):
    """A model file that is not what :func:`load_model` expects."""


@dataclass(frozen=True)
class ExportedModel:
    """A linear model on standardised features, with what is needed to read new images."""

    coef: np.ndarray
    intercept: np.ndarray
    feature_mean: np.ndarray
    feature_scale: np.ndarray
    classes: list[str]
    size: int
    channels: int
    features: str  # the extractor spec
    features_id: str
    #: the audit estimate when the model was exported (informative; not needed to predict)
    audit: dict[str, Any] | None = None
    #: a ``vae`` extractor's network, as arrays (empty for other extractors)
    vae_state: dict[str, np.ndarray] | None = None
    #: a ``self-supervised`` extractor's encoder, as arrays, and its settings
    encoder_state: dict[str, np.ndarray] | None = None
    encoder_settings: dict[str, Any] | None = None

    def to_bytes(self) -> bytes:
        header = {"format": FORMAT, "version": VERSION, "classes": self.classes,
                  "size": self.size, "channels": self.channels, "features": self.features,
                  "features_id": self.features_id, "audit": self.audit}
        if self.encoder_settings is not None:
            header["self_supervised"] = self.encoder_settings
        buffer = io.BytesIO()
        np.savez(buffer, coef=self.coef.astype(np.float64),
                 intercept=self.intercept.astype(np.float64),
                 feature_mean=self.feature_mean.astype(np.float32),
                 feature_scale=self.feature_scale.astype(np.float32),
                 header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
                 **{_VAE_PREFIX + k: v for k, v in (self.vae_state or {}).items()},
                 **{_ENCODER_PREFIX + k: v for k, v in (self.encoder_state or {}).items()})
        return buffer.getvalue()

    def save(self, path: str | Path) -> None:
        atomic_write_bytes(Path(path), self.to_bytes())

    def proba_from_features(self, features: np.ndarray) -> np.ndarray:
        margins = features.astype(np.float64) @ self.coef.T + self.intercept
        return proba_from_margins(margins[:, 0] if len(self.classes) == 2 else margins)

    def extractor(self) -> FeatureExtractor:
        """The feature extractor, checked to be the one the model was trained with."""
        kind, weights = parse_features_spec(self.features)
        if kind == "backbone" and weights is not None and not weights.is_file():
            raise ModelFileError(
                f"the model reads features of the backbone weights {weights} "
                f"({self.features_id.removeprefix('backbone:')}), and this machine has no "
                "such file: copy those weights to that path to predict with it")
        try:
            extractor = FeatureExtractor(self.features, self.channels,
                                         self_supervised=self._encoder_settings())
            if extractor.kind == "vae":
                extractor.load_vae_state(self.vae_state or {}, self.size)
            if extractor.kind == "self-supervised":
                extractor.load_encoder_state(self.encoder_state or {}, self.size)
        except ActivegenError as exc:
            raise ModelFileError(str(exc)) from None
        if extractor.id != self.features_id:
            raise ModelFileError(f"the model was trained on features {self.features_id}; "
                                 f"{self.features} now gives {extractor.id} (other weights)")
        extractor.set_standardisation(self.feature_mean, self.feature_scale)
        return extractor

    def _encoder_settings(self) -> SelfSupervisedSettings | None:
        if self.encoder_settings is None:
            return None
        try:
            return SelfSupervisedSettings.model_validate(self.encoder_settings)
        except ValueError as exc:
            raise ModelFileError(f"the header's self_supervised settings are not valid: "
                                 f"{str(exc)[:300]}") from None


def load_model(path: str | Path) -> ExportedModel:
    """Read a model file, refusing anything unexpected (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        with np.load(path, allow_pickle=False) as data:
            names = set(data.files)
            extra = {n for n in names - _ARRAYS
                     if n.startswith((_VAE_PREFIX, _ENCODER_PREFIX))}
            if names - extra != _ARRAYS:
                raise ModelFileError(f"{path}: not an activegen model file (arrays "
                                     f"{sorted(names - extra)}, expected {sorted(_ARRAYS)})")
            arrays = {k: data[k] for k in _ARRAYS}
            vae_state = {n[len(_VAE_PREFIX):]: data[n] for n in extra
                         if n.startswith(_VAE_PREFIX)}
            encoder_state = {n[len(_ENCODER_PREFIX):]: data[n] for n in extra
                             if n.startswith(_ENCODER_PREFIX)}
    except ModelFileError:
        raise
    except Exception as exc:  # zipfile/ValueError/OSError: name the file
        raise ModelFileError(f"{path}: not a readable .npz model file ({exc})") from None
    try:
        header = json.loads(arrays["header"].astype(np.uint8).tobytes().decode())
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ModelFileError(f"{path}: its header is not JSON ({str(exc)[:100]})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{path}: header format is not {FORMAT!r}")
    if header.get("version") != VERSION:
        raise ModelFileError(f"{path}: version {header.get('version')!r}; this activegen "
                             f"reads version {VERSION}")
    classes = header.get("classes")
    if (not isinstance(classes, list) or len(classes) < 2
            or not all(isinstance(c, str) and c.strip() for c in classes)):
        raise ModelFileError(f"{path}: header classes must be a list of >= 2 non-empty names")
    repeated = sorted({c for c in classes if classes.count(c) > 1})
    if repeated:
        raise ModelFileError(f"{path}: header classes name {repeated} more than once (a "
                             "prediction could not say which class it means)")
    size, channels, features = header.get("size"), header.get("channels"), header.get("features")
    if (not isinstance(size, int) or isinstance(size, bool) or channels not in (1, 3)
            or isinstance(channels, bool) or not isinstance(features, str)):
        raise ModelFileError(f"{path}: header needs integer size, channels 1 or 3, features")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ModelFileError(f"{path}: header size {size} is outside {MIN_SIZE}..{MAX_SIZE}")
    try:
        kind, _ = parse_features_spec(features)
    except ActivegenError as exc:
        raise ModelFileError(f"{path}: {exc}") from None
    if (kind == "vae") != bool(vae_state):
        raise ModelFileError(f"{path}: features {features!r} with "
                             f"{len(vae_state)} VAE arrays")
    if (kind == "self-supervised") != bool(encoder_state):
        raise ModelFileError(f"{path}: features {features!r} with "
                             f"{len(encoder_state)} encoder arrays")
    encoder_settings = header.get("self_supervised")
    if (kind == "self-supervised") != isinstance(encoder_settings, dict):
        raise ModelFileError(f"{path}: features {features!r} needs the header's "
                             "self_supervised settings (an object), and only it has them")
    width = None
    if isinstance(encoder_settings, dict):
        try:
            width = SelfSupervisedSettings.model_validate(encoder_settings).width
        except ValueError as exc:
            raise ModelFileError(f"{path}: the header's self_supervised settings are not "
                                 f"valid: {str(exc)[:300]}") from None
    coef, intercept = arrays["coef"], arrays["intercept"]
    mean, scale = arrays["feature_mean"], arrays["feature_scale"]
    k = 1 if len(classes) == 2 else len(classes)
    ok = (coef.ndim == 2 and coef.shape[0] == k and intercept.shape == (k,)
          and mean.shape == (coef.shape[1],) and scale.shape == mean.shape
          and all(a.dtype.kind == "f" for a in (coef, intercept, mean, scale)))
    if not ok:
        raise ModelFileError(f"{path}: array shapes disagree (coef {coef.shape}, intercept "
                             f"{intercept.shape}, features {mean.shape}) for {len(classes)} "
                             "classes")
    expected = feature_size(kind, size, channels, width)
    if coef.shape[1] != expected:
        raise ModelFileError(f"{path}: the arrays have {coef.shape[1]} features, but "
                             f"{features!r} gives {expected} for {size}x{size} images with "
                             f"{channels} channel(s)")
    for name, array in (("coef", coef), ("intercept", intercept), ("feature_mean", mean),
                        ("feature_scale", scale)):
        bad = np.flatnonzero(~np.isfinite(array).ravel())
        if len(bad):
            raise ModelFileError(f"{path}: {name} holds {array.ravel()[bad[0]]} at flat index "
                                 f"{bad[0]} ({len(bad)} value(s) not finite)")
    if (scale <= 0).any():
        i = int(np.flatnonzero(scale <= 0)[0])
        raise ModelFileError(f"{path}: feature_scale holds {scale[i]} at index {i}; a scale "
                             "must be positive")
    return ExportedModel(coef, intercept, mean, scale, list(classes), size, channels, features,
                         str(header.get("features_id", "")),
                         header.get("audit") if isinstance(header.get("audit"), dict) else None,
                         vae_state or None, encoder_state or None,
                         encoder_settings if isinstance(encoder_settings, dict) else None)


def feature_size(kind: str, size: int, channels: int, width: int | None = None) -> int:
    """How many features an extractor of ``kind`` gives for ``size``² images (``width``:
    a self-supervised encoder's)."""
    from activegen.models.features import VAE_SETTINGS

    if kind == "pixels":
        return size * size * channels
    if kind == "self-supervised":
        return 4 * (width if width is not None else SelfSupervisedSettings().width)
    return VAE_SETTINGS.latent_dim if kind == "vae" else BACKBONE_FEATURES


def collect_inputs(inputs: list[str | Path]) -> tuple[list[Path], list[str]]:
    """Files to predict (folders expanded recursively) and the name each is reported by."""
    files, names = [], []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            for f in list_image_files(path, UNLABELED_EXTENSIONS):
                files.append(f)
                names.append(f.relative_to(path).as_posix())
        elif path.is_file():
            files.append(path)
            names.append(str(path))
        else:
            raise DataError(f"{path}: no such file or folder to predict")
    return files, names


def predict_files(model_path: str | Path, inputs: list[str | Path], out: str | Path | None
                  ) -> tuple[str, list[tuple[str, str]]]:
    """``path,label,confidence`` CSV for the images in ``inputs``; also the skipped files.

    The CSV is written atomically to ``out`` when given; it is returned either way.
    """
    model = load_model(model_path)
    try:
        extractor = model.extractor()
    except ModelFileError as exc:
        raise ModelFileError(f"{model_path}: {exc}") from None
    files, names = collect_inputs(inputs)
    if not files:
        raise DataError("no image files to predict")
    read = read_images(files, model.size, model.channels, names=names)
    kept, skipped = read.paths, read.skipped
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "label", "confidence"])
    if len(kept):
        with np.errstate(all="ignore"):  # overflow is checked below, by name
            proba = model.proba_from_features(extractor.transform(read.X))
        bad = np.flatnonzero(~np.isfinite(proba).all(axis=1))
        if len(bad):  # finite weights too large for these features: never a 'nan' row
            raise ModelFileError(f"{model_path}: its weights overflow on {kept[bad[0]]} "
                                 f"({len(bad)} image(s)): no probability can be computed")
        for name, row in zip(kept, proba):
            j = int(np.argmax(row))
            writer.writerow([name, model.classes[j], f"{row[j]:.6f}"])
    text = buffer.getvalue()
    if out is not None:
        atomic_write_text(Path(out), text)
    return text, skipped
