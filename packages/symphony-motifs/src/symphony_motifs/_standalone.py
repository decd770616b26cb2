"""A motif outside a host: the context `Motif.create` makes, and the error for one not active.

The three kits make an extension standalone the same way (``Cls.create(config, manifest=...,
data_dir=..., cache_dir=...)``) and refuse the same way to read what only activation sets; each kit
keeps its own copy, as the kits never import each other.
"""

from __future__ import annotations

import importlib
import logging
import re
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from symphony_core import Config, ConfigError, Context, ErrorDetail, read_manifest

from ._errors import MotifError

KIT = "symphony_motifs"
MANIFEST_FILE = "symphony.toml"


def standalone_context(
    cls: type,
    config: BaseModel | Mapping[str, Any] | None,
    *,
    manifest: Mapping[str, Any] | None,
    data_dir: Path | None,
    cache_dir: Path | None,
    model: type[Config],
) -> Context:
    """The context a host would give ``cls``, made without a host; its folders exist.

    ``manifest`` defaults to the ``symphony.toml`` beside the class's module; ``config`` is a config
    instance, or values for the model the manifest names (``model`` when it names none).
    """
    data = dict(manifest) if manifest is not None else _packaged_manifest(cls)
    ext_id = str(data.get("id") or _local_id(cls))
    root = Path(tempfile.gettempdir()) / KIT.replace("_", "-") / ext_id
    context = Context(
        id=ext_id,
        version=str(data.get("version") or "0"),
        manifest=data,
        config=_config(config, data.get("config"), model, ext_id),
        data_dir=data_dir or root / "data",
        cache_dir=cache_dir or root / "cache",
        logger=logging.getLogger(f"symphony.ext.{ext_id}"),
    )
    for folder in (context.data_dir, context.cache_dir):
        folder.mkdir(parents=True, exist_ok=True)
    return context


def served_config(context: Context, model: type[Config]) -> Any:
    """The config an extension runs with: the context's, or ``model``'s defaults when the manifest names none."""
    config = context.config if context.config is not None else model()
    if not isinstance(config, model):
        raise ConfigError(
            f"the config is a {type(config).__name__}, not a {model.__name__}",
            extension=context.id,
            hint=f"name a {model.__name__} (or a subclass of it) as the manifest's config",
        )
    return config


def not_active(extension: object, what: str) -> MotifError:
    """The error for reading ``what`` (``config``, ``contributions``) of an extension no host activated."""
    name = type(extension).__name__
    return MotifError(
        f"{name} is not active, so it has no {what} yet",
        hint=f"start it through a host (host.start(id)), or make one with {name}.create(...) in a test",
    )


def _packaged_manifest(cls: type) -> dict[str, Any]:
    module = sys.modules.get(cls.__module__)
    folder = Path(module.__file__).parent if module is not None and module.__file__ else None
    if folder is None or not (folder / MANIFEST_FILE).is_file():
        return {}
    return read_manifest(folder / MANIFEST_FILE).model_dump(mode="json", by_alias=True, exclude_none=True)


def _local_id(cls: type) -> str:
    name = re.sub(r"(?<!^)(?=[A-Z])", "-", cls.__name__).lower()
    return f"local.{name}"


def _config(
    given: BaseModel | Mapping[str, Any] | None, reference: Any, model: type[Config], ext_id: str
) -> Any:
    if isinstance(given, BaseModel):
        return given
    if isinstance(reference, str):
        module_name, _, attribute = reference.partition(":")
        found: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
        model = found
    elif not given:
        return None  # as a host gives it: the extension falls back on its config_model's defaults
    try:
        return model.model_validate(dict(given or {}))
    except ValidationError as exc:
        raise ConfigError("invalid config:", extension=ext_id, problems=problems(exc)) from None


def problems(exc: ValidationError) -> list[ErrorDetail]:
    """Each error of a pydantic validation as an `ErrorDetail` located at its dotted key."""
    return [
        ErrorDetail(
            ".".join(str(part) for part in error["loc"]) or "(top level)", error["msg"], error["type"]
        )
        for error in exc.errors()
    ]
