"""Text that could mislead the person asked to consent: control, bidi and invisible characters, mixed scripts.

What a manifest shows a person (its name, summary and reasons, the scopes of its requests) must read as
what it is. Two degrees:

- refused, anywhere in that text: control characters (NUL, newlines, escapes a terminal obeys), line and
  paragraph separators, and the bidi controls that reorder text on screen (embeddings, overrides,
  isolates: the "Trojan Source" characters). A one-line text never needs them. In a scope (a path, a
  host, a command, a variable name) every invisible character is refused too.
- warned about, in the consent summary: invisible characters some scripts need in prose (zero-width
  joiners, direction marks, fillers) in a name or a reason; a name that mixes scripts not normally
  mixed (Latin with Cyrillic or Greek, whose ``a`` and ``o`` are other letters that look the same); letters in compatibility
  forms that imitate others (fullwidth or mathematical letters).

Extension ids (and so publishers) are ASCII, so none of this can reach them. Only the standard
library's ``unicodedata`` is used: a letter's script is the first word of its Unicode name (``CYRILLIC
SMALL LETTER A``), which is exact for the scripts that imitate Latin.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_BIDI_CONTROLS = frozenset(map(chr, (*range(0x202A, 0x202F), *range(0x2066, 0x206A))))
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
# Letters and symbols that show as blank space without being one (the Hangul fillers, a blank braille cell).
_BLANKS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
# Scripts that are written together (Unicode TR 39's "highly restrictive" sets); any other mix is suspect.
_WRITTEN_TOGETHER = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)
_SCRIPT_ALIASES = {"CJK": "HAN", "IDEOGRAPHIC": "HAN"}
_SHOWN = 3  # characters named in one warning


@dataclass(frozen=True, slots=True)
class Suspicion:
    """Why a text may not read as what it is: where, a code for programs, and a message for people."""

    field: str
    """The manifest field, as in a validation error (``name``, ``permissions[0].reason``)."""
    code: str
    """``invisible``, ``mixed-scripts`` or ``look-alike``."""
    message: str

    def as_json(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}


def refused_character(text: str, *, scope: bool = False) -> str | None:
    """The first character that may not appear in ``text``, described (``U+202E RIGHT-TO-LEFT OVERRIDE``).

    With ``scope``, invisible characters are refused too: a path or a host name never needs one.
    """
    if text.isascii() and text.isprintable():  # as almost every manifest's text: nothing to look up
        return None
    for char in text:
        if char in _BIDI_CONTROLS or unicodedata.category(char) in _REFUSED_CATEGORIES:
            return describe(char)
        if scope and _invisible(char):
            return describe(char)
    return None


def suspicions(field: str, text: str, *, name: bool = False) -> list[Suspicion]:
    """What in ``text`` a person should be warned about; with ``name``, also mixed scripts and look-alikes."""
    found = []
    invisible = [char for char in text if _invisible(char)]
    if invisible:
        found.append(Suspicion(field, "invisible", f"holds invisible characters: {_listed(invisible)}"))
    if not name:
        return found
    scripts: dict[str, list[str]] = {}
    imitations = []
    for char in text:
        if not unicodedata.category(char).startswith("L") or char in _BLANKS:
            continue
        folded = unicodedata.normalize("NFKC", char)
        if folded != char:
            imitations.append(char)
        for part in folded:
            script = _script(part)
            if script is not None:
                scripts.setdefault(script, []).append(char)
    if len(scripts) > 1 and not any(set(scripts) <= together for together in _WRITTEN_TOGETHER):
        counts = Counter({script: len(chars) for script, chars in scripts.items()})
        odd = [char for script, _ in counts.most_common()[1:] for char in scripts[script]]
        names = " and ".join(script.title() for script in sorted(scripts))
        message = f"mixes {names} letters, which can imitate another name: {_listed(odd)}"
        found.append(Suspicion(field, "mixed-scripts", message))
    if imitations:
        found.append(
            Suspicion(field, "look-alike", f"has letters that imitate others: {_listed(imitations)}")
        )
    return found


def describe(char: str) -> str:
    """A character as a person can identify it: its code point and Unicode name."""
    return f"U+{ord(char):04X} {unicodedata.name(char, 'CONTROL CHARACTER')}"


def _invisible(char: str) -> bool:
    return unicodedata.category(char) == "Cf" or char in _BLANKS


def _script(char: str) -> str | None:
    first = unicodedata.name(char, "").split(" ", 1)[0]
    if not first or first == "MODIFIER":
        return None
    return _SCRIPT_ALIASES.get(first, first)


def _listed(chars: list[str]) -> str:
    unique = list(dict.fromkeys(chars))
    shown = ", ".join(
        describe(char) if _invisible(char) else f"'{char}' {describe(char)}" for char in unique[:_SHOWN]
    )
    return shown + (f" and {len(unique) - _SHOWN} more" if len(unique) > _SHOWN else "")


def manifest_suspicions(name: str | None, requested: Sequence[Mapping[str, Any]]) -> tuple[Suspicion, ...]:
    """What a consent summary should warn about in the text it shows: the name and each reason."""
    found = suspicions("name", name, name=True) if name else []
    for index, permission in enumerate(requested):
        found += suspicions(f"permissions[{index}].reason", str(permission.get("reason", "")))
    return tuple(found)
