"""Where a key is in a TOML file, for messages that name a line: a manifest field such as
``permissions[0].reason``, or an entry point under ``[project.entry-points."group"]``."""

from __future__ import annotations

import re
from collections.abc import Iterable

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")


def parse_location(text: str) -> tuple[str | int, ...]:
    """``permissions[0].reason`` as ``("permissions", 0, "reason")``."""
    parts: list[str | int] = []
    for token in re.findall(r"[^.\[\]]+|\[\d+\]", text):
        parts.append(int(token[1:-1]) if token.startswith("[") else token)
    return tuple(parts)


def format_location(loc: Iterable[str | int]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _key_pattern(key: str) -> re.Pattern[str]:
    return re.compile(rf"^\s*(?:{re.escape(key)}|\"{re.escape(key)}\"|'{re.escape(key)}')\s*[=.]")


def line_of_key(text: str, loc: tuple[str | int, ...]) -> int | None:
    """The line of the key at ``loc`` (or of the table that holds it), or None if it cannot be found."""
    lines = text.splitlines()
    headers: list[tuple[int, tuple[str, ...], int | None]] = []
    counts: dict[tuple[str, ...], int] = {}
    for number, line in enumerate(lines, start=1):
        match = _HEADER.match(line)
        if match:
            path = tuple(part.strip().strip("\"'") for part in match.group(2).split("."))
            if match.group(1) == "[[":
                index = counts.get(path, 0)
                counts[path] = index + 1
                headers.append((number, path, index))
            else:
                headers.append((number, path, None))
    best: tuple[int, int] | None = None  # (header line, how many parts of loc it covers)
    for number, path, position in headers:
        table: tuple[str | int, ...] = (*path, position) if position is not None else path
        if tuple(loc[: len(table)]) == table and (best is None or len(table) >= best[1]):
            best = (number, len(table))
    start, consumed = best if best is not None else (0, 0)
    rest = [part for part in loc[consumed:] if isinstance(part, str)]
    end = next((number for number, _, _ in headers if number > start), len(lines) + 1)
    if rest:
        pattern = _key_pattern(rest[0])
        for number in range(start + 1, end):
            if pattern.match(lines[number - 1]):
                return number
    return start or None


def line_of_entry(text: str, group: str, name: str) -> int | None:
    lines = text.splitlines()
    table = None
    for number, line in enumerate(lines, start=1):
        match = _HEADER.match(line)
        if match:
            table = match.group(2).replace(" ", "")
            continue
        if table in (f'project.entry-points."{group}"', f"project.entry-points.'{group}'") and _key_pattern(
            name
        ).match(line):
            return number
    return None
