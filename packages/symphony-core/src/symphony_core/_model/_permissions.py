"""The permission vocabulary an extension uses to ask for access, one model per kind of resource.

Everything is denied unless a permission in this vocabulary is requested in the manifest and granted by
the host. Every request carries a reason, shown to the person asked to consent: words of its own, not a
placeholder (``TODO``, ``...``).

A path names its place plainly, so the person asked sees where it leads: it starts with a variable
(``{data}``, ``{cache}``, ``{home}``) or ``/``, and has no ``.`` or ``..`` part (``{data}/../..`` would be
all of ``SYMPHONY_HOME``). Absolute paths outside the variables are allowed (``/usr/share/dict``); consent
shows them as written, with what they cover (``_reach``). Sizes are bounded (``_sizes``), and text a
person reads may not hide characters (``_spoofing``).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ._public import public
from ._sizes import MAX_REASON_LENGTH, MAX_SCOPE_LENGTH, MAX_SCOPES
from ._spoofing import refused_character

PATH_VARIABLES = ("data", "cache", "home")
"""The variables a path may start with: the extension's own folders and the user's home folder."""
_LEADING_VARIABLE = re.compile(r"\{(?:data|cache|home)\}(?=/|\Z)")
PLACEHOLDER_REASON = re.compile(r"^\s*(?:(?:todo|tbd|fixme|xxx|reason)\b|\.\.\.|\u2026)", re.IGNORECASE)
"""A reason that only holds its place (``TODO: say why``, as learning mode proposes it): no one can
consent to it."""


def plain_text(text: str) -> str:
    """Refuse text with a character that could hide or reorder what a person reads."""
    found = refused_character(text)
    if found is not None:
        raise ValueError(f"holds the character {found}, which can hide or reorder text: write plain text")
    return text


def _real_reason(reason: str) -> str:
    if PLACEHOLDER_REASON.match(reason):
        raise ValueError(f"the reason '{reason}' is a placeholder")
    return reason


def _plain_scope(item: str) -> str:
    found = refused_character(item, scope=True)
    if found is not None:
        raise ValueError(f"{item!r} holds the invisible or control character {found}: remove it")
    return item


def _plain_path(path: str) -> str:
    """Refuse a path that is relative, climbs with ``..``, or uses a variable other than at its start."""
    for variable in re.findall(r"\{([^{}]*)\}", path):
        if variable not in PATH_VARIABLES:
            raise ValueError(f"'{path}' uses the unknown variable {{{variable}}}")
    start = _LEADING_VARIABLE.match(path)
    rest = path[start.end() :] if start else path
    if "{" in rest or "}" in rest:
        raise ValueError(f"'{path}': a variable may only start a path, followed by '/' or nothing")
    if start is None and not path.startswith("/"):
        raise ValueError(f"'{path}' is not absolute: start it with {{data}}, {{cache}}, {{home}} or /")
    parts = set(rest.split("/"))
    if ".." in parts:
        raise ValueError(
            f"'{path}' has a '..' part, which leaves the folder before it: name the folder itself"
        )
    if "." in parts:
        raise ValueError(f"'{path}' has a '.' part: leave it out")
    return path


def _host_port(entry: str) -> str:
    host, sep, port = entry.rpartition(":")
    numeric = port.isascii() and port.isdigit() and int(port) <= 65535
    if (
        not sep
        or not host
        or any(char.isspace() or char == "/" for char in host)
        or not (port == "*" or numeric)
    ):
        raise ValueError(f"'{entry}' is not a host:port pair")
    return entry


Scope = Annotated[str, Field(min_length=1, max_length=MAX_SCOPE_LENGTH), AfterValidator(_plain_scope)]
"""One scope item: a path, ``host:port``, program or variable name."""
PathPattern = Annotated[Scope, AfterValidator(_plain_path)]
HostPort = Annotated[Scope, AfterValidator(_host_port)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: Annotated[str, AfterValidator(plain_text), AfterValidator(_real_reason)] = Field(
        min_length=3,
        max_length=MAX_REASON_LENGTH,
        description="Why the extension needs this access, in words shown to the person asked to consent.",
    )


@public
class FileRead(_Request):
    """Read files that match the given paths or globs."""

    type: Literal["fs.read"] = "fs.read"
    paths: tuple[PathPattern, ...] = Field(
        min_length=1,
        max_length=MAX_SCOPES,
        description=(
            "Absolute paths or globs, each starting with `/` or a variable: `{data}` and `{cache}` (the "
            "extension's own folders), `{home}` (the user's home folder). No `.` or `..` parts."
        ),
    )


@public
class FileWrite(_Request):
    """Create, change or delete files that match the given paths or globs."""

    type: Literal["fs.write"] = "fs.write"
    paths: tuple[PathPattern, ...] = Field(
        min_length=1,
        max_length=MAX_SCOPES,
        description="Absolute paths or globs, written as for `fs.read`.",
    )


@public
class NetConnect(_Request):
    """Open network connections to the given `host:port` pairs (`*` for any host or port)."""

    type: Literal["net.connect"] = "net.connect"
    hosts: tuple[HostPort, ...] = Field(
        min_length=1, max_length=MAX_SCOPES, description="`host:port` pairs, e.g. `api.example.com:443`."
    )


@public
class NetListen(_Request):
    """Accept network connections on the given `host:port` pairs."""

    type: Literal["net.listen"] = "net.listen"
    hosts: tuple[HostPort, ...] = Field(
        min_length=1, max_length=MAX_SCOPES, description="`host:port` pairs, e.g. `127.0.0.1:8080`."
    )


@public
class Subprocess(_Request):
    """Start other programs."""

    type: Literal["subprocess"] = "subprocess"
    commands: tuple[Scope, ...] = Field(
        default=("*",),
        max_length=MAX_SCOPES,
        description="Program names or paths the extension may start; `*` for any.",
    )


@public
class EnvVars(_Request):
    """Read the given environment variables."""

    type: Literal["env"] = "env"
    names: tuple[Scope, ...] = Field(
        min_length=1, max_length=MAX_SCOPES, description="Variable names, e.g. `HF_HOME`."
    )


@public
class Gpu(_Request):
    """Use a GPU or another accelerator."""

    type: Literal["gpu"] = "gpu"


Permission = Annotated[
    FileRead | FileWrite | NetConnect | NetListen | Subprocess | EnvVars | Gpu,
    Field(discriminator="type"),
]
"""One permission request; its `type` field says which kind of resource it is about."""
