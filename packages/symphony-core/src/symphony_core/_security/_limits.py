"""The ``[limits]`` table of the host policy: the resource limits of every isolated worker a host starts.

A limit not written keeps its default (the worker's ``Limits``); ``false`` removes it. Sizes are bytes or
a number with a unit (``"2 GiB"``, ``"500 MB"``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ByteSize, ConfigDict, Field, TypeAdapter, ValidationError

if TYPE_CHECKING:
    from ._sandbox._protocol import Limits

_BYTES = TypeAdapter(ByteSize)


def _limit(*, size: bool = False, off: bool = True) -> Callable[[object], object]:
    """A check of one limit as TOML gives it: a positive whole number, a size (with ``size``), or
    ``false`` for no limit (with ``off``)."""

    def check(value: object) -> object:
        if value is False and off:
            return value
        if size and isinstance(value, str):
            try:
                value = int(_BYTES.validate_python(value))
            except ValidationError:
                raise ValueError(
                    f'{value!r} is not a size: write bytes, or a number and a unit such as "2 GiB"'
                ) from None
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError("write a positive whole number" + (", or false for no limit" if off else ""))
        return value

    return check


_Size = Annotated[int | Literal[False] | None, BeforeValidator(_limit(size=True))]
_Number = Annotated[int | Literal[False] | None, BeforeValidator(_limit())]


class ResourceLimits(BaseModel):
    """The policy's ``[limits]``: what each isolated worker may use. Unwritten limits keep their defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    memory: _Size = Field(
        default=None, description='Memory of one worker (cgroup), e.g. `"4 GiB"`. Default 2 GiB.'
    )
    tasks: _Number = Field(default=None, description="Processes and threads of one worker. Default 512.")
    cpu_seconds: _Number = Field(
        default=None, description="CPU time of one worker over its whole life. Default 3600."
    )
    open_files: Annotated[int | None, BeforeValidator(_limit(off=False))] = Field(
        default=None, description="Open file descriptors of one worker (no `false`). Default 1024."
    )
    file_size: _Size = Field(
        default=None,
        description="Largest file a worker may write (RLIMIT_FSIZE: a write past it fails with EFBIG), "
        "and largest value it may return through shared memory. Default 1 GiB.",
    )
    disk: _Size = Field(
        default=None,
        description="What an extension's `{data}` and `{cache}` folders may take on disk together, counted "
        "by the host; a worker that goes over is killed, and none starts while over. Default 2 GiB.",
    )
    disk_entries: _Number = Field(
        default=None,
        description="Files, folders and links in `{data}` and `{cache}` together, counted with `disk`. "
        "Default 100000.",
    )

    def for_workers(self) -> Limits:
        """The limits a worker takes: these over the defaults, ``false`` as None (no limit)."""
        from ._sandbox._protocol import Limits

        given: dict[str, Any] = {}
        for name in self.model_fields_set:
            value = getattr(self, name)
            given[name] = None if value is False else value
        return Limits(**given)
