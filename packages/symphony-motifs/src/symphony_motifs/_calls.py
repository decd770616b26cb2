"""Calls from a page to its motif: arguments checked against the method's signature, results made JSON.

A page is untrusted input. Arguments arrive by name as JSON and each is validated by pydantic against
the parameter's annotation before the method runs; unknown, missing or ill-typed arguments refuse the
call with one problem per argument.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python

from symphony_core import ErrorDetail

from ._errors import InvalidArguments


@dataclass(frozen=True)
class _Parameter:
    name: str
    adapter: TypeAdapter[Any]
    required: bool


@lru_cache(maxsize=512)
def _parameters(function: Callable[..., Any]) -> tuple[_Parameter, ...]:
    signature = inspect.signature(function)
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # noqa: BLE001 - an unresolvable annotation only loses its check, never the call
        hints = {}
    parameters = []
    for parameter in signature.parameters.values():
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue  # a page passes named arguments only; *args/**kwargs receive nothing from it
        if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
            continue
        annotation = hints.get(parameter.name, Any)
        required = parameter.default is inspect.Parameter.empty
        parameters.append(_Parameter(parameter.name, TypeAdapter(annotation), required))
    return tuple(parameters)


def bind_arguments(
    function: Callable[..., Any], arguments: Mapping[str, Any], *, extension: str, method: str
) -> dict[str, Any]:
    """Validate a page's named ``arguments`` for ``function``; `InvalidArguments` lists each problem."""
    # Cached per plain function, so that caching keeps no motif instance alive.
    unbound = getattr(function, "__func__", function)
    found = _parameters(unbound)
    if unbound is not function:
        found = found[1:]  # self
    parameters = {parameter.name: parameter for parameter in found}
    problems: list[ErrorDetail] = []
    bound: dict[str, Any] = {}
    for name in arguments:
        if name not in parameters:
            problems.append(ErrorDetail(str(name), "unexpected argument", "unexpected_argument"))
    for name, parameter in parameters.items():
        if name not in arguments:
            if parameter.required:
                problems.append(ErrorDetail(name, "missing argument", "missing_argument"))
            continue
        try:
            bound[name] = parameter.adapter.validate_python(arguments[name])
        except ValidationError as exc:
            for error in exc.errors(include_input=False, include_url=False):
                where = "".join(f"[{part}]" for part in error["loc"])
                problems.append(ErrorDetail(name + where, error["msg"], error["type"]))
    if problems:
        expected = ", ".join(parameters) or "no arguments"
        raise InvalidArguments(
            f"'{method}' was called with arguments it does not accept",
            extension=extension,
            problems=problems,
            hint=f"'{method}' takes {expected}; fix the call in the motif's page",
        )
    return bound


def to_json(value: Any) -> Any:
    """A method's result as JSON-ready data (pydantic models, dataclasses, dates and paths included)."""
    return to_jsonable_python(value)
