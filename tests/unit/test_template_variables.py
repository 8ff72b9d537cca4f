"""Warnings for variables that print nothing, and for a missing unsubscribe link."""

from __future__ import annotations

from tidings.domain.templates import template_warnings


def _codes(**sources: str) -> list[tuple[str, str | None]]:
    found = template_warnings(sources, attributes=["city", "vip_level"], email=True)
    return [(w.code, w.variable) for w in found]


def test_known_fields_attributes_and_names_give_no_warning() -> None:
    assert _codes(
        subject="Hi {{ customer.first_name or 'there' }}",
        html="{% for i in range(2) %}{{ i }}{% endfor %}{% set x = 1 %}{{ x }} "
             "{{ customer['last_name'] }} {{ customer.attributes.city }} "
             "{{ customer.attributes['vip_level'] }} {{ mailing.name }} "
             "<a href='{{ unsubscribe_url }}'>Unsubscribe</a>") == []


def test_a_misspelt_field_is_found_with_a_suggestion() -> None:
    (warning,) = template_warnings({"html": "{{ customer.firstname }} {{ unsubscribe_url }}"},
                                   attributes=[], email=True)
    assert (warning.code, warning.variable) == ("unknown_variable", "customer.firstname")
    assert warning.message.endswith("Did you mean customer.first_name?")


def test_an_attribute_no_customer_has_and_a_free_name_are_found() -> None:
    assert _codes(html="{{ customer.attributes.citty }} {{ first_name }} {{ unsubscribe_url }}") == [
        ("unknown_attribute", "customer.attributes.citty"), ("unknown_variable", "first_name")]
    warnings = template_warnings({"html": "{{ customer.attributes.citty }}{{ unsubscribe_url }}"},
                                 attributes=["city"], email=True)
    assert warnings[0].message.endswith("Did you mean customer.attributes.city?")


def test_an_email_without_unsubscribe_link_is_warned_about_but_not_an_sms() -> None:
    assert _codes(html="<p>Hello</p>") == [("no_unsubscribe_link", "unsubscribe_url")]
    assert _codes(html="<p>Hello</p>", text="Leave: {{ unsubscribe_url }}") == []
    assert template_warnings({"text": "Hello"}, attributes=[], email=False) == []


def test_a_template_that_does_not_parse_is_left_to_validation() -> None:
    assert _codes(html="{% if %}", text="{{ unsubscribe_url }}") == []
