"""Settings: one frozen pydantic model per component, each setting written once.

Every component a config names (learner, strategy, oracle, feature source, generator,
synthesis) declares its settings as a :class:`Settings` model: the field's type, default,
bounds and description live there and nowhere else. A component's constructor validates its
keyword arguments through that model (``CoreSet(subsample=1000)``), configs validate their
tables through it, ``activegen strategies --settings NAME`` and the config's JSON schema are
generated from it, and fingerprints and cache keys are hashes of its validated dump.

Two mechanisms replace copying settings around:

- **Presets** (:class:`PresetSettings`): a model may name whole recipes,
  ``synthesis = "labelable"`` or ``synthesis = { preset = "labelable", steps = 10 }``; a
  preset's values count as set by the user, the keys beside it override them.
- **Shared defaults** (:func:`over`): a config's top-level ``[generator]`` table is a
  :class:`Settings` model of its own, and each strategy's ``generator = {…}`` overrides only the
  fields it sets (pydantic's ``model_fields_set``), so the shared table is the defaults of the
  strategy's model, not text spliced into it.

:class:`BuildContext` is what the framework hands a component when it builds one (number of
classes, seed, device, cache folder, shared defaults), explicitly, instead of matching
constructor parameter names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

S = TypeVar("S", bound="Settings")


class Settings(BaseModel):
    """A component's settings: frozen, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    def updated(self: S, **values: Any) -> S:
        """A copy with ``values`` changed, validated again (cross-field checks included)."""
        return type(self).model_validate({**self.model_dump(exclude_unset=False), **values})


class NoSettings(Settings):
    """The settings of a component that has none."""


class PresetSettings(Settings):
    """Settings with named recipes (:attr:`PRESETS`): a string names one, a table may name one
    under ``preset`` and override some of its keys. A preset is a whole recipe: every key that
    any preset sets takes the named one's value or its default, so that a preset layered on
    another recipe (a shared table's) replaces it."""

    PRESETS: ClassVar[Mapping[str, Mapping[str, Any]]] = {}

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        """The table's schema with a ``preset`` key, or a preset's name alone."""
        table = handler.resolve_ref_schema(handler(core_schema))
        names = list(cls.PRESETS)
        table.setdefault("properties", {})["preset"] = {
            "enum": names, "description": "a named set of values the other keys override"}
        return {"anyOf": [{"enum": names, "description": f"a preset of {cls.__name__}"},
                          table]}

    @model_validator(mode="before")
    @classmethod
    def _expand_preset(cls, data: Any) -> Any:
        if isinstance(data, str):
            data = {"preset": data}
        if isinstance(data, Mapping) and "preset" in data:
            name = data["preset"]
            if name not in cls.PRESETS:
                raise ValueError(f"unknown preset {name!r}; known: {', '.join(cls.PRESETS)}")
            recipe = {key: cls.model_fields[key].get_default(call_default_factory=True)
                      for preset in cls.PRESETS.values() for key in preset}
            data = {**recipe, **cls.PRESETS[name],
                    **{k: v for k, v in data.items() if k != "preset"}}
        return data


def over(model: type[S], shared: S | None, own: Any) -> Any:
    """``own`` (a model, a table, a preset name, or None) on top of ``shared``: the keys
    ``own`` sets win, the rest come from ``shared``. Returns what pydantic validates as
    ``model`` (so errors keep their key paths)."""
    if own is None:
        return shared if shared is not None else {}
    if shared is None:
        return own
    if isinstance(own, Settings):
        values = {name: getattr(own, name) for name in own.model_fields_set}
    else:
        values = dict(own) if isinstance(own, Mapping) else own
        if issubclass(model, PresetSettings):
            values = model._expand_preset(values)
        if not isinstance(values, Mapping):
            return own  # not a table: the model's own validation names the problem
    return {**shared.model_dump(), **values}


def shared_table(info: Any, name: str) -> Settings | None:
    """The config's shared table ``name`` from a validator's context (None without one)."""
    context = getattr(info, "context", None) or {}
    return (context.get("shared") or {}).get(name)


def resolve(model: type[S], settings: S | Mapping[str, Any] | None,
            values: Mapping[str, Any], owner: str) -> S:
    """A constructor's settings: a model object, a mapping, or keyword ``values`` (not both).

    Raises:
        ValueError: the values do not fit ``model``; the message names ``owner`` and each key.
    """
    if settings is not None and values:
        raise TypeError(f"{owner}: pass settings or keyword values, not both")
    if isinstance(settings, model):
        return settings
    data = dict(settings) if settings is not None else dict(values)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"{owner}: {describe_errors(exc, model)}") from None


def describe_errors(exc: ValidationError, model: type[BaseModel] | None = None) -> str:
    """One line per pydantic error: the key path, then what is wrong (unknown keys listed with
    the known ones)."""
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(settings)"
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            known = _known_keys(model, err["loc"][:-1]) if model is not None else []
            msg = "unknown setting" + (f"; the settings are: {', '.join(known)}" if known
                                       else " (this takes no settings)")
        problems.append(f"{where}: {msg}")
    return "; ".join(problems)


def _known_keys(model: type[BaseModel], path: tuple[Any, ...]) -> list[str]:
    current: Any = model
    for part in path:
        info = getattr(current, "model_fields", {}).get(part)
        if info is None:
            return []
        current = _settings_type(info.annotation)
        if current is None:
            return []
    return sorted(getattr(current, "model_fields", {}))


def _settings_type(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _settings_type(arg)
        if found is not None:
            return found
    return None


@dataclass(frozen=True)
class BuildContext:
    """What the framework tells a component it builds (never read from the component's
    settings, never guessed from its constructor's parameter names).

    Attributes:
        n_classes: classes of the task (learners, oracles).
        seed: the component's seed (a learner's per-round seed; an oracle's run seed).
        device: the resolved torch device (``cpu``, ``cuda:0``, …).
        cache_dir: the artifact cache folder (None: no disk cache).
        shared: the config's shared settings tables by name (``generator``, ``synthesis``):
            defaults of the strategies' nested settings of the same name.
        pool: the pool dataset (oracles: the ground truth an expert learns from).
        probe: built only to be checked (a config's learner, for its capabilities), never
            fitted: nothing the config names is called (a torch-module factory is not run to
            look for dropout layers).
    """

    n_classes: int = 2
    seed: int = 0
    device: str = "cpu"
    cache_dir: Path | None = None
    shared: Mapping[str, Settings] = field(default_factory=dict)
    pool: Any = None
    probe: bool = False


def settings_table(model: type[BaseModel], prefix: str = "") -> str:
    """A plain-text table of ``model``'s settings: key (nested ones dotted), type, default and
    description; what ``activegen strategies --settings NAME`` prints and the docs show."""
    rows = [("setting", "type", "default", "meaning"), *_rows(model, prefix)]
    if len(rows) == 1:
        return "(no settings)"
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = []
    for i, (key, kind, default, meaning) in enumerate(rows):
        lines.append(f"{key:<{widths[0]}}  {kind:<{widths[1]}}  {default:<{widths[2]}}  "
                     f"{meaning}".rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths) + "  -------")
    presets = getattr(model, "PRESETS", None)
    if presets:
        lines.append(f"\npresets ({prefix.rstrip('.') or 'the table'} = \"NAME\"): "
                     + "; ".join(f"{name}: {_describe_preset(values)}"
                                 for name, values in presets.items()))
    return "\n".join(lines)


def _rows(model: type[BaseModel], prefix: str) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    for name, info in model.model_fields.items():
        nested = _settings_type(info.annotation)
        if nested is not None and issubclass(nested, Settings):
            presets = getattr(nested, "PRESETS", None)
            meaning = info.description or ""
            if presets:
                meaning += "; presets: " + "; ".join(
                    f"{n} ({_describe_preset(v)})" for n, v in presets.items())
            rows.append((f"{prefix}{name}", "table", "(below)", meaning))
            rows += _rows(nested, f"{prefix}{name}.")
            continue
        default = info.get_default(call_default_factory=True)
        rows.append((f"{prefix}{name}", _type_name(info.annotation),
                     "none" if default is None else repr(default), info.description or ""))
    return rows


def _type_name(annotation: Any) -> str:
    import typing

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(str(a) for a in args)
    if args and origin in (typing.Union, __import__("types").UnionType):
        return " | ".join(_type_name(a) for a in args)
    if annotation is type(None):
        return "none"
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _describe_preset(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} = {v!r}" for k, v in values.items()) or "the defaults"


def settings_markdown(model: type[BaseModel], prefix: str = "") -> str:
    """``model``'s settings as a Markdown table (the docs' reference, generated)."""
    rows = _rows(model, prefix)
    if not rows:
        return "No settings.\n"

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| setting | type | default | meaning |", "|---|---|---|---|"]
    lines += [f"| `{key}` | {cell(kind)} | {cell(default)} | {cell(meaning)} |"
              for key, kind, default, meaning in rows]
    return "\n".join(lines) + "\n"
