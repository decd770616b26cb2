"""An extension outside a host: the context each kit's ``Cls.create(...)`` makes for tests and scripts.

The kits make an extension standalone the same way (``Cls.create(config, manifest=..., data_dir=...,
cache_dir=...)``): the context a host would give it, with the manifest beside its module unless one is
given, its config validated against the model the manifest names, and folders of its own.
"""

from __future__ import annotations

import logging
import pkgutil
import re
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from symphony_core._model._errors import ConfigError, ErrorDetail
from symphony_core._model._extension import Context
from symphony_core._model._kinds import MANIFEST_FILE
from symphony_core._model._public import public
from symphony_core._store._config import Config


@public
def standalone_context(
    cls: type,
    config: BaseModel | Mapping[str, Any] | None = None,
    *,
    manifest: Mapping[str, Any] | None = None,
    data_dir: Path | None = None,
    cache_dir: Path | None = None,
    model: type[Config] = Config,
) -> Context:
    """The context a host would give ``cls``, made without a host; its folders exist.

    ``manifest`` defaults to the ``symphony.toml`` beside the class's module; ``config`` is a config
    instance, or values for the model the manifest names (``model`` when it names none). Without
    ``data_dir`` and ``cache_dir``, the folders are made under the system's temporary folder.
    """
    data = dict(manifest) if manifest is not None else _packaged_manifest(cls)
    ext_id = str(data.get("id") or _local_id(cls))
    root = Path(tempfile.gettempdir()) / "symphony-standalone" / ext_id
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


@public
def served_config(context: Context, model: type[Config]) -> Any:
    """The config an extension runs with: the context's, or ``model``'s defaults when the manifest names
    none; a config of another type is a `ConfigError`."""
    config = context.config if context.config is not None else model()
    if not isinstance(config, model):
        raise ConfigError(
            f"the config is a {type(config).__name__}, not a {model.__name__}",
            extension=context.id,
            hint=f"name a {model.__name__} (or a subclass of it) as the manifest's config",
        )
    return config


def config_problems(exc: ValidationError) -> list[ErrorDetail]:
    """Each error of a pydantic validation as an `ErrorDetail` located at its dotted key."""
    return [
        ErrorDetail(
            ".".join(str(part) for part in error["loc"]) or "(top level)", error["msg"], error["type"]
        )
        for error in exc.errors()
    ]


def _packaged_manifest(cls: type) -> dict[str, Any]:
    from symphony_core._model._manifest import read_manifest

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
        try:
            model = pkgutil.resolve_name(reference.strip())
        except (ImportError, AttributeError, ValueError) as exc:
            raise ConfigError(
                f"the manifest's config {reference!r} cannot be imported: {exc}",
                extension=ext_id,
                hint="name a config class as 'module:Class', in a module the extension ships",
            ) from None
    elif not given:
        return None  # as a host gives it: the extension falls back on its config_model's defaults
    try:
        return model.model_validate(dict(given or {}))
    except ValidationError as exc:
        raise ConfigError("invalid config:", extension=ext_id, problems=config_problems(exc)) from None
