"""Name → class registries for strategies, learners and oracles, with parameter checks.

Configs name components by string; a registry turns the name and its parameters into an
object, refusing an unknown name or an unknown parameter with a message that lists what is
known, before any work starts.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

import pydantic

from activegen.errors import ConfigError, UnknownNameError

T = TypeVar("T")


def settings(cls: type) -> dict[str, inspect.Parameter]:
    """The settings a component's constructor accepts, read in this one place.

    Its named parameters, and where it forwards ``**kwargs`` to its base class (a GAAL
    strategy's generator settings, say), the base constructor's, down the MRO: each setting is
    written once, in the constructor that uses it. ``object``'s constructor accepts none.
    """
    found: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if klass is object:
            break
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        parameters = inspect.signature(init).parameters.values()
        for p in parameters:
            if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                found.setdefault(p.name, p)
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            break
    return found


def setting_hints(cls: type) -> dict[str, Any]:
    """The type annotations of :func:`settings` (unresolvable ones left out)."""
    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        try:
            hints.update(typing.get_type_hints(init))
        except Exception:
            continue
    return {name: hints[name] for name in settings(cls) if name in hints}


class Registry(Generic[T]):
    """A mapping of names to factories of one kind of component."""

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

    def check_params(self, name: str, params: dict[str, Any], context: Iterable[str] = (),
                     check_types: bool = True) -> None:
        """Raise :class:`ConfigError` if ``params`` do not fit ``name``'s constructor.

        ``context`` names the arguments the framework passes itself (e.g. ``n_classes``).
        """
        cls = self.get(name)
        accepted = set(settings(cls))
        reserved = set(context)
        for key in params:
            if key in reserved:
                raise ConfigError(
                    f"{self.kind} {name!r}: {key!r} is set by activegen, not the config"
                )
            if key not in accepted:
                allowed = sorted(accepted - reserved)
                raise ConfigError(
                    f"{self.kind} {name!r} has no parameter {key!r}; "
                    f"its parameters are: {', '.join(allowed) or '(none)'}"
                )
        if check_types:
            _check_types(self.kind, name, cls, params)

    def build(self, name: str, params: dict[str, Any], **context: Any) -> T:
        """Instantiate ``name`` with ``params`` plus the ``context`` arguments it accepts."""
        self.check_params(name, params, context, check_types=False)
        cls = self.get(name)
        accepted = settings(cls)
        context = {k: v for k, v in context.items() if k in accepted}
        try:
            built = cls(**context, **params)
        except (TypeError, ValueError) as exc:  # the component's own message first,
            if isinstance(exc, TypeError):  # unless a value of the wrong type is why it
                _check_types(self.kind, name, cls, params)  # failed ('<' on a str and an int)
            raise ConfigError(f"{self.kind} {name!r}: {exc}") from exc
        _check_types(self.kind, name, cls, params)  # what its constructor let through
        return built


def _check_types(kind: str, name: str, cls: type, params: dict[str, Any]) -> None:
    """Refuse a parameter value that does not fit its annotation (``C = "big"`` for a
    float), naming the parameter, before anything is built. Annotations that cannot be
    resolved or checked are skipped."""
    hints = setting_hints(cls)
    for key, value in params.items():
        if key not in hints:
            continue
        try:
            adapter = pydantic.TypeAdapter(hints[key])
        except Exception:
            continue
        try:
            adapter.validate_python(value)
        except pydantic.ValidationError:
            raise ConfigError(
                f"{kind} {name!r}: parameter {key!r} = {value!r} is not a valid "
                f"{_type_name(hints[key])}"
            ) from None


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def first_doc_line(obj: object) -> str:
    """The first sentence-paragraph of an object's docstring as plain text (for listings):
    the whole first paragraph, even where it wraps, with reST markup (roles, ````code````,
    emphasis) removed."""
    doc = inspect.getdoc(obj) or ""
    paragraph = " ".join(doc.split("\n\n")[0].split())
    paragraph = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", paragraph)  # :func:`x` -> x
    paragraph = re.sub(r"``([^`]+)``", r"\1", paragraph)
    return re.sub(r"(?<![\w*])\*{1,2}([^*]+?)\*{1,2}(?![\w*])", r"\1", paragraph)
