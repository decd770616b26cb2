"""Extension config: the base model authors subclass, and how a host resolves it from four layers.

Lowest to highest: the model's defaults, the TOML file ``<home>/config/<id>.toml``, environment variables
``SYMPHONY_<ID>__<FIELD>`` (``__`` also separates nested fields; see `env_prefix` for ids that share a
prefix) and the host's overrides (what ``symphony config set`` stores). Tables merge key by key across layers; any other value, lists included,
replaces the one below. Every value remembers where it came from, so a bad one is reported against the
file key, variable or override that holds it.

Secrets (``SecretStr``, ``SecretBytes``, ``Secret[...]``) never leave this module as text: dumps and the
schema mask them, and error messages say where a secret came from but never what it is.
"""

from __future__ import annotations

import json
import os
import re
import reprlib
import sys
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Secret, SecretBytes, SecretStr, ValidationError

from symphony_core._model._errors import ConfigError, ErrorDetail
from symphony_core._model._kinds import canonical_id
from symphony_core._model._public import public

if TYPE_CHECKING:
    from ._home import Home
    from ._state import HostState

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "Config",
    "Resolved",
    "Source",
    "config_file",
    "config_schema",
    "config_variables",
    "env_prefix",
    "load_config",
    "parse_value",
    "public_dump",
    "set_value",
    "sharing_prefix",
    "store_override",
]

C = TypeVar("C", bound=BaseModel)
_Key = tuple[str, ...]
_NOT_ID_CHAR = re.compile(r"[^A-Za-z0-9]")
_SECRET_TYPES = (SecretStr, SecretBytes, Secret)


@public
class Config(BaseModel):
    """The base of every extension's config model; authors subclass it through their kit's package.

    Unknown keys are errors and instances are immutable. Nested sections should subclass ``Config`` too,
    so that a misspelt key inside them is an error instead of being ignored.
    """

    # Keeps inputs (secrets among them) out of a ValidationError's text, should one be printed elsewhere.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


@dataclass(frozen=True)
class Source:
    """Where one config value came from: its layer and the place in that layer."""

    layer: Literal["default", "file", "env", "override"]
    where: str = ""  # "<path> key <dotted key>", the variable's name, or the override's key

    def __str__(self) -> str:
        return f"{self.layer} {self.where}" if self.where else self.layer


@public
@dataclass(frozen=True)
class Resolved(Generic[C]):
    """A validated config and, by dotted key, where each of its values came from."""

    config: C
    sources: dict[str, Source]

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict for ``--json`` output, with secrets masked."""
        sources = {key: str(source) for key, source in self.sources.items()}
        return {"config": public_dump(self.config), "sources": sources}


@public
def env_prefix(ext_id: str) -> str:
    """The prefix of the environment variables that configure an extension (``SYMPHONY_ACME_DIGITS__``).

    The id upper-cased, with ``.``, ``-`` and ``_`` as ``_``. Ids that differ only in which of ``.`` and
    ``-`` stands where (``acme-x.y``, ``acme.x-y``) share one prefix, and such variables configure none
    of them (`config_variables`). No prefix begins another's variables: an id never holds two
    separators in a row nor ends with one, so the ``__`` after it cannot be part of another id.
    """
    return f"SYMPHONY_{_NOT_ID_CHAR.sub('_', canonical_id(ext_id)).upper()}__"


def sharing_prefix(ext_id: str, installed: Iterable[str]) -> list[str]:
    """The other installed extension ids whose variables would have the same prefix as ``ext_id``'s."""
    prefix, key = env_prefix(ext_id), canonical_id(ext_id)
    others = {other for other in installed if canonical_id(other) != key}
    return sorted(other for other in others if env_prefix(other) == prefix)


def config_variables(
    ext_id: str, environ: Mapping[str, str] = os.environ, *, shared_with: Collection[str] = ()
) -> dict[str, str]:
    """The environment variables that configure an extension, by name.

    When other installed extensions' ids map to the same prefix (``shared_with``, see `sharing_prefix`),
    nobody can tell whose the variables are: none of them gets any, and setting one is a `ConfigError`.
    """
    prefix = env_prefix(ext_id)
    # by name: os.environ decodes every value it yields, and each start asks (most read none)
    found = {name: environ[name] for name in environ if name.startswith(prefix)}
    if found and shared_with:
        others = ", ".join(f"'{other}'" for other in sorted(shared_with))
        raise ConfigError(
            f"the variables {prefix}* would configure '{ext_id}' and {others} alike, so none of them gets "
            f"them; set here: {', '.join(sorted(found))}",
            extension=ext_id,
            hint="unset them and configure each extension in its file `<home>/config/<id>.toml` or with "
            "`symphony config set ID KEY VALUE`, or uninstall the extension you do not use",
        )
    return found


def config_file(home: Home, ext_id: str) -> Path:
    """The TOML file a person edits to configure an extension."""
    return home.config_dir / f"{ext_id}.toml"


def parse_value(text: str) -> Any:
    """Read a value typed as text (a variable, a command-line argument) into a config value.

    JSON objects, arrays and ``null`` are parsed; anything else stays text for the model to convert, so
    that ``1.10`` or ``007`` stay intact for a string field and ``3`` still becomes an int for an int field.
    """
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if value is None or isinstance(value, (dict, list)) else text


def load_config(
    model: type[C],
    ext_id: str,
    *,
    home: Home,
    overrides: Mapping[str, Any],
    environ: Mapping[str, str] = os.environ,
) -> Resolved[C]:
    """Resolve an extension's config from its layers; raise `ConfigError` naming where each bad value is."""
    prefix = env_prefix(ext_id)
    variables = sorted(config_variables(ext_id, environ).items())
    data, origins = _merge(
        [
            *_file_entries(config_file(home, ext_id), ext_id),
            *(
                (_split(name[len(prefix) :].lower(), "__"), parse_value(text), Source("env", name))
                for name, text in variables
            ),
            *((_split(key, "."), value, Source("override", key)) for key, value in sorted(overrides.items())),
        ]
    )
    try:
        config = model.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc, model, ext_id, origins, home) from None
    sources = {".".join(key): source for key, source in origins.items()}
    for key in _field_keys(model):
        if not any(_overlap(key, known) for known in origins):
            sources[".".join(key)] = Source("default")
    return Resolved(config, dict(sorted(sources.items())))


def set_value(
    model: type[C],
    ext_id: str,
    key: str,
    raw_value: str,
    *,
    home: Home,
    state: HostState,
    actor: str,
    environ: Mapping[str, str] = os.environ,
) -> Resolved[C]:
    """Override one (dotted) config key with command-line text, once the whole resulting config is valid.

    An invalid result raises `ConfigError` and stores nothing, so the config in force stays valid. The
    override is a host-state change, audited by key only.
    """

    def resolve(overrides: Mapping[str, Any]) -> Resolved[C]:
        return load_config(model, ext_id, home=home, overrides=overrides, environ=environ)

    return store_override(resolve, ext_id, key, raw_value, state=state, actor=actor)


def store_override(
    resolve: Callable[[Mapping[str, Any]], Resolved[C]],
    ext_id: str,
    key: str,
    raw_value: str,
    *,
    state: HostState,
    actor: str,
) -> Resolved[C]:
    """`set_value` with the resolving left to ``resolve(overrides)`` (in a worker, for an isolated
    extension): the override is stored only once ``resolve`` accepted the config it makes."""
    value = parse_value(raw_value)
    resolved = resolve({**state.config_overrides(ext_id), key: value})
    state.set_config_override(ext_id, key, value, actor=actor)
    return resolved


@public
def public_dump(config: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    """The config as JSON-ready data for people and logs: every secret shows as ``**********``.

    A mapping is taken as such a dump already (an isolated extension's config, made in its worker).
    """
    if isinstance(config, Mapping):
        return dict(config)
    return config.model_dump(mode="json")


@public
def config_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema of a config model, for editors and docs; secrets are write-only passwords."""
    return model.model_json_schema()


def _split(text: str, separator: str) -> _Key:
    return tuple(text.split(separator))


def _file_entries(path: Path, ext_id: str) -> list[tuple[_Key, Any, Source]]:
    """The values in an extension's config file, each with its dotted key; none when there is no file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            f"cannot read config file {path}: {exc}",
            extension=ext_id,
            hint="fix the file's TOML syntax, or move it aside to configure the extension another way",
        ) from None
    return [
        (key, value, Source("file", f"{path} key {'.'.join(key)}"))
        for name, table in data.items()
        for key, value in _leaves((name,), table)
    ]


def _leaves(key: _Key, value: Any) -> Iterator[tuple[_Key, Any]]:
    """Every value under ``key`` that is not a non-empty table, with its full key."""
    if isinstance(value, dict) and value:
        for name, item in value.items():
            yield from _leaves((*key, str(name)), item)
    else:
        yield key, value


def _merge(entries: Iterable[tuple[_Key, Any, Source]]) -> tuple[dict[str, Any], dict[_Key, Source]]:
    """Lay the entries over each other in order and return the data with the source of each leaf."""
    data: dict[str, Any] = {}
    origins: dict[_Key, Source] = {}
    for entry_key, entry_value, source in entries:
        for key, value in _leaves(entry_key, entry_value):
            parent = data
            for depth, name in enumerate(key[:-1], start=1):
                if not isinstance(parent.get(name), dict):  # a table replaces a plain value below it
                    parent[name] = {}
                    origins.pop(key[:depth], None)
                parent = parent[name]
            if isinstance(value, dict) and isinstance(parent.get(key[-1]), dict):
                continue  # an empty table adds nothing to the table below it
            parent[key[-1]] = value
            for replaced in [known for known in origins if known[: len(key)] == key]:
                del origins[replaced]
            origins[key] = source
    return data, origins


def _field_keys(model: type[BaseModel], prefix: _Key = ()) -> Iterator[_Key]:
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _field_keys(annotation, (*prefix, name))
        else:
            yield (*prefix, name)


def _overlap(a: _Key, b: _Key) -> bool:
    """Whether one key is the other or lies inside it."""
    return a[: len(b)] == b[: len(a)]


def _invalid(
    exc: ValidationError, model: type[BaseModel], ext_id: str, origins: dict[_Key, Source], home: Home
) -> ConfigError:
    problems = []
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        found = list(
            dict.fromkeys(str(source) for key, source in origins.items() if loc and _overlap(key, loc))
        )
        text = error["msg"]
        if found and _printable(model, error["loc"]):
            text += f", got {reprlib.repr(error['input'])}"
        if found:
            text += f" (from {', '.join(found)})"
        elif error["type"] == "missing":
            text += " (set nowhere)"
        problems.append(ErrorDetail(_dotted(error["loc"]), text, error["type"]))
    return ConfigError(
        "invalid config",
        problems=problems,
        extension=ext_id,
        hint=(
            f"fix these in {config_file(home, ext_id)}, in the variables {env_prefix(ext_id)}*, "
            f"or with `symphony config set {ext_id} KEY VALUE`"
        ),
    )


def _dotted(loc: tuple[int | str, ...]) -> str:
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
    return text[1:] if text.startswith(".") else text or "(top level)"


def _printable(model: type[BaseModel], loc: tuple[int | str, ...]) -> bool:
    """Whether the value at ``loc`` may be shown: it belongs to a known field that holds no secret."""
    annotation: Any = model
    for part in loc:
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break  # inside a list or dict field, already checked as a whole
        field = annotation.model_fields.get(str(part))
        if field is None:
            return False  # an unknown key may be a misplaced secret
        annotation = field.annotation
    return not _holds_secret(annotation)


def _holds_secret(annotation: Any) -> bool:
    origin = get_origin(annotation) or annotation
    if isinstance(origin, type) and issubclass(origin, _SECRET_TYPES):
        return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return any(_holds_secret(field.annotation) for field in annotation.model_fields.values())
    return any(_holds_secret(arg) for arg in get_args(annotation))
