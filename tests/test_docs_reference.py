"""The API reference shows only public paths (``symphony_core.Host``, never
``symphony_core._runtime._host.Host``), and the errors it draws are the errors the core has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from symphony_core._model import _errors

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
DIRECTIVE = re.compile(r"^::: *(\S+)", re.MULTILINE)
TREE = re.compile(r"```text\n(SymphonyError\n.*?)```", re.DOTALL)


def test_the_docs_have_reference_pages() -> None:
    assert any(DIRECTIVE.search(page.read_text(encoding="utf-8")) for page in PAGES)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(DOCS)))
def test_a_page_renders_only_public_paths(page: Path) -> None:
    private = [
        path
        for path in DIRECTIVE.findall(page.read_text(encoding="utf-8"))
        if any(part.startswith("_") for part in path.split("."))
    ]
    assert not private, f"{page.relative_to(ROOT)} renders {private}: use the name its package exports"


def test_the_host_reference_draws_the_errors_as_the_errors_module_does() -> None:
    page = TREE.search((DOCS / "reference" / "host.md").read_text(encoding="utf-8"))
    module = TREE.search(_errors.__doc__ or "")
    assert page
    assert module
    assert page.group(1) == module.group(1)
