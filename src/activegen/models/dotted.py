"""Import paths in a config: the one place where a config's text becomes code.

A config is data except where a learner names code by its import path (``sklearn``'s
``estimator``, ``torch-module``'s ``module``). Importing a module runs its top-level code, and
the learner calls what the path names (a class's constructor, a factory) when it fits, so such
a config is a program. A path is therefore imported only inside a trusted prefix: the
learner's defaults (scikit-learn for estimators; ``torch.nn`` and ``torchvision.models`` for
modules) and the packages the learner's table lists in ``allow_imports``, which makes a config
that runs code of its own say so in one visible key. A path outside them is refused before
anything is imported, and what a path names is checked (a class of the right kind, keyword
arguments that fit its signature) before it is ever called; validating a config calls nothing.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Mapping, Sequence
from typing import Any

from activegen.errors import ConfigError

_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def check_prefixes(prefixes: Sequence[str]) -> list[str]:
    """``prefixes`` (an ``allow_imports`` value) if each is a dotted module name, else
    ``ValueError`` naming the first that is not."""
    for prefix in prefixes:
        if not isinstance(prefix, str) or not _DOTTED.match(prefix):
            raise ValueError(f"{prefix!r} is not a package or module name (e.g. 'mypackage' "
                             "or 'mypackage.nets')")
    return list(prefixes)


def is_allowed(path: str, prefixes: Sequence[str]) -> bool:
    """Whether ``path`` is one of ``prefixes`` or lies inside one (by whole components:
    ``sklearnx`` is not inside ``sklearn``)."""
    return any(path == p or path.startswith(p + ".") for p in prefixes)


def import_path(path: str, defaults: Sequence[str], allowed: Sequence[str], owner: str,
                key: str) -> Any:
    """The object ``path`` names, imported only inside ``defaults`` or ``allowed``.

    Args:
        owner: names the component in messages (``learner 'sklearn'``).
        key: the setting that holds the path (``estimator``).

    Raises:
        ConfigError: ``path`` is not a dotted path, lies outside every trusted prefix (nothing
            is imported then), or does not import.
    """
    if not _DOTTED.match(path) or "." not in path:
        raise ConfigError(f"{owner}: {key} {path!r} must be a dotted path "
                          "(package.module.Name)")
    trusted = [*defaults, *allowed]
    if not is_allowed(path, trusted):
        top = path.split(".")[0]
        raise ConfigError(
            f"{owner}: {key} {path!r} is outside the packages this config may import "
            f"({', '.join(trusted)}); importing a package runs its code and the learner calls "
            f"what the path names, so a config that names code of its own says so: add "
            f"allow_imports = [\"{top}\"] to the learner's table if you trust that package")
    module_name, _, attr = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"{owner}: cannot import {key} {path!r} ({exc})") from None


def check_arguments(target: Any, params: Mapping[str, Any], owner: str, what: str) -> None:
    """Refuse ``params`` that ``target``'s signature cannot take, without calling it (a
    target without an inspectable signature passes)."""
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(**params)
    except TypeError as exc:
        raise ConfigError(f"{owner}: {what} with params {dict(params)}: {exc}") from None
