"""Read a distribution's ``entry_points.txt``: ``[group]`` sections of ``name = module:attr`` lines.

Read by hand rather than with ``configparser`` (what ``importlib.metadata`` uses): discovery reads one per
installed distribution, and this reader parses only the lines of the groups it is asked for.
"""

from __future__ import annotations

from collections.abc import Container, Iterator


def read_entry_points(text: str, groups: Container[str] | None = None) -> Iterator[tuple[str, str, str, int]]:
    """Yield ``(group, name, value, line)`` for each entry point in ``text`` (``line`` counts from 1), in
    the file's order; with ``groups``, only the entry points of those groups. A line without ``=`` has the
    value ``""``; comments (``#``, ``;``) and lines before the first ``[group]`` are skipped."""
    wanted = False
    group = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line[0] == "[" and line[-1] == "]":
            group = line[1:-1].strip()
            wanted = bool(group) and (groups is None or group in groups)
        elif wanted:
            name, sep, value = line.partition("=")
            yield group, name.strip(), value.strip() if sep else "", number
