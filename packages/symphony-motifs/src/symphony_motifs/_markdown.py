"""Text from extensions and catalogs as something a page may show: Markdown rendered to safe HTML.

A README, a config field's description or a permission's reason is written by whoever published the
extension. It is rendered by markdown-it-py with raw HTML turned off (an author's ``<script>`` or
``<img onerror>`` comes out as text) and its output is sanitized again by nh3 (Ammonia) with a short
list of tags and attributes, so a page can insert it as HTML. Links keep only http, https and mailto
URLs and open nothing in the page's own context; images are dropped (the page's policy would refuse
them anyway). Control and bidi characters, which can make a text read as another, are shown as escapes.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

MAX_SOURCE = 200_000
"""Characters of a text rendered; the rest is left out, and the page says so."""

TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "div", "dl", "dt", "em", "h1", "h2",
        "h3", "h4", "h5", "h6", "hr", "i", "kbd", "li", "ol", "p", "pre", "s", "span", "strong", "sub",
        "sup", "table", "tbody", "td", "th", "thead", "tr", "ul",
    }
)  # fmt: skip
ATTRIBUTES = {"a": {"href", "title"}, "th": {"align"}, "td": {"align"}, "ol": {"start"}}
SCHEMES = frozenset({"http", "https", "mailto"})

_INVISIBLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


def visible(text: str) -> str:
    """``text`` with control, zero-width and bidi characters written as ``\\uXXXX``: what it says is
    what a person sees."""
    return _INVISIBLE.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


def render_markdown(text: str, *, inline: bool = False) -> str:
    """Markdown from an untrusted author as sanitized HTML (a paragraph's inner HTML with ``inline``)."""
    import nh3

    source = visible(text[:MAX_SOURCE])
    parser = _parser()
    rendered = parser.renderInline(source) if inline else parser.render(source)
    if len(text) > MAX_SOURCE:
        rendered += "<p><em>… (the rest is not shown: it is too long)</em></p>"
    return nh3.clean(
        rendered,
        tags=set(TAGS),
        attributes={tag: set(names) for tag, names in ATTRIBUTES.items()},
        url_schemes=set(SCHEMES),
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def render_text(text: str) -> str:
    """Plain text from an untrusted author as HTML: escaped, in a ``pre``."""
    source = visible(text[:MAX_SOURCE])
    more = "\n… (the rest is not shown: it is too long)" if len(text) > MAX_SOURCE else ""
    return f'<pre class="plain">{html.escape(source + more)}</pre>'


def render_readme(text: str, content_type: str) -> str:
    """A README as safe HTML: Markdown rendered, any other type shown as text."""
    if content_type.split(";")[0].strip().lower() == "text/markdown":
        return render_markdown(text)
    return render_text(text)


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    from markdown_it import MarkdownIt

    # CommonMark with tables and strikethrough; "html": False turns every tag an author wrote into text.
    return MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(
        ["table", "strikethrough"]
    )
