"""Template previews (saved and unsaved) and a template's test send, through the
service layer against a real database and a real SMTP server."""

from __future__ import annotations

from typing import Any

import pytest

from tidings.domain.actors import SYSTEM
from tidings.errors import Conflict, InvalidInput, NotFound, TemplateSyntaxError
from tidings.services import audience, quotas, test_addresses, test_sends
from tidings.services import templates as template_service
from tidings.services.context import Context

EMAIL = {"name": "Welcome", "channel": "email", "subject": "Hi {{ customer.first_name }}",
         "html": "<p>Hello {{ customer.first_name }} from {{ customer.attributes.city }}</p>"
                 '<a href="https://shop.example.com/new">New</a>',
         "text": "Hello {{ customer.first_name }}, {{ unsubscribe_url }}"}
SMS = {"name": "Short", "channel": "sms", "text": "Hi {{ customer.first_name }}!"}


def allow_tests_to(ctx: Context, *addresses: str) -> None:
    for address in addresses:
        test_addresses.add_address(ctx, address, actor=SYSTEM)


def customer(ctx: Context, email: str = "ann@example.org", **fields: Any) -> int:
    (cid,) = audience.upsert_customers(ctx, [{"email": email, "first_name": "Ann",
                                              "attributes": {"city": "Riga"}, **fields}])
    return int(cid)


@pytest.fixture
def ctx(make_ctx) -> Context:  # type: ignore[no-untyped-def]
    made: Context = make_ctx()
    return made


@pytest.mark.parametrize(("values", "key", "for_ann", "for_sample"), [
    (EMAIL, "subject", "Hi Ann", "Hi Alex"),
    (SMS, "text", "Hi Ann!", "Hi Alex!"),
], ids=["email", "sms"])
def test_an_unsaved_template_previews_exactly_like_the_saved_one(
        ctx: Context, values: dict[str, Any], key: str, for_ann: str, for_sample: str) -> None:
    ann = customer(ctx)
    saved = template_service.create_template(ctx, dict(values))

    drafts = {cid: template_service.preview_draft(ctx, dict(values), cid) for cid in (ann, None)}

    assert drafts == {cid: template_service.preview(ctx, saved["id"], cid) for cid in (ann, None)}
    assert (drafts[ann][key], drafts[None][key]) == (for_ann, for_sample)


def test_an_unsaved_preview_renders_the_fields_it_is_given_and_stores_nothing(ctx: Context) -> None:
    shown = template_service.preview_draft(ctx, {"subject": "S {{ customer.last_name }}",
                                        "html": "<p>{{ mailing.name }}</p>", "name": ""}, None)
    assert shown["channel"] == "email" and shown["subject"] == "S Example"
    assert "Preview" in shown["html"] and "Preview" in shown["text"]
    assert template_service.list_templates(ctx) == []


def test_an_unsaved_preview_reports_what_is_wrong(ctx: Context) -> None:
    with pytest.raises(TemplateSyntaxError) as caught:
        template_service.preview_draft(ctx, {"subject": "S", "html": "<p>\n{% if x %}open</p>"}, None)
    assert caught.value.line == 2
    with pytest.raises(InvalidInput) as unknown:
        template_service.preview_draft(ctx, EMAIL, 999)
    assert unknown.value.field == "customer_id"
    with pytest.raises(InvalidInput) as channel:
        template_service.preview_draft(ctx, {"channel": "fax", "text": "x"}, None)
    assert channel.value.field == "channel"


def test_a_template_test_send_reaches_the_server_personalised_and_uncounted(
        make_ctx, smtp_server) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx(smtp_url=smtp_server.url)
    ann = customer(ctx)
    template = template_service.create_template(ctx, dict(EMAIL))
    allow_tests_to(ctx, "qa@example.org")

    test_sends.send_template_test(ctx, template["id"], to=" QA@Example.org ", customer_id=ann,
                                  actor=SYSTEM)

    (received,) = smtp_server.messages
    message = received.message
    assert received.rcpt == "QA@example.org" and message["To"] == "QA@example.org"
    assert message["Subject"] == "Hi Ann"
    assert message["X-Tidings-Test"] == "yes"
    assert message["X-Tidings-Template"] == str(template["id"])
    assert message["X-Tidings-Mailing"] == "test"
    assert ctx.settings.default_from_email in message["From"]
    assert "Hello Ann from Riga" in message.get_body(("html",)).get_content()
    assert "/t/c/" in message.get_body(("html",)).get_content()  # links tracked like a mailing's
    assert quotas.get_quota(ctx)["email"]["balance"] is None


def test_a_template_test_send_without_a_customer_uses_the_addressee_or_the_sample(
        make_ctx, smtp_server) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx(smtp_url=smtp_server.url)
    customer(ctx, email="bob@example.org", first_name="Bob")
    template = template_service.create_template(ctx, dict(EMAIL))
    allow_tests_to(ctx, "bob@example.org", "qa@example.org")

    test_sends.send_template_test(ctx, template["id"], to="bob@example.org", customer_id=None,
                                  actor=SYSTEM)
    test_sends.send_template_test(ctx, template["id"], to="qa@example.org", customer_id=None,
                                  actor=SYSTEM)

    assert [m.message["Subject"] for m in smtp_server.messages] == ["Hi Bob", "Hi Alex"]


def test_a_template_test_send_is_refused_with_a_reason(make_ctx, smtp_server) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx(smtp_url=smtp_server.url)
    email = template_service.create_template(ctx, dict(EMAIL))
    sms = template_service.create_template(ctx, dict(SMS))
    smtp_server.handler.reject["nobody@example.org"] = "550 5.1.1 No such user"
    allow_tests_to(ctx, "nobody@example.org", "qa@example.org")

    def refusal(template_id: int, to: str, customer_id: int | None = None) -> Exception:
        with pytest.raises((InvalidInput, NotFound, Conflict)) as caught:
            test_sends.send_template_test(ctx, template_id, to=to, customer_id=customer_id,
                                          actor=SYSTEM)
        return caught.value

    assert refusal(email["id"], "").field == "to"  # type: ignore[attr-defined]
    assert refusal(email["id"], "not an address").field == "to"  # type: ignore[attr-defined]
    assert refusal(email["id"], "qa@example.org", 999).field == "customer"  # type: ignore[attr-defined]
    assert refusal(sms["id"], "qa@example.org").message == "Test sends are for email templates."  # type: ignore[attr-defined]
    assert isinstance(refusal(999, "qa@example.org"), NotFound)
    failed = refusal(email["id"], "nobody@example.org")
    assert failed.code == "test_send_failed" and "550" in failed.message  # type: ignore[attr-defined]
    assert smtp_server.messages == []

    strict = make_ctx(smtp_url=smtp_server.url, require_verified_domain=True)
    with pytest.raises(Conflict) as unverified:
        test_sends.send_template_test(strict, email["id"], to="qa@example.org", customer_id=None,
                                      actor=SYSTEM)
    assert unverified.value.code == "domain_not_verified"
    assert "Domains page" in unverified.value.message
    assert smtp_server.messages == []
