"""Click tracking and the open pixel: rewriting the links of a message.

Guarantees:

- :func:`rewrite_html` rewrites the URL of every ``href`` attribute (as the
  pattern given spells it: :data:`HREF` lower case, :data:`HREF_ANY_CASE` any)
  to an ``http(s)://`` URL (not ``data-href=``, not text); the rewriter gets the URL
  unescaped, its result is escaped, and the attribute keeps its spelling and
  quotes (an unquoted value is quoted when the new one holds white space);
- :func:`rewrite_text` rewrites every ``http(s)://`` URL in text, leaving
  trailing ``.,;:!?`` outside it;
- :func:`memo_link` calls the rewriter once per distinct URL, and never for
  the one URL to skip (the unsubscribe link);
- :func:`replace_static_links` finds at compile time the links written
  literally in a template that every rendering would show at the same place,
  and puts a template variable in their place; :func:`untracked` then keeps the
  per-message search away from the links already tracked that way;
- :func:`add_open_pixel` puts a hidden 1x1 image before the last ``</body>``,
  or at the end when there is none.

Pure: standard library only.
"""

from __future__ import annotations

import html as htmllib
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from tidings.domain.templates.protection import JINJA

__all__ = [
    "HREF",
    "HREF_ANY_CASE",
    "TEXT_URL",
    "LinkRewriter",
    "StaticLink",
    "add_open_pixel",
    "memo_link",
    "replace_static_links",
    "rewrite_html",
    "rewrite_text",
    "tracked_value",
    "untracked",
]

LinkRewriter = Callable[[str], str]

# Case-sensitive patterns that start with a literal: the regex engine then jumps from
# candidate to candidate (about 30 times faster than a leading look-behind or re.I).
HREF = re.compile(r"""href\s*=\s*(?:"(https?://[^"]*)"|'(https?://[^']*)'|(https?://[^\s"'>]+))""")
HREF_ANY_CASE = re.compile(HREF.pattern, re.I)
TEXT_URL = re.compile(r"""https?://[^\s<>"'()\[\]]+""")
_TRAILING = ".,;:!?"
_URL_STOP = frozenset(" \t\n\r\f\v<>\"'()[]")  # characters that end a TEXT_URL
_BEFORE_ATTRIBUTE = frozenset(" \t\n\r\f\"'")


def memo_link(link: LinkRewriter, skip: str | None) -> Callable[[str], str]:
    """``link``, called once per distinct URL; ``skip`` is returned as it is."""
    memo: dict[str, str] = {}

    def rewrite(url: str) -> str:
        if url == skip:
            return url
        new = memo.get(url)
        if new is None:
            new = memo[url] = link(url)
        return new

    return rewrite


def _href_value(m: re.Match[str]) -> int:
    """The group of an :data:`HREF` match holding the URL (1: "", 2: '', 3: unquoted)."""
    return 1 if m.start(1) >= 0 else 2 if m.start(2) >= 0 else 3


def tracked_value(new: str, group: int) -> str:
    """A rewritten URL as the value of an href written with quotes ``group``."""
    value = htmllib.escape(new)
    return f'"{value}"' if group == 3 and any(c.isspace() for c in value) else value


def rewrite_html(html: str, rewrite: Callable[[str], str], pattern: re.Pattern[str]) -> str:
    """Rewrite each link's URL; the attribute keeps its spelling and quotes."""
    def repl(m: re.Match[str]) -> str:
        if html[m.start() - 1] not in _BEFORE_ATTRIBUTE:  # data-href=, or text
            return m.group()
        group = _href_value(m)
        value = m.group(group)
        url = htmllib.unescape(value) if "&" in value else value
        at, end = m.start(group) - m.start(), m.end(group) - m.start()
        whole = m.group()
        return whole[:at] + tracked_value(rewrite(url), group) + whole[end:]

    return pattern.sub(repl, html)


def rewrite_text(text: str, rewrite: Callable[[str], str], pattern: re.Pattern[str] = TEXT_URL) -> str:
    """Rewrite each URL in ``text``; trailing punctuation stays outside it."""
    def repl(m: re.Match[str]) -> str:
        url = m.group()
        bare = url.rstrip(_TRAILING)
        return rewrite(bare) + url[len(bare) :]

    return pattern.sub(repl, text)


# Static links. A link written literally in the template, outside any Jinja
# construct, is known at compile time: compile_email puts a template variable in
# its place and render fills it (with the tracked link, or the original text),
# so the per-message regular-expression pass only meets links that Jinja made.
# A candidate is static only when searching any rendering would find the same
# match: it starts after a character of the same literal run that ends any URL
# before it, and ends inside the run. (An href whose quoted value is never closed
# can swallow the next link when searching; such HTML is not held to this.)
_STATIC_NAME = "__tidings_link_{}"


@dataclass(frozen=True)
class StaticLink:
    name: str  # the template variable that replaced it
    url: str  # unescaped: what the link rewriter gets
    original: str  # the replaced source text
    quotes: int  # the value of an href: 1 "", 2 '', 3 unquoted; or 0, a URL in text


def _kept(run: str, i: int) -> bool:
    """Whether ``run[i]`` is in every rendering: it exists, and it is not white
    space that a ``{%-`` or ``-%}`` next to the run could strip."""
    if not 0 <= i < len(run):
        return False
    return not run[i].isspace() or bool(run[:i].strip() and run[i:].strip())


def _literal_runs(source: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each stretch of ``source`` outside Jinja constructs."""
    runs, at = [], 0
    for m in JINJA.finditer(source):
        runs.append((at, m.start()))
        at = m.end()
    runs.append((at, len(source)))
    return runs


def replace_static_links(
    source: str, *, html: bool, pattern: re.Pattern[str], first: int
) -> tuple[str, list[StaticLink]]:
    """Replace the static links of ``source``; numbering starts at ``first``."""
    out: list[str] = []
    links: list[StaticLink] = []
    copied = 0
    for start, end in _literal_runs(source):
        run = source[start:end]
        for m in pattern.finditer(run):
            if not (_kept(run, m.start() - 1) or start == m.start() == 0) or not _kept(run, m.end()):
                continue  # Jinja output next to it could belong to the same match
            if html:
                if m.start() == 0 or run[m.start() - 1] not in _BEFORE_ATTRIBUTE:
                    continue
                group = _href_value(m)
                value = m.group(group)
                url = htmllib.unescape(value) if "&" in value else value
                span = (m.start(group), m.end(group))
                quotes = group
            else:
                if m.start() > 0 and run[m.start() - 1] not in _URL_STOP:
                    continue  # a URL from Jinja output could run on into it
                url = m.group().rstrip(_TRAILING)
                span = (m.start(), m.start() + len(url))
                quotes = 0
            name = _STATIC_NAME.format(first + len(links))
            original = run[span[0] : span[1]]
            links.append(StaticLink(name=name, url=url, original=original, quotes=quotes))
            out.append(source[copied : start + span[0]])
            out.append("{{ " + name + " }}")
            copied = start + span[1]
    out.append(source[copied:])
    return "".join(out), links


@lru_cache(maxsize=64)
def untracked(pattern: re.Pattern[str], prefix: str) -> re.Pattern[str]:
    """``pattern`` (:data:`HREF` or :data:`TEXT_URL`) without the URLs that start
    with ``prefix``: links that are tracked already."""
    if pattern.pattern.startswith("https?://") and prefix.startswith("http"):  # text
        # the look-ahead after the literal "http" keeps the engine's fast literal search
        return re.compile(f"http(?!{re.escape(prefix[4:])})" + pattern.pattern[4:], pattern.flags)
    escaped = re.escape(htmllib.escape(prefix))
    return re.compile(pattern.pattern.replace("(https?://", f"(?!{escaped})(https?://"), pattern.flags)


def add_open_pixel(html: str, url: str) -> str:
    """``html`` with a hidden 1x1 image of ``url`` before the last ``</body>``, or at the end."""
    pixel = f'<img src="{htmllib.escape(url)}" width="1" height="1" alt="" style="display:none">'
    at = html.rfind("</body>")
    if at < 0:
        at = html.lower().rfind("</body")
    if at < 0:
        return html + pixel
    return html[:at] + pixel + html[at:]
