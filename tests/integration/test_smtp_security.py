"""SMTP transports with STARTTLS, implicit TLS and AUTH against a real aiosmtpd server."""

from __future__ import annotations

import ssl

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from tests.smtpserver import Handler, free_port
from tests.smtpserver import tls_context as self_signed
from tidings.transports.base import Envelope, Result
from tidings.transports.smtp import SmtpTransport


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory) -> ssl.SSLContext:
    """A self-signed certificate for 127.0.0.1, made for this run."""
    return self_signed(tmp_path_factory.mktemp("tls"))


def check_login(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
    ok = auth_data.login == b"shop" and auth_data.password == b"s3cret pass"
    return AuthResult(success=ok, handled=False)


def envelope(i: int = 1) -> Envelope:
    return Envelope(message_id=i, mail_from="bounces+x@shop.example.com", rcpt=f"c{i}@example.org",
                    data=b"From: shop@shop.example.com\r\nSubject: hi\r\n\r\nHello\r\n")


def serve(handler: Handler, **kw) -> tuple[Controller, int]:  # type: ignore[no-untyped-def]
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **kw)
    controller.start()
    return controller, port


def test_starttls_with_login_delivers(tls_context):
    handler = Handler()
    controller, port = serve(handler, tls_context=tls_context, require_starttls=True,
                             authenticator=check_login, auth_require_tls=True)
    try:
        transport = SmtpTransport(f"smtp+starttls://shop:s3cret%20pass@127.0.0.1:{port}?verify=false",
                                  connections=1)
        outcomes = transport.send([envelope(1), envelope(2)])
        transport.close()
    finally:
        controller.stop()
    assert [o.result for o in outcomes] == [Result.SENT, Result.SENT]
    assert [m.rcpt for m in handler.messages] == ["c1@example.org", "c2@example.org"]


def test_a_wrong_password_is_deferred_with_a_clear_reason(tls_context):
    handler = Handler()
    controller, port = serve(handler, tls_context=tls_context, require_starttls=True,
                             authenticator=check_login, auth_require_tls=True,
                             auth_exclude_mechanism=["LOGIN"])
    try:
        transport = SmtpTransport(f"smtp+starttls://shop:wrong@127.0.0.1:{port}?verify=false",
                                  connections=1)
        (outcome,) = transport.send([envelope()])
        transport.close()
    finally:
        controller.stop()
    assert outcome.result is Result.DEFERRED
    assert "login" in (outcome.detail or "").lower()
    assert handler.messages == []


def test_a_certificate_that_cannot_be_verified_is_refused_unless_told(tls_context):
    handler = Handler()
    controller, port = serve(handler, tls_context=tls_context, require_starttls=True)
    try:
        strict = SmtpTransport(f"smtp+starttls://127.0.0.1:{port}", connections=1)
        (outcome,) = strict.send([envelope()])
        strict.close()
    finally:
        controller.stop()
    assert outcome.result is Result.DEFERRED
    assert "certificate" in (outcome.detail or "").lower()


def test_implicit_tls_delivers(tls_context):
    handler = Handler()
    controller, port = serve(handler, ssl_context=tls_context)
    try:
        transport = SmtpTransport(f"smtps://127.0.0.1:{port}?verify=false", connections=1)
        (outcome,) = transport.send([envelope()])
        transport.close()
    finally:
        controller.stop()
    assert outcome.result is Result.SENT
    assert handler.messages[0].rcpt == "c1@example.org"
