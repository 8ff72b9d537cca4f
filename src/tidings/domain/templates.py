"""Sandboxed message templates: compile once per mailing, render once per message.

:func:`compile_email` and :func:`compile_sms` do everything that does not
depend on the recipient, once: Jinja parsing and the safety check, CSS
inlining (``<style>`` rules become ``style=""`` attributes) and, when no text
part is given, deriving a personalised plain-text template from the HTML.
:meth:`CompiledEmail.render` then only runs the compiled templates and, when
asked, rewrites links for click tracking and adds the open pixel.

Templates use Jinja syntax in an immutable sandbox. The context is
``customer`` (a dict: ``customer.first_name``, ``customer.attributes.city``),
``unsubscribe_url`` and ``mailing``. A missing variable, key or attribute
renders as an empty string, and so does ``None``. Dict keys win over dict
methods (``customer.attributes.items`` is the attribute named ``items`` when
there is one).

Errors:

- a syntax error raises :class:`~tidings.errors.TemplateSyntaxError` naming
  the field (``subject``, ``html``, ``text``) and the line;
- names starting with ``_`` (``{{ ''.__class__ }}``), ``include``/``extends``
  /``import`` are refused at compile time with
  ``InvalidInput(code="unsafe_template")``; any unsafe access only discovered
  while rendering raises the same error;
- any other failure while rendering (``{{ 1 / 0 }}``) raises
  ``InvalidInput(code="template_render_error")``.

Pure: standard library, ``jinja2`` and ``css_inline``.
"""

from __future__ import annotations

import html as htmllib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote_plus, urlencode

import css_inline
import jinja2
from jinja2 import ChainableUndefined, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from markupsafe import Markup

from tidings.errors import InvalidInput, TemplateSyntaxError, TidingsError

__all__ = [
    "CompiledEmail",
    "CompiledSms",
    "RenderedEmail",
    "compile_email",
    "compile_sms",
    "html_to_text",
    "merge_utm",
]

LinkRewriter = Callable[[str], str]

# --------------------------------------------------------------------------- sandbox

#: Largest string or list a template may build with ``*``, and largest exponent.
MAX_REPEAT = 100_000
MAX_EXPONENT = 100


def _finalize(value: Any) -> Any:
    return "" if value is None else value


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus: dict keys before dict methods, unsafe access
    raises at once instead of rendering empty, and no giant ``'x' * 10**9``."""

    intercepted_binops = frozenset({"*", "**"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict:  # the context is plain dicts: avoid an AttributeError per lookup
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        raise InvalidInput(
            f"Templates cannot use {attribute!r} of {type(obj).__name__!r} objects.",
            code="unsafe_template",
        )

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
            raise InvalidInput("The exponent in the template is too large.", code="unsafe_template")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(times, int)
                    and len(seq) * times > MAX_REPEAT
                ):
                    raise InvalidInput(
                        "The template repeats a text or list too often.", code="unsafe_template"
                    )
        return super().call_binop(context, operator, left, right)


def _environment(*, autoescape: bool) -> _Sandbox:
    return _Sandbox(
        autoescape=autoescape,
        undefined=ChainableUndefined,
        finalize=_finalize,
        keep_trailing_newline=True,
    )


_HTML_ENV = _environment(autoescape=True)
_TEXT_ENV = _environment(autoescape=False)
# Both environments have the same default globals (range, dict, ...).
_GLOBALS: dict[str, Any] = dict(_TEXT_ENV.globals)
_REFUSED_NODES = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)


def _refuse_unsafe(ast: nodes.Template, field: str) -> None:
    for refused in ast.find_all(_REFUSED_NODES):
        raise InvalidInput(
            f"The {field} template cannot include, import or extend other templates (line {refused.lineno}).",
            code="unsafe_template",
            field=field,
        )
    for node in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        name: Any = None
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            name = node.arg.value
        elif isinstance(node, nodes.Filter) and node.name == "attr" and node.args:
            arg = node.args[0]
            name = arg.value if isinstance(arg, nodes.Const) else None
        if isinstance(name, str) and name.startswith("_"):
            raise InvalidInput(
                f"The {field} template uses {name!r} on line {node.lineno}; "
                "names starting with an underscore are not allowed.",
                code="unsafe_template",
                field=field,
            )


def _compile(env: _Sandbox, source: str, field: str) -> jinja2.Template:
    """Parse, check and compile one field; raise the contract's errors."""
    try:
        ast = env.parse(source)
        _refuse_unsafe(ast, field)
        return env.from_string(ast)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateSyntaxError(
            f"The {field} template has a syntax error on line {exc.lineno}: {exc.message}",
            line=exc.lineno,
            field=field,
        ) from exc


def _line(source: str, pos: int) -> int:
    return source.count("\n", 0, pos) + 1


# --------------------------------------------------------------------------- protection
# css_inline and html.parser must not see Jinja: a "{% if a < b %}" looks like a
# tag, text inside <table> is moved out of it, attributes are reordered. Each
# Jinja construct is replaced by a placeholder that the HTML parser keeps in
# place, chosen by where it stands:
#   text            <!--tj:N-->           a comment stays put, even between <tr>s
#   attribute value tidings-jinja-N-tag   plain letters survive escaping and quoting
#   attribute list  data-tj-N             the whole run of attributes from the first
#                                         to the last construct in the tag is opaque
#   style="..."     data-tjs-N            the declarations are merged back after the
#                                         inlined ones, so they still win

_JINJA = re.compile(
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


class _Unprotectable(Exception):
    def __init__(self, reason: str, pos: int) -> None:
        self.reason = reason
        self.pos = pos
        super().__init__(reason)


@dataclass(frozen=True, kw_only=True)
class _Protected:
    html: str
    originals: tuple[str, ...]
    styles: dict[int, tuple[str, str]]  # index -> (quote, original declarations)


def _protect(source: str) -> _Protected:
    """Replace Jinja constructs with HTML-proof placeholders (see above).

    Raises :class:`_Unprotectable` for Jinja inside a tag name or ``<style>``.
    """
    spans = {m.start(): m.end() for m in _JINJA.finditer(source)}
    if not spans:
        return _Protected(html=source, originals=(), styles={})
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
                    raise _Unprotectable("inside <style>", i)
                out.append(source[copied:i])
                copied = end
            elif state == _RAW:
                replace(i, end, _VALUE_PH, source[i:end])
            else:
                raise _Unprotectable("inside an HTML tag name", i)
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
    return _Protected(html="".join(out), originals=tuple(originals), styles=styles)


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


def _restore(protected: _Protected, html: str) -> str:
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


# --------------------------------------------------------------------------- HTML to text

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

    Placeholders of :func:`_protect` come out as markers (text) or stay as
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


def _text_template_from(protected_html: str, originals: tuple[str, ...]) -> str:
    """Derive a Jinja text template from protected HTML; literal braces are escaped."""
    parser = _TextExtractor(originals)
    parser.feed(protected_html)
    text = parser.text().replace("{", "{{ '{' }}")
    text = _MARKER_RE.sub(lambda m: originals[int(m.group(1))], text)
    return _TOKEN_RE.sub(lambda m: originals[int(m.group(1))], text)


# --------------------------------------------------------------------------- links

# Case-sensitive patterns that start with a literal: the regex engine then jumps from
# candidate to candidate (about 30 times faster than a leading look-behind or re.I).
_HREF = re.compile(r"""href\s*=\s*(?:"(https?://[^"]*)"|'(https?://[^']*)'|(https?://[^\s"'>]+))""")
_HREF_ANY_CASE = re.compile(_HREF.pattern, re.I)
_TEXT_URL = re.compile(r"""https?://[^\s<>"'()\[\]]+""")
_TRAILING = ".,;:!?"
_URL_STOP = frozenset(" \t\n\r\f\v<>\"'()[]")  # characters that end a _TEXT_URL
_BEFORE_ATTRIBUTE = frozenset(" \t\n\r\f\"'")
_LINE_BREAKS = re.compile(r"\s*[\r\n\x0b\x0c\x85\u2028\u2029]+\s*")
_BLANK_LINES = re.compile(r"\n[ \t]*(?:\n[ \t]*){2,}")


def _memo_link(link: LinkRewriter, skip: str | None) -> Callable[[str], str]:
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
    """The group of an :data:`_HREF` match holding the URL (1: "", 2: '', 3: unquoted)."""
    return 1 if m.start(1) >= 0 else 2 if m.start(2) >= 0 else 3


def _tracked_value(new: str, group: int) -> str:
    """A rewritten URL as the value of an href written with quotes ``group``."""
    value = htmllib.escape(new)
    return f'"{value}"' if group == 3 and any(c.isspace() for c in value) else value


def _rewrite_html(html: str, rewrite: Callable[[str], str], pattern: re.Pattern[str]) -> str:
    """Rewrite each link's URL; the attribute keeps its spelling and quotes."""
    def repl(m: re.Match[str]) -> str:
        if html[m.start() - 1] not in _BEFORE_ATTRIBUTE:  # data-href=, or text
            return m.group()
        group = _href_value(m)
        value = m.group(group)
        url = htmllib.unescape(value) if "&" in value else value
        at, end = m.start(group) - m.start(), m.end(group) - m.start()
        whole = m.group()
        return whole[:at] + _tracked_value(rewrite(url), group) + whole[end:]

    return pattern.sub(repl, html)


def _rewrite_text(text: str, rewrite: Callable[[str], str], pattern: re.Pattern[str] = _TEXT_URL) -> str:
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
class _StaticLink:
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
    for m in _JINJA.finditer(source):
        runs.append((at, m.start()))
        at = m.end()
    runs.append((at, len(source)))
    return runs


def _static_links(source: str, *, html: bool, pattern: re.Pattern[str], first: int
                  ) -> tuple[str, list[_StaticLink]]:
    """Replace the static links of ``source``; numbering starts at ``first``."""
    out: list[str] = []
    links: list[_StaticLink] = []
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
            links.append(_StaticLink(name=name, url=url, original=original, quotes=quotes))
            out.append(source[copied : start + span[0]])
            out.append("{{ " + name + " }}")
            copied = start + span[1]
    out.append(source[copied:])
    return "".join(out), links


@lru_cache(maxsize=64)
def _untracked(pattern: re.Pattern[str], prefix: str) -> re.Pattern[str]:
    """``pattern`` (:data:`_HREF` or :data:`_TEXT_URL`) without the URLs that start
    with ``prefix``: links that are tracked already."""
    if pattern.pattern.startswith("https?://") and prefix.startswith("http"):  # text
        # the look-ahead after the literal "http" keeps the engine's fast literal search
        return re.compile(f"http(?!{re.escape(prefix[4:])})" + pattern.pattern[4:], pattern.flags)
    escaped = re.escape(htmllib.escape(prefix))
    return re.compile(pattern.pattern.replace("(https?://", f"(?!{escaped})(https?://"), pattern.flags)


def _add_pixel(html: str, url: str) -> str:
    pixel = f'<img src="{htmllib.escape(url)}" width="1" height="1" alt="" style="display:none">'
    at = html.rfind("</body>")
    if at < 0:
        at = html.lower().rfind("</body")
    if at < 0:
        return html + pixel
    return html[:at] + pixel + html[at:]


def merge_utm(url: str, utm: Mapping[str, str]) -> str:
    """Return ``url`` with the ``utm`` parameters added to its query.

    Parameters the URL already has are kept as they are (never overwritten),
    empty values are not added, and the rest of the URL, fragment included,
    is left byte for byte.
    """
    if not utm:
        return url
    return _merge_utm(url, tuple(utm.items()))


@lru_cache(maxsize=4096)  # a mailing has few distinct links and sends them many times
def _merge_utm(url: str, utm: tuple[tuple[str, str], ...]) -> str:
    base, hash_, fragment = url.partition("#")
    _, question, query = base.partition("?")
    if query:
        present = {unquote_plus(pair.partition("=")[0]) for pair in query.split("&")}
        pairs = [(k, v) for k, v in utm if v and k not in present]
    else:
        pairs = [(k, v) for k, v in utm if v]
    if not pairs:
        return url
    addition = urlencode(pairs)
    if not question:
        base += "?" + addition
    elif query and not query.endswith("&"):
        base += "&" + addition
    else:
        base += addition
    return base + hash_ + fragment


# --------------------------------------------------------------------------- compiled


@dataclass(frozen=True, kw_only=True)
class RenderedEmail:
    """One personalised email: the subject is a single line; ``html`` is None
    when the template has no HTML part."""

    subject: str
    html: str | None
    text: str


def _run(template: jinja2.Template, parent: dict[str, Any]) -> str:
    return "".join(template.root_render_func(template.new_context(parent, shared=True)))


def _render_error(field: str, exc: Exception) -> InvalidInput:
    if isinstance(exc, SecurityError):
        return InvalidInput(
            f"The {field} template tried something unsafe: {exc}",
            code="unsafe_template",
            field=field,
        )
    return InvalidInput(
        f"The {field} template could not be rendered: {exc}",
        code="template_render_error",
        field=field,
    )


def _one_line(subject: str) -> str:
    if "\n" in subject or "\r" in subject or not subject.isascii():
        subject = _LINE_BREAKS.sub(" ", subject)
    return subject.strip()


@dataclass(frozen=True, kw_only=True, eq=False)
class CompiledEmail:
    """An email template ready to render many times (thread-safe).

    ``html_source`` is the HTML template after CSS inlining and ``text_source``
    the text template (given or derived); ``text_source`` is None only when
    the text could not be derived once, and is then derived per message.
    """

    subject_template: jinja2.Template
    html_template: jinja2.Template | None
    text_template: jinja2.Template | None
    html_source: str
    text_source: str | None
    text_derived: bool
    href_pattern: re.Pattern[str] = _HREF
    static_links: tuple[_StaticLink, ...] = ()

    def render(
        self,
        context: Mapping[str, Any],
        *,
        link: LinkRewriter | None = None,
        link_prefix: str | None = None,
        open_pixel_url: str | None = None,
    ) -> RenderedEmail:
        """Render the message for one recipient.

        ``context`` holds ``customer``, ``unsubscribe_url`` and ``mailing``.
        With ``link``, every ``href`` to an ``http(s)://`` URL in the HTML and
        every such URL (lower-case scheme) in the text becomes ``link(url)``,
        called once per distinct URL with the URL unescaped, except
        ``unsubscribe_url`` itself; ``mailto:`` and ``#`` links are left alone.
        ``link_prefix``, the start of every URL ``link`` returns (which holds no
        other ``http(s)://`` URL, as a signed token does not), lets the links
        written literally in the template be filled in by Jinja (no search per
        message for them, and ``link`` is called for each even in a branch that
        is not taken); without it every link is found in the output.
        UTM tags are the caller's business (see :func:`merge_utm`). ``open_pixel_url`` adds a hidden 1x1 image
        before ``</body>`` (or at the end). Raises ``InvalidInput`` as the
        module docstring says.
        """
        parent = {**_GLOBALS, **context}
        rewrite: Callable[[str], str] | None = None
        if link is not None:
            unsubscribe = context.get("unsubscribe_url")
            rewrite = _memo_link(link, unsubscribe if isinstance(unsubscribe, str) else None)
        if link_prefix is not None and rewrite is not None:
            for static in self.static_links:
                tracked = rewrite(static.url)
                parent[static.name] = (Markup(_tracked_value(tracked, static.quotes)) if static.quotes
                                       else tracked)
        else:
            for static in self.static_links:
                parent[static.name] = Markup(static.original) if static.quotes else static.original
        field = "subject"
        try:
            subject = _one_line(_run(self.subject_template, parent))
            field = "html"
            html = None if self.html_template is None else _run(self.html_template, parent)
            field = "text"
            if self.text_template is not None:
                text = _run(self.text_template, parent)
                if self.text_derived:
                    text = _BLANK_LINES.sub("\n\n", text).strip()
            else:
                text = html_to_text(html or "")
        except TidingsError:
            raise
        except Exception as exc:
            raise _render_error(field, exc) from exc
        if rewrite is not None:
            href, url = self.href_pattern, _TEXT_URL
            if link_prefix is not None:
                href, url = _untracked(href, link_prefix), _untracked(url, link_prefix)
            if html is not None:
                html = _rewrite_html(html, rewrite, href)
            text = _rewrite_text(text, rewrite, url)
        if open_pixel_url is not None and html is not None:
            html = _add_pixel(html, open_pixel_url)
        return RenderedEmail(subject=subject, html=html, text=text)


@dataclass(frozen=True, kw_only=True, eq=False)
class CompiledSms:
    """An SMS template ready to render many times (thread-safe)."""

    template: jinja2.Template
    source: str

    def render(self, context: Mapping[str, Any], *, link: LinkRewriter | None = None) -> str:
        """Return the SMS text for one recipient, without surrounding whitespace.

        ``link`` rewrites ``http(s)://`` URLs as in :meth:`CompiledEmail.render`.
        """
        try:
            text = _run(self.template, {**_GLOBALS, **context}).strip()
        except TidingsError:
            raise
        except Exception as exc:
            raise _render_error("text", exc) from exc
        if link is not None:
            unsubscribe = context.get("unsubscribe_url")
            text = _rewrite_text(
                text, _memo_link(link, unsubscribe if isinstance(unsubscribe, str) else None)
            )
        return text


# --------------------------------------------------------------------------- compile

_INLINER = css_inline.CSSInliner(load_remote_stylesheets=False, keep_at_rules=True, keep_style_tags=False)
_TBODY = re.compile(r"</?tbody(?:\s[^>]*)?>")
_NEEDS_INLINING = re.compile(r"<style[\s>]|<link\s[^>]*stylesheet", re.I)


def _inline_css(source: str) -> tuple[str, _Protected | None]:
    """Inline the CSS of an HTML template, keeping its Jinja intact.

    Returns the new template and its protected form (placeholders in, for the
    text derivation), or the protected source when there is nothing to inline.
    """
    try:
        protected = _protect(source)
    except _Unprotectable as exc:
        if _NEEDS_INLINING.search(source) is None:
            return source, None
        line = _line(source, exc.pos)
        raise TemplateSyntaxError(
            f"The html template has a Jinja tag {exc.reason} on line {line}; "
            "CSS is inlined once when the template is saved, so styles cannot be personalised "
            "there. Use a style attribute instead.",
            line=line,
            field="html",
        ) from exc
    if _NEEDS_INLINING.search(protected.html) is None:
        return source, protected
    try:
        inlined = _INLINER.inline(protected.html)
    except (css_inline.InlineError, ValueError) as exc:
        raise InvalidInput(
            f"The CSS of the html template could not be inlined: {exc}",
            code="invalid_css",
            field="html",
        ) from exc
    if "<tbody" not in source.lower():
        # the parser adds <tbody> after a leading "{% for %}" inside <table>, which
        # would repeat the opening tag per iteration; without it the table is the same
        inlined = _TBODY.sub("", inlined)
    try:
        result = _restore(protected, inlined)
    except ValueError as exc:
        original = str(exc)
        line = _line(source, source.find(original))
        raise TemplateSyntaxError(
            f"The html template's Jinja tag {original!r} on line {line} cannot be kept in place "
            "while inlining CSS; move it inside an element or attribute value.",
            line=line,
            field="html",
        ) from exc
    return result, _Protected(html=inlined, originals=protected.originals, styles=protected.styles)


def compile_email(*, subject: str, html: str, text: str | None) -> CompiledEmail:
    """Compile an email template once for many messages.

    Inlines ``<style>`` rules into ``style`` attributes, and when ``text`` is
    None or blank derives the text part from the HTML (Jinja kept, so it is
    personalised too). A blank ``html`` means a text-only email
    (``RenderedEmail.html`` is None). Raises ``TemplateSyntaxError`` (with ``field`` and
    ``line``) or ``InvalidInput`` as the module docstring says.
    """
    subject_template = _compile(_TEXT_ENV, subject, "subject")
    html_template: jinja2.Template | None = _compile(_HTML_ENV, html, "html")
    has_html = bool(html.strip())
    html_source, protected = _inline_css(html) if has_html else (html, None)
    if not has_html:
        html_template = None
    elif html_source != html:
        try:
            html_template = _compile(_HTML_ENV, html_source, "html")
        except TemplateSyntaxError as exc:  # e.g. "{</td>{" became "{{"
            raise TemplateSyntaxError(
                "The html template's Jinja tags do not survive CSS inlining "
                f"({exc.message.partition(': ')[2]}); check stray braces and unclosed tags.",
                line=None,
                field="html",
            ) from exc
    derived = text is None or not text.strip()
    text_source: str | None = text
    if derived:
        text_source = ""
        if protected is not None:
            try:
                text_source = _text_template_from(protected.html, protected.originals)
                text_template: jinja2.Template | None = _compile(_TEXT_ENV, text_source, "text")
            except InvalidInput:
                text_source, text_template = None, None  # derive per message instead
        elif has_html:
            text_source, text_template = None, None
        else:
            text_template = _compile(_TEXT_ENV, "", "text")
    else:
        assert text is not None
        text_template = _compile(_TEXT_ENV, text, "text")
    mixed_case = any(m.group() != "href" for m in re.finditer("href", html_source, re.I))
    href_pattern = _HREF_ANY_CASE if mixed_case else _HREF
    static: list[_StaticLink] = []
    if html_template is not None:
        linked, static = _static_links(html_source, html=True, pattern=href_pattern, first=0)
        if static:
            html_template = _compile(_HTML_ENV, linked, "html")
    if text_template is not None and text_source:
        linked, text_links = _static_links(text_source, html=False, pattern=_TEXT_URL,
                                           first=len(static))
        if text_links:
            text_template = _compile(_TEXT_ENV, linked, "text")
            static += text_links
    return CompiledEmail(
        href_pattern=href_pattern,
        static_links=tuple(static),
        subject_template=subject_template,
        html_template=html_template,
        text_template=text_template,
        html_source=html_source,
        text_source=text_source,
        text_derived=derived,
    )


def compile_sms(*, text: str) -> CompiledSms:
    """Compile an SMS template (no escaping). Raises like :func:`compile_email`."""
    return CompiledSms(template=_compile(_TEXT_ENV, text, "text"), source=text)
