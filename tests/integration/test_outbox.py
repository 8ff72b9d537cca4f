"""The outbox writes every message to a file of its own and never overwrites one."""

from __future__ import annotations

import email
import email.policy

from tests.builders import tracked_mailing
from tidings.transports.base import Envelope, Result
from tidings.transports.outbox import OutboxTransport


def envelope(message_id: int, to: str) -> Envelope:
    return Envelope(message_id=message_id, mail_from="bounces@shop.example", rcpt=to,
                    data=f"To: {to}\r\nSubject: Hi\r\n\r\nHello\r\n".encode())


def test_a_stored_message_is_named_by_its_id_and_a_taken_name_is_not_overwritten(tmp_path):
    outbox = OutboxTransport(tmp_path)

    first = outbox.send([envelope(7, "ann@example.org")])
    again = outbox.send([envelope(7, "bob@example.org")])  # a database started afresh

    assert [o.result for o in first + again] == [Result.SENT, Result.SENT]
    (other,) = {p.name for p in tmp_path.iterdir()} - {"7.eml"}
    assert other.startswith("7-") and other.endswith(".eml")
    assert b"X-Envelope-To: ann@example.org" in (tmp_path / "7.eml").read_bytes()
    assert b"X-Envelope-To: bob@example.org" in (tmp_path / other).read_bytes()


def test_test_sends_get_names_of_their_own(tmp_path):
    outbox = OutboxTransport(tmp_path)

    for to in ("a@example.org", "b@example.org", "c@example.org"):
        assert outbox.send([envelope(0, to)])[0].result is Result.SENT

    names = [p.name for p in tmp_path.iterdir()]
    assert len(names) == 3 and all(n.startswith("test-") and n.endswith(".eml") for n in names)


def test_two_test_sends_of_a_mailing_leave_two_messages_in_the_outbox(make_ctx, api_for, tmp_path):
    api = api_for(make_ctx())
    mid = tracked_mailing(api, ["ann@example.org"])["mailing"]["id"]
    for address in ("qa1@example.org", "qa2@example.org"):
        api.ok("POST", "/test-addresses", {"address": address}, status=201)

    api.ok("POST", f"/mailings/{mid}/test", {"email": "qa1@example.org"})
    api.ok("POST", f"/mailings/{mid}/test", {"email": "qa2@example.org"})

    files = sorted((tmp_path / "outbox").glob("*.eml"))
    recipients = sorted(email.message_from_bytes(f.read_bytes(), policy=email.policy.default)["To"]
                        for f in files)
    assert recipients == ["qa1@example.org", "qa2@example.org"]
    assert all(f.name.startswith("test-") for f in files)
