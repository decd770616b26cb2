"""The extension manifest: the static description an author ships next to the extension's code.

The models here are the specification. Their field descriptions feed the JSON Schema, the reference
docs and the validation errors an author sees, so a mistake is reported against the field they wrote.
The manifest is the file ``symphony.toml`` in the extension's package; it is read without importing
any of the extension's code.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Any, Literal

# tomli is the standard library's tomllib, released with compiled wheels: it reads a manifest about 3x
# faster, which is most of a cold scan's time per extension.
import tomli as tomllib
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from ._errors import ErrorDetail, ManifestError
from ._kinds import KINDS
from ._permissions import Permission, plain_text
from ._public import public
from ._sizes import MAX_ID_LENGTH, MAX_MANIFEST_BYTES, MAX_NAME_LENGTH, MAX_PERMISSIONS, MAX_SUMMARY_LENGTH
from ._spoofing import describe

ID_PATTERN = r"^[a-z0-9]+(?:[-_][a-z0-9]+)*(?:\.[a-z0-9]+(?:[-_][a-z0-9]+)*)+$"
OBJECT_REF_PATTERN = r"^[A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*$"


@public
class Manifest(BaseModel):
    """What an extension is, what it was built for, and what it asks to be allowed to do."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(
        pattern=ID_PATTERN,
        max_length=MAX_ID_LENGTH,
        description=(
            "Unique, namespaced id `publisher.name` (lowercase letters, digits, `-`, `_`), e.g. "
            "`acme.digits`. It must equal the entry point's name."
        ),
    )
    kind: Literal["instrument", "operator", "motif"] = Field(
        description="Which kind of extension this is; it must match the entry-point group it is registered in."
    )
    name: Annotated[str, AfterValidator(plain_text)] = Field(
        min_length=1, max_length=MAX_NAME_LENGTH, description="Display name shown to people."
    )
    summary: Annotated[str, AfterValidator(plain_text)] = Field(
        min_length=1,
        max_length=MAX_SUMMARY_LENGTH,
        description="One sentence saying what the extension does.",
    )
    version: str | None = Field(
        default=None,
        description=(
            "The extension's version. Leave it out to use the distribution's version; if given, it must equal it."
        ),
    )
    targets: str = Field(
        description=(
            "The public package and the versions of it this extension was built for, as a requirement, "
            "e.g. `symphony-instruments>=0.1,<0.2`."
        ),
    )
    requires_python: str | None = Field(
        default=None,
        alias="requires-python",
        description="Python versions the extension runs on, e.g. `>=3.10`, when narrower than its distribution's.",
    )
    permissions: tuple[Permission, ...] = Field(
        default=(),
        max_length=MAX_PERMISSIONS,
        description="Everything the extension asks to be allowed to do, each with a reason. Nothing else is allowed.",
    )
    config: str | None = Field(
        default=None,
        pattern=OBJECT_REF_PATTERN,
        description="The extension's config model as `module:Class`, a subclass of the kind's `Config`.",
    )
    contributes: dict[str, Any] = Field(
        default_factory=dict,
        description="Kind-specific contributions (an instrument's inputs and outputs, a motif's assets, ...).",
    )

    @field_validator("id", mode="before")
    @classmethod
    def _id_is_ascii(cls, value: Any) -> Any:
        # An id names the extension in grants, policy rules and the trust list: a letter that only looks
        # like an ASCII one would make it a different extension that reads the same.
        if isinstance(value, str) and not value.isascii():
            odd = next(char for char in value if not char.isascii())
            raise ValueError(
                f"{value!r} holds {describe(odd)}: an id is written in a-z, 0-9, '-', '_' and '.'"
            )
        return value

    @field_validator("version")
    @classmethod
    def _version_is_pep440(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                Version(value)
            except InvalidVersion:
                raise ValueError(f"'{value}' is not a valid version (PEP 440), e.g. '1.2.0'") from None
        return value

    @field_validator("requires_python")
    @classmethod
    def _specifier_is_valid(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                SpecifierSet(value)
            except InvalidSpecifier:
                raise ValueError(f"'{value}' is not a valid version specifier, e.g. '>=3.10'") from None
        return value

    @field_validator("targets")
    @classmethod
    def _targets_is_a_requirement(cls, value: str) -> str:
        try:
            parse_requirement(value)
        except InvalidRequirement:
            raise ValueError(f"'{value}' is not a requirement, e.g. 'symphony-operators>=0.1,<0.2'") from None
        return value

    @model_validator(mode="after")
    def _targets_the_package_of_its_kind(self) -> Manifest:
        package = KINDS[self.kind].package
        if canonicalize_name(self.target.name) != package:
            raise ValueError(f"targets: a {self.kind} targets '{package}', not '{self.target.name}'")
        return self

    @property
    def target(self) -> Requirement:
        """The public package requirement the extension was built against."""
        return parse_requirement(self.targets)

    @property
    def publisher(self) -> str:
        """The namespace part of the id."""
        return self.id.split(".", 1)[0]


@functools.lru_cache(maxsize=4096)
def parse_requirement(text: str) -> Requirement:
    """Parse a requirement once per process: a scan meets the same few strings again and again.

    Callers must not change the returned object.
    """
    return Requirement(text)


@public
def read_manifest(path: Path, *, distribution_version: str | None = None) -> Manifest:
    """Read and validate a manifest file; on any problem raise `ManifestError` naming file and fields."""
    try:
        with path.open("rb") as file:
            content = file.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        raise ManifestError(
            f"manifest file {path} does not exist",
            file=str(path),
            hint="ship symphony.toml inside the extension's package (check the build includes it)",
        ) from None
    except OSError as exc:
        raise ManifestError(
            f"cannot read manifest {path}: {exc}", file=str(path), hint="make the file readable"
        ) from None
    if len(content) > MAX_MANIFEST_BYTES:
        raise ManifestError(
            f"manifest {path} is larger than a manifest may be ({MAX_MANIFEST_BYTES} bytes)",
            file=str(path),
            hint="a manifest describes the extension in a few kB: move data into the package",
        )
    return parse_manifest(content, file=str(path), distribution_version=distribution_version)


def parse_manifest(content: bytes, *, file: str, distribution_version: str | None = None) -> Manifest:
    """Parse and validate the bytes of manifest ``file``; `ManifestError` names the file and fields."""
    try:
        data = tomllib.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ManifestError(
            f"cannot read manifest {file}: {exc}", file=file, hint="fix the TOML syntax"
        ) from None
    return validate_manifest(data, file=file, distribution_version=distribution_version)


def validate_manifest(
    data: dict[str, Any], *, file: str, distribution_version: str | None = None
) -> Manifest:
    """Validate manifest data already parsed from ``file``."""
    extension = data.get("id") if isinstance(data.get("id"), str) else None
    borrowed = (
        distribution_version is not None and "version" not in data and _is_version(distribution_version)
    )
    if borrowed:  # the distribution's version, as if written in the manifest
        data = {**data, "version": distribution_version}
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        errors = _without_echoes(exc.errors())
        problems = tuple(
            ErrorDetail(f"{file}: {_location(error['loc'])}", error["msg"], error["type"]) for error in errors
        )
        raise ManifestError(
            f"invalid manifest {file}",
            extension=extension,
            file=file,
            problems=problems,
            hint="fix the fields listed above; `symphony validate` checks a project before it is built",
        ) from None
    if distribution_version is not None and not borrowed:
        if manifest.version is None:
            manifest = manifest.model_copy(update={"version": distribution_version})
        elif manifest.version != distribution_version and Version(manifest.version) != Version(
            distribution_version
        ):
            raise ManifestError(
                f"invalid manifest {file}",
                extension=manifest.id,
                file=file,
                problems=(
                    ErrorDetail(
                        f"{file}: version",
                        f"'{manifest.version}' differs from the distribution's version '{distribution_version}'",
                        "version_differs",
                    ),
                ),
                hint="remove `version` from the manifest to use the distribution's version",
            )
    return manifest


@functools.lru_cache(maxsize=4096)
def _is_version(text: str) -> bool:
    try:
        Version(text)
    except InvalidVersion:
        return False
    return True


def _without_echoes(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    """Leave out "should have at least 1 item" for a list whose items were refused: pydantic counts only
    the items that passed, so one bad path would also read as no path at all."""
    inner = [error["loc"] for error in errors]
    return [
        error
        for error in errors
        if error["type"] != "too_short"
        or not any(len(loc) > len(error["loc"]) and loc[: len(error["loc"])] == error["loc"] for loc in inner)
    ]


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"
