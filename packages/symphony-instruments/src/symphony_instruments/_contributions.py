"""What an instrument declares under ``[contributes]``: its inputs and outputs, and checks against them.

The pydantic models here are the specification of that table. The same declarations are checked
against the real model when the instrument is activated, and against every request before it joins a
batch, so a bad request fails alone with a message naming the input and what was wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from symphony_core import ErrorDetail, ManifestError

from ._errors import InvalidInput, ModelMismatch

DType = Literal[
    "float16",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
    "string",
]
Array = npt.NDArray[Any]
Axis = int | str | None
"""One axis as a model reports it: a fixed size, a named dynamic axis, or None when it is unknown."""


class TensorSpec(BaseModel):
    """One named input or output of an instrument: its dtype and its shape, batch axis first."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="The tensor's name, as the model names it.")
    dtype: DType = Field(description="The element type, e.g. `float32`, `int64`, `bool`, `string`.")
    shape: tuple[int | str, ...] = Field(
        min_length=1,
        description=(
            "The size of each axis: a number for a fixed size, a name for a dynamic one. The first axis "
            'is the batch axis: a name (`"batch"`), or 1 for a model that takes one item at a time. '
            'Example: `["batch", 64]`.'
        ),
    )

    @field_validator("shape")
    @classmethod
    def _axes_are_sizes_or_names(cls, shape: tuple[int | str, ...]) -> tuple[int | str, ...]:
        for axis, size in enumerate(shape):
            if isinstance(size, bool) or (isinstance(size, int) and size < 1):
                raise ValueError(f"axis {axis} is {size!r}: use a size of at least 1 or a name such as 'n'")
            if isinstance(size, str) and not size.strip():
                raise ValueError(f"axis {axis} is an empty name: name a dynamic axis, e.g. 'batch'")
        if isinstance(shape[0], int) and shape[0] != 1:
            raise ValueError(
                f"the batch axis (axis 0) is fixed to {shape[0]}: name it (e.g. 'batch') so requests can be "
                "batched, or use 1 for a model that takes one item at a time"
            )
        return shape

    @property
    def numpy_dtype(self) -> np.dtype[Any]:
        """The numpy dtype of this tensor's arrays (``object`` for strings, as onnxruntime wants)."""
        return np.dtype(object) if self.dtype == "string" else np.dtype(self.dtype)

    def describe(self) -> str:
        """The declaration as a person reads it, e.g. ``input float32 [batch, 64]``."""
        return f"{self.name} {self.dtype} [{', '.join(map(str, self.shape))}]"


class Contributions(BaseModel):
    """An instrument's ``[contributes]`` table: the model's inputs and the outputs it returns."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    inputs: tuple[TensorSpec, ...] = Field(
        min_length=1, description="Every input the model takes; a request must give each one."
    )
    outputs: tuple[TensorSpec, ...] = Field(
        min_length=1, description="The outputs a request gets back, a subset of the model's outputs."
    )

    @model_validator(mode="after")
    def _names_are_unique(self) -> Contributions:
        for side, specs in (("inputs", self.inputs), ("outputs", self.outputs)):
            names = [spec.name for spec in specs]
            twice = sorted({name for name in names if names.count(name) > 1})
            if twice:
                raise ValueError(f"{side}: each name may appear once, but {', '.join(twice)} appear twice")
        return self


def read_contributions(manifest: Mapping[str, Any], *, extension: str | None = None) -> Contributions:
    """Validate the manifest's ``[contributes]`` table; raise `ManifestError` naming each bad field."""
    try:
        return Contributions.model_validate(manifest.get("contributes", {}))
    except ValidationError as exc:
        problems = tuple(
            ErrorDetail(_location(("contributes", *error["loc"])), error["msg"], error["type"])
            for error in exc.errors()
        )
        raise ManifestError(
            "invalid [contributes] table for an instrument",
            extension=extension,
            problems=problems,
            hint='declare the model\'s tensors, e.g. inputs = [{name = "input", dtype = "float32", '
            'shape = ["batch", 64]}]',
        ) from None


@dataclass(frozen=True)
class FoundTensor:
    """One input or output as the loaded model reports it."""

    name: str
    dtype: str  # one of `DType`, or the runtime's own name for a type this package cannot serve
    shape: tuple[Axis, ...] | None  # None when the model does not say


def check_model(
    contributions: Contributions,
    inputs: Sequence[FoundTensor],
    outputs: Sequence[FoundTensor],
    *,
    model: str,
    extension: str | None = None,
) -> None:
    """Raise `ModelMismatch`, naming every difference, unless the model matches the declarations."""
    problems = [
        *_compare("input", contributions.inputs, inputs, every_found_needed=True),
        *_compare("output", contributions.outputs, outputs, every_found_needed=False),
    ]
    if problems:
        raise ModelMismatch(
            f"model {model} does not match the manifest's [contributes]"
            + "".join(f"\n  - {problem}" for problem in problems),
            extension=extension,
            hint="fix [contributes] in symphony.toml to describe the model, or ship the model it describes",
        )


def _compare(
    side: str, declared: Sequence[TensorSpec], found: Sequence[FoundTensor], *, every_found_needed: bool
) -> Iterable[str]:
    by_name = {tensor.name: tensor for tensor in found}
    names = ", ".join(tensor.name for tensor in found) or "none"
    for spec in declared:
        tensor = by_name.get(spec.name)
        if tensor is None:
            yield f"{side} '{spec.name}' is declared, but the model has no such {side} (it has: {names})"
            continue
        if tensor.dtype != spec.dtype:
            yield f"{side} '{spec.name}': declared dtype {spec.dtype}, the model's is {tensor.dtype}"
        if tensor.shape is None:
            continue
        if len(tensor.shape) != len(spec.shape):
            yield (
                f"{side} '{spec.name}': declared {len(spec.shape)} axes {_shape(spec.shape)}, "
                f"the model has {len(tensor.shape)} {_shape(tensor.shape)}"
            )
            continue
        for axis, (want, have) in enumerate(zip(spec.shape, tensor.shape, strict=True)):
            if isinstance(have, int) and isinstance(want, int) and want != have:
                yield f"{side} '{spec.name}' axis {axis}: declared size {want}, the model's is {have}"
            elif isinstance(have, int) and isinstance(want, str):
                yield (
                    f"{side} '{spec.name}' axis {axis}: declared dynamic ('{want}'), "
                    f"but the model fixes it to {have}: declare {have}"
                )
    if every_found_needed:
        known = {spec.name for spec in declared}
        for tensor in found:
            if tensor.name not in known:
                yield f"the model's {side} '{tensor.name}' is not declared (every {side} must be)"


def _shape(shape: Sequence[Axis]) -> str:
    return "[" + ", ".join("?" if size is None else str(size) for size in shape) + "]"


def _location(loc: Iterable[int | str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class InputChecker:
    """Checks one request's inputs against the declarations, before the request joins a batch.

    Arrays must have the declared dtype exactly (nothing is cast silently); plain lists and numbers are
    converted when numpy can do so without changing their kind (ints to floats, not text to numbers).
    Every input is given with its batch axis, or every input without it (one item, answered the same way).
    """

    def __init__(self, inputs: Sequence[TensorSpec], *, reject_nan: bool, extension: str | None) -> None:
        self.specs = tuple(inputs)
        self.reject_nan = reject_nan
        self.extension = extension
        self._names = frozenset(spec.name for spec in self.specs)
        self._plan = tuple(
            (
                spec.name,
                spec.numpy_dtype,
                len(spec.shape),
                tuple((axis, size) for axis, size in enumerate(spec.shape) if isinstance(size, int)),
                reject_nan and spec.dtype.startswith("float"),
                spec,
            )
            for spec in self.specs
        )
        # One input whose every axis past the batch axis has a fixed size, and no value check: an
        # array of exactly that dtype and item shape passes with two comparisons (most requests do)
        self._fast: tuple[str, np.dtype[Any], tuple[int, ...]] | None = None
        if len(self.specs) == 1 and not self._plan[0][4]:
            spec = self.specs[0]
            first, *rest = spec.shape
            if not isinstance(first, int) and all(isinstance(size, int) for size in rest):
                self._fast = (
                    spec.name,
                    spec.numpy_dtype,
                    tuple(size for size in rest if isinstance(size, int)),
                )

    def check(self, inputs: Mapping[str, Any]) -> tuple[dict[str, Array], int, bool]:
        """The request's arrays (batch axis first), its number of items, and whether it was one bare item."""
        fast = self._fast
        if fast is not None and type(inputs) is dict and len(inputs) == 1:
            name, dtype, item = fast
            value = inputs.get(name)
            if type(value) is np.ndarray and value.dtype == dtype:
                shape = value.shape
                if shape == item:
                    return {name: value[np.newaxis]}, 1, True
                if shape[1:] == item and shape[0]:
                    return {name: value}, shape[0], False
        return self._check(inputs)

    def _check(self, inputs: Mapping[str, Any]) -> tuple[dict[str, Array], int, bool]:
        if not isinstance(inputs, Mapping):
            raise self._invalid(
                f"inputs must be a mapping of input name to array, not {type(inputs).__name__}"
            )
        if inputs.keys() != self._names:
            self._names_differ(inputs)
        arrays: dict[str, Array] = {}
        items = -1
        bare: bool | None = None
        for name, dtype, rank, fixed, nan_check, spec in self._plan:
            value = inputs[name]
            array = value if type(value) is np.ndarray else self._convert(name, value, dtype)
            if array.dtype != dtype:
                raise self._invalid(
                    f"input '{name}' has dtype {array.dtype}, declared {spec.dtype}",
                    f"convert it first, e.g. array.astype('{spec.dtype}')",
                    input=name,
                )
            without_batch = array.ndim == rank - 1
            if bare is None:
                bare = without_batch
            if array.ndim != rank and not without_batch:
                raise self._invalid(
                    f"input '{name}' has shape {array.shape}, declared {_shape(spec.shape)}",
                    f"give {rank} axes (batch axis first) or {rank - 1} for a single item",
                    input=name,
                )
            if without_batch != bare:
                raise self._invalid(
                    "give every input with its batch axis, or every input without it (a single item)"
                )
            if without_batch:
                array = array[np.newaxis]
            for axis, size in fixed:
                if array.shape[axis] == size:
                    continue
                if axis == 0:
                    raise self._invalid(
                        f"input '{name}' holds {array.shape[0]} items, but this model takes one at a time",
                        "send one request per item: they are queued and run one after another",
                        input=name,
                    )
                raise self._invalid(
                    f"input '{name}' has shape {array.shape[1:] if without_batch else array.shape}, "
                    f"declared {_shape(spec.shape[1:] if without_batch else spec.shape)}: "
                    f"axis {axis - without_batch} must be {size}",
                    input=name,
                )
            if items < 0:
                items = array.shape[0]
            elif array.shape[0] != items:
                raise self._invalid(
                    f"input '{name}' has {array.shape[0]} items on its batch axis, another input has {items}",
                    input=name,
                )
            if nan_check and np.isnan(array).any():
                raise self._invalid(
                    f"input '{name}' contains NaN, which this instrument's config forbids",
                    "remove or impute the missing values before sending them",
                    input=name,
                )
            arrays[name] = array
        if items == 0:
            raise self._invalid("the request holds no items (its batch axis is empty)")
        return arrays, items, bool(bare)

    def _convert(self, name: str, value: Any, dtype: np.dtype[Any]) -> Array:
        if isinstance(value, np.ndarray):  # a subclass: keep the data, drop the subclass
            return np.asarray(value)
        try:
            array = np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise self._invalid(f"input '{name}' is not an array: {exc}", input=name) from None
        if dtype.kind == "O":
            if array.dtype.kind in "UO":
                return array.astype(object)
        elif array.dtype.kind in "biuf" and np.can_cast(array.dtype, dtype, casting="same_kind"):
            return array.astype(dtype)
        raise self._invalid(
            f"input '{name}' holds {array.dtype} values, which do not convert to {dtype.name if dtype.kind != 'O' else 'string'}",
            input=name,
        )

    def _names_differ(self, inputs: Mapping[str, Any]) -> None:
        missing = sorted(self._names - inputs.keys())
        unknown = sorted(str(name) for name in inputs.keys() - self._names)
        parts = []
        if missing:
            parts.append(f"missing input {', '.join(repr(n) for n in missing)}")
        if unknown:
            parts.append(f"unknown input {', '.join(repr(n) for n in unknown)}")
        declared = "; ".join(spec.describe() for spec in self.specs)
        raise self._invalid(", ".join(parts), f"this instrument takes: {declared}")

    def _invalid(self, message: str, hint: str | None = None, *, input: str | None = None) -> InvalidInput:
        return InvalidInput(message, extension=self.extension, hint=hint, input=input)
