"""The email builder and the checklist over the API, on SQLite and PostgreSQL: block
templates, the personalisation list, images served without sign-in, the checklist
and the sends it blocks, links checked against real HTTP servers on loopback."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.unit.test_media import png
from tidings.services import link_checks

BLOCKS = [
    {"type": "heading", "text": 'Hello {{ customer.first_name or "there" }}'},
    {"type": "text", "html": "<p>Our <b>spring</b> sale</p>"},
    {"type": "button", "label": "Shop now", "url": "https://shop.example/sale"},
    {"type": "footer", "address": "The Shop, Main Street 1"},
]


class Answers(BaseHTTPRequestHandler):
    """``/ok`` 200, ``/no-head`` 405 to HEAD but 200 to GET, ``/gone`` 404,
    ``/healthz`` 200; anything else 500."""

    def _answer(self, body: bool) -> None:
        status = {"/ok": 200, "/gone": 404, "/healthz": 200}.get(self.path, 500)
        if self.path == "/no-head":
            status = 405 if self.command == "HEAD" else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        if body:
            self.wfile.write(b"ok")

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(body=True)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def web() -> Iterator[str]:
    """A small HTTP server on loopback; its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    link_checks.checker().forget()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    link_checks.checker().forget()


def test_a_template_built_from_blocks_keeps_them_and_makes_its_html(make_ctx, api_for) -> None:
    api = api_for(make_ctx())
    api.ok("POST", "/customers", {"email": "ann@example.com", "first_name": "Ann",
                                  "attributes": {"city": "Riga", "vip level": True}}, status=201)
    made = api.ok("POST", "/templates", {"name": "Spring", "subject": "Spring sale",
                                         "preheader": "Up to 30% off",
                                         "blocks": BLOCKS + [{"type": "text",
                                                              "html": "<p>{{ customer.firstname }}</p>"}]},
                  status=201)
    assert made["editor"] == "blocks" and made["blocks"][0]["level"] == 1
    assert made["html"].index("Hello") < made["html"].index("spring") < made["html"].index("Shop now")
    assert [w["variable"] for w in made["warnings"]] == ["customer.firstname"]

    shown = api.ok("POST", f"/templates/{made['id']}/preview", {"customer_id": 1})
    assert shown["preheader"] == "Up to 30% off"
    assert "Hello Ann" in shown["html"] and "Up to 30% off</div>" in shown["html"]
    assert shown["text"].startswith("Hello Ann")

    refused = api.post("/templates", {"name": "X", "subject": "S", "blocks": BLOCKS, "html": "<p>x</p>"})
    assert (refused.status_code, refused.json()["error"]["field"]) == (422, "html")
    wrong = api.request("PATCH", f"/templates/{made['id']}",
                        json={"blocks": [*BLOCKS[:1], {"type": "button", "label": "x", "url": "ftp://x"}]})
    assert wrong.status_code == 422
    assert wrong.json()["error"] == {"code": "invalid_input", "field": "blocks[1]", "message":
                                     "Block 2 (Button): Link must be a web address starting with "
                                     "https:// (or mailto: for an email address), not 'ftp://x'."}
    assert api.ok("GET", f"/templates/{made['id']}")["blocks"] == made["blocks"]  # nothing half-applied

    as_html = api.ok("PATCH", f"/templates/{made['id']}", {"editor": "html"})
    assert (as_html["editor"], as_html["blocks"], as_html["html"]) == ("html", None, made["html"])

    variables = api.ok("GET", "/templates/variables")
    assert [a["variable"] for a in variables["attributes"]] == [
        "customer.attributes.city", "customer.attributes['vip level']"]
    assert {"name": "first_name", "label": "First name", "variable": "customer.first_name"} in \
        variables["fields"]
    assert {s["key"] for s in api.ok("GET", "/templates/starters")["starters"]} == {
        "blank", "newsletter", "sale", "arrivals", "reminder"}


def test_an_uploaded_image_is_served_to_anyone_and_never_changes(make_ctx, api_for) -> None:
    api = api_for(make_ctx())
    image = png(40, 30)
    made = api.request("POST", "/media", 201,
                       files={"file": ("Spring Sale.PNG", image, "text/plain")}).json()
    assert {k: made[k] for k in ("name", "content_type", "size", "width", "height")} == {
        "name": "spring-sale.png", "content_type": "image/png", "size": len(image), "width": 40,
        "height": 30}
    assert made["url"] == f"http://tidings.test/media/{made['id']}-spring-sale.png"
    again = api.request("POST", "/media", 201, files={"file": ("spring-sale.png", image, "image/png")})
    assert again.json()["id"] == made["id"]

    public = api.client.get(f"/media/{made['id']}-spring-sale.png")  # no bearer token
    assert public.status_code == 200 and public.content == image
    assert public.headers["content-type"] == "image/png"
    assert public.headers["x-content-type-options"] == "nosniff"
    assert "immutable" in public.headers["cache-control"]
    cached = api.client.get(f"/media/{made['id']}-spring-sale.png",
                            headers={"If-None-Match": public.headers["etag"]})
    assert cached.status_code == 304
    for wrong in (f"/media/{made['id']}-other.png", f"/media/{made['id'] + 1}-spring-sale.png",
                  "/media/x-spring-sale.png"):
        assert api.client.get(wrong).status_code == 404

    html_page = api.request("POST", "/media", files={"file": ("x.png", b"<html><script>", "image/png")})
    assert html_page.status_code == 422
    assert html_page.json()["error"]["field"] == "file"
    assert api.client.post("/api/v1/media", files={"file": ("a.png", image, "image/png")}).status_code == 401
    assert [m["id"] for m in api.ok("GET", "/media")["media"]] == [made["id"]]


def _mailing(api, template: dict, **extra: object) -> dict:  # type: ignore[no-untyped-def]
    segment = api.ok("POST", "/segments", {"name": "Everyone", "rules": {}}, status=201)
    return api.ok("POST", "/mailings", {"name": "Spring", "segment_id": segment["id"],
                                        "template_id": template["id"], **extra}, status=201)


def test_the_checklist_blocks_an_unverified_domain_and_send_refuses_with_its_code(
        make_ctx, api_for, smtp_server) -> None:
    api = api_for(make_ctx(require_verified_domain=True, smtp_url=smtp_server.url))
    api.ok("POST", "/customers", {"email": "ann@example.com"}, status=201)
    template = api.ok("POST", "/templates", {"name": "T", "subject": "S", "blocks": BLOCKS}, status=201)
    mailing = _mailing(api, template, from_email="news@shop.example")

    answer = api.ok("GET", f"/mailings/{mailing['id']}/checklist?wait=0")
    checks = {c["key"]: c for c in answer["checks"]}
    assert answer["ready"] is False
    assert (checks["domain"]["level"], checks["domain"]["code"]) == ("blocking", "domain_not_verified")
    assert "shop.example is not set up" in checks["domain"]["message"]
    assert checks["recipients"]["level"] == "ok"
    assert checks["unsubscribe"]["level"] == "ok"
    for action, body in (("send", None), ("schedule", {"send_at": "2040-01-01T09:00:00+00:00"})):
        refused = api.post(f"/mailings/{mailing['id']}/{action}", body)
        assert (refused.status_code, refused.json()["error"]["code"]) == (409, "domain_not_verified")
    assert smtp_server.messages == []


def test_the_checklist_reports_recipients_quota_unsubscribe_and_links(make_ctx, api_for, web) -> None:
    api = api_for(make_ctx(public_url=web))
    api.ok("POST", "/customers", {"customers": [{"email": f"c{i}@example.com"} for i in range(3)]},
           status=201)
    api.ok("POST", "/quota/topup", {"channel": "email", "amount": 2})
    html = (f'<p>Hi {{{{ customer.firstname }}}}</p><a href="{web}/ok">a</a> <a href="{web}/no-head">b</a>'
            f' <a href="{web}/gone">c</a> <a href="{web}/ok">a again</a>')
    template = api.ok("POST", "/templates", {"name": "T", "subject": "S", "html": html}, status=201)
    mailing = _mailing(api, template)

    answer = api.ok("GET", f"/mailings/{mailing['id']}/checklist?wait=8")
    checks = {c["key"]: c for c in answer["checks"]}
    assert answer["ready"] is True  # warnings only
    assert [c["key"] for c in answer["checks"]] == ["ready", "recipients", "quota", "domain", "template",
                                                    "unsubscribe", "links", "public_url"]
    assert checks["recipients"]["message"].startswith("3 customers of 3 in Everyone can receive email")
    assert checks["quota"]["level"] == "warning"
    assert "2 messages left for 3 recipients" in checks["quota"]["message"]
    assert checks["template"]["level"] == "warning"
    assert "customer.firstname" in checks["template"]["details"][0]
    assert checks["unsubscribe"]["level"] == "warning"
    assert checks["links"]["level"] == "warning"
    assert checks["links"]["details"] == [f"{web}/ok: answers", f"{web}/no-head: answers",
                                          f"{web}/gone: it answers 404 Not Found"]
    assert checks["public_url"]["level"] == "ok"
    sent = api.ok("POST", f"/mailings/{mailing['id']}/send")  # warnings do not stop a send
    assert sent["status"] in ("sending", "sent")


def test_the_checklist_says_when_nobody_can_receive_it(make_ctx, api_for) -> None:
    api = api_for(make_ctx())
    api.ok("POST", "/customers", {"email": "ann@example.com", "email_status": "unsubscribed"}, status=201)
    template = api.ok("POST", "/templates", {"name": "T", "subject": "S", "blocks": BLOCKS}, status=201)
    mailing = _mailing(api, template)
    answer = api.ok("GET", f"/mailings/{mailing['id']}/checklist?wait=0")
    recipients = next(c for c in answer["checks"] if c["key"] == "recipients")
    assert (answer["ready"], recipients["level"], recipients["code"]) == (False, "blocking", "empty_audience")
    refused = api.post(f"/mailings/{mailing['id']}/send")
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "empty_audience")
    assert api.get("/mailings/999/checklist", expect=404).json()["error"]["code"] == "mailing_not_found"


def test_a_link_check_never_holds_the_request(make_ctx, api_for) -> None:
    """A server that accepts the connection and never answers: with ``wait=0`` the
    checklist comes back at once, the link pending."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(5)
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/slow"
    try:
        api = api_for(make_ctx())
        api.ok("POST", "/customers", {"email": "ann@example.com"}, status=201)
        template = api.ok("POST", "/templates", {"name": "T", "subject": "S",
                                                 "html": f'<a href="{url}">x</a>'}, status=201)
        mailing = _mailing(api, template)
        started = time.monotonic()
        answer = api.ok("GET", f"/mailings/{mailing['id']}/checklist?wait=0")
        assert time.monotonic() - started < 2
        links = next(c for c in answer["checks"] if c["key"] == "links")
        assert (links["level"], links["details"]) == ("pending", [f"{url}: checking…"])
    finally:
        silent.close()
