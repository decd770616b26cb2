"""Each distribution as PyPI shows it: `twine check --strict`, and its README rendered with no relative link.

PyPI renders a Markdown long description with readme_renderer (GitHub-flavoured Markdown) and shows it
away from the repository, where a relative link or image leads nowhere. For each package this builds the
sdist and wheel, runs `twine check --strict` on them (with readme_renderer's Markdown support installed,
so the description is really rendered), reads the description out of the wheel's METADATA (what PyPI
receives), renders it as PyPI does, and fails when it does not render, renders empty, or holds a link or
image that is not an absolute http(s) URL or a fragment of the same page.
"""

from __future__ import annotations

import email
import zipfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from .commands import clean_env, find_tool, find_uv, run
from .errors import ReleaseError
from .workspace import load_packages


@dataclass
class ReadmeReport:
    """The wheels whose README was rendered, and every problem found."""

    checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class LinkCollector(HTMLParser):
    """Collect the targets of every link and image in a rendered page."""

    def __init__(self) -> None:
        super().__init__()
        self.targets: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Keep an anchor's href and an image's src."""
        wanted = {"a": "href", "img": "src"}.get(tag)
        self.targets += [value for name, value in attrs if name == wanted and value is not None]


def render(description: str, content_type: str) -> str | None:
    """Render a long description as PyPI does; None when it does not render."""
    try:
        from readme_renderer import markdown, rst
    except ImportError:
        raise ReleaseError("readme_renderer is not installed: run this through `tox run -e readme`") from None
    if content_type.startswith("text/markdown"):
        if not markdown.variants:  # without its `md` extra readme_renderer renders no Markdown at all
            raise ReleaseError("readme_renderer has no Markdown renderer: install `readme-renderer[md]`")
        variant = "CommonMark" if "variant=CommonMark" in content_type else "GFM"
        return markdown.render(description, variant=variant)
    if content_type.startswith("text/x-rst"):
        return rst.render(description)
    raise ReleaseError(f"unexpected long description content type {content_type!r}")


def check_description(wheel: Path) -> list[str]:
    """List what is wrong with the README a wheel carries, as PyPI would show it."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(archive.read(name))
    description = metadata.get_payload()
    content_type = metadata.get("Description-Content-Type", "text/x-rst")
    if not isinstance(description, str) or not description.strip():
        return [f"{wheel.name} has no long description"]
    html = render(description, content_type)
    if html is None or not html.strip():
        return [f"{wheel.name}: its README ({content_type}) does not render as PyPI renders it"]
    links = LinkCollector()
    links.feed(html)
    return [
        f"{wheel.name}: its README links to {target!r}, which leads nowhere on PyPI: use an absolute URL"
        for target in links.targets
        if not target.startswith(("https://", "http://", "#"))
    ]


def check_readmes(root: Path, workdir: Path) -> ReadmeReport:
    """Build each package's sdist and wheel into workdir, twine-check them and check the README they carry."""
    report = ReadmeReport()
    built = []
    for package in load_packages(root):
        dest = workdir / package.folder
        build = [*find_uv(), "build", "--quiet", "--sdist", "--wheel", "--out-dir", dest, package.path]
        run(build, cwd=root, env=clean_env())
        built += sorted(p for p in dest.iterdir() if p.name.endswith((".whl", ".tar.gz")))
        wheel = next(dest.glob("*.whl"))
        report.checked.append(wheel.name)
        report.problems += check_description(wheel)
    twine = run([find_tool("twine"), "check", "--strict", *built], cwd=root, check=False)
    if twine.returncode:
        report.problems.append(f"twine check --strict failed:\n{twine.stdout}{twine.stderr}")
    return report
