"""The ``entry-points`` check: import each entry point and its config model in a separate Python, never
in this one, and report what it found."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from symphony_core._model._kinds import KINDS

from ._report import Finding, Report
from ._sources import Source, Wheel

PROBE_TIMEOUT = 120.0
NATIVE_SUFFIXES = (".so", ".pyd", ".dylib")


PROBE = r"""
import json, pkgutil, sys, traceback
root, requests = sys.argv[1], json.loads(sys.argv[2])
sys.path.insert(0, root)
results = []
for request in requests:
    result = {"id": request["id"]}
    results.append(result)
    try:
        target = pkgutil.resolve_name(f"{request['module']}:{request['attr']}")
    except BaseException as exc:
        result["error"] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        continue
    from symphony_core import Extension
    if not (isinstance(target, type) and issubclass(target, Extension)):
        result["not_extension"] = repr(target)[:200]
    else:
        result["kind"] = getattr(target, "kind", "")
        result["where"] = f"{target.__module__}.{target.__qualname__}"
    reference = request.get("config")
    if not reference:
        continue
    try:
        model = pkgutil.resolve_name(reference)
    except BaseException as exc:
        result["config_error"] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        continue
    from symphony_core import Config, config_schema
    if not (isinstance(model, type) and issubclass(model, Config)):
        result["config_error"] = f"{reference} is {model!r}, not a Config model"
        continue
    try:
        config_schema(model)
    except BaseException as exc:
        result["config_error"] = f"its JSON Schema cannot be made: {type(exc).__name__}: {exc}"
        continue
    try:
        model()
    except BaseException as exc:
        result["config_defaults"] = str(exc).splitlines()[0]
print(json.dumps(results))
"""


@contextmanager
def _importable(source: Source) -> Iterator[str]:
    """The ``sys.path`` entry to import the extension from: the wheel itself when it holds only Python
    (zipimport), else a temporary copy of its contents (compiled modules cannot be imported from a zip)."""
    if not isinstance(source, Wheel) or not any(name.endswith(NATIVE_SUFFIXES) for name in source.names):
        yield source.import_root
        return
    with tempfile.TemporaryDirectory(prefix="symphony-validate-") as folder:
        source.zip.extractall(folder)
        yield folder


def probe_entry_points(source: Source, probes: list[dict[str, Any]], report: Report) -> None:
    """Import each entry point and config model in a separate Python, with the extension's root first on its path."""
    requests = [
        {key: probe[key] for key in ("id", "module", "attr", "config") if key in probe} for probe in probes
    ]
    try:
        with _importable(source) as root:
            done = subprocess.run(
                [sys.executable, "-I", "-c", PROBE, root, json.dumps(requests)],
                capture_output=True,
                text=True,
                timeout=PROBE_TIMEOUT,
                check=False,
            )
    except subprocess.TimeoutExpired:
        report.findings.append(
            Finding(
                "entry-points",
                "error",
                f"importing the extension took longer than {PROBE_TIMEOUT:g} s",
                None,
                None,
                None,
                "importing the package must not do heavy work; do it in activate()",
            )
        )
        return
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        report.findings.append(
            Finding(
                "entry-points",
                "error",
                f"importing the extension ended the Python process: {last}",
                None,
                None,
                None,
                "importing the package must not exit or crash the interpreter",
            )
        )
        return
    for probe, result in zip(probes, json.loads(done.stdout), strict=True):
        ep = (probe["file"], probe["line"], probe["field"])
        kind = probe["kind"]
        if "error" in result:
            report.findings.append(
                Finding(
                    "entry-points",
                    "error",
                    f"'{probe['module']}:{probe['attr']}' cannot be imported: {result['error']}",
                    *ep,
                    "fix the import error (is every dependency declared and installed?)",
                )
            )
        elif "not_extension" in result:
            package = KINDS[kind].package.replace("-", "_")
            report.findings.append(
                Finding(
                    "entry-points",
                    "error",
                    f"'{probe['module']}:{probe['attr']}' is {result['not_extension']}, not an "
                    f"extension class",
                    *ep,
                    f"point the entry point at a subclass of {package}'s base class",
                )
            )
        elif result.get("kind") != kind:
            report.findings.append(
                Finding(
                    "entry-points",
                    "error",
                    f"{result['where']} is an extension of kind '{result.get('kind') or '?'}', "
                    f"registered as a {kind}",
                    *ep,
                    f"derive it from the {KINDS[kind].package} base class",
                )
            )
        config = probe.get("config")
        where = (probe.get("manifest_file"), probe.get("config_line"), "config")
        if "config_error" in result:
            report.findings.append(
                Finding(
                    "entry-points",
                    "error",
                    f"the config model '{config}' does not load: {result['config_error']}",
                    *where,
                    "name a Config subclass as module:Class, importable from the package",
                )
            )
        elif "config_defaults" in result:
            report.findings.append(
                Finding(
                    "entry-points",
                    "warning",
                    f"the config model '{config}' has no valid defaults "
                    f"({result['config_defaults']}): a host must be given values before it can start the extension",
                    *where,
                    "give every field a default if the extension can run without being configured",
                )
            )
