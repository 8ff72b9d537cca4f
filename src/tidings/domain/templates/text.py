"""HTML to plain text: of a rendered message, or of an HTML template.

:func:`html_to_text` reads rendered HTML. It leaves out ``head``, ``style``,
``script``, ``title``, ``template`` and elements hidden with
``display:none``; puts block elements on their own lines and paragraphs,
headings, quotes, lists, tables, ``<pre>`` and ``<hr>`` apart by a blank line;
keeps the white space of ``<pre>``; writes list items as ``- `` or their number (nested lists
indented), images as their ``alt`` text and links as ``label (url)`` (only the
url without a label, only the label when it is the url, nothing added for
``#`` and ``javascript:`` links, the address for ``mailto:``). Runs of spaces
become one, and there is never more than one blank line in a row.

:func:`text_template_from` does the same to an HTML template that went
through :func:`~tidings.domain.templates.protection.protect` (it knows those
placeholders: ``<!--tj:N-->`` comments and ``tidings-jinja-N-tag`` tokens) and
puts the Jinja back, so the derived text is personalised as the HTML is.
Literal braces come out escaped, so they stay text; statements
(``{% ... %}``) are kept even inside parts left out, so blocks stay balanced.

Pure: standard library only.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

__all__ = ["html_to_text", "text_template_from"]

_SKIP = frozenset({"head", "style", "script", "title", "template"})
_PARAGRAPH = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "ul", "ol", "table", "pre", "hr"}
)
_BLOCK = frozenset(
    {
        "address", "article", "aside", "center", "dd", "div", "dl", "dt", "fieldset",
        "figcaption", "figure", "footer", "form", "header", "li", "main", "nav", "section",
        "tbody", "thead", "tfoot", "tr",
    }
)  # fmt: skip
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)
_HIDDEN = re.compile(r"display\s*:\s*none", re.I)
_SPACES = re.compile(r"[^\S\n]+")
_PRE_HIDE = str.maketrans({"\n": "\x00", " ": "\x05", "\t": "\x06"})
_PRE_SHOW = str.maketrans({"\x00": "\n", "\x05": " ", "\x06": "\t"})
_MARKER = "\x01{}\x02"
_LINE, _PARA = "\x03", "\x04"  # block boundaries; a run of them is one break
_BREAKS = re.compile(r"[ \x03\x04]*[\x03\x04][ \x03\x04]*")
_MARKER_RE = re.compile(r"\x01(\d+)\x02")
_TOKEN_RE = re.compile(r"tidings-jinja-(\d+)-tag")


class _TextExtractor(HTMLParser):
    """Plain text from HTML: drops head/style/script and hidden elements, puts
    block elements on their own lines, writes links as ``label (url)``.

    Placeholders of :func:`protect` come out as markers (text) or stay as
    tokens (attribute values); attribute runs are dropped.
    """

    def __init__(self, originals: tuple[str, ...] = ()) -> None:
        super().__init__(convert_charrefs=True)
        self.originals = originals
        self.out: list[str] = []
        self.skip_tag: str | None = None
        self.skip_depth = 0
        self.pre = 0
        self.links: list[tuple[str | None, int]] = []
        self.lists: list[int] = []  # -1 for ul, else the next number of an ol

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.skip_tag is not None:
            if tag == self.skip_tag:
                self.skip_depth += 1
            elif self.skip_tag == "head" and tag == "body":
                self.skip_tag = None
            if self.skip_tag is not None:
                return
        values = dict(attrs)
        hidden = _HIDDEN.search(values.get("style") or "") is not None
        if tag in _SKIP or (hidden and tag not in _VOID):
            self.skip_tag, self.skip_depth = tag, 1
            return
        out = self.out
        if tag in _PARAGRAPH:
            out.append(_PARA)
        elif tag in _BLOCK:
            out.append(_LINE)
        if tag == "br":
            out.append("\n")
        elif tag in ("td", "th"):
            out.append(" ")
        elif tag == "pre":
            self.pre += 1
        elif tag == "ul":
            self.lists.append(-1)
        elif tag == "ol":
            self.lists.append(1)
        elif tag == "li":
            indent = "  " * max(len(self.lists) - 1, 0)
            if self.lists and self.lists[-1] > 0:
                out.append(f"{indent}{self.lists[-1]}. ")
                self.lists[-1] += 1
            else:
                out.append(f"{indent}- ")
        elif tag == "a":
            self.links.append((values.get("href"), len(out)))
        elif tag == "img" and not hidden and values.get("alt"):
            out.append(_SPACES.sub(" ", values["alt"] or ""))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if self.skip_tag is not None:
            if tag == self.skip_tag:
                self.skip_depth -= 1
                if self.skip_depth == 0:
                    self.skip_tag = None
            return
        out = self.out
        if tag == "a" and self.links:
            href, start = self.links.pop()
            out.append(_link_suffix(href, "".join(out[start:]).strip()))
        elif tag == "pre":
            self.pre = max(self.pre - 1, 0)
        elif tag in ("ul", "ol") and self.lists:
            self.lists.pop()
        if tag in _PARAGRAPH:
            out.append(_PARA)
        elif tag in _BLOCK:
            out.append(_LINE)

    def handle_data(self, data: str) -> None:
        if self.skip_tag is not None:
            return
        if self.pre:
            # pre keeps its white space: hide it from the collapsing below
            self.out.append(data.translate(_PRE_HIDE))
        else:
            self.out.append(_SPACES.sub(" ", data.replace("\n", " ")))

    def handle_comment(self, data: str) -> None:
        if not data.startswith("tj:") or not data[3:].isdigit():
            return
        index = int(data[3:])
        if self.skip_tag is not None and not self.originals[index].startswith("{%"):
            return  # statements survive in skipped parts so that blocks stay balanced
        self.out.append(_MARKER.format(index))

    def text(self) -> str:
        self.close()
        text = _SPACES.sub(" ", "".join(self.out))
        text = _BREAKS.sub(lambda m: "\n\n" if _PARA in m.group() else "\n", text)
        text = re.sub(r" *\n *", "\n", text)
        text = re.sub(r"\n{3,}", "\n\n", text).strip()
        return text.translate(_PRE_SHOW)


def _link_suffix(href: str | None, label: str) -> str:
    if not href or href.startswith("#") or href.lower().startswith("javascript:"):
        return ""
    shown = href[7:] if href.lower().startswith("mailto:") else href
    if not label:
        return shown
    if label == shown or label == href:
        return ""
    return f" ({shown})"


def html_to_text(html: str) -> str:
    """Return a readable plain-text version of rendered ``html``."""
    parser = _TextExtractor()
    parser.feed(html)
    return parser.text()


def text_template_from(protected_html: str, originals: tuple[str, ...]) -> str:
    """Derive a Jinja text template from protected HTML; literal braces are escaped."""
    parser = _TextExtractor(originals)
    parser.feed(protected_html)
    text = parser.text().replace("{", "{{ '{' }}")
    text = _MARKER_RE.sub(lambda m: originals[int(m.group(1))], text)
    return _TOKEN_RE.sub(lambda m: originals[int(m.group(1))], text)
