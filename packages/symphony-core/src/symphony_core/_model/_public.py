"""Where a name ``symphony_core`` exports says it lives: in ``symphony_core``, not its underscore module."""

from __future__ import annotations

import builtins
import re
import typing
from typing import TypeVar

PACKAGE = "symphony_core"

T = TypeVar("T")

_NAME = re.compile(r"[A-Za-z_]\w*")


def public(obj: T) -> T:
    """Give ``obj``, a class or function ``symphony_core`` exports, ``symphony_core`` as its module.

    Reprs, tracebacks, pickles and the API reference then show ``symphony_core.Host``, never
    ``symphony_core._runtime._host.Host``; pickle finds the class again through the package's lazy
    ``__getattr__``. It is applied where the name is defined (as a decorator), so the name is public
    however its module was first imported.

    Python resolves a class's string annotations in the module its ``__module__`` names, and
    ``symphony_core`` does not hold the names they use: each is kept as a reference bound to the module
    that defines the class, so ``typing.get_type_hints``, msgspec and pydantic resolve them as before.
    """
    if isinstance(obj, type):
        annotations = vars(obj).get("__annotations__", {})
        for name, value in annotations.items():
            if isinstance(value, str) and not _builtin_only(value):
                annotations[name] = typing.ForwardRef(
                    value, is_argument=False, module=obj.__module__, is_class=True
                )
    obj.__module__ = PACKAGE
    return obj


def _builtin_only(annotation: str) -> bool:
    """Whether ``annotation`` names builtins only (``str | None``), which resolve in any module and so are
    left as they are: making a reference compiles its text, which would add to every host's start."""
    return all(hasattr(builtins, name) for name in _NAME.findall(annotation))
