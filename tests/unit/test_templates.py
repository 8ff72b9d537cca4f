from __future__ import annotations

import hashlib
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tidings.domain.templates import (
    CompiledEmail,
    compile_email,
    compile_sms,
    html_to_text,
    merge_utm,
)
from tidings.errors import InvalidInput, TemplateSyntaxError

UNSUBSCRIBE = "https://t.example/u/TOKEN"


def context(**customer: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": 7,
        "email": "anna@example.com",
        "first_name": "Anna",
        "last_name": "Lind",
        "attributes": {"city": "Malmö", "vip": True},
    }
    base.update(customer)
    return {
        "customer": base,
        "unsubscribe_url": UNSUBSCRIBE,
        "mailing": {"id": 3, "name": "Spring sale"},
    }


def email(html: str, *, subject: str = "Hi", text: str | None = None) -> CompiledEmail:
    return compile_email(subject=subject, html=html, text=text)


# ----------------------------------------------------------------- rendering


def test_render_fills_in_customer_fields_attributes_and_mailing() -> None:
    compiled = email(
        "<p>{{ customer.first_name }} from {{ customer.attributes.city }}, {{ mailing.name }}</p>",
        subject="{{ customer.first_name }}, news for {{ customer.attributes.city }}",
        text="Hello {{ customer.first_name }} {{ customer.last_name }}",
    )

    rendered = compiled.render(context())

    assert rendered.subject == "Anna, news for Malmö"
    assert rendered.html == "<p>Anna from Malmö, Spring sale</p>"
    assert rendered.text == "Hello Anna Lind"


def test_missing_variables_keys_and_none_render_as_empty_text() -> None:
    compiled = email(
        "<p>[{{ customer.attributes.shoe.size }}][{{ nothing }}][{{ customer.phone }}]"
        "[{{ customer.attributes.missing | default('x') }}]</p>",
        text="[{{ customer.attributes.missing }}]",
    )

    rendered = compiled.render(context(phone=None))

    assert rendered.html == "<p>[][][][x]</p>"
    assert rendered.text == "[]"


def test_dict_keys_win_over_dict_methods() -> None:
    compiled = email("<p>{{ customer.attributes.items }}</p>")

    rendered = compiled.render(context(attributes={"items": 3}))

    assert rendered.html == "<p>3</p>"


def test_html_escapes_values_while_subject_and_text_keep_them_raw() -> None:
    compiled = email(
        "<p>{{ customer.first_name }}</p>",
        subject="{{ customer.first_name }}",
        text="{{ customer.first_name }}",
    )

    rendered = compiled.render(context(first_name="<b>Tom & Jerry</b>"))

    assert rendered.html == "<p>&lt;b&gt;Tom &amp; Jerry&lt;/b&gt;</p>"
    assert rendered.subject == "<b>Tom & Jerry</b>"
    assert rendered.text == "<b>Tom & Jerry</b>"


def test_subject_is_rendered_on_one_line() -> None:
    compiled = email("<p>x</p>", subject="  Hello\n{{ customer.first_name }}\r\n!\u2028end  ")

    assert compiled.render(context()).subject == "Hello Anna ! end"


def test_a_value_with_a_newline_cannot_break_the_subject_line() -> None:
    compiled = email("<p>x</p>", subject="Hi {{ customer.first_name }}")

    subject = compiled.render(context(first_name="Eve\r\nBcc: all@example.com")).subject

    assert subject == "Hi Eve Bcc: all@example.com"


def test_an_empty_html_template_gives_a_text_only_message() -> None:
    compiled = compile_email(subject="S", html="  ", text="Hi {{ customer.first_name }}")

    rendered = compiled.render(context())

    assert (rendered.html, rendered.text) == (None, "Hi Anna")


def test_an_error_while_rendering_is_invalid_input_naming_the_field() -> None:
    compiled = email("<p>{{ 1 / customer.attributes.zero }}</p>")

    with pytest.raises(InvalidInput) as caught:
        compiled.render(context(attributes={"zero": 0}))

    assert (caught.value.code, caught.value.field) == ("template_render_error", "html")


# ----------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("field", "fields", "line"),
    [
        ("subject", {"subject": "Hi {{ customer.first_name", "html": "<p></p>"}, 1),
        ("html", {"subject": "S", "html": "<p>\n\n{% endfor %}\n</p>"}, 3),
        ("html", {"subject": "S", "html": "<p>\n{{ x | nosuchfilter }}</p>"}, 2),
        ("text", {"subject": "S", "html": "<p></p>", "text": "a\nb {{ }}"}, 2),
    ],
)
def test_a_syntax_error_names_the_field_and_the_line(field: str, fields: dict[str, str], line: int) -> None:
    with pytest.raises(TemplateSyntaxError) as caught:
        compile_email(subject=fields["subject"], html=fields["html"], text=fields.get("text"))

    assert (caught.value.field, caught.value.line) == (field, line)
    assert f"line {line}" in caught.value.message
    assert caught.value.status == 422


def test_a_syntax_error_in_an_sms_names_the_text_and_the_line() -> None:
    with pytest.raises(TemplateSyntaxError) as caught:
        compile_sms(text="Hi\n{% for %}")

    assert (caught.value.field, caught.value.line) == ("text", 2)


@pytest.mark.parametrize(
    "source",
    [
        "{{ customer.__class__.__mro__ }}",
        "{{ ''.__class__ }}",
        "{{ customer['__class__'] }}",
        "{{ customer | attr('__init__') }}",
        "{{ customer.attributes._private }}",
    ],
)
def test_access_to_python_internals_is_refused_when_compiling(source: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        email(f"<p>\n{source}</p>")

    assert caught.value.code == "unsafe_template"
    assert caught.value.field == "html"
    assert "line 2" in caught.value.message


@pytest.mark.parametrize(
    "source",
    [
        "{% set n = '__cla' ~ 'ss__' %}{{ customer[n] }}",
        "{% set n = '__cla' ~ 'ss__' %}{{ customer | attr(n) }}",
        "{% set n = '__se' ~ 'lf__' %}{{ customer.attributes.get[n] }}",
    ],
)
def test_internals_reached_by_a_computed_name_raise_invalid_input_when_rendering(
    source: str,
) -> None:
    compiled = compile_sms(text=source)

    with pytest.raises(InvalidInput) as caught:
        compiled.render(context())

    assert caught.value.code == "unsafe_template"


def test_templates_cannot_change_the_data_they_are_given() -> None:
    ctx = context()
    compiled = compile_sms(text="{{ customer.attributes.update({'vip': False}) }}")

    with pytest.raises(InvalidInput) as caught:
        compiled.render(ctx)

    assert caught.value.code == "unsafe_template"
    assert ctx["customer"]["attributes"]["vip"] is True


@pytest.mark.parametrize("source", ["{{ 'x' * 10000000 }}", "{{ 9 ** 999999 }}"])
def test_templates_cannot_build_huge_values(source: str) -> None:
    with pytest.raises(InvalidInput):
        compile_sms(text=source).render(context())


@pytest.mark.parametrize(
    "source", ["{% include 'x.html' %}", "{% extends 'base.html' %}", "{% import 'm' as m %}"]
)
def test_templates_cannot_load_other_templates(source: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        email(source)

    assert caught.value.code == "unsafe_template"


# ----------------------------------------------------------------- CSS inlining


STYLED = """<html><head><style>
p { color: red }
.big { font-size: 20px }
</style></head>
<body><p class="big">Hello {{ customer.first_name }}</p></body></html>"""


def test_a_style_rule_ends_up_in_a_style_attribute_while_jinja_still_renders() -> None:
    html = email(STYLED).render(context()).html

    assert html is not None
    assert "<style" not in html
    assert re.search(r'<p class="big" style="color: red;\s*font-size: 20px;?">Hello Anna</p>', html)


def test_css_is_inlined_once_when_compiling_not_per_message(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = email(STYLED)

    class NoInliner:
        def inline(self, html: str) -> str:
            raise AssertionError("css_inline called while rendering")

    monkeypatch.setattr("tidings.domain.templates.compiled._INLINER", NoInliner())
    rendered = [compiled.render(context(first_name=name)).html for name in ("A", "B")]

    assert 'style="color: red;' in compiled.html_source
    assert "{{ customer.first_name }}" in compiled.html_source
    assert all(html and "style=" in html for html in rendered)


def test_media_queries_are_kept_in_a_style_block() -> None:
    html = email(
        "<html><head><style>p{color:red} @media (max-width: 600px) { p { color: blue } }"
        "</style></head><body><p>x</p></body></html>"
    ).html_source

    assert "@media (max-width: 600px)" in html
    assert '<p style="color: red;">x</p>' in html


def test_a_loop_over_table_rows_stays_around_the_rows_when_inlining() -> None:
    compiled = email(
        "<style>td{padding:1px}</style><table>{% for n in [1, 2] %}"
        "<tr><td>{{ n }}</td></tr>{% endfor %}</table>"
    )

    html = compiled.render(context()).html

    assert html is not None
    assert re.search(
        r'<table><tr><td style="padding: 1px;">1</td></tr>'
        r'<tr><td style="padding: 1px;">2</td></tr></table>',
        html,
    )


def test_conditions_comparisons_and_attribute_values_survive_inlining() -> None:
    compiled = email(
        "<style>a{color:red}</style>"
        "{% if customer.attributes.n < 3 and customer.attributes.n > 1 %}<b>few</b>{% endif %}"
        '<a href="{{ unsubscribe_url }}?a=1&amp;b=2" title="{{ customer.first_name }}"'
        ' {% if customer.attributes.vip %}data-vip="yes"{% endif %}>link</a>'
    )

    html = compiled.render(context(attributes={"n": 2, "vip": True})).html

    assert html is not None
    assert "<b>few</b>" in html
    assert f'href="{UNSUBSCRIBE}?a=1&amp;b=2"' in html
    assert 'title="Anna"' in html
    assert 'data-vip="yes"' in html
    assert 'style="color: red;"' in html


def test_a_personalised_style_attribute_is_merged_after_the_inlined_rules() -> None:
    compiled = email(
        "<style>p{color:red;margin:0}</style>"
        "<p style=\"color: {{ customer.attributes.colour }}; font-family: 'A'\">x</p>"
    )

    html = compiled.render(context(attributes={"colour": "blue"})).html

    assert html is not None
    assert re.search(r"style=\"color: red;\s*margin: 0;? *; color: blue; font-family: 'A'\"", html)


def test_jinja_inside_a_style_block_is_refused_because_css_is_inlined_once() -> None:
    with pytest.raises(TemplateSyntaxError) as caught:
        email("<style>\np { color: {{ customer.attributes.colour }} }</style><p>x</p>")

    assert (caught.value.field, caught.value.line) == ("html", 2)


def test_html_without_a_style_block_is_left_exactly_as_written() -> None:
    source = "<p>Hi {{ customer.first_name }}</p>\n<table><tr><td>x</td></tr></table>"

    assert email(source).html_source == source


# ----------------------------------------------------------------- text part


NEWSLETTER = """<html><head><title>{{ mailing.name }}</title>
<style>.hide { display: none } p { margin: 0 }</style><script>alert(1)</script></head>
<body>
<div class="hide">Preheader for {{ customer.first_name }}</div>
<h1>Hello   {{ customer.first_name }}!</h1>
<p>Shop in {{ customer.attributes.city }}
   today.{% if customer.attributes.vip %} VIP prices.{% endif %}</p>
<ul><li>One</li><li>Two</li></ul>
<p><a href="https://shop.example/sale?a=1&amp;b=2">See the sale</a>,
<a href="mailto:help@shop.example">help@shop.example</a>,
<a href="mailto:help@shop.example">write to us</a>,
<a href="#top">top</a>, <a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
<p>Line one<br>Line two &amp; &#123;&#123; not jinja }}</p>
</body></html>"""


def test_the_text_part_is_derived_from_the_html_once_and_is_personalised() -> None:
    compiled = email(NEWSLETTER)

    rendered = compiled.render(context())

    assert compiled.text_source is not None and "{{ customer.first_name }}" in compiled.text_source
    assert rendered.text == (
        "Hello Anna!\n"
        "\n"
        "Shop in Malmö today. VIP prices.\n"
        "\n"
        "- One\n"
        "- Two\n"
        "\n"
        "See the sale (https://shop.example/sale?a=1&b=2), help@shop.example, "
        "write to us (help@shop.example), top, Unsubscribe (https://t.example/u/TOKEN)\n"
        "\n"
        "Line one\n"
        "Line two & {{ not jinja }}"
    )


def test_a_blank_text_part_is_derived_from_the_html_too() -> None:
    rendered = email("<p>Hi {{ customer.first_name }}</p>", text=" \n").render(context())

    assert rendered.text == "Hi Anna"


def test_a_given_text_part_is_used_as_written() -> None:
    rendered = email(NEWSLETTER, text="Hi {{ customer.first_name }}\n\n\nBye\n").render(context())

    assert rendered.text == "Hi Anna\n\n\nBye\n"


def test_html_to_text_drops_what_a_reader_does_not_see() -> None:
    text = html_to_text(
        "<head><style>p{}</style></head><body><p style='display: none'>hidden</p>"
        "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>"
        "<pre>  keep\n    this</pre><img src='x.png' alt='Logo'></body>"
    )

    assert text == "a b\nc\n\n  keep\n    this\n\nLogo"


# ----------------------------------------------------------------- tracking


def test_links_are_rewritten_in_html_and_text_except_unsubscribe_mailto_and_anchors() -> None:
    # the attribute keeps the quotes it was written with
    compiled = email(
        '<p><a href="https://shop.example/a?x=1&amp;y=2">A</a> '
        "<a href='http://shop.example/b'>B</a> <a href=https://shop.example/c>C</a> "
        '<a data-href="https://shop.example/d">D</a> '
        '<a href="mailto:x@example.com">M</a> <a href="#top">T</a> '
        '<a href="{{ unsubscribe_url }}">U</a> <a href="https://shop.example/a?x=1&amp;y=2">A2</a>'
        "</p>",
        text="Go to https://shop.example/a?x=1&y=2. Or (http://shop.example/b), "
        "not ftp://x; leave: {{ unsubscribe_url }}",
    )
    calls: list[str] = []

    def link(url: str) -> str:
        calls.append(url)
        return f"https://t.example/c/{len(calls)}?u={url}"

    rendered = compiled.render(context(), link=link)

    assert calls == ["https://shop.example/a?x=1&y=2", "http://shop.example/b", "https://shop.example/c"]
    assert rendered.html == (
        '<p><a href="https://t.example/c/1?u=https://shop.example/a?x=1&amp;y=2">A</a> '
        "<a href='https://t.example/c/2?u=http://shop.example/b'>B</a> "
        '<a href=https://t.example/c/3?u=https://shop.example/c>C</a> '
        '<a data-href="https://shop.example/d">D</a> '
        '<a href="mailto:x@example.com">M</a> <a href="#top">T</a> '
        f'<a href="{UNSUBSCRIBE}">U</a> '
        '<a href="https://t.example/c/1?u=https://shop.example/a?x=1&amp;y=2">A2</a></p>'
    )
    assert rendered.text == (
        "Go to https://t.example/c/1?u=https://shop.example/a?x=1&y=2. "
        "Or (https://t.example/c/2?u=http://shop.example/b), not ftp://x; "
        f"leave: {UNSUBSCRIBE}"
    )


def test_links_in_a_derived_text_part_are_rewritten_too() -> None:
    compiled = email('<p><a href="https://shop.example/x">Shop</a></p>')

    rendered = compiled.render(context(), link=lambda url: "https://t.example/c/1")

    assert rendered.text == "Shop (https://t.example/c/1)"


def test_links_in_upper_case_attributes_are_rewritten() -> None:
    compiled = email('<A HREF="https://shop.example/x">Shop</A>')

    html = compiled.render(context(), link=lambda url: "https://t.example/c/1").html

    assert html == '<A HREF="https://t.example/c/1">Shop</A>'


def test_without_a_link_function_links_are_left_alone() -> None:
    rendered = email('<a href="https://shop.example/x">x</a>').render(context())

    assert rendered.html == '<a href="https://shop.example/x">x</a>'


def test_the_open_pixel_goes_right_before_the_end_of_the_body() -> None:
    html = (
        email("<html><body><p>x</p></body></html>")
        .render(context(), open_pixel_url="https://t.example/o/1?a=1&b=2")
        .html
    )

    assert html == (
        '<html><body><p>x</p><img src="https://t.example/o/1?a=1&amp;b=2" width="1" height="1"'
        ' alt="" style="display:none"></body></html>'
    )


def test_the_open_pixel_is_appended_to_html_without_a_body() -> None:
    html = email("<p>x</p>").render(context(), open_pixel_url="https://t.example/o/1").html

    assert html == (
        '<p>x</p><img src="https://t.example/o/1" width="1" height="1" alt="" style="display:none">'
    )


def test_an_sms_is_rendered_raw_and_its_links_can_be_rewritten() -> None:
    compiled = compile_sms(text=" {{ customer.first_name }} & co: https://shop.example/x \n")

    plain = compiled.render(context())
    tracked = compiled.render(context(), link=lambda url: "https://t.example/c/1")

    assert plain == "Anna & co: https://shop.example/x"
    assert tracked == "Anna & co: https://t.example/c/1"


# ----------------------------------------------------------------- UTM


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://s.example/p", "https://s.example/p?utm_source=tidings&utm_medium=email"),
        ("https://s.example/p?", "https://s.example/p?utm_source=tidings&utm_medium=email"),
        (
            "https://s.example/p?a=1&utm_source=shop#frag",
            "https://s.example/p?a=1&utm_source=shop&utm_medium=email#frag",
        ),
        ("https://s.example/p#x?y", "https://s.example/p?utm_source=tidings&utm_medium=email#x?y"),
        ("https://s.example/?utm_source=&utm_medium=sms", "https://s.example/?utm_source=&utm_medium=sms"),
    ],
)
def test_merge_utm_adds_tags_without_overwriting_and_keeps_the_fragment(url: str, expected: str) -> None:
    assert merge_utm(url, {"utm_source": "tidings", "utm_medium": "email"}) == expected


def test_merge_utm_encodes_values_and_skips_empty_ones() -> None:
    merged = merge_utm("https://s.example/p", {"utm_campaign": "spring sale & more", "utm_term": ""})

    assert merged == "https://s.example/p?utm_campaign=spring+sale+%26+more"
    assert merge_utm("https://s.example/p", {}) == "https://s.example/p"


# ----------------------------------------------------------------- robustness

FRAGMENTS = [
    "<p>", "</p>", "<table>", "</table>", "<tr>", "</tr>", "<td>", "</td>", '<a href="', '">',
    "<a href='https://x.example/?a=1&amp;b=2'>", "</a>", "<style>p{color:red} td{padding:0}</style>",
    '<div style="', '"', "'", ' class="x"', "<br>", '<img alt="', "{{ customer.first_name }}",
    "{% if customer.attributes.vip %}", "{% endif %}", "{% for i in [1, 2] %}", "{% endfor %}",
    "{# c #}", "<", ">", "a < b", "{", "}", "<!--", "-->", "<title>", "</title>", "<head>",
    "</head>", "<body>", "</body>", "\n", " ", "text", "&amp;", "=", "<pre>", "</pre>",
    "<ul><li>x", "{{ '}}' }}", "{% raw %}{{ x }}{% endraw %}",
]  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(parts=st.lists(st.sampled_from(FRAGMENTS), max_size=30))
def test_any_mix_of_html_and_jinja_compiles_and_renders_or_is_refused_as_invalid_input(
    parts: list[str],
) -> None:
    source = "".join(parts)
    try:
        compiled = email(source)
    except InvalidInput:
        return

    compiled.render(context(), link=lambda url: "https://t.example/c", open_pixel_url="https://o")

    if "<style" not in source:
        assert compiled.html_source == source


# ----------------------------------------------------------------- static links

TRACKED = "https://t.example/t/c/"


def numbered_links() -> tuple[list[str], Any]:
    calls: list[str] = []

    def link(url: str) -> str:
        if url not in calls:
            calls.append(url)
        return TRACKED + hashlib.sha256(url.encode()).hexdigest()[:8]  # like a token: no URL inside

    return calls, link


def test_links_written_in_the_template_are_filled_in_without_a_search_and_match_the_search() -> None:
    source = (
        '<p><a href="https://shop.example/a?x=1&amp;y=2">A</a> <a href=\'http://shop.example/b\'>B</a> '
        '<a href="{{ customer.attributes.site }}">Own</a> '
        '<a href="https://shop.example/c?id={{ customer.id }}">C</a> '
        '<a href="{{ unsubscribe_url }}">U</a></p>'
    )
    text = "Shop: https://shop.example/a?x=1&y=2. Yours: {{ customer.attributes.site }}"
    compiled = email(source, text=text)
    ctx = context(attributes={"site": "https://anna.example/"})

    assert len(compiled.static_links) == 3  # the two literal hrefs and the literal text URL
    fast_calls, fast = numbered_links()
    slow_calls, slow = numbered_links()
    rendered = compiled.render(ctx, link=fast, link_prefix=TRACKED)
    searched = compiled.render(ctx, link=slow)

    assert rendered == searched
    assert sorted(fast_calls) == sorted(slow_calls) == sorted([
        "https://shop.example/a?x=1&y=2", "http://shop.example/b", "https://anna.example/",
        "https://shop.example/c?id=7",
    ])
    assert f'href="{UNSUBSCRIBE}"' in rendered.html  # never tracked
    assert compiled.render(ctx).html == compiled.render(ctx).html.replace(TRACKED, "")  # untracked
    assert 'href=\'http://shop.example/b\'' in compiled.render(ctx).html  # as written


LINK_FRAGMENTS = [
    '<a href="https://s.example/p">', "<a href='https://s.example/q?a=1&amp;b=2'>", "<a href=https://s.example/r>",
    ' href=https://s.example/u ', '<a href="https://s.example/p?id={{ customer.id }}">',
    "https://s.example/t ", "https://s.example/v", '<a href="{{ customer.attributes.site }}">',
    "{{ customer.id }}", "{{ customer.attributes.site }}", "{%- if customer.attributes.vip -%}",
    "{% endif %}", "{{ unsubscribe_url }}", '"', "'", " ", "\n", ".", "</a>", "<p>", "{# c #}",
    "{% raw %}https://s.example/raw {% endraw %}", "<style>p{color:red}</style>", "x",
]  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(parts=st.lists(st.sampled_from(LINK_FRAGMENTS), max_size=20),
       site=st.sampled_from(["https://anna.example/", "", "x https://d.example/y"]))
def test_filling_in_static_links_renders_exactly_what_searching_the_output_does(
    parts: list[str], site: str
) -> None:
    # Every href value is closed (an unclosed one swallowing the next link is garbage either way).
    source = "".join(parts)
    try:
        compiled = email(source, text=source.replace("<", " "))
        derived = email(source)
    except InvalidInput:
        return
    ctx = context(attributes={"site": site, "vip": len(parts) % 2 == 0})
    for template in (compiled, derived):
        fast_calls, fast = numbered_links()
        slow_calls, slow = numbered_links()

        assert template.render(ctx, link=fast, link_prefix=TRACKED) == template.render(ctx, link=slow)
        assert set(slow_calls) <= set(fast_calls)  # plus literal links in a branch not taken


@pytest.mark.parametrize(("expression", "expected"), [
    ("{{ '\\x00' }}é", "\ufffdé"),
    ("{{ '\\ud800' }}é", "\ufffdé"),
    ("a{{ '\\udfff' }}b{{ '\\x00' }}c", "a\ufffdb\ufffdc"),
    ("Göteborg {{ 'ok' }} 😀", "Göteborg ok 😀"),  # a real pair of surrogates stays
])
def test_a_rendered_message_has_no_nul_and_no_lone_surrogate(expression: str, expected: str) -> None:
    rendered = compile_email(subject="S", html="", text=expression).render({"customer": {}})
    assert rendered.text == expected
