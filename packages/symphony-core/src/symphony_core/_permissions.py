"""The permission vocabulary an extension uses to ask for access, one model per kind of resource.

Everything is denied unless a permission in this vocabulary is requested in the manifest and granted by
the host. Every request carries a reason, shown to the person asked to consent.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str = Field(
        min_length=3,
        description="Why the extension needs this access, in words shown to the person asked to consent.",
    )


class FileRead(_Request):
    """Read files that match the given paths or globs."""

    type: Literal["fs.read"] = "fs.read"
    paths: tuple[str, ...] = Field(
        min_length=1,
        description=(
            "Paths or globs. Variables: `{data}` and `{cache}` (the extension's own folders), `{home}` "
            "(the user's home folder)."
        ),
    )


class FileWrite(_Request):
    """Create, change or delete files that match the given paths or globs."""

    type: Literal["fs.write"] = "fs.write"
    paths: tuple[str, ...] = Field(
        min_length=1, description="Paths or globs, with the same variables as `fs.read`."
    )


class NetConnect(_Request):
    """Open network connections to the given `host:port` pairs (`*` for any host or port)."""

    type: Literal["net.connect"] = "net.connect"
    hosts: tuple[str, ...] = Field(min_length=1, description="`host:port` pairs, e.g. `api.example.com:443`.")


class NetListen(_Request):
    """Accept network connections on the given `host:port` pairs."""

    type: Literal["net.listen"] = "net.listen"
    hosts: tuple[str, ...] = Field(min_length=1, description="`host:port` pairs, e.g. `127.0.0.1:8080`.")


class Subprocess(_Request):
    """Start other programs."""

    type: Literal["subprocess"] = "subprocess"
    commands: tuple[str, ...] = Field(
        default=("*",), description="Program names or paths the extension may start; `*` for any."
    )


class EnvVars(_Request):
    """Read the given environment variables."""

    type: Literal["env"] = "env"
    names: tuple[str, ...] = Field(min_length=1, description="Variable names, e.g. `HF_HOME`.")


class Gpu(_Request):
    """Use a GPU or another accelerator."""

    type: Literal["gpu"] = "gpu"


Permission = Annotated[
    FileRead | FileWrite | NetConnect | NetListen | Subprocess | EnvVars | Gpu,
    Field(discriminator="type"),
]
"""One permission request; its `type` field says which kind of resource it is about."""
