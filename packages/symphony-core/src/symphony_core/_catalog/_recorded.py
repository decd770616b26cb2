"""The copy of a distribution's manifests that its build records in its metadata, for a faster cold scan.

A wheel built with Symphony's build hook (or written by `write_distribution` with ``recorded=True``)
carries ``<name>.dist-info/extra_metadata/symphony.json``: for each of its entry points in a Symphony
group, the entry point, the path of the manifest the build read, that manifest's hash as ``RECORD``
writes it, and the manifest as the build validated it; and the distribution's ``Requires-Python``.
With it, a cold scan reads that one small file instead of finding the package, parsing its TOML and
reading ``METADATA``.

The copy is only a shortcut, never an authority. A scan takes an extension's entry from it only when the
entry point matches ``entry_points.txt`` and the manifest's hash matches the one the installer wrote in
``RECORD`` for the file that is installed; then the manifest is validated again, as if read from its TOML
(a distribution can write anything in its metadata). Anything else (no copy, another format, a stale or
malformed one) and the scan reads the manifest itself, as for a distribution built without the hook.
"""

from __future__ import annotations

from typing import Any

import msgspec

RECORDED_FILE = "extra_metadata/symphony.json"
"""Where the copy lies, relative to the ``.dist-info`` folder (hatchling's place for extra metadata)."""
RECORDED_FORMAT = 1


class RecordedExtension(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One entry point of the distribution, with its manifest as the build read and validated it."""

    group: str
    name: str
    value: str
    manifest_file: str
    """The manifest's path as ``RECORD`` lists it: relative to the folder that holds the ``.dist-info``."""
    manifest_hash: str
    """The manifest's hash as ``RECORD`` writes it: ``sha256=`` and the URL-safe base64 digest."""
    manifest: dict[str, Any]


class Recorded(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The whole copy."""

    format: int
    requires_python: str | None
    extensions: tuple[RecordedExtension, ...]


_DECODER = msgspec.json.Decoder(Recorded)


def record_hash(data: bytes) -> str:
    """A file's hash as ``RECORD`` writes it."""
    import base64  # here: only a cold scan hashes (hashlib's import costs a warm start about 3 ms)
    import hashlib

    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def encode_recorded(requires_python: str | None, extensions: list[RecordedExtension]) -> bytes:
    """The copy's bytes."""
    return msgspec.json.encode(Recorded(RECORDED_FORMAT, requires_python, tuple(extensions)))


def decode_recorded(content: bytes) -> Recorded | None:
    """The copy, or None when it is of another format or malformed (the scan then reads the manifests)."""
    try:
        recorded = _DECODER.decode(content)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return recorded if recorded.format == RECORDED_FORMAT else None
