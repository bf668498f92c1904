"""The JSON schema of a config file, generated from the settings models.

Each component table (``[learner]``, ``[[strategies]]``, ``[oracle]``, ``loop.cold_start``,
a labeling session's ``[strategy]``) is one of the registered components: its ``name``, an
optional ``label`` and its settings model's keys. Editors that validate TOML against a JSON
schema (e.g. Taplo, Even Better TOML) then complete and check every key.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from activegen._registry import Registry


def _components(registry: Registry[Any], defs: dict[str, Any],
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
    choices = []
    for name, cls in registry.items():
        schema = cls.Settings.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(schema.pop("$defs", {}))
        properties = {"name": {"const": name}, "label": {"type": "string"},
                      **(extra or {}), **schema.get("properties", {})}
        choices.append({"type": "object", "title": f"{registry.kind} {name}",
                        "description": (cls.__doc__ or "").strip().split("\n\n")[0],
                        "properties": properties, "required": ["name"],
                        "additionalProperties": False})
    return {"oneOf": choices}


def config_schema(model: type[BaseModel] | None = None) -> dict[str, Any]:
    """The JSON schema of an experiment config, or of another config ``model`` made of the
    same parts (a labeling session's, whose one strategy is ``[strategy]``)."""
    from activegen.experiments.config import ExperimentConfig
    from activegen.models import LEARNERS
    from activegen.oracles import ORACLES
    from activegen.strategies import STRATEGIES

    model = model if model is not None else ExperimentConfig
    kind = "experiment" if "strategies" in model.model_fields else "label"
    schema = model.model_json_schema(ref_template="#/$defs/{model}")
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    defs["Learner"] = _components(LEARNERS, defs)
    # a strategy entry may say who chooses its first batch (itself, nobody, or a strategy)
    defs["Strategy"] = _components(STRATEGIES, defs, {"cold_start": {"anyOf": [
        {"type": "boolean"}, {"$ref": "#/$defs/Strategy"}]}})
    defs["Oracle"] = _components(ORACLES, defs)
    props = schema["properties"]
    props["learner"] = {"$ref": "#/$defs/Learner"}
    if kind == "experiment":
        props["strategies"] = {"type": "array", "items": {"$ref": "#/$defs/Strategy"},
                               "minItems": 1}
        props["oracle"] = {"$ref": "#/$defs/Oracle"}
    else:
        props["strategy"] = {"$ref": "#/$defs/Strategy"}
    loop = defs.get("LoopConfig", {}).get("properties", {})
    if "cold_start" in loop:
        loop["cold_start"] = {"anyOf": [{"$ref": "#/$defs/Strategy"}, {"type": "null"}]}
    defs.pop("ComponentConfig", None)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
