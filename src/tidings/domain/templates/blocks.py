"""The email builder's document: a list of blocks, their schema and limits.

A template made in the builder stores ``blocks``, a JSON list; each block is
an object with a ``type`` and that type's fields (:data:`SCHEMA`)::

    heading   text, level (1|2), align
    text      html: rich text (bold, italic, underline, links, lists, paragraphs)
    image     src, alt, href, width (px)
    button    label, url, color, align
    divider   color
    spacer    height (px)
    columns   columns: 2 or 3 of {image, alt, heading, text (rich), button_label, button_url}
    product   image, name, price, description, url, button_label
    social    links: [{network, url}]
    footer    text, address, unsubscribe_label (the unsubscribe link is always there)

:func:`validate_blocks` is the one gate: it refuses, with
``InvalidInput(field="blocks[i].name")`` and a message naming the block as
the builder shows it ("Block 3 (Button): ..."), an unknown type or field, a
wrong kind of value, a text over its length, more than :data:`MAX_BLOCKS`
blocks, a document over :data:`MAX_DOCUMENT` characters of JSON, a link that
is not ``http(s)://``, ``mailto:`` or one Jinja expression, and a field whose
Jinja does not compile in the sandbox (syntax, or unsafe). It returns the
blocks normalised: defaults filled in, text stripped, rich text reduced to its
allowed tags (:func:`clean_rich_text`). Validating a validated list returns it
unchanged.

Text fields may hold Jinja (``{{ customer.first_name or "there" }}``): it is
kept byte for byte; only the text around it is escaped when the blocks become
MJML (:mod:`.layout`).

Pure: standard library and the sandbox of this package.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from html import escape
from html.parser import HTMLParser
from typing import Any

from tidings.domain.templates.protection import JINJA
from tidings.domain.templates.sandbox import TEXT_ENV, compile_field
from tidings.errors import InvalidInput

__all__ = [
    "BLOCK_NAMES", "MAX_BLOCKS", "MAX_DOCUMENT", "NETWORKS", "SCHEMA", "clean_rich_text",
    "escape_outside_jinja", "validate_blocks",
]

#: At most this many blocks in one email, and this many characters of JSON in all.
MAX_BLOCKS = 80
MAX_DOCUMENT = 300_000
#: The builder's names of the block types, as its "Add" menu shows them.
BLOCK_NAMES = {
    "heading": "Heading", "text": "Text", "image": "Image", "button": "Button",
    "divider": "Divider", "spacer": "Spacer", "columns": "Columns", "product": "Product card",
    "social": "Social links", "footer": "Footer",
}
NETWORKS = {"facebook": "Facebook", "instagram": "Instagram", "x": "X", "linkedin": "LinkedIn",
            "youtube": "YouTube", "tiktok": "TikTok", "pinterest": "Pinterest",
            "website": "Website"}
_COLOR = re.compile(r"#[0-9a-fA-F]{6}\Z")
_URL = re.compile(r"(?:https?://[^\s\"<>]+|mailto:[^\s\"<>]+)\Z", re.I)
_ONE_JINJA = re.compile(r"\{\{[^{}]*\}\}\Z")


class _Invalid(Exception):
    """A field's problem, in words that follow "Block N (Type): "."""


@dataclass(frozen=True)
class Field:
    """One field of a block: its kind, its default and its limit."""

    kind: str  # line, multiline, rich, url, choice, int, color, columns, links
    default: Any = ""
    limit: int = 300
    required: bool = False
    choices: tuple[Any, ...] = ()
    low: int = 0
    label: str = ""


def _line(label: str, *, default: str = "", limit: int = 300, required: bool = False) -> Field:
    return Field("line", default=default, limit=limit, required=required, label=label)


def _url(label: str, *, required: bool = False, default: str = "") -> Field:
    return Field("url", default=default, limit=2000, required=required, label=label)


_ALIGN = Field("choice", default="left", choices=("left", "center", "right"), label="Alignment")
_COLUMN = {
    "image": _url("Image"), "alt": _line("Image description"), "heading": _line("Heading"),
    "text": Field("rich", limit=5000, label="Text"), "button_label": _line("Button label", limit=80),
    "button_url": _url("Button link"),
}
_LINK = {"network": Field("choice", default="website", choices=tuple(NETWORKS), label="Network"),
         "url": _url("Link", required=True)}

SCHEMA: dict[str, dict[str, Field]] = {
    "heading": {"text": _line("Heading", required=True),
                "level": Field("choice", default=1, choices=(1, 2), label="Size"), "align": _ALIGN},
    "text": {"html": Field("rich", limit=20_000, required=True, label="Text")},
    "image": {"src": _url("Image", required=True), "alt": _line("Image description"),
              "href": _url("Link"),
              "width": Field("int", default=0, low=0, limit=600, label="Width")},
    "button": {"label": _line("Label", required=True, limit=80), "url": _url("Link", required=True),
               "color": Field("color", default="#2450a6", label="Colour"),
               "align": Field("choice", default="center", choices=("left", "center", "right"),
                              label="Alignment")},
    "divider": {"color": Field("color", default="#d5d9e0", label="Colour")},
    "spacer": {"height": Field("int", default=24, low=4, limit=160, label="Height")},
    "columns": {"columns": Field("columns", default=None, low=2, limit=3, label="Columns")},
    "product": {"image": _url("Image"), "name": _line("Name", required=True),
                "price": _line("Price", limit=40), "description": Field("multiline", limit=1000,
                                                                        label="Description"),
                "url": _url("Link", required=True),
                "button_label": _line("Button label", default="Buy now", limit=80)},
    "social": {"links": Field("links", default=None, low=1, limit=10, label="Links")},
    "footer": {"text": Field("multiline", limit=1000, label="Note"),
               "address": Field("multiline", limit=500, label="Address"),
               "unsubscribe_label": _line("Unsubscribe label", default="Unsubscribe", limit=80)},
}


# -- text ----------------------------------------------------------------------------------


def escape_outside_jinja(text: str, *, quote: bool = False) -> str:
    """``text`` HTML-escaped except its Jinja constructs, which stay as they are
    (Jinja runs first, and escapes what its expressions print)."""
    out: list[str] = []
    at = 0
    for match in JINJA.finditer(text):
        out.append(escape(text[at:match.start()], quote=quote))
        out.append(match.group())
        at = match.end()
    out.append(escape(text[at:], quote=quote))
    return "".join(out)


_ALLOWED = {"p", "br", "strong", "em", "u", "a", "ul", "ol", "li"}
_RENAMED = {"b": "strong", "i": "em", "div": "p"}
_SKIPPED = {"script", "style", "head", "title", "template"}
_PH = re.compile("\ue000(\\d+)\ue001")


class _RichText(HTMLParser):
    """Keeps the allowed tags (``a`` with its ``href`` only), drops the others but
    keeps their text, closes what is left open, and drops end tags that close
    nothing. Text and attribute values are escaped again on the way out."""

    def __init__(self, originals: list[str]) -> None:
        super().__init__(convert_charrefs=True)
        self.originals = originals
        self.out: list[str] = []
        self.open: list[str] = []
        self.bad_link: str | None = None
        self.skipping = 0  # inside script, style, head or title: their text is no text

    def _jinja(self, text: str, *, quote: bool) -> str:
        parts = _PH.split(text)
        return "".join(self.originals[int(p)] if i % 2 else escape(p, quote=quote)
                       for i, p in enumerate(parts))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self.skipping += 1
            return
        tag = _RENAMED.get(tag, tag)
        if tag not in _ALLOWED:
            return
        if tag == "br":
            self.out.append("<br>")
            return
        if tag == "p" and "p" in self.open:  # a <div> inside a <div>: close the first
            self.handle_endtag("p")
        if tag == "a":
            href = next((v for k, v in attrs if k == "href" and v), "")
            restored = _PH.sub(lambda m: self.originals[int(m.group(1))], href.strip())
            if not is_link(restored):
                self.bad_link = self.bad_link or restored
                return
            self.out.append(f'<a href="{self._jinja(href.strip(), quote=True)}">')
        else:
            self.out.append(f"<{tag}>")
        self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.out.append("<br>")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self.skipping = max(0, self.skipping - 1)
            return
        tag = _RENAMED.get(tag, tag)
        if tag not in self.open:
            return
        while self.open:
            closing = self.open.pop()
            self.out.append(f"</{closing}>")
            if closing == tag:
                break

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        self.out.append(self._jinja(data, quote=False))

    def result(self) -> str:
        while self.open:
            self.out.append(f"</{self.open.pop()}>")
        return "".join(self.out).strip()


def clean_rich_text(html: str) -> str:
    """Rich text reduced to ``p br strong em u a[href] ul ol li`` (``b``, ``i`` and
    ``div`` become ``strong``, ``em`` and ``p``); Jinja kept as it is. Raises
    ``ValueError`` naming a link that is not ``http(s)://``, ``mailto:`` or Jinja."""
    originals: list[str] = []

    def hide(match: re.Match[str]) -> str:
        originals.append(match.group())
        return f"\ue000{len(originals) - 1}\ue001"

    parser = _RichText(originals)
    parser.feed(JINJA.sub(hide, html.replace("\ue000", "").replace("\ue001", "")))
    parser.close()
    if parser.bad_link is not None:
        raise ValueError(f"a link must start with https:// (or be an email address with "
                         f"mailto:), not {parser.bad_link!r}")
    cleaned = parser.result()
    return "" if re.fullmatch(r"(?:<p>|</p>|<br>|\s)*", cleaned) else cleaned


def is_link(url: str) -> bool:
    """An ``http(s)://`` or ``mailto:`` URL, or exactly one Jinja expression
    (``{{ unsubscribe_url }}``, ``{{ customer.attributes.cart_url }}``)."""
    return bool(_URL.match(url) or _ONE_JINJA.match(url))


# -- validation ----------------------------------------------------------------------------


def _text(value: Any, spec: Field, *, multiline: bool) -> str:
    if value is None:
        value = spec.default
    if not isinstance(value, str):
        raise _Invalid(f"{spec.label} must be text.")
    value = value.strip()
    if not multiline:
        value = " ".join(value.split())
    if len(value) > spec.limit:
        raise _Invalid(f"{spec.label} is {len(value):,} characters long; at most {spec.limit:,} fit.")
    if spec.required and not value:
        raise _Invalid(f"{spec.label} is empty; fill it in or delete the block.")
    return value


def _value(value: Any, spec: Field, check: Callable[[str, str], None]) -> Any:
    """One field's value normalised; ``check(label, text)`` compiles its Jinja."""
    if spec.kind in ("line", "multiline"):
        text = _text(value, spec, multiline=spec.kind == "multiline")
        check(spec.label, text)
        return text
    if spec.kind == "rich":
        text = _text(value, spec, multiline=True)
        try:
            text = clean_rich_text(text)
        except ValueError as exc:
            raise _Invalid(f"{spec.label}: {exc}.") from None
        if spec.required and not text:
            raise _Invalid(f"{spec.label} is empty; fill it in or delete the block.")
        check(spec.label, text)
        return text
    if spec.kind == "url":
        text = _text(value, spec, multiline=False)
        if text and not is_link(text):
            raise _Invalid(f"{spec.label} must be a web address starting with https:// "
                           f"(or mailto: for an email address), not {text!r}.")
        check(spec.label, text)
        return text
    if spec.kind == "choice":
        value = spec.default if value is None or value == "" else value
        if isinstance(value, str) and value.isdigit() and int(value) in spec.choices:
            value = int(value)
        if value not in spec.choices or isinstance(value, bool):
            raise _Invalid(f"{spec.label} must be one of {', '.join(map(str, spec.choices))}.")
        return value
    if spec.kind == "int":
        value = spec.default if value is None or value == "" else value
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or not spec.low <= value <= spec.limit:
            raise _Invalid(f"{spec.label} must be a whole number from {spec.low} to {spec.limit}.")
        return value
    if spec.kind == "color":
        value = spec.default if value is None or value == "" else value
        if not isinstance(value, str) or not _COLOR.match(value):
            raise _Invalid(f"{spec.label} must be a colour like #2450a6.")
        return value.lower()
    raise AssertionError(spec.kind)  # pragma: no cover


def _items(value: Any, spec: Field, fields: Mapping[str, Field], what: str,
           check: Callable[[str, str], None]) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not spec.low <= len(value) <= spec.limit:
        raise _Invalid(f"{spec.label} must be a list of {spec.low} to {spec.limit} {what}s.")
    items = []
    for n, item in enumerate(value, start=1):
        if not isinstance(item, dict):
            raise _Invalid(f"{what.capitalize()} {n} must be an object.")
        unknown = set(item) - set(fields)
        if unknown:
            raise _Invalid(f"{what.capitalize()} {n} has no field {sorted(unknown)[0]!r}.")
        try:
            items.append({key: _value(item.get(key), field, check) for key, field in fields.items()})
        except _Invalid as exc:
            raise _Invalid(f"{what.capitalize()} {n}: {exc}") from None
    return items


def _block(raw: Any, check: Callable[[str, str], None]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _Invalid("A block must be an object with a type.")
    kind = raw.get("type")
    if kind not in SCHEMA:
        raise _Invalid(f"There is no block type {kind!r}; the types are {', '.join(SCHEMA)}.")
    fields = SCHEMA[kind]
    unknown = set(raw) - set(fields) - {"type"}
    if unknown:
        raise _Invalid(f"A {BLOCK_NAMES[kind].lower()} block has no field {sorted(unknown)[0]!r}.")
    block: dict[str, Any] = {"type": kind}
    for key, spec in fields.items():
        if spec.kind == "columns":
            block[key] = _items(raw.get(key), spec, _COLUMN, "column", check)
        elif spec.kind == "links":
            block[key] = _items(raw.get(key), spec, _LINK, "link", check)
        else:
            block[key] = _value(raw.get(key), spec, check)
    if kind == "columns" and not any(v for column in block["columns"] for v in column.values()):
        raise _Invalid("Every column is empty; fill one in or delete the block.")
    return block


def validate_blocks(blocks: Any, *, field: str = "blocks") -> list[dict[str, Any]]:
    """The blocks, normalised; raises ``InvalidInput`` as the module docstring says."""
    if not isinstance(blocks, list):
        raise InvalidInput(f"{field} must be a list of blocks.", field=field,
                           manager_message="The email's blocks could not be read; reload the page.")
    if not blocks:
        raise InvalidInput(f"{field} is empty: add at least one block.", field=field,
                           manager_message="The email has no blocks yet: add at least one.")
    if len(blocks) > MAX_BLOCKS:
        raise InvalidInput(f"{field} has {len(blocks)} blocks; at most {MAX_BLOCKS} fit in one email.",
                           field=field)
    size = len(json.dumps(blocks, ensure_ascii=False))
    if size > MAX_DOCUMENT:
        raise InvalidInput(f"{field} is {size:,} characters of JSON; at most {MAX_DOCUMENT:,} fit.",
                           field=field, manager_message="The email is too long: split it or "
                           "shorten its texts.")
    cleaned = []
    for index, raw in enumerate(blocks):
        name = BLOCK_NAMES.get(str(raw.get("type"))) if isinstance(raw, dict) else None
        where = f"Block {index + 1}" + (f" ({name})" if name else "")

        def check(label: str, text: str, where: str = where) -> None:
            if "{" not in text:
                return
            try:
                compile_field(TEXT_ENV, text, label)
            except InvalidInput as exc:
                detail = exc.message.split(": ", 1)[-1] if ": " in exc.message else exc.message
                raise _Invalid(f"{label} has a template error: {detail}") from None

        try:
            cleaned.append(_block(raw, check))
        except _Invalid as exc:
            raise InvalidInput(f"{where}: {exc}", field=f"{field}[{index}]") from None
    return cleaned
