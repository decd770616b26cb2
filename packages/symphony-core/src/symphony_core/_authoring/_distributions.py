"""Distributions written straight to disk, for tests and benchmarks: what an installer leaves in a
``site-packages`` folder, or the wheel it installs from, with no build backend and no installer run.

A host finds them as it finds any installed distribution: through the ``entry_points.txt`` and
``RECORD`` of their ``.dist-info`` folder. It imports only the standard library.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from symphony_core._model._public import public

GENERATOR = "symphony-tests"


@public
def write_distribution(
    folder: Path,
    name: str,
    version: str = "1.0.0",
    *,
    files: Mapping[str, str | bytes] | None = None,
    entry_points: Mapping[str, Mapping[str, str]] | None = None,
    requires: Sequence[str] = (),
    requires_python: str | None = None,
    wheel: bool = False,
    recorded: bool = False,
) -> Path:
    """Write a distribution into ``folder`` in the layout an installer leaves in ``site-packages`` and
    return its ``.dist-info`` folder; with ``wheel=True``, write the wheel it would be installed from
    instead and return the ``.whl`` file.

    It holds ``files`` (text is written as UTF-8; a manifest is one of them:
    ``{"acme_tool/symphony.toml": ...}``) and a ``NAME-VERSION.dist-info`` folder with ``METADATA``,
    ``WHEEL``, ``entry_points.txt`` (``{group: {name: "module:attr"}}``; left out when there are none),
    ``INSTALLER`` (installed only) and a ``RECORD`` that lists every other file with its hash. Put an
    installed ``folder`` on a host's ``path`` and the host discovers the extensions it declares.

    With ``recorded=True`` it also holds the copy of its manifests that Symphony's build hook records
    (``extra_metadata/symphony.json``), which makes a cold discovery of it cheaper; what would fail that
    build raises too: `ManifestError` for a manifest, `EntryPointError` for a malformed entry point."""
    stem = f"{name.replace('-', '_')}-{version}"
    info = f"{stem}.dist-info"
    metadata = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        *([f"Requires-Python: {requires_python}"] if requires_python else []),
        *(f"Requires-Dist: {requirement}" for requirement in requires),
    ]
    contents = {
        path: text.encode() if isinstance(text, str) else text for path, text in (files or {}).items()
    }
    contents[f"{info}/METADATA"] = ("\n".join(metadata) + "\n\n").encode()
    contents[f"{info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: {GENERATOR}\nRoot-Is-Purelib: true\nTag: py3-none-any\n".encode()
    )
    if entry_points:
        contents[f"{info}/entry_points.txt"] = "\n".join(
            f"[{group}]\n" + "".join(f"{key} = {value}\n" for key, value in points.items())
            for group, points in entry_points.items()
        ).encode()
    if recorded:
        from symphony_core._authoring._recording import record_manifests
        from symphony_core._catalog._recorded import RECORDED_FILE
        from symphony_core._model._kinds import MANIFEST_FILE

        manifests = {path: data for path, data in contents.items() if path.endswith(f"/{MANIFEST_FILE}")}
        copy = record_manifests(
            entry_points or {}, manifests, version=version, requires_python=requires_python, distribution=name
        )
        if copy is not None:
            contents[f"{info}/{RECORDED_FILE}"] = copy
    if not wheel:
        contents[f"{info}/INSTALLER"] = f"{GENERATOR}\n".encode()
    rows = [f"{path},sha256={_digest(data)},{len(data)}" for path, data in contents.items()]
    contents[f"{info}/RECORD"] = ("\n".join([*rows, f"{info}/RECORD,,"]) + "\n").encode()
    if wheel:
        archive_path = folder / f"{stem}-py3-none-any.whl"
        with zipfile.ZipFile(archive_path, "w", zipfile.ZIP_DEFLATED) as archive:
            for relative, data in contents.items():
                archive.writestr(relative, data)
        return archive_path
    for relative, data in contents.items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return folder / info


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
