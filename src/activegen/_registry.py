"""Name → class registries for strategies, learners and oracles, validated by their settings.

Configs name components by string. A registered class declares its settings as a
:class:`~activegen._settings.Settings` model (``Settings``) and how it is built from them and a
:class:`~activegen._settings.BuildContext` (``from_settings``); the registry validates a
table against that model, refusing an unknown name or setting with a message that lists what
is known, before any work starts.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import ValidationError

from activegen._settings import BuildContext, Settings, describe_errors
from activegen.errors import ConfigError, UnknownNameError


class Configurable(Protocol):
    """What a registered class offers: its settings model, and a constructor from settings."""

    Settings: ClassVar[type[Settings]]

    @classmethod
    def from_settings(cls, settings: Any, context: BuildContext) -> Any: ...


T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping of names to configurable classes of one kind."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator: register ``cls`` under ``name``."""

        def decorator(cls: type[T]) -> type[T]:
            if name in self._items and self._items[name] is not cls:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = cls
            return cls

        return decorator

    def get(self, name: str) -> type[T]:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._items))}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> Iterable[tuple[str, type[T]]]:
        return sorted(self._items.items())

    def settings_model(self, name: str) -> type[Settings]:
        """The settings model of ``name``."""
        return self.get(name).Settings  # type: ignore[attr-defined,no-any-return]

    def validate(self, name: str, params: Mapping[str, Any] | Settings,
                 shared: Mapping[str, Settings] | None = None) -> Settings:
        """``params`` as ``name``'s validated settings; ``shared`` holds the config's shared
        tables (defaults of nested settings of the same name).

        Raises:
            ConfigError: naming the component and each bad key, with the known ones.
        """
        model = self.settings_model(name)
        if isinstance(params, model):
            return params
        try:
            return model.model_validate(dict(params), context={"shared": dict(shared or {})})
        except ValidationError as exc:
            raise ConfigError(f"{self.kind} {name!r}: {describe_errors(exc, model)}") from None

    def build(self, name: str, params: Mapping[str, Any] | Settings,
              context: BuildContext | None = None) -> T:
        """Instantiate ``name`` from its settings (validated first) and ``context``."""
        context = context if context is not None else BuildContext()
        settings = self.validate(name, params, context.shared)
        cls = self.get(name)
        try:
            return cls.from_settings(settings, context)  # type: ignore[attr-defined,no-any-return]
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{self.kind} {name!r}: {exc}") from exc


def first_doc_line(obj: object) -> str:
    """The first sentence-paragraph of an object's docstring as plain text (for listings):
    the whole first paragraph, even where it wraps, with reST markup (roles, ````code````,
    emphasis) removed."""
    doc = inspect.getdoc(obj) or ""
    paragraph = " ".join(doc.split("\n\n")[0].split())
    paragraph = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", paragraph)  # :func:`x` -> x
    paragraph = re.sub(r"``([^`]+)``", r"\1", paragraph)
    return re.sub(r"(?<![\w*])\*{1,2}([^*]+?)\*{1,2}(?![\w*])", r"\1", paragraph)
