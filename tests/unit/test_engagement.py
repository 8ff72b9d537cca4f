"""The pure engagement rules: machine hits, attribution, order input, statistics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tidings.domain.engagement import (
    ZERO,
    Counts,
    Reach,
    attribute,
    is_machine,
    money,
    parse_orders_csv,
    parse_total,
    rate,
    statistics,
    validate_order,
)
from tidings.errors import InvalidInput

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/124.0 Safari/537.36")


def reach(message_id: int, *, sent: datetime, opened: datetime | None = None,
          clicked: datetime | None = None, window: int = 7, basis: str = "received") -> Reach:
    return Reach(message_id=message_id, mailing_id=100 + message_id, sent_at=sent,
                 opened_at=opened, clicked_at=clicked, window_days=window, basis=basis)


# -- machines -----------------------------------------------------------------------


@pytest.mark.parametrize("agent", [
    CHROME,
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328)",
    "testclient",
    "python-httpx/0.28.1",
    "Mozilla/5.0 (Linux; Android 12; CUBOT P50) AppleWebKit/537.36",
    None,
    "",
])
def test_people_and_their_mail_clients_are_not_machines(agent):
    assert is_machine(agent) is False


@pytest.mark.parametrize("agent", [
    "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))",
    "Mimecast-URL-Protect/1.0",
    "Mozilla/5.0 (compatible; proofpoint-urldefense)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) BingPreview/1.0b",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Googlebot/2.1)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "facebookexternalhit/1.1",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/120.0 Safari/537.36",
    "Acme Link Checker 2.0",
    "SomeCorp URL scanner",
])
def test_scanners_and_bots_are_machines(agent):
    assert is_machine(agent) is True


def test_a_head_request_is_a_machine_whatever_its_agent():
    assert is_machine(CHROME, method="HEAD") is True
    assert is_machine(CHROME, method="GET") is False


# -- attribution --------------------------------------------------------------------


def test_the_last_mailing_received_within_its_window_gets_the_order():
    early, late = reach(1, sent=T0), reach(2, sent=T0 + timedelta(days=1))
    assert attribute(T0 + timedelta(days=3), [early, late]) == late
    assert attribute(T0 + timedelta(days=3), [late, early]) == late


def test_an_order_after_the_window_or_before_the_send_goes_to_no_mailing():
    sent = reach(1, sent=T0, window=7)
    assert attribute(T0 + timedelta(days=7, seconds=1), [sent]) is None
    assert attribute(T0 - timedelta(seconds=1), [sent]) is None


def test_the_window_boundary_is_inside_it():
    assert attribute(T0 + timedelta(days=7), [reach(1, sent=T0, window=7)]) is not None


def test_a_later_mailing_whose_window_has_passed_leaves_the_order_to_an_earlier_one():
    long_window = reach(1, sent=T0, window=30)
    short_window = reach(2, sent=T0 + timedelta(days=5), window=1)
    assert attribute(T0 + timedelta(days=10), [long_window, short_window]) == long_window


def test_the_opened_basis_needs_an_open_before_the_order_and_counts_the_window_from_it():
    unopened = reach(1, sent=T0, basis="opened")
    opened_after = reach(2, sent=T0, opened=T0 + timedelta(days=2), basis="opened")
    opened = reach(3, sent=T0 - timedelta(days=10), opened=T0, basis="opened", window=7)
    order_at = T0 + timedelta(days=1)
    assert attribute(order_at, [unopened]) is None
    assert attribute(order_at, [opened_after]) is None
    assert attribute(order_at, [opened]) == opened


def test_the_clicked_basis_ignores_a_mere_open():
    opened_only = reach(1, sent=T0, opened=T0, basis="clicked")
    clicked = reach(2, sent=T0 - timedelta(days=1), opened=T0, clicked=T0, basis="clicked")
    assert attribute(T0 + timedelta(hours=1), [opened_only]) is None
    assert attribute(T0 + timedelta(hours=1), [opened_only, clicked]) == clicked


def test_equal_times_go_to_the_higher_message_id():
    a, b = reach(1, sent=T0), reach(2, sent=T0)
    assert attribute(T0 + timedelta(hours=1), [b, a]) == b


# -- orders -------------------------------------------------------------------------


def test_a_valid_order_is_put_in_normal_form():
    order = validate_order({"external_id": 1001, "customer_email": " Ann@Example.ORG ",
                            "total": "19.9", "created_at": "2024-05-01T14:00:00+02:00",
                            "utm": {"utm_source": "tidings", "utm_term": ""}})
    assert order.external_id == "1001"
    assert order.customer_email == "ann@example.org" and order.customer_id is None
    assert order.total == Decimal("19.90")
    assert order.ordered_at == T0
    assert order.utm == {"utm_source": "tidings"}


@pytest.mark.parametrize(("data", "field"), [
    ({"customer_id": 1, "total": 1, "created_at": "2024-05-01T12:00:00Z"}, "external_id"),
    ({"external_id": "a", "total": 1, "created_at": "2024-05-01T12:00:00Z"}, "customer_id"),
    ({"external_id": "a", "customer_id": 1, "customer_email": "a@b.c", "total": 1,
      "created_at": "2024-05-01T12:00:00Z"}, "customer_id"),
    ({"external_id": "a", "customer_id": 1, "total": "1.005",
      "created_at": "2024-05-01T12:00:00Z"}, "total"),
    ({"external_id": "a", "customer_id": 1, "total": -1, "created_at": "2024-05-01T12:00:00Z"},
     "total"),
    ({"external_id": "a", "customer_id": 1, "total": "NaN", "created_at": "2024-05-01T12:00Z"},
     "total"),
    ({"external_id": "a", "customer_id": 1, "total": 1, "created_at": "2024-05-01T12:00:00"},
     "created_at"),
    ({"external_id": "a", "customer_id": 1, "total": 1, "created_at": "yesterday"}, "created_at"),
    ({"external_id": "a", "customer_id": 1, "total": 1, "created_at": "2024-05-01T12:00:00Z",
      "utm": "x"}, "utm"),
    ({"external_id": "a", "customer_id": 1, "total": 1, "created_at": "2024-05-01T12:00:00Z",
      "coupon": "x"}, "coupon"),
])
def test_a_bad_order_names_its_field(data, field):
    with pytest.raises(InvalidInput) as caught:
        validate_order(data)
    assert caught.value.field == field


def test_totals_keep_cents_exactly():
    assert parse_total(0.1) + parse_total("0.2") == Decimal("0.30")
    assert money(Decimal("2.345")) == "2.35" and money(Decimal("2.344")) == "2.34"
    assert money(0) == "0.00" and money(None) == "0.00"


def test_an_orders_file_keeps_good_lines_and_reports_bad_ones_by_line():
    data = (
        b"Order ID;Email;Amount;Created at;utm_campaign;note\n"
        b"A1;ann@example.org;10.00;2024-05-01T12:00:00Z;spring;x\n"
        b"\n"
        b"A2;bob@example.org;ten;2024-05-01T12:00:00Z;;\n"
        b"A3;cy@example.org;5,5;2024-05-01T12:00:00Z;;\n"
        b"A4;dee@example.org;7.5;2024-05-02T00:00:00+00:00;;\n"
    )
    parsed = parse_orders_csv(data)
    assert [(line, o.external_id, o.total, o.utm) for line, o in parsed.orders] == [
        (2, "A1", Decimal("10.00"), {"utm_campaign": "spring"}),
        (6, "A4", Decimal("7.50"), {}),
    ]
    assert [line for line, _ in parsed.errors] == [4, 5]
    assert "total" in parsed.errors[0][1]


def test_an_orders_file_without_a_required_column_is_refused_whole():
    with pytest.raises(InvalidInput) as caught:
        parse_orders_csv(b"external_id,total\nA1,10\n")
    assert "created_at" in caught.value.message and "customer_id or customer_email" in \
        caught.value.message


# -- statistics ---------------------------------------------------------------------


def counts(**values: object) -> Counts:
    from dataclasses import replace

    return replace(ZERO, **values)  # type: ignore[arg-type]


def test_statistics_derive_delivered_and_the_rates_a_manager_reads():
    stats = statistics(counts(audience=10, sent=8, failed=1, skipped=1, hard_bounced=1,
                              soft_bounced=1, opened=3, clicked=2, unsubscribed=1, complained=0,
                              orders=3, revenue=Decimal("100.00"), converted=2))
    assert {k: stats[k] for k in ("sent", "delivered", "failed", "bounced", "opened", "clicked",
                                  "unsubscribed", "complained", "orders", "revenue",
                                  "conversion_rate")} == {
        "sent": 8, "delivered": 6, "failed": 1, "bounced": 2, "opened": 3, "clicked": 2,
        "unsubscribed": 1, "complained": 0, "orders": 3, "revenue": "100.00",
        "conversion_rate": 0.3333,
    }
    assert stats["revenue_per_recipient"] == "16.67"
    assert stats["rates"] == {"sent": 0.8, "delivered": 0.75, "failed": 0.1111, "opened": 0.5,
                              "clicked": 0.3333, "click_to_open": 0.6667, "unsubscribed": 0.1667,
                              "complained": 0.0, "conversion": 0.3333}


def test_statistics_of_nothing_are_zeros_not_errors():
    stats = statistics(ZERO)
    assert stats["revenue"] == "0.00" and stats["revenue_per_recipient"] == "0.00"
    assert set(stats["rates"].values()) == {0.0}


def test_counts_add_up_for_chain_totals():
    total = counts(sent=2, revenue=Decimal("1.10")) + counts(sent=3, revenue=Decimal("2.20"))
    assert total.sent == 5 and total.revenue == Decimal("3.30")
    assert rate(1, 3) == 0.3333
