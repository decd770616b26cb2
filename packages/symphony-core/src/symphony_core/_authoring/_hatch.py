"""Symphony's build hook for hatchling: a wheel records a validated copy of its extensions' manifests.

Hatchling loads it from the ``hatch`` entry point group of the build environment. A project enables it
with ``symphony-sdk-core`` in its ``[build-system] requires`` and an empty
``[tool.hatch.build.targets.wheel.hooks.symphony]`` table. For each entry point in a Symphony group, the
hook reads the manifest nearest to its module among the wheel's files and validates it as discovery does:
a missing or invalid manifest fails the build, naming the file. The copy goes into the wheel's metadata
(``extra_metadata/symphony.json``, see ``_catalog._recorded``); an editable build records none, since its
manifests are read from the project as they change.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface
from hatchling.plugin import hookimpl


class SymphonyBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    """Record the manifests' copy in a wheel's metadata."""

    PLUGIN_NAME = "symphony"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        from symphony_core._authoring._recording import record_manifests
        from symphony_core._catalog._recorded import RECORDED_FILE
        from symphony_core._model._errors import SymphonyError
        from symphony_core._model._kinds import MANIFEST_FILE

        sources = {
            included.distribution_path.replace(os.sep, "/"): included.path
            for included in self.build_config.builder.recurse_included_files()
            if os.path.basename(included.path) == MANIFEST_FILE
        }
        manifests = {}
        for path, source in sources.items():
            with open(source, "rb") as file:
                manifests[path] = file.read()
        core = self.metadata.core
        try:
            copy = record_manifests(
                core.entry_points,
                manifests,
                version=self.metadata.version,
                requires_python=core.requires_python or None,
                distribution=core.name,
            )
        except SymphonyError as exc:  # a malformed entry point, a missing or invalid manifest
            where = sources.get(getattr(exc, "file", None) or "")
            mapped = f" (in the wheel; the project's file is {where})" if where else ""
            raise ValueError(f"Symphony build hook: {exc}{mapped}") from None
        if copy is None:
            return
        self._folder = tempfile.mkdtemp(prefix="symphony-build-")
        written = os.path.join(self._folder, "symphony.json")
        with open(written, "wb") as file:
            file.write(copy)
        build_data["extra_metadata"][written] = RECORDED_FILE.split("/", 1)[1]

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        folder = getattr(self, "_folder", None)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


@hookimpl
def hatch_register_build_hook() -> type[SymphonyBuildHook]:
    return SymphonyBuildHook
