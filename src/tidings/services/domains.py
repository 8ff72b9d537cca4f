"""Sending domains: add one, show the DNS records to publish, verify them, judge its health.

A domain's JSON (:func:`to_json`) is::

    {"id", "domain", "selector", "verified", "verified_at", "checked_at",
     "records": [{"type", "name", "value", "purpose", "note", "ok", "problem"}],
     "checks": [{"type", "name", "purpose", "ok", "problem"}] | null}

``records`` are what to publish (SPF, DKIM, DMARC, in that order; ``ok`` and
``problem`` come from the last check, null before the first); ``checks`` is
the last verdict per record. The private DKIM key is generated here, stored
encrypted under the installation's secret and never leaves the service.

DNS lookups never run inside a database transaction: a slow name server must
not hold a database lock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from tidings.domain.actors import Actor
from tidings.domain.domains import (
    DKIM,
    DMARC,
    SPF,
    RecordCheck,
    is_spf_record,
    records_to_publish,
    validate_domain,
    validate_selector,
)
from tidings.domain.reputation import Counts
from tidings.errors import Conflict, InvalidInput, NotFound
from tidings.services import audit
from tidings.services.context import Context
from tidings.store import domains as store
from tidings.transports.dkim import encrypt_secret, generate_keypair
from tidings.transports.dns_check import DnsLookupFailed, lookup_txt, verify_domain

#: Seconds to wait for the DNS server when looking for an existing SPF record on creation.
CREATE_LOOKUP_TIMEOUT = 2.0
HEALTH_DAYS = 30


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _load(conn: sa.Connection, domain_id: int) -> dict[str, Any]:
    row = store.get(conn, domain_id)
    if row is None:
        raise NotFound(f"There is no sending domain {domain_id}.", code="domain_not_found")
    return row


def _existing_spf(ctx: Context, domain: str, *, timeout: float) -> str | None:
    """The domain's one SPF record, None if it has none (or several); raises DnsLookupFailed."""
    spf = [v for v in lookup_txt(domain, server=ctx.settings.dns_server, timeout=timeout) if is_spf_record(v)]
    return spf[0] if len(spf) == 1 else None


def to_json(ctx: Context, row: dict[str, Any]) -> dict[str, Any]:
    """The domain as the API shows it (see the module docstring); never the private key."""
    stored: dict[str, Any] = row["checks"] or {}
    records = records_to_publish(
        domain=row["domain"],
        selector=row["selector"],
        public_key_b64=row["dkim_public_key"],
        existing_spf=stored.get("existing_spf"),
        include=ctx.settings.spf_include,
    )
    results = stored.get("results")
    by_purpose = {c["purpose"]: c for c in results or []}
    return {
        "id": row["id"],
        "domain": row["domain"],
        "selector": row["selector"],
        "verified": bool(row["verified"]),
        "verified_at": _iso(row["verified_at"]),
        "checked_at": stored.get("checked_at"),
        "records": [
            {
                "type": r.type,
                "name": r.name,
                "value": r.value,
                "purpose": r.purpose,
                "note": r.note,
                "ok": by_purpose[r.purpose]["ok"] if r.purpose in by_purpose else None,
                "problem": by_purpose[r.purpose]["problem"] if r.purpose in by_purpose else None,
            }
            for r in records
        ],
        "checks": results,
        "created_at": _iso(row["created_at"]),
    }


def create(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Add a sending domain: ``{"domain", "selector"?}``; returns it, unverified.

    Generates an RSA-2048 DKIM key. The selector defaults to ``tidingsYYYYMM``
    (a new key later gets a new selector, so both can be published while mail
    signed with the old one is still in transit). When the domain already has
    an SPF record, the SPF record returned merges ours into it (best effort: if
    the DNS server does not answer, a fresh record is advised). Raises
    :class:`InvalidInput` (422) for a malformed name or selector, and
    :class:`Conflict` ``domain_exists`` (409) when the domain was added before.
    """
    if not isinstance(data, dict):
        raise InvalidInput('Send a JSON object like {"domain": "shop.example"}.', field="domain")
    unknown = set(data) - {"domain", "selector"}
    if unknown:
        raise InvalidInput(f"Unknown fields: {', '.join(sorted(unknown))}.", field=sorted(unknown)[0])
    domain = validate_domain(data.get("domain"))  # type: ignore[arg-type]  # it checks the type
    now = ctx.now()
    selector = validate_selector(data.get("selector") or f"tidings{now:%Y%m}")
    with ctx.tx() as conn:
        if store.find(conn, domain) is not None:
            raise _exists(domain)
    secret = ctx.secret
    private_pem, public_b64 = generate_keypair()
    try:
        existing = _existing_spf(ctx, domain, timeout=CREATE_LOOKUP_TIMEOUT)
    except DnsLookupFailed:
        existing = None
    checks = {"existing_spf": existing, "results": None, "checked_at": None}
    try:
        with ctx.tx() as conn:
            domain_id = store.insert(
                conn,
                {
                    "domain": domain,
                    "selector": selector,
                    "dkim_private_key": encrypt_secret(secret, private_pem),
                    "dkim_public_key": public_b64,
                    "verified": False,
                    "checks": checks,
                    "created_at": now,
                    "updated_at": now,
                },
            )
            return to_json(ctx, _load(conn, domain_id))
    except sa.exc.IntegrityError:
        raise _exists(domain) from None


def _exists(domain: str) -> Conflict:
    return Conflict(f"The sending domain {domain} was already added; verify that one.", code="domain_exists")


def get(ctx: Context, domain_id: int) -> dict[str, Any]:
    with ctx.read() as conn:
        return to_json(ctx, _load(conn, domain_id))


def list_(ctx: Context) -> list[dict[str, Any]]:
    with ctx.read() as conn:
        return [to_json(ctx, row) for row in store.list_(conn)]


def delete(ctx: Context, domain_id: int, *, actor: Actor) -> None:
    """Forget the domain and its key: its mail is no longer signed, and while
    verification is required its mailings cannot start. Adding it again makes a
    new key (and selector) to publish. Admins only (``Forbidden``);
    :class:`NotFound` for an unknown id."""
    actor.require_admin()
    with ctx.tx() as conn:
        found = store.get(conn, domain_id)
        if found is None or not store.delete(conn, domain_id):
            raise NotFound(f"There is no sending domain {domain_id}.", code="domain_not_found")
        audit.record(conn, actor, "domain.delete", str(found["domain"]), {"domain_id": domain_id},
                     at=ctx.now())


def _check_json(check: RecordCheck) -> dict[str, Any]:
    return {
        "type": check.type,
        "name": check.name,
        "purpose": check.purpose,
        "ok": check.ok,
        "problem": check.problem,
    }


def verify(ctx: Context, domain_id: int) -> dict[str, Any]:
    """Look the SPF, DKIM and DMARC records up over DNS and store the verdict.

    Asks ``TIDINGS_DNS_SERVER`` when set, else the system resolver. The domain
    is verified when all three pass, and stops being verified when a later
    check fails (its mailings then cannot start). A DNS server that does not
    answer makes the checks fail with a sentence naming it; it is never an
    error of the request. Returns the domain with ``checks``.
    """
    with ctx.tx() as conn:
        row = _load(conn, domain_id)
    stored: dict[str, Any] = row["checks"] or {}
    server = ctx.settings.dns_server
    try:
        existing = _existing_spf(ctx, row["domain"], timeout=CREATE_LOOKUP_TIMEOUT)
    except DnsLookupFailed:
        existing = stored.get("existing_spf")
    checks = verify_domain(
        domain=row["domain"],
        selector=row["selector"],
        public_key_b64=row["dkim_public_key"],
        server=server,
        include=ctx.settings.spf_include,
    )
    now = ctx.now()
    verified = all(c.ok for c in checks)
    result = {
        "existing_spf": existing,
        "results": [_check_json(c) for c in checks],
        "checked_at": now.isoformat(),
    }
    with ctx.tx() as conn:
        _load(conn, domain_id)
        store.record_checks(conn, domain_id, verified=verified, checks=result, now=now)
        return to_json(ctx, _load(conn, domain_id))


def _rounded(rate: float | None) -> float | None:
    return round(rate, 6) if rate is not None else None


def health(ctx: Context, domain_id: int, *, days: int = HEALTH_DAYS) -> dict[str, Any]:
    """The domain's standing with mailbox providers over the last ``days`` days.

    - Traffic of the email mailings from ``@domain`` started or finished in
      the window (or sending now): ``sent``, ``failed`` (refused at SMTP
      time), ``delivered``, ``hard_bounced``, ``soft_bounced``, ``complained``.
    - ``bounce_rate`` = (failed + hard bounced) / (sent + failed) and
      ``complaint_rate`` = complained / sent, the same formulas as the
      reputation guard; null when nothing was sent. ``limits`` are the guard's.
    - ``dns``: the stored result of the last verification (``POST .../verify``
      refreshes it).
    - ``one_click_unsubscribe``: every message carries ``List-Unsubscribe`` and
      ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``; RFC 8058 needs them
      covered by a valid DKIM signature, which holds once the domain is verified.
    - ``dmarc_alignment``: DKIM is signed with ``d=`` the From domain (once
      verified), the VERP envelope sender ``bounces+TOKEN@domain`` is in the
      From domain (always), and a DMARC record was found.

    ``ok`` is true when nothing is wrong; ``problems`` lists what is, as sentences.
    """
    if not 1 <= days <= 365:
        raise InvalidInput("days must be between 1 and 365.", field="days")
    now = ctx.now()
    since = now - timedelta(days=days)
    with ctx.read() as conn:
        row = _load(conn, domain_id)
        traffic = store.traffic(conn, row["domain"], since=since)
    s = ctx.settings
    domain = row["domain"]
    counts = Counts(sent=traffic["sent"], failed=traffic["failed"], bounced=traffic["hard_bounced"],
                    complained=traffic["complained"])
    bounce_rate = _rounded(counts.bounce_rate)
    complaint_rate = _rounded(counts.complaint_rate)
    stored: dict[str, Any] = row["checks"] or {}
    results = {c["purpose"]: c for c in stored.get("results") or []}
    verified = bool(row["verified"])

    problems: list[str] = []
    if not verified:
        problems.append(
            f"{domain} is not verified: its mail is not DKIM-signed and cannot be sent "
            "while verification is required. Publish the records and verify the domain."
        )
    for purpose in (SPF, DKIM, DMARC):
        check = results.get(purpose)
        if check is not None and not check["ok"]:
            problems.append(check["problem"])
    if bounce_rate is not None and bounce_rate > s.max_bounce_rate:
        problems.append(
            f"{bounce_rate:.1%} of the last {days} days' messages bounced or were "
            f"refused, above the limit of {s.max_bounce_rate:.1%}."
        )
    if complaint_rate is not None and complaint_rate > s.max_complaint_rate:
        problems.append(
            f"{complaint_rate:.2%} of the last {days} days' recipients complained of "
            f"spam, above the limit of {s.max_complaint_rate:.2%}."
        )

    dmarc_check = results.get(DMARC)
    dmarc_found = None if dmarc_check is None else bool(dmarc_check["ok"])
    return {
        "id": row["id"],
        "domain": domain,
        "window_days": days,
        "since": since.isoformat(),
        **traffic,
        "bounce_rate": bounce_rate,
        "complaint_rate": complaint_rate,
        "limits": {
            "max_bounce_rate": s.max_bounce_rate,
            "max_complaint_rate": s.max_complaint_rate,
            "reputation_min_sample": s.reputation_min_sample,
        },
        "dns": {
            "verified": verified,
            "verified_at": _iso(row["verified_at"]),
            "checked_at": stored.get("checked_at"),
            "checks": stored.get("results"),
        },
        "one_click_unsubscribe": {
            "ok": verified,
            "detail": "Every message carries List-Unsubscribe and List-Unsubscribe-Post "
            "(RFC 8058)"
            + (
                ", covered by the DKIM signature."
                if verified
                else "; they count only once the DKIM signature covers them, "
                "which starts when the domain is verified."
            ),
        },
        "dmarc_alignment": {
            "ok": verified and dmarc_found is True,
            "dkim_aligned": verified,
            "spf_aligned": True,
            "dmarc_record": dmarc_found,
            "detail": f"From {domain}, DKIM d={domain}"
            + ("" if verified else " (not signed yet: the domain is not verified)")
            + f", envelope sender bounces+TOKEN@{domain}; DMARC record "
            + {True: "found.", False: "missing or invalid.", None: "not checked yet."}[dmarc_found],
        },
        "ok": not problems,
        "problems": problems,
    }
