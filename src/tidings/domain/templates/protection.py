"""Hiding Jinja from the HTML tools: what css_inline and html.parser see.

They must not see Jinja: a ``{% if a < b %}`` looks like a tag, text inside
``<table>`` is moved out of it, attributes are reordered. :func:`protect`
replaces each Jinja construct with a placeholder that the HTML parser keeps in
place, chosen by where it stands::

    text             <!--tj:N-->          a comment stays put, even between <tr>s
    attribute value  tidings-jinja-N-tag  plain letters survive escaping and quoting
    attribute list   data-tj-N            the whole run of attributes from the first
                                          to the last construct in the tag is opaque
    style="..."      data-tjs-N           the declarations are merged back after the
                                          inlined ones, so they still win

``N`` indexes :attr:`Protected.originals`. Guarantees:

- a source without Jinja comes back as it is;
- Jinja inside a tag name, or inside ``<style>`` other than a ``{# comment #}``
  (dropped there), raises :class:`Unprotectable` with the reason and the
  position; nothing else does;
- :func:`restore` puts every construct back byte for byte, exactly once, or
  raises ``ValueError`` naming the first construct that was lost or copied.

Pure: standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["JINJA", "Protected", "Unprotectable", "protect", "restore"]

JINJA = re.compile(
    r"""
      \{%[-+]?\s*raw\s*[-+]?%\}.*?\{%[-+]?\s*endraw\s*[-+]?%\}
    | \{\#.*?\#\}
    | \{\{(?:[^}'"]|'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\}(?!\}))*\}\}
    | \{%(?:[^%'"]|'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|%(?!\}))*%\}
    """,
    re.S | re.X,
)
_TEXT_PH = "<!--tj:{}-->"
_VALUE_PH = "tidings-jinja-{}-tag"
_ATTRS_PH = " data-tj-{} "
_STYLE_PH = " data-tjs-{} "
_RESTORE = re.compile(
    r'<!--tj:(\d+)-->|&lt;!--tj:(\d+)--&gt;|tidings-jinja-(\d+)-tag| ?data-tj-(\d+)(?:="")?'
)
_SERIALIZED_TAG = re.compile(r'<[a-zA-Z][^\s/>]*(?:\s+[^\s"\'>/=]+(?:="[^"]*")?)*\s*/?>')
_STYLE_REGION = re.compile(r' ?data-tjs-(\d+)(?:="")?')
_STYLE_ATTR = re.compile(r'\sstyle="([^"]*)"')

_TEXT, _TAG_NAME, _TAG, _AFTER_EQ, _DQ, _SQ, _UNQ, _COMMENT, _RAW, _RCDATA = range(10)
_RAW_TAGS = frozenset({"style", "script"})
_RCDATA_TAGS = frozenset({"title", "textarea"})


class Unprotectable(Exception):
    def __init__(self, reason: str, pos: int) -> None:
        self.reason = reason
        self.pos = pos
        super().__init__(reason)


@dataclass(frozen=True, kw_only=True)
class Protected:
    html: str
    originals: tuple[str, ...]
    styles: dict[int, tuple[str, str]]  # index -> (quote, original declarations)


def protect(source: str) -> Protected:
    """Replace Jinja constructs with HTML-proof placeholders (see above).

    Raises :class:`Unprotectable` for Jinja inside a tag name or ``<style>``.
    """
    spans = {m.start(): m.end() for m in JINJA.finditer(source)}
    if not spans:
        return Protected(html=source, originals=(), styles={})
    originals: list[str] = []
    styles: dict[int, tuple[str, str]] = {}
    out: list[str] = []
    copied = 0  # source[:copied] is already in out

    def replace(start: int, end: int, placeholder: str, original: str) -> None:
        nonlocal copied
        out.append(source[copied:start])
        out.append(placeholder.format(len(originals)))
        originals.append(original)
        copied = end

    state = _TEXT
    tag = ""
    closing = False
    attr_name_start = -1
    attr_name = ""
    region_start = -1  # a run of attributes made opaque
    region_end = -1
    region_in_value = False
    style_start = -1  # a style attribute holding Jinja
    value_start = -1
    i, n = 0, len(source)
    while i < n:
        end = spans.get(i)
        if end is not None:
            if state == _TEXT:
                replace(i, end, _TEXT_PH, source[i:end])
            elif state == _TAG or (region_start >= 0 and state in (_DQ, _SQ, _UNQ, _AFTER_EQ)):
                if region_start < 0:
                    region_start = i
                region_end = end
                region_in_value = state in (_DQ, _SQ, _UNQ, _AFTER_EQ)
                if state == _AFTER_EQ:
                    state = _UNQ
            elif state in (_DQ, _SQ, _UNQ, _AFTER_EQ) and attr_name == "style":
                if style_start < 0:
                    style_start = attr_name_start
                if state == _AFTER_EQ:
                    state, value_start = _UNQ, i
            elif state in (_DQ, _SQ, _UNQ, _AFTER_EQ, _COMMENT, _RCDATA):
                replace(i, end, _VALUE_PH, source[i:end])
                if state == _AFTER_EQ:
                    state = _UNQ
            elif state == _RAW and tag == "style":
                if not source.startswith("{#", i):
                    raise Unprotectable("inside <style>", i)
                out.append(source[copied:i])
                copied = end
            elif state == _RAW:
                replace(i, end, _VALUE_PH, source[i:end])
            else:
                raise Unprotectable("inside an HTML tag name", i)
            i = end
            continue
        c = source[i]
        if state == _TEXT:
            if c == "<":
                if source.startswith("<!--", i):
                    state, i = _COMMENT, i + 4
                    continue
                nxt = source[i + 1 : i + 2]
                if nxt.isalpha():
                    state, tag, closing = _TAG_NAME, "", False
                elif nxt == "/" and source[i + 2 : i + 3].isalpha():
                    state, tag, closing, i = _TAG_NAME, "", True, i + 1
                elif nxt in ("!", "?"):
                    state, tag, closing = _TAG, "!", True
        elif state == _TAG_NAME:
            if c.isspace() or c == "/":
                state = _TAG
            elif c == ">":
                state = _end_of_tag(tag, closing)
            else:
                tag += c.lower()
        elif state in (_TAG, _AFTER_EQ, _UNQ):
            if c == ">":
                if region_start >= 0:
                    replace(region_start, region_end, _ATTRS_PH, source[region_start:region_end])
                    region_start = -1
                if style_start >= 0:  # unquoted style value ends here
                    _replace_style(replace, styles, originals, source, style_start, value_start, i)
                    style_start = -1
                state = _end_of_tag(tag, closing)
            elif state == _TAG:
                if c == "=":
                    state = _AFTER_EQ
                elif not c.isspace() and c != "/":
                    if i == 0 or not _is_name_char(source[i - 1]):
                        attr_name_start, attr_name = i, ""
                    attr_name += c.lower()
            elif state == _AFTER_EQ:
                if c in "\"'":
                    state, value_start = (_DQ if c == '"' else _SQ), i + 1
                elif not c.isspace():
                    state, value_start = _UNQ, i
            elif c.isspace():  # end of an unquoted value
                if style_start >= 0:
                    _replace_style(replace, styles, originals, source, style_start, value_start, i)
                    style_start = -1
                state = _TAG
        elif state in (_DQ, _SQ):
            if c == ('"' if state == _DQ else "'"):
                if style_start >= 0:
                    _replace_style(replace, styles, originals, source, style_start, value_start, i)
                    style_start = -1
                if region_start >= 0 and region_in_value:
                    region_end, region_in_value = i + 1, False
                state = _TAG
                attr_name = ""
        elif state == _COMMENT:
            if source.startswith("-->", i):
                state, i = _TEXT, i + 3
                continue
        elif state in (_RAW, _RCDATA):
            if c == "<" and source[i + 1 : i + 2 + len(tag)].lower() == "/" + tag:
                state, closing, i = _TAG_NAME, True, i + 1
                tag = ""
        i += 1
    if region_start >= 0:
        replace(region_start, region_end, _ATTRS_PH, source[region_start:region_end])
    out.append(source[copied:])
    return Protected(html="".join(out), originals=tuple(originals), styles=styles)


def _is_name_char(c: str) -> bool:
    return not (c.isspace() or c in "\"'/=>")


def _end_of_tag(tag: str, closing: bool) -> int:
    if not closing and tag in _RAW_TAGS:
        return _RAW
    if not closing and tag in _RCDATA_TAGS:
        return _RCDATA
    return _TEXT


def _replace_style(
    replace: Callable[[int, int, str, str], None],
    styles: dict[int, tuple[str, str]],
    originals: list[str],
    source: str,
    attr_start: int,
    value_start: int,
    value_end: int,
) -> None:
    quote = source[value_start - 1] if source[value_start - 1] in "\"'" else '"'
    styles[len(originals)] = (quote, source[value_start:value_end])
    end = value_end + 1 if source[value_end : value_end + 1] == quote else value_end
    replace(attr_start, end, _STYLE_PH, source[attr_start:end])


def restore(protected: Protected, html: str) -> str:
    """Put the Jinja constructs back into HTML that went through css_inline.

    Raises ``ValueError`` naming the first construct that was lost or copied.
    """
    seen = [0] * len(protected.originals)
    if protected.styles:

        def merge_style(tag: re.Match[str]) -> str:
            text = tag.group()
            found = _STYLE_REGION.search(text)
            if found is None:
                return text
            index = int(found.group(1))
            seen[index] += 1
            quote, declarations = protected.styles[index]
            text = text[: found.start()] + text[found.end() :]
            inlined = _STYLE_ATTR.search(text)
            if inlined is None:
                attr = f" style={quote}{declarations}{quote}"
                return text[: found.start()] + attr + text[found.start() :]
            merged = inlined.group(1).rstrip(" ;")
            if quote == "'":
                merged = merged.replace("&quot;", '"').replace("'", "&#39;")
            attr = f" style={quote}{merged}; {declarations}{quote}"
            return text[: inlined.start()] + attr + text[inlined.end() :]

        html = _SERIALIZED_TAG.sub(merge_style, html)

    def put_back(m: re.Match[str]) -> str:
        index = int(next(g for g in m.groups() if g is not None))
        seen[index] += 1
        original = protected.originals[index]
        return " " + original + " " if m.group(4) is not None else original

    html = _RESTORE.sub(put_back, html)
    for index, count in enumerate(seen):
        if count != 1:
            raise ValueError(protected.originals[index])
    return html
