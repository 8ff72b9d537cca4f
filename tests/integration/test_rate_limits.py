"""Rate limits on the public endpoints, per client address: a flood from one
address is refused cheaply and clearly (the pixel still answers an image but
records nothing), others are not affected; the API's token check never takes
SQLite's write lock."""

from __future__ import annotations

import sqlite3
import time

import pytest

from tests.builders import links_of, mail_to, send, stats, tracked_mailing, visit
from tidings.api.rate_limits import Limit
from tidings.config import Settings
from tidings.errors import Unauthorized
from tidings.services import tokens
from tidings.store.db import migrate
from tidings.web.security import client_address

FLOODER = {"X-Forwarded-For": "198.51.100.66"}
NEIGHBOUR = {"X-Forwarded-For": "198.51.100.67"}


def limit(api, name: str) -> Limit:  # type: ignore[no-untyped-def]
    found: Limit = next(x for x in api.client.app.state.rate_limits if x.name == name)
    return found


def stop_time(api) -> None:  # type: ignore[no-untyped-def]
    """No bucket refills from now on (a flood of hundreds of requests takes a while)."""
    for each in api.client.app.state.rate_limits:
        moment = each.buckets.clock()
        each.buckets.clock = lambda moment=moment: moment


def exhaust(api, name: str, path: str, method: str = "GET") -> None:  # type: ignore[no-untyped-def]
    """Use up the address's bucket of ``name`` with junk requests to ``path``."""
    stop_time(api)
    for _ in range(int(limit(api, name).rate.capacity)):
        api.client.request(method, path, headers=FLOODER, follow_redirects=False)


def test_over_its_limit_the_open_pixel_still_answers_an_image_but_records_nothing(
        make_ctx, api_for, smtp_server) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx(smtp_url=smtp_server.url, trust_proxy=True)
    api = api_for(ctx)
    made = tracked_mailing(api, ["ann@example.org", "bob@example.org"])
    mid = made["mailing"]["id"]
    send(api, ctx, mid)
    ann = links_of(mail_to(smtp_server, "ann@example.org", mid))
    bob = links_of(mail_to(smtp_server, "bob@example.org", mid))

    exhaust(api, "open pixel", "/t/o/junk")
    flooded = visit(api, ann.pixel, headers=FLOODER)
    neighbour = visit(api, bob.pixel, headers=NEIGHBOUR)

    assert (flooded.status_code, flooded.headers["content-type"]) == (200, "image/gif")
    assert flooded.content.startswith(b"GIF89a")
    assert neighbour.status_code == 200
    assert stats(api, mid)["opened"] == 1  # bob's, from another address; not ann's


def test_over_its_limit_a_click_gets_a_429_page_saying_when_to_try_again(
        make_ctx, api_for, smtp_server) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx(smtp_url=smtp_server.url, trust_proxy=True)
    api = api_for(ctx)
    mid = tracked_mailing(api, ["ann@example.org"])["mailing"]["id"]
    send(api, ctx, mid)
    click = links_of(mail_to(smtp_server, "ann@example.org", mid)).clicks[0]

    exhaust(api, "click", "/t/c/junk")
    refused = visit(api, click, headers=FLOODER)
    elsewhere = visit(api, click, headers=NEIGHBOUR)

    assert refused.status_code == 429 and "location" not in refused.headers
    assert refused.headers["content-type"].startswith("text/html")
    assert "Too many requests from your network: try again in 1 second." in refused.text
    assert int(refused.headers["retry-after"]) >= 1
    assert len(refused.content) < 1000  # no amplification
    assert elsewhere.status_code == 302
    assert stats(api, mid)["clicked"] == 1


def test_over_its_limit_unsubscribing_gets_a_429_page(make_ctx, api_for) -> None:  # type: ignore[no-untyped-def]
    api = api_for(make_ctx(trust_proxy=True))
    exhaust(api, "unsubscribe", "/u/junk", method="POST")
    refused = api.client.post("/u/junk", headers=FLOODER)
    elsewhere = api.client.post("/u/junk", headers=NEIGHBOUR)
    assert refused.status_code == 429 and elsewhere.status_code == 404


def test_over_its_limit_a_provider_webhook_gets_a_429_in_the_error_envelope(make_ctx, api_for) -> None:  # type: ignore[no-untyped-def]
    api = api_for(make_ctx(trust_proxy=True))
    event = {"type": "delivered", "message_id": 999}
    stop_time(api)
    for _ in range(int(limit(api, "provider events").rate.capacity)):
        api.post("/events", event, headers=FLOODER)

    refused = api.post("/events", event, headers=FLOODER, expect=429)
    elsewhere = api.post("/events", event, headers=NEIGHBOUR, expect=404)

    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.json()["error"]["message"].startswith("Too many requests from your address")
    assert int(refused.headers["retry-after"]) >= 1
    assert elsewhere.json()["error"]["code"] != "rate_limited"


def test_forwarded_addresses_count_only_behind_a_trusted_proxy(make_ctx, api_for) -> None:  # type: ignore[no-untyped-def]
    api = api_for(make_ctx())  # TIDINGS_TRUST_PROXY unset: X-Forwarded-For is anyone's to write
    exhaust(api, "unsubscribe", "/u/junk", method="POST")
    assert api.client.post("/u/junk", headers=NEIGHBOUR).status_code == 429


def test_rate_limits_can_be_turned_off_for_benchmarks(make_ctx, api_for) -> None:  # type: ignore[no-untyped-def]
    api = api_for(make_ctx(rate_limits=False))
    assert api.client.app.state.rate_limits == ()
    for _ in range(100):
        assert api.client.post("/u/junk").status_code == 404


@pytest.mark.parametrize(("peer", "forwarded", "trusted", "key"), [
    ("198.51.100.7", None, False, "198.51.100.7"),
    ("198.51.100.7", "203.0.113.1", False, "198.51.100.7"),
    ("10.0.0.2", "203.0.113.1, 192.0.2.9", True, "192.0.2.9"),  # the proxy appends the last one
    ("2001:db8:1:2:3:4:5:6", None, False, "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff::1", None, False, "2001:db8:1:2::/64"),  # the same subscriber's network
    ("::ffff:198.51.100.7", None, False, "198.51.100.7"),
])
def test_a_client_is_counted_by_its_address_or_its_ipv6_network(
        peer: str, forwarded: str | None, trusted: bool, key: str) -> None:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    scope = {"type": "http", "client": (peer, 5000), "headers": headers}
    settings = Settings(_env_file=None, trust_proxy=trusted)  # type: ignore[call-arg]
    assert client_address(scope, settings) == key


def test_checking_an_api_token_never_waits_for_sqlites_write_lock(make_ctx, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx(database_url=f"sqlite:///{tmp_path / 'locked.db'}")
    migrate(ctx.settings.database_url)
    good = tokens.create_token(ctx, name="shop")
    writer = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # a long write holds the lock
    try:
        started = time.monotonic()
        for _ in range(50):
            with pytest.raises(Unauthorized):
                tokens.authenticate(ctx, "tid_forged")
        assert tokens.authenticate(ctx, good).role == "manager"
        assert time.monotonic() - started < 5  # the busy timeout is 30 s: nothing waited
    finally:
        writer.execute("ROLLBACK")
        writer.close()
