"""Compiled forms: compile a template once per mailing, render it once per message.

:func:`compile_email` and :func:`compile_sms` do everything that does not
depend on the recipient, once: Jinja parsing and the safety check (in the
sandbox), CSS inlining (``<style>`` rules become ``style=""`` attributes,
Jinja kept in place by the protection), deriving a personalised text template
from the HTML when no text part is given, and putting variables in place of
the links written literally in the template. :meth:`CompiledEmail.render` and
:meth:`CompiledSms.render` then only run the compiled templates and, when
asked, rewrite links and add the open pixel; they never inline CSS.

Guarantees: compiled templates are immutable and safe to render from many
threads; one message's render (subject, HTML and text together) runs under
one :class:`~.budget.Budget`, and each field's output is counted as it
streams, so a render stops as soon as it goes over; a rendered subject is one
line; rendering raises only the errors the
package docstring lists (and whatever the caller's ``link`` raises). Compiling an HTML template with CSS to
inline also raises :class:`~tidings.errors.TemplateSyntaxError` (field
``html``, with the line) for Jinja inside ``<style>`` or a tag name, or for a
construct that cannot be kept in place, and ``InvalidInput(code="invalid_css")``
for CSS that css_inline refuses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import css_inline
import jinja2
from jinja2.sandbox import SecurityError
from markupsafe import Markup

from tidings.domain.templates.budget import (
    MAX_OUTPUT,
    Budget,
    TemplateTooCostly,
    activate,
    deactivate,
)
from tidings.domain.templates.links import (
    HREF,
    HREF_ANY_CASE,
    TEXT_URL,
    LinkRewriter,
    StaticLink,
    add_open_pixel,
    memo_link,
    replace_static_links,
    rewrite_html,
    rewrite_text,
    tracked_value,
    untracked,
)
from tidings.domain.templates.protection import Protected, Unprotectable, protect, restore
from tidings.domain.templates.sandbox import GLOBALS, HTML_ENV, TEXT_ENV, compile_field
from tidings.domain.templates.text import html_to_text, text_template_from
from tidings.errors import InvalidInput, TemplateSyntaxError, TidingsError

__all__ = ["CompiledEmail", "CompiledSms", "RenderedEmail", "compile_email", "compile_sms"]

_LINE_BREAKS = re.compile(r"\s*[\r\n\x0b\x0c\x85\u2028\u2029]+\s*")
#: What no message may carry: NUL, and halves of surrogate pairs (not text; a
#: template makes them with "\\ud800" in a string literal).
_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")
_BLANK_LINES = re.compile(r"\n[ \t]*(?:\n[ \t]*){2,}")


@dataclass(frozen=True, kw_only=True)
class RenderedEmail:
    """One personalised email: the subject is a single line; ``html`` is None
    when the template has no HTML part."""

    subject: str
    html: str | None
    text: str


def _run(template: jinja2.Template, parent: dict[str, Any], budget: Budget) -> str:
    """Render one field under ``budget``, counting the output as it streams:
    rendering stops as soon as the field passes :data:`MAX_OUTPUT` characters.
    NUL characters and lone surrogates in the result become U+FFFD."""
    token = activate(budget)
    try:
        pieces: list[str] = []
        size = 0
        for piece in template.root_render_func(template.new_context(parent, shared=True)):
            size += len(piece)
            if size > MAX_OUTPUT:
                raise TemplateTooCostly(f"it writes more than {MAX_OUTPUT:,} characters")
            pieces.append(piece)
        return _scrubbed("".join(pieces))
    finally:
        deactivate(token)


def _scrubbed(text: str) -> str:
    """``text`` with NUL and lone surrogates as U+FFFD. Encoding finds a lone
    surrogate (and ``in`` a NUL) many times faster than searching with a
    character class, and nearly every message has neither."""
    if "\x00" not in text:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            pass
        else:
            return text
    return _NOT_TEXT.sub("\ufffd", text)


def _known_error(field: str, exc: TidingsError) -> TidingsError:
    """Our own error raised while rendering, naming the field."""
    if isinstance(exc, TemplateTooCostly):
        return exc.for_field(field)
    if isinstance(exc, InvalidInput) and exc.field is None:
        exc.field = field
    return exc


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
    href_pattern: re.Pattern[str] = HREF
    static_links: tuple[StaticLink, ...] = ()

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
        package docstring says.
        """
        parent = {**GLOBALS, **context}
        rewrite: Callable[[str], str] | None = None
        if link is not None:
            unsubscribe = context.get("unsubscribe_url")
            rewrite = memo_link(link, unsubscribe if isinstance(unsubscribe, str) else None)
        if link_prefix is not None and rewrite is not None:
            for static in self.static_links:
                tracked = rewrite(static.url)
                parent[static.name] = (Markup(tracked_value(tracked, static.quotes)) if static.quotes
                                       else tracked)
        else:
            for static in self.static_links:
                parent[static.name] = Markup(static.original) if static.quotes else static.original
        field = "subject"
        budget = Budget()  # one for the whole message
        try:
            subject = _one_line(_run(self.subject_template, parent, budget))
            field = "html"
            html = None if self.html_template is None else _run(self.html_template, parent, budget)
            field = "text"
            if self.text_template is not None:
                text = _run(self.text_template, parent, budget)
                if self.text_derived:
                    text = _BLANK_LINES.sub("\n\n", text).strip()
            else:
                text = html_to_text(html or "")
        except TidingsError as exc:
            raise _known_error(field, exc) from exc.__cause__
        except Exception as exc:
            raise _render_error(field, exc) from exc
        if rewrite is not None:
            href, url = self.href_pattern, TEXT_URL
            if link_prefix is not None:
                href, url = untracked(href, link_prefix), untracked(url, link_prefix)
            if html is not None:
                html = rewrite_html(html, rewrite, href)
            text = rewrite_text(text, rewrite, url)
        if open_pixel_url is not None and html is not None:
            html = add_open_pixel(html, open_pixel_url)
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
            text = _run(self.template, {**GLOBALS, **context}, Budget()).strip()
        except TidingsError as exc:
            raise _known_error("text", exc) from exc.__cause__
        except Exception as exc:
            raise _render_error("text", exc) from exc
        if link is not None:
            unsubscribe = context.get("unsubscribe_url")
            text = rewrite_text(
                text, memo_link(link, unsubscribe if isinstance(unsubscribe, str) else None)
            )
        return text


# --------------------------------------------------------------------------- compile

_INLINER = css_inline.CSSInliner(load_remote_stylesheets=False, keep_at_rules=True, keep_style_tags=False)
_TBODY = re.compile(r"</?tbody(?:\s[^>]*)?>")
_NEEDS_INLINING = re.compile(r"<style[\s>]|<link\s[^>]*stylesheet", re.I)


def _line(source: str, pos: int) -> int:
    return source.count("\n", 0, pos) + 1


def _inline_css(source: str) -> tuple[str, Protected | None]:
    """Inline the CSS of an HTML template, keeping its Jinja intact.

    Returns the new template and its protected form (placeholders in, for the
    text derivation), or the protected source when there is nothing to inline.
    """
    try:
        protected = protect(source)
    except Unprotectable as exc:
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
        result = restore(protected, inlined)
    except ValueError as exc:
        original = str(exc)
        line = _line(source, source.find(original))
        raise TemplateSyntaxError(
            f"The html template's Jinja tag {original!r} on line {line} cannot be kept in place "
            "while inlining CSS; move it inside an element or attribute value.",
            line=line,
            field="html",
        ) from exc
    return result, Protected(html=inlined, originals=protected.originals, styles=protected.styles)


def compile_email(*, subject: str, html: str, text: str | None) -> CompiledEmail:
    """Compile an email template once for many messages.

    Inlines ``<style>`` rules into ``style`` attributes, and when ``text`` is
    None or blank derives the text part from the HTML (Jinja kept, so it is
    personalised too). A blank ``html`` means a text-only email
    (``RenderedEmail.html`` is None). Raises ``TemplateSyntaxError`` (with ``field`` and
    ``line``) or ``InvalidInput`` as the package docstring says.
    """
    subject_template = compile_field(TEXT_ENV, subject, "subject")
    html_template: jinja2.Template | None = compile_field(HTML_ENV, html, "html")
    has_html = bool(html.strip())
    html_source, protected = _inline_css(html) if has_html else (html, None)
    if not has_html:
        html_template = None
    elif html_source != html:
        try:
            html_template = compile_field(HTML_ENV, html_source, "html")
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
                text_source = text_template_from(protected.html, protected.originals)
                text_template: jinja2.Template | None = compile_field(TEXT_ENV, text_source, "text")
            except InvalidInput:
                text_source, text_template = None, None  # derive per message instead
        elif has_html:
            text_source, text_template = None, None
        else:
            text_template = compile_field(TEXT_ENV, "", "text")
    else:
        assert text is not None
        text_template = compile_field(TEXT_ENV, text, "text")
    mixed_case = any(m.group() != "href" for m in re.finditer("href", html_source, re.I))
    href_pattern = HREF_ANY_CASE if mixed_case else HREF
    static: list[StaticLink] = []
    if html_template is not None:
        linked, static = replace_static_links(html_source, html=True, pattern=href_pattern, first=0)
        if static:
            html_template = compile_field(HTML_ENV, linked, "html")
    if text_template is not None and text_source:
        linked, text_links = replace_static_links(text_source, html=False, pattern=TEXT_URL,
                                                  first=len(static))
        if text_links:
            text_template = compile_field(TEXT_ENV, linked, "text")
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
    return CompiledSms(template=compile_field(TEXT_ENV, text, "text"), source=text)
