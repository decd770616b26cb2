"""What a build records of its extensions' manifests in the distribution's metadata (``_catalog._recorded``
says why and how a scan uses it): each manifest read and validated as discovery would, at build time, so
that a broken one fails the build instead of an install."""

from __future__ import annotations

from collections.abc import Mapping

from symphony_core._catalog._discovery import module_parts
from symphony_core._catalog._recorded import RecordedExtension, encode_recorded, record_hash
from symphony_core._model._errors import ManifestError
from symphony_core._model._kinds import KIND_BY_GROUP, KINDS, MANIFEST_FILE
from symphony_core._model._manifest import parse_manifest


def record_manifests(
    entry_points: Mapping[str, Mapping[str, str]],
    manifests: Mapping[str, bytes],
    *,
    version: str,
    requires_python: str | None,
    distribution: str = "",
) -> bytes | None:
    """The copy's bytes for a distribution declaring ``entry_points`` (``{group: {name: "module:attr"}}``)
    whose files include ``manifests`` (``{path in the wheel: bytes}``); None when it declares no extension.

    Each extension's manifest is the one nearest to its module, as discovery finds it. Raises
    `EntryPointError` for a malformed entry point and `ManifestError` for a missing or invalid manifest,
    or one that disagrees with its entry point.
    """
    extensions: list[RecordedExtension] = []
    for group, points in entry_points.items():
        kind = KIND_BY_GROUP.get(group)
        if kind is None:
            continue
        for name, value in points.items():
            module = module_parts(name, value, distribution)
            candidates = ["/".join([*module[:n], MANIFEST_FILE]) for n in range(len(module), 0, -1)]
            found = next((path for path in candidates if path in manifests), None)
            if found is None:
                raise ManifestError(
                    f"extension '{name}' ships no {MANIFEST_FILE} next to module '{'.'.join(module)}'",
                    extension=name,
                    hint=f"put {MANIFEST_FILE} in the package folder and make sure the build includes it",
                )
            content = manifests[found]
            manifest = parse_manifest(content, file=found, distribution_version=version)
            if manifest.kind != kind.name or manifest.id != name:
                raise ManifestError(
                    f"{found} declares {manifest.kind} '{manifest.id}', but the entry point is "
                    f"{kind.name} '{name}' (group {group})",
                    extension=name,
                    file=found,
                    hint=f"use the manifest's id as the entry point's name, under [{KINDS[manifest.kind].group}]",
                )
            extensions.append(
                RecordedExtension(
                    group=group,
                    name=name,
                    value=value,
                    manifest_file=found,
                    manifest_hash=record_hash(content),
                    manifest=manifest.model_dump(mode="json", by_alias=True),
                )
            )
    return encode_recorded(requires_python, extensions) if extensions else None
