"""The checklist shown before a mailing is sent or scheduled.

:func:`checklist` answers, for one mailing, in this order:

=============  ==========================================  =====================
key            what                                        blocking when
=============  ==========================================  =====================
``ready``      segment, template, From address chosen      one is missing
``recipients`` who can receive it, per channel             nobody can (first step)
``quota``      the balance against the audience            never: a warning
               (SMS: parts per message too)
``domain``     the From address's domain is verified       not verified, and it
                                                           must be
``template``   it renders; unknown variables               it does not render
``unsubscribe`` an unsubscribe link in an email            never: a warning
``links``      every link answers (checked from here)      never: a warning
``public_url`` ``TIDINGS_PUBLIC_URL/healthz`` answers       never: a warning
=============  ==========================================  =====================

Why these block and the others warn: a blocking item is one the send would
fail on, so the API refuses ``send`` and ``schedule`` for it with the
:attr:`Check.code` given here (422 ``mailing_incomplete``, 409
``empty_audience``, 409 ``domain_not_verified``, and a template that cannot
render is refused when saved). The others leave a message that still goes
out: a missing unsubscribe link is a warning because every message carries
``List-Unsubscribe`` (mail programs show an Unsubscribe button), a quota short
of the audience sends what it covers and then stops with ``quota_exhausted``
until an admin tops it up (nobody is sent twice), and a link or the public
URL may be down for a minute, or only unreachable from the server.

The link and public-URL checks run on :mod:`tidings.services.link_checks`'s
pool: with ``wait=0`` they are ``pending`` until done (the web dialog asks
again every second); with ``wait`` seconds the call waits that long at most.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from tidings.domain import sms as sms_text
from tidings.domain.mailings import Channel, Mailing
from tidings.domain.messages import sample_recipient
from tidings.domain.segments import parse_rules
from tidings.domain.templates import compile_email, compile_sms, template_warnings
from tidings.engine import lifecycle
from tidings.errors import Conflict, InvalidInput
from tidings.services.context import Context
from tidings.services.link_checks import LinkResult, checker
from tidings.store import audience as audience_store
from tidings.store import mailings as mailing_store
from tidings.store import quotas as quota_store
from tidings.store import segments as segment_store
from tidings.store import templates as template_store
from tidings.store.sending import SqlTransaction

__all__ = ["Check", "checklist", "is_blocked", "links_of", "network_checks"]

OK, WARNING, BLOCKING, PENDING = "ok", "warning", "blocking", "pending"
#: At most this many links are checked per message.
MAX_LINKS = 40
_HREF = re.compile(r"""href\s*=\s*["'](https?://[^"'\s<>]+)["']""", re.I)
_CHANNEL = {"email": "email", "sms": "SMS"}


@dataclass(frozen=True, kw_only=True)
class Check:
    """One line of the checklist. ``level``: ok, warning, blocking or pending;
    ``code``: the API's refusal for a blocking item; ``details``: one line per
    link for ``links``."""

    key: str
    level: str
    title: str
    message: str
    code: str | None = None
    details: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "details": list(self.details)}


def is_blocked(checks: list[Check]) -> bool:
    return any(c.level == BLOCKING for c in checks)


def _n(count: int, one: str, many: str | None = None) -> str:
    return f"{count:,} {one if count == 1 else (many or one + 's')}"


def _load(conn: sa.Connection, mailing_id: int) -> Mailing:
    return lifecycle.load(SqlTransaction(conn), mailing_id)


def _chosen(mailing: Mailing) -> Check:
    what = "a template" if mailing.is_later_step else "a segment, a template"
    return Check(key="ready", level=OK, title="Settings",
                 message=what[0].upper() + what[1:] + (" and a From address" if mailing.channel
                                                       is Channel.EMAIL else "") + " are chosen.")


def _ready(conn: sa.Connection, ctx: Context, mailing: Mailing) -> list[Check]:
    """``ready`` and ``domain``."""
    try:
        lifecycle.check_ready(SqlTransaction(conn), ctx.policy, mailing)
    except InvalidInput as exc:
        return [Check(key="ready", level=BLOCKING, title="Settings", message=exc.manager_message,
                      code=exc.code)]
    except Conflict as exc:
        return [_chosen(mailing), Check(key="domain", level=BLOCKING, title="Sending domain",
                                        message=exc.manager_message, code=exc.code)]
    checks = [_chosen(mailing)]
    if mailing.channel is Channel.EMAIL and mailing.from_email:
        domain = mailing.from_email.rsplit("@", 1)[1]
        if ctx.policy.outbox:
            why = f"Mail goes to the outbox folder, so {domain} need not be verified."
        elif not ctx.policy.require_verified_domain:
            why = f"Domain verification is turned off (TIDINGS_REQUIRE_VERIFIED_DOMAIN); {domain} " \
                  "is not checked."
        else:
            why = f"{domain} is verified: its SPF, DKIM and DMARC records are published."
        checks.append(Check(key="domain", level=OK, title="Sending domain", message=why))
    return checks


def _recipients(conn: sa.Connection, mailing: Mailing) -> tuple[Check, int | None]:
    """The ``recipients`` line and how many will get it (None: not known yet)."""
    channel = _CHANNEL[mailing.channel.value]
    if mailing.is_later_step:
        chain = mailing_store.chain(conn, mailing.chain_id)
        previous = next((s for s in chain if s.step == mailing.step - 1), None)
        if previous is None or previous.finished_at is None:
            return Check(key="recipients", level=OK, title="Recipients",
                         message=f"Decided when step {mailing.step - 1} has been sent: those of its "
                                 "recipients who meet this step's condition."), None
        reach = audience_store.count_receivable(conn, mailing)
        return Check(key="recipients", level=OK, title="Recipients",
                     message=f"{_n(reach, 'customer')} of step {mailing.step - 1} meet this step's "
                             "condition now."), reach
    if mailing.segment_id is None:
        return Check(key="recipients", level=BLOCKING, title="Recipients",
                     message="Choose a segment first.", code="mailing_incomplete"), None
    segment = segment_store.get(conn, mailing.segment_id)
    counts = segment_store.count_reachable(conn, parse_rules(segment.rules)) if segment else {}
    reach = audience_store.count_receivable(conn, mailing)
    name = segment.name if segment else "the segment"
    if reach == 0:
        return Check(key="recipients", level=BLOCKING, title="Recipients", code="empty_audience",
                     message=f"Nobody in {name} can receive {channel}: no address, unsubscribed, "
                             "bounced or complained. Choose another segment."), 0
    other = "sms" if mailing.channel is Channel.EMAIL else "email"
    return Check(key="recipients", level=OK, title="Recipients",
                 message=f"{_n(reach, 'customer')} of {counts.get('count', reach):,} in {name} can "
                         f"receive {channel} ({counts.get(other, 0):,} could receive "
                         f"{_CHANNEL[other]})."), reach


def _quota(conn: sa.Connection, mailing: Mailing, reach: int | None, parts: int | None) -> Check:
    balance = quota_store.quota_balance(conn, mailing.channel.value)
    each = ""
    if parts is not None:
        each = f" Each SMS is {_n(parts, 'part')} for the sample customer; the quota counts messages."
    if balance is None:
        return Check(key="quota", level=OK, title="Quota", message="No quota is enforced." + each)
    if reach is not None and balance < reach:
        return Check(key="quota", level=WARNING, title="Quota",
                     message=f"The quota has {_n(balance, 'message')} left for {reach:,} recipients: "
                             "sending stops when it runs out, until an admin tops it up; then it "
                             "continues with those not reached." + each)
    return Check(key="quota", level=OK, title="Quota",
                 message=f"{_n(balance, 'message')} left" + (f", enough for {reach:,}." if reach
                                                              is not None else ".") + each)


def _template(conn: sa.Connection, ctx: Context, mailing: Mailing) -> tuple[list[Check], str, int | None]:
    """``template`` and ``unsubscribe``, the HTML rendered for the sample customer
    (for its links) and the SMS parts."""
    if mailing.template_id is None:
        return [], "", None
    template = template_store.get(conn, mailing.template_id)
    if template is None:
        return [], "", None
    context = {"customer": sample_recipient().customer_context(),
               "unsubscribe_url": f"{ctx.settings.public_url}/u/preview",
               "mailing": {"id": mailing.id, "name": mailing.name}}
    html, parts = "", None
    try:
        if mailing.channel is Channel.EMAIL:
            html = compile_email(subject=template.subject or "", html=template.html or "",
                                 text=template.text).render(context).html or ""
        else:
            parts = sms_text.summarize(compile_sms(text=template.text or "").render(context)).parts
    except InvalidInput as exc:
        return [Check(key="template", level=BLOCKING, title="Template", code=exc.code,
                      message=f"The template cannot be rendered: {exc.manager_message}")], "", None
    row = template_store.get_row(conn, mailing.template_id)
    sources = {"subject": template.subject, "html": row.html if row else template.html,
               "text": template.text, "preheader": row.preheader if row else None}
    found = template_warnings(sources, attributes=template_store.attribute_keys(conn),
                              email=mailing.channel is Channel.EMAIL)
    unknown = [w.message for w in found if w.code != "no_unsubscribe_link"]
    checks = [Check(key="template", level=WARNING if unknown else OK, title="Template",
                    message=(f"{_n(len(unknown), 'variable')} will print nothing." if unknown
                             else "Every variable is known."), details=tuple(unknown))]
    if mailing.channel is Channel.EMAIL:
        missing = [w.message for w in found if w.code == "no_unsubscribe_link"]
        checks.append(Check(key="unsubscribe", level=WARNING if missing else OK,
                            title="Unsubscribe link",
                            message=missing[0] if missing else "The email has an unsubscribe link."))
    return checks, html, parts


def links_of(html: str, *, unsubscribe_url: str) -> list[str]:
    """The distinct ``http(s)`` links of rendered HTML, in order, without the
    unsubscribe link; at most :data:`MAX_LINKS`."""
    found = [url.replace("&amp;", "&") for url in _HREF.findall(html)]
    return [u for u in dict.fromkeys(found) if u != unsubscribe_url][:MAX_LINKS]


def _describe(url: str, result: LinkResult | None) -> str:
    if result is None:
        return f"{url}: checking…"
    return f"{url}: {'answers' if result.ok else result.problem}"


def _links(urls: list[str], results: dict[str, LinkResult | None]) -> Check:
    if not urls:
        return Check(key="links", level=OK, title="Links", message="The message has no links to check.")
    details = tuple(_describe(u, results.get(u)) for u in urls)
    waiting = sum(1 for u in urls if results.get(u) is None)
    broken = sum(1 for u in urls if (r := results.get(u)) is not None and not r.ok)
    if broken:
        return Check(key="links", level=WARNING, title="Links", details=details,
                     message=f"{_n(broken, 'link')} of {len(urls)} did not answer as it should"
                             + (f"; {waiting} still being checked." if waiting else "."))
    if waiting:
        return Check(key="links", level=PENDING, title="Links", details=details,
                     message=f"Checking {_n(len(urls), 'link')}… {len(urls) - waiting} done.")
    return Check(key="links", level=OK, title="Links", details=details,
                 message=f"All {_n(len(urls), 'link')} answer.")


def _public_url(url: str, result: LinkResult | None) -> Check:
    where = url.rsplit("/healthz", 1)[0]
    if result is None:
        return Check(key="public_url", level=PENDING, title="Public address",
                     message=f"Checking that {where} answers…")
    if result.ok:
        return Check(key="public_url", level=OK, title="Public address",
                     message=f"{where} answers: tracking and unsubscribe links will work.")
    return Check(key="public_url", level=WARNING, title="Public address",
                 message=f"{where} did not answer from this server ({result.problem}). Links in the "
                         "message lead there: check TIDINGS_PUBLIC_URL and that people can reach it.")


def checklist(ctx: Context, mailing_id: int, *, wait: float = 0.0) -> list[Check]:
    """The checklist of a mailing (see the module docstring). Raises ``NotFound``.

    ``wait`` is how long, in seconds, to wait for the link checks; with 0
    those not done yet are ``pending``."""
    with ctx.read() as conn:
        mailing = _load(conn, mailing_id)
        checks = _ready(conn, ctx, mailing)
        recipients, reach = _recipients(conn, mailing)
        template_checks, html, parts = _template(conn, ctx, mailing)
        checks += [recipients, _quota(conn, mailing, reach, parts), *template_checks]
    checks += _answers(ctx, mailing, html, wait=wait)
    return sorted(checks, key=lambda c: _ORDER.index(c.key))


def network_checks(ctx: Context, mailing_id: int) -> list[Check]:
    """Only ``links`` and ``public_url``, as they are now (never waits): what the
    dialog asks again while some are ``pending``."""
    with ctx.read() as conn:
        mailing = _load(conn, mailing_id)
        _, html, _ = _template(conn, ctx, mailing)
    return _answers(ctx, mailing, html, wait=0)


def _answers(ctx: Context, mailing: Mailing, html: str, *, wait: float) -> list[Check]:
    health = f"{ctx.settings.public_url}/healthz"
    urls = links_of(html, unsubscribe_url=f"{ctx.settings.public_url}/u/preview")
    asked = [*urls, health]
    results = checker().wait(asked, timeout=wait) if wait > 0 else checker().results(asked)
    found = [_links(urls, results)] if mailing.channel is Channel.EMAIL else []
    return [*found, _public_url(health, results.get(health))]


_ORDER = ("ready", "recipients", "quota", "domain", "template", "unsubscribe", "links", "public_url")
