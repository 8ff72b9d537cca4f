"""The email builder's document: its schema, its limits, and blocks -> MJML -> HTML."""

from __future__ import annotations

import re

import pytest

from tidings.domain.templates import (
    STARTERS,
    blocks_to_html,
    compile_email,
    html_to_text,
    validate_blocks,
    with_preheader,
)
from tidings.domain.templates.blocks import MAX_BLOCKS, clean_rich_text
from tidings.errors import InvalidInput

EVERY_KIND = [
    {"type": "heading", "text": "First the heading"},
    {"type": "text", "html": "<p>Then <b>bold</b> and <i>italic</i> text</p><ul><li>a list item</li></ul>"},
    {"type": "image", "src": "https://shop.example/media/1-cat.png", "alt": "A cat"},
    {"type": "button", "label": "Press the button", "url": "https://shop.example/sale"},
    {"type": "divider"},
    {"type": "spacer", "height": 30},
    {"type": "columns", "columns": [{"heading": "Left column"}, {"heading": "Right column"}]},
    {"type": "product", "name": "The product card", "price": "€ 49",
     "url": "https://shop.example/p/1"},
    {"type": "social", "links": [{"network": "instagram", "url": "https://instagram.com/shop"}]},
    {"type": "footer", "address": "The Shop, Main Street 1"},
]
IN_ORDER = ["First the heading", "Then", "a list item", "A cat", "Press the button", "Left column",
            "Right column", "The product card", "Instagram", "The Shop, Main Street 1", "Unsubscribe"]


def _render(blocks: list[dict], **customer: object) -> str:
    html = blocks_to_html(validate_blocks(blocks))
    rendered = compile_email(subject="s", html=html, text=None).render(
        {"customer": {"first_name": "", "attributes": {}, **customer},
         "unsubscribe_url": "https://t.example/u/TOKEN", "mailing": {}})
    assert rendered.html is not None
    return rendered.html


def test_every_kind_of_block_comes_out_in_order() -> None:
    text = html_to_text(_render(EVERY_KIND))
    positions = [text.find(words) for words in IN_ORDER]
    assert -1 not in positions, (positions, text)
    assert positions == sorted(positions)


def test_validation_fills_in_defaults_and_is_stable() -> None:
    blocks = validate_blocks(EVERY_KIND)
    assert blocks[0] == {"type": "heading", "text": "First the heading", "level": 1, "align": "left"}
    assert blocks[3]["color"] == "#2450a6"
    assert blocks[-1]["unsubscribe_label"] == "Unsubscribe"
    assert validate_blocks(blocks) == blocks


@pytest.mark.parametrize(("blocks", "field", "words"), [
    ([{"type": "poster"}], "blocks[0]", "no block type 'poster'"),
    ([{"type": "heading", "text": "x", "colour": "red"}], "blocks[0]", "no field 'colour'"),
    ([{"type": "heading", "text": "ok"}, {"type": "heading", "text": "  "}], "blocks[1]",
     "Block 2 (Heading): Heading is empty"),
    ([{"type": "button", "label": "Go", "url": "javascript:alert(1)"}], "blocks[0]",
     "must be a web address"),
    ([{"type": "spacer", "height": 9000}], "blocks[0]", "from 4 to 160"),
    ([{"type": "heading", "text": "x" * 301}], "blocks[0]", "at most 300 fit"),
    ([{"type": "text", "html": "<p>{% if customer.vip %}yes</p>"}], "blocks[0]",
     "Block 1 (Text): Text has a template error"),
    ([{"type": "text", "html": "{{ ''.__class__ }}"}], "blocks[0]", "template error"),
    ([{"type": "columns", "columns": [{"heading": "one"}]}], "blocks[0]", "2 to 3 columns"),
    ([], "blocks", "add at least one"),
])
def test_bad_blocks_are_refused_naming_the_block(blocks: list, field: str, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_blocks(blocks)
    assert caught.value.field == field
    assert words in caught.value.message


def test_there_is_a_limit_on_blocks() -> None:
    validate_blocks([{"type": "divider"}] * MAX_BLOCKS)
    with pytest.raises(InvalidInput, match=f"at most {MAX_BLOCKS}"):
        validate_blocks([{"type": "divider"}] * (MAX_BLOCKS + 1))


def test_rich_text_keeps_only_its_tags_and_safe_links() -> None:
    cleaned = clean_rich_text(
        '<div>One <b onclick="x()">bold</b></div><div><span style="color:red">two</span>'
        '<script>steal()</script><a href="https://shop.example/?a=1&amp;b=2" class="c">link</a>'
        '<img src=x onerror=y></div><ol><li>first</ol>')
    assert cleaned == ('<p>One <strong>bold</strong></p><p>two<a href="https://shop.example/?a=1&amp;b=2">'
                       'link</a></p><ol><li>first</li></ol>')
    with pytest.raises(ValueError, match="javascript"):
        clean_rich_text('<a href="javascript:alert(1)">x</a>')


def test_personalisation_survives_byte_for_byte_and_typed_markup_stays_text() -> None:
    tags = ['{{ customer.first_name or "there" }}', "{% if customer.attributes.n < 3 %}few{% endif %}"]
    html = _render([{"type": "heading", "text": f"Hi {tags[0]} <b>&</b>"},
                    {"type": "text", "html": f"<p>{tags[1]}</p>"},
                    {"type": "button", "label": "Cart", "url": "{{ customer.attributes.cart }}"}],
                   first_name="Ann", attributes={"n": 2, "cart": "https://shop.example/c?x=1&y=2"})
    assert "Hi Ann &lt;b&gt;&amp;&lt;/b&gt;" in html
    assert ">few<" in html or "few" in html_to_text(html)
    assert 'href="https://shop.example/c?x=1&amp;y=2"' in html
    raw = blocks_to_html(validate_blocks([{"type": "heading", "text": tags[0]}]))
    assert raw.count(tags[0]) == 1


def test_the_footer_always_links_unsubscribe_and_no_web_font_is_fetched() -> None:
    html = blocks_to_html(validate_blocks([{"type": "footer", "unsubscribe_label": ""}]))
    assert re.search(r'href="\{\{ unsubscribe_url \}\}"[^>]*>Unsubscribe<', html)
    assert "googleapis" not in html and "@import" not in html


def test_the_layout_is_responsive() -> None:
    html = blocks_to_html(validate_blocks(EVERY_KIND))
    assert 'name="viewport"' in html
    assert "@media only screen and (min-width:480px)" in html


@pytest.mark.parametrize("key", sorted(STARTERS))
def test_every_starter_layout_is_valid_and_unsubscribable(key: str) -> None:
    starter = STARTERS[key]
    blocks = validate_blocks([dict(b) for b in starter.blocks])
    assert "{{ unsubscribe_url }}" in blocks_to_html(blocks)
    compile_email(subject=starter.subject, html=blocks_to_html(blocks), text=None)


def test_the_preheader_is_hidden_text_at_the_start_of_the_body() -> None:
    html = with_preheader('<html><body class="x"><p>Body</p></body></html>',
                          'Hi {{ customer.first_name or "you" }} & <friends>')
    assert html.startswith('<html><body class="x"><div style="display:none;')
    assert 'Hi {{ customer.first_name or "you" }} &amp; &lt;friends&gt;</div><p>Body</p>' in html
    assert with_preheader("<p>x</p>", "") == "<p>x</p>"
    rendered = compile_email(subject="s", html=html, text=None).render(
        {"customer": {"first_name": "Ann"}, "unsubscribe_url": "u", "mailing": {}})
    assert "Hi Ann &amp;" in (rendered.html or "")
    assert rendered.text == "Body"  # hidden: not in the text part
