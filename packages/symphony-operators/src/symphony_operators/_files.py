"""Reading and writing files through the extension's permissions: scans and atomic sinks.

polars opens files in native code, where the in-process guard cannot see it. These helpers therefore
expand globs themselves, resolve symlinks, and ask the core (`symphony_core.check_access`) about every
concrete file before polars gets it, so a glob or a symlink that leads outside the granted paths is
refused with `PermissionDenied`. Outside extension code (a host, a script) every path is allowed.

Sinks are atomic: each output is written to a hidden temporary file in the same folder and moved over
the target with ``os.replace`` only when the whole run succeeded. A failed run leaves every target as it
was. Writing therefore needs ``fs.write`` on the target's folder, not only on the file.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl

from symphony_core import GuardDenied, check_access

from ._errors import BadData

Format = Literal["csv", "parquet", "ndjson", "ipc"]
"""The file formats the helpers read and write."""

Engine = Literal["auto", "in-memory", "streaming"]
"""Which polars engine runs a query: ``in-memory`` or ``streaming`` (batches; bounded memory), or ``auto``."""

IfExists = Literal["replace", "fail"]
"""What writing a file does when one is there already: ``replace`` it (atomically), or ``fail``."""

IF_EXISTS: tuple[IfExists, ...] = ("replace", "fail")

FORMATS: tuple[Format, ...] = ("csv", "parquet", "ndjson", "ipc")
_SUFFIXES: dict[str, Format] = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".ipc": "ipc",
    ".arrow": "ipc",
    ".feather": "ipc",
}
_SCANS: dict[str, Callable[..., pl.LazyFrame]] = {
    "csv": pl.scan_csv,
    "parquet": pl.scan_parquet,
    "ndjson": pl.scan_ndjson,
    "ipc": pl.scan_ipc,
}
TEXT_FORMATS = ("csv", "ndjson")


def format_of(path: str | os.PathLike[str], given: str | None = None) -> Format:
    """The format ``given``, or the one ``path``'s suffix says; ``ValueError`` if neither says."""
    if given is not None:
        if given not in FORMATS:
            raise ValueError(f"unknown format '{given}': use one of {', '.join(FORMATS)}")
        return given
    suffix = Path(os.fspath(path).replace("*", "x")).suffix.lower()
    if suffix not in _SUFFIXES:
        raise ValueError(
            f"cannot tell the format of '{os.fspath(path)}' from its suffix: give format = one of {', '.join(FORMATS)}"
        )
    return _SUFFIXES[suffix]


def expand(pattern: str | os.PathLike[str]) -> list[Path]:
    """Every file ``pattern`` names, symlinks resolved, each checked as readable by the running extension.

    ``pattern`` is a file, a folder (its files, recursively) or a glob (``*``, ``?``, ``[...]``, and
    ``**`` across folders). Hidden files are left out of folders and globs. Raises `PermissionDenied`
    for a file outside the granted paths (naming the symlink it came through), `BadData` when nothing
    matches.
    """
    text = os.fspath(pattern)
    if glob.has_magic(text):
        named = sorted(glob.glob(text, recursive=True))
    elif os.path.isdir(text):
        named = sorted(str(p) for p in Path(text).rglob("*") if not _hidden(p.relative_to(text)))
    else:
        named = [text]
    files = []
    for name in named:
        real = os.path.realpath(name)
        if os.path.isdir(real):
            continue
        allow("fs.read", real, named=name, pattern=text)  # before looking: a refusal says nothing of the file
        if os.path.isfile(real):
            files.append(Path(real))
    if not files:
        what = "no file matches" if glob.has_magic(text) or os.path.isdir(text) else "there is no file"
        raise BadData(f"{what} {text}", file=text, hint="check the path, or that the files were written")
    return files


def allow(kind: str, real: str, *, named: str, pattern: str) -> None:
    """Raise `PermissionDenied` (the core's ``GuardDenied``) unless the running extension may ``kind`` ``real``."""
    try:
        check_access(kind, real)
    except GuardDenied as exc:
        via = f" through the symlink {named}" if os.path.abspath(named) != real else ""
        asked = f" (asked for {pattern})" if pattern != named else ""
        error = GuardDenied(
            f"{kind} of {real}{via}{asked} was not granted: it is outside the paths this extension may use",
            extension=exc.extension,
            hint=exc.hint,
        )
        error.errno = errno.EACCES
        raise error from None


def scan(source: str | os.PathLike[str], *, format: str | None = None, **options: Any) -> pl.LazyFrame:
    """A lazy scan of the files ``source`` names (file, folder or glob), each checked against the grants.

    ``options`` go to polars' ``scan_<format>`` as they are.
    """
    files = expand(source)
    try:
        found = format_of(source, format)
    except ValueError:  # a folder, or a name without a suffix: the files' own suffix says
        found = format_of(files[0])
    return scan_files(files, found, options)


def scan_csv(source: str | os.PathLike[str], **options: Any) -> pl.LazyFrame:
    """`scan` for CSV files."""
    return scan(source, format="csv", **options)


def scan_parquet(source: str | os.PathLike[str], **options: Any) -> pl.LazyFrame:
    """`scan` for Parquet files."""
    return scan(source, format="parquet", **options)


def scan_ndjson(source: str | os.PathLike[str], **options: Any) -> pl.LazyFrame:
    """`scan` for newline-delimited JSON files."""
    return scan(source, format="ndjson", **options)


def scan_ipc(source: str | os.PathLike[str], **options: Any) -> pl.LazyFrame:
    """`scan` for Arrow IPC (Feather v2) files."""
    return scan(source, format="ipc", **options)


def scan_files(files: Sequence[Path], format: Format, options: Mapping[str, Any]) -> pl.LazyFrame:
    """polars' scan of files already expanded and checked (no globbing of their names)."""
    paths = [str(file) for file in files]
    if format != "ndjson":  # scan_ndjson takes no `glob`; a list of paths is not globbed there
        options = {"glob": False, **options}
    return _SCANS[format](paths, **options)


@dataclass(frozen=True)
class Target:
    """One output file: where, in which format, with which polars sink options."""

    path: Path
    format: Format
    options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, path: str | os.PathLike[str], format: str | None = None, **options: Any) -> Target:
        """The target for ``path``, its format from ``format`` or the suffix."""
        return cls(Path(os.path.abspath(path)), format_of(path, format), options)


def sink(
    frame: pl.LazyFrame,
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    engine: Engine = "auto",
    **options: Any,
) -> Path:
    """Run ``frame``'s query once and write its result to ``path`` atomically; return the path.

    ``options`` go to polars' ``sink_<format>``. Needs ``fs.write`` on the folder of ``path``.
    """
    (written,) = sink_all([(frame, Target.of(path, format, **options))], engine=engine)
    return written


def sink_all(outputs: Sequence[tuple[pl.LazyFrame, Target]], *, engine: Engine = "auto") -> list[Path]:
    """Write several queries in one run (``pl.collect_all``: shared upstream work runs once), atomically.

    Each result goes to a temporary file beside its target; only when every query succeeded are the
    temporary files moved over their targets. On any failure every temporary file is removed and the
    targets are untouched.
    """
    with _staged([target for _, target in outputs]) as staged:
        if engine == "in-memory":
            # polars' in-memory engine does not share work between lazy sinks, but does between frames
            frames = pl.collect_all([frame for frame, _ in outputs], engine=engine)
            for result, temp, (_, target) in zip(frames, staged, outputs, strict=True):
                getattr(result, f"write_{target.format}")(str(temp), **target.options)
        else:
            queries = [
                _sink_query(frame, temp, target)
                for (frame, target), temp in zip(outputs, staged, strict=True)
            ]
            pl.collect_all(queries, engine=engine)
        for temp, (_, target) in zip(staged, outputs, strict=True):
            place(temp, target.path)
    return [target.path for _, target in outputs]


def stream(frame: pl.LazyFrame, target: Target, *, if_exists: IfExists = "replace") -> Path:
    """Run ``frame``'s query on polars' streaming engine, writing its rows to ``target`` as they are made
    (to a temporary file beside it, moved into place when the query finished); return the path."""
    with _staged([target]) as (temp,):
        pl.collect_all([_sink_query(frame, temp, target)], engine="streaming")
        place(temp, target.path, if_exists)
    return target.path


def place(temp: Path, path: Path, if_exists: IfExists = "replace") -> None:
    """Move a finished ``temp`` file to ``path`` in one step: over a file there (``replace``), or
    `FileExistsError` if one is there (``fail``; checked and moved at once, so no file is lost to a race)."""
    if if_exists == "replace":
        os.replace(temp, path)
        return
    os.link(temp, path)  # refuses an existing path, atomically
    temp.unlink()


@contextlib.contextmanager
def _staged(targets: Sequence[Target]) -> Iterator[list[Path]]:
    """Temporary files beside each target, removed unless they were moved into place."""
    staged: list[Path] = []
    try:
        for target in targets:
            folder = target.path.parent
            allow("fs.write", os.path.realpath(target.path), named=str(target.path), pattern=str(target.path))
            allow("fs.write", os.path.realpath(folder), named=str(folder), pattern=str(target.path))
            folder.mkdir(parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(prefix=f".{target.path.name}.", suffix=".partial", dir=folder)
            os.close(handle)
            staged.append(Path(name))
        yield staged
    finally:
        for temp in staged:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()


def _sink_query(frame: pl.LazyFrame, temp: Path, target: Target) -> pl.LazyFrame:
    method = getattr(frame, f"sink_{target.format}")
    query: pl.LazyFrame = method(str(temp), lazy=True, **target.options)
    return query


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)
