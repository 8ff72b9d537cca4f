"""SMS mailings through a real HTTP gateway stand-in on loopback."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.smtpserver import free_port
from tidings.services.sending import make_worker


class Gateway:
    """Accepts ``POST /sms`` JSON; answers 400 for numbers in ``refuse`` and 503 when ``down``."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.refuse: set[str] = set()
        self.down = False
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if gateway.down:
                    status = 503
                elif body["to"] in gateway.refuse:
                    status = 400
                else:
                    gateway.received.append(body)
                    status = 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/sms"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def gateway():
    g = Gateway()
    yield g
    g.stop()


def sms_mailing(api) -> int:
    api.ok("POST", "/customers", {"customers": [
        {"email": "a@example.org", "phone": "+371 2000 0001", "first_name": "Ann"},
        {"email": "b@example.org", "phone": "+37120000002", "first_name": "Bob"},
        {"email": "c@example.org", "first_name": "No phone"},
        {"email": "d@example.org", "phone": "+37120000004", "sms_status": "unsubscribed"},
    ]}, status=201)
    segment = api.ok("POST", "/segments", {"name": "all", "rules": {}}, status=201)
    template = api.ok("POST", "/templates", {"name": "s", "channel": "sms",
                                             "text": "Hi {{ customer.first_name }}! https://shop.example.com/x"},
                      status=201)
    # No quiet hours: these tests send whatever the time of day (the default window,
    # 21:00-09:00 in Latvia, would hold both phones from 19:00 UTC).
    return api.ok("POST", "/mailings", {"name": "SMS", "channel": "sms", "segment_id": segment["id"],
                                        "template_id": template["id"],
                                        "quiet_hours": {"enabled": False}}, status=201)["id"]


def test_an_sms_mailing_posts_one_json_per_reachable_phone(make_ctx, api_for, gateway):
    ctx = make_ctx(sms_url=gateway.url, smtp_url="smtp://127.0.0.1:1")
    api = api_for(ctx)
    mid = sms_mailing(api)
    started = api.ok("POST", f"/mailings/{mid}/send")
    assert started["progress"]["skipped"] == 2
    make_worker(ctx).run_until_idle()
    done = api.ok("GET", f"/mailings/{mid}")
    assert done["status"] == "sent" and done["progress"]["sent"] == 2
    by_phone = {m["to"]: m for m in gateway.received}
    assert sorted(by_phone) == ["+37120000001", "+37120000002"]
    ann = by_phone["+37120000001"]
    assert ann["mailing_id"] == mid
    assert len({m["message_id"] for m in gateway.received}) == 2
    # the link is short, per recipient, and redirects with the UTM tags, counting the click
    found = re.fullmatch(r"Hi Ann! http://tidings\.test/s/([A-Za-z0-9_-]{14,20})", ann["text"])
    assert found is not None, ann["text"]
    bob_token = by_phone["+37120000002"]["text"].rsplit("/", 1)[1]
    assert bob_token != found.group(1)
    followed = api.client.get(f"/s/{found.group(1)}", follow_redirects=False)
    assert followed.status_code == 302
    assert followed.headers["location"] == (
        "https://shop.example.com/x?utm_source=tidings&utm_medium=sms&utm_campaign=sms")
    stats = api.ok("GET", f"/mailings/{mid}/stats")
    assert (stats["clicked"], stats["opened"]) == (1, 0)
    token = found.group(1)
    altered = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert api.client.get(f"/s/{altered}", follow_redirects=False).status_code == 404


def test_a_refused_number_fails_and_a_gateway_that_is_down_interrupts(make_ctx, api_for, gateway):
    ctx = make_ctx(sms_url=gateway.url, smtp_retry_for=0)
    api = api_for(ctx)
    mid = sms_mailing(api)
    gateway.refuse.add("+37120000002")
    gateway.down = True
    api.ok("POST", f"/mailings/{mid}/send")
    make_worker(ctx).run_until_idle()
    stopped = api.ok("GET", f"/mailings/{mid}")
    assert stopped["status"] == "interrupted"
    assert stopped["interrupt_reason"]["code"] == "technical_error"
    assert "503" in stopped["interrupt_reason"]["message"]

    gateway.down = False
    api.ok("POST", f"/mailings/{mid}/resume")
    make_worker(ctx).run_until_idle()
    done = api.ok("GET", f"/mailings/{mid}")
    assert done["status"] == "sent"
    assert (done["progress"]["sent"], done["progress"]["failed"]) == (1, 1)
    assert [m["to"] for m in gateway.received] == ["+37120000001"]


def test_without_a_gateway_an_sms_mailing_is_interrupted_saying_what_to_set(make_ctx, api_for, smtp_server):
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    mid = sms_mailing(api)
    api.ok("POST", f"/mailings/{mid}/send")
    make_worker(ctx).run_until_idle()
    stopped = api.ok("GET", f"/mailings/{mid}")
    assert stopped["status"] == "interrupted"
    assert "TIDINGS_SMS_URL" in stopped["interrupt_reason"]["message"]
    assert smtp_server.messages == []


def test_with_the_outbox_default_sms_are_written_as_files(make_ctx, api_for, tmp_path):
    ctx = make_ctx(smtp_url=f"file://{tmp_path / 'box'}")
    api = api_for(ctx)
    mid = sms_mailing(api)
    api.ok("POST", f"/mailings/{mid}/send")
    make_worker(ctx).run_until_idle()
    assert api.ok("GET", f"/mailings/{mid}")["status"] == "sent"
    files = sorted((tmp_path / "box").glob("*.sms.txt"))
    assert len(files) == 2
    assert b"Hi Ann!" in files[0].read_bytes() + files[1].read_bytes()
