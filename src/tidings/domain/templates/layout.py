"""Blocks to responsive email HTML: blocks -> MJML -> HTML, Jinja kept.

:func:`blocks_to_mjml` writes one ``<mj-section>`` per block, in order, and
:func:`blocks_to_html` runs it through MJML (``mjml-python``, a binding of
MRML, the Rust port of MJML: no Node at run time). The HTML is MJML's
responsive layout: 600 px wide on a desktop, columns stacked under 480 px.

Guarantees:

- every Jinja construct of a field comes out byte for byte, exactly once, in
  the same place: before MJML runs each is replaced by a placeholder of plain
  letters (which MJML neither escapes nor moves) and put back afterwards;
  text around it is escaped, so ``<``, ``&`` and quotes typed in a field are
  text, never markup;
- the fonts are the mail program's own (no web font is fetched);
- the footer block always links ``{{ unsubscribe_url }}``;
- a document MJML refuses (none that :func:`~.blocks.validate_blocks`
  accepts should be) raises ``InvalidInput(code="mjml_error", field="blocks")``.

Give it validated blocks (:func:`~.blocks.validate_blocks`).

Pure: standard library and ``mjml``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from html import escape
from typing import Any

import mjml

from tidings.domain.templates.blocks import NETWORKS, escape_outside_jinja
from tidings.domain.templates.protection import JINJA
from tidings.errors import InvalidInput

__all__ = ["PREHEADER_STYLE", "blocks_to_html", "blocks_to_mjml", "with_preheader"]

FONT = "Helvetica, Arial, sans-serif"
INK, MUTED, PAPER, PAGE = "#1d2330", "#5a6273", "#ffffff", "#f2f3f6"
PREHEADER_STYLE = ("display:none;font-size:1px;color:#ffffff;line-height:1px;max-height:0px;"
                   "max-width:0px;opacity:0;overflow:hidden;mso-hide:all")
_BODY = re.compile(r"<body\b[^>]*>", re.I)


class _Jinja:
    """Swaps Jinja constructs for placeholders of plain letters, and back."""

    def __init__(self, blocks: list[dict[str, Any]]) -> None:
        digest = hashlib.sha256(repr(blocks).encode()).hexdigest()
        self.prefix = f"tjx{digest[:10]}n"
        self.originals: list[str] = []

    def text(self, value: str, *, quote: bool = False, keep: Callable[[str], str] | None = None) -> str:
        """``value`` escaped (or passed to ``keep``, for cleaned rich text) with its
        Jinja swapped for placeholders."""
        out: list[str] = []
        at = 0
        for match in JINJA.finditer(value):
            out.append(value[at:match.start()])
            out.append(self._hide(match.group()))
            at = match.end()
        out.append(value[at:])
        joined = "".join(out)
        if keep is not None:
            return keep(joined)
        return escape(joined, quote=quote)

    def _hide(self, original: str) -> str:
        self.originals.append(original)
        return f"{self.prefix}{len(self.originals) - 1}z"

    def restore(self, html: str) -> str:
        found = re.compile(re.escape(self.prefix) + r"(\d+)z")
        seen: list[int] = []

        def put(match: re.Match[str]) -> str:
            seen.append(int(match.group(1)))
            return self.originals[int(match.group(1))]

        restored = found.sub(put, html)
        if sorted(seen) != list(range(len(self.originals))):
            raise InvalidInput("The email could not be laid out: MJML moved a personalisation tag.",
                               code="mjml_error", field="blocks")
        return restored


def _lines(jinja: _Jinja, text: str) -> str:
    return "<br>".join(jinja.text(line) for line in text.split("\n"))


def _section(inner: str, *, padding: str = "0px") -> str:
    return f'<mj-section background-color="{PAPER}" padding="{padding}">{inner}</mj-section>'


def _column(inner: str, width: str | None = None) -> str:
    return f'<mj-column{f" width={chr(34)}{width}{chr(34)}" if width else ""}>{inner}</mj-column>'


def _button(jinja: _Jinja, label: str, url: str, *, color: str = "#2450a6",
            align: str = "center") -> str:
    return (f'<mj-button href="{jinja.text(url, quote=True)}" background-color="{color}" '
            f'color="#ffffff" align="{align}" font-size="16px" font-weight="600" '
            f'border-radius="6px" inner-padding="12px 26px">{jinja.text(label)}</mj-button>')


def _image(jinja: _Jinja, src: str, alt: str, *, href: str = "", width: int = 0) -> str:
    attrs = f'src="{jinja.text(src, quote=True)}" alt="{jinja.text(alt, quote=True)}"'
    if href:
        attrs += f' href="{jinja.text(href, quote=True)}"'
    if width:
        attrs += f' width="{width}px"'
    return f"<mj-image {attrs} padding=\"10px 25px\"></mj-image>"


def _rich(jinja: _Jinja, html: str) -> str:
    return jinja.text(html, keep=lambda kept: kept)  # already cleaned by validate_blocks


def _heading(jinja: _Jinja, block: dict[str, Any]) -> str:
    size = "28px" if block["level"] == 1 else "22px"
    tag = f"h{block['level']}"
    return _section(_column(
        f'<mj-text align="{block["align"]}" font-size="{size}" line-height="1.25" '
        f'font-weight="700" padding="16px 25px 8px"><{tag} style="margin:0;font-size:{size};'
        f'line-height:1.25">{jinja.text(block["text"])}</{tag}></mj-text>'))


def _columns(jinja: _Jinja, block: dict[str, Any]) -> str:
    parts = []
    for column in block["columns"]:
        inner = ""
        if column["image"]:
            inner += _image(jinja, column["image"], column["alt"])
        if column["heading"]:
            inner += (f'<mj-text font-size="18px" font-weight="700" padding="8px 25px 0px">'
                      f'<h3 style="margin:0;font-size:18px">{jinja.text(column["heading"])}</h3>'
                      f"</mj-text>")
        if column["text"]:
            inner += f'<mj-text padding="8px 25px">{_rich(jinja, column["text"])}</mj-text>'
        if column["button_label"] and column["button_url"]:
            inner += _button(jinja, column["button_label"], column["button_url"])
        parts.append(_column(inner or '<mj-spacer height="1px"></mj-spacer>'))
    return _section("".join(parts), padding="10px 0px")


def _product(jinja: _Jinja, block: dict[str, Any]) -> str:
    left = _image(jinja, block["image"], block["name"], href=block["url"]) if block["image"] else ""
    right = (f'<mj-text font-size="20px" font-weight="700" padding="10px 25px 0px">'
             f'<h3 style="margin:0;font-size:20px">{jinja.text(block["name"])}</h3></mj-text>')
    if block["price"]:
        right += (f'<mj-text font-size="18px" color="{INK}" padding="6px 25px 0px">'
                  f'<strong>{jinja.text(block["price"])}</strong></mj-text>')
    if block["description"]:
        right += f'<mj-text padding="6px 25px">{_lines(jinja, block["description"])}</mj-text>'
    right += _button(jinja, block["button_label"] or "Buy now", block["url"], align="left")
    if not left:
        return _section(_column(right), padding="10px 0px")
    return _section(_column(left, "40%") + _column(right, "60%"), padding="10px 0px")


def _social(jinja: _Jinja, block: dict[str, Any]) -> str:
    links = " &middot; ".join(
        f'<a href="{jinja.text(link["url"], quote=True)}" style="color:{INK};font-weight:600">'
        f'{escape(NETWORKS[link["network"]])}</a>' for link in block["links"])
    return _section(_column(f'<mj-text align="center" padding="12px 25px">{links}</mj-text>'))


def _footer(jinja: _Jinja, block: dict[str, Any]) -> str:
    parts = [_lines(jinja, text) for text in (block["text"], block["address"]) if text]
    label = jinja.text(block["unsubscribe_label"] or "Unsubscribe")
    parts.append(f'<a href="{jinja.text("{{ unsubscribe_url }}", quote=True)}" '
                 f'style="color:{MUTED};text-decoration:underline">{label}</a>')
    inner = "<br><br>".join(parts)
    return (f'<mj-section background-color="{PAGE}" padding="16px 0px"><mj-column>'
            f'<mj-text align="center" font-size="12px" color="{MUTED}" line-height="1.5">{inner}'
            f"</mj-text></mj-column></mj-section>")


def _block(jinja: _Jinja, block: dict[str, Any]) -> str:
    kind = block["type"]
    if kind == "heading":
        return _heading(jinja, block)
    if kind == "text":
        return _section(_column(f'<mj-text padding="8px 25px">{_rich(jinja, block["html"])}</mj-text>'))
    if kind == "image":
        return _section(_column(_image(jinja, block["src"], block["alt"], href=block["href"],
                                       width=block["width"])))
    if kind == "button":
        return _section(_column(_button(jinja, block["label"], block["url"], color=block["color"],
                                        align=block["align"])), padding="8px 0px")
    if kind == "divider":
        return _section(_column(f'<mj-divider border-color="{block["color"]}" border-width="1px" '
                                f'padding="12px 25px"></mj-divider>'))
    if kind == "spacer":
        return _section(_column(f'<mj-spacer height="{block["height"]}px"></mj-spacer>'))
    if kind == "columns":
        return _columns(jinja, block)
    if kind == "product":
        return _product(jinja, block)
    if kind == "social":
        return _social(jinja, block)
    if kind == "footer":
        return _footer(jinja, block)
    raise AssertionError(kind)  # pragma: no cover


def _document(jinja: _Jinja, blocks: list[dict[str, Any]]) -> str:
    head = (f'<mj-head><mj-attributes><mj-all font-family="{FONT}"></mj-all>'
            f'<mj-text font-size="16px" line-height="1.5" color="{INK}"></mj-text></mj-attributes>'
            f"<mj-style>a {{ color: #2450a6; }} p {{ margin: 0 0 12px; }} "
            f"ul, ol {{ margin: 0 0 12px; padding-left: 24px; }}</mj-style></mj-head>")
    body = "".join(_block(jinja, block) for block in blocks)
    return f'<mjml>{head}<mj-body background-color="{PAGE}" width="600px">{body}</mj-body></mjml>'


def blocks_to_mjml(blocks: list[dict[str, Any]]) -> str:
    """The MJML document of validated ``blocks`` (Jinja in place)."""
    jinja = _Jinja(blocks)
    return jinja.restore(_document(jinja, blocks))


def blocks_to_html(blocks: list[dict[str, Any]]) -> str:
    """Responsive email HTML of validated ``blocks``, with their Jinja in place."""
    jinja = _Jinja(blocks)
    source = _document(jinja, blocks)
    try:
        html = mjml.mjml2html(source, fonts={})
    except ValueError as exc:
        raise InvalidInput(f"The email could not be laid out by MJML: {exc}.", code="mjml_error",
                           field="blocks") from exc
    return jinja.restore(html)


def with_preheader(html: str, preheader: str | None) -> str:
    """``html`` with ``preheader`` (the line mail programs show after the
    subject) as hidden text at the start of the body; unchanged without one.
    Its Jinja is kept, the rest escaped."""
    if not preheader or not preheader.strip() or not html.strip():
        return html
    hidden = f'<div style="{PREHEADER_STYLE}">{escape_outside_jinja(preheader.strip())}</div>'
    body = _BODY.search(html)
    if body is None:
        return hidden + html
    return html[:body.end()] + hidden + html[body.end():]
