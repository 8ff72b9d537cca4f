"""Sending domains: records to publish, verify, health."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tidings.errors import TidingsError
from tidings.services import domains as service
from tidings.services.context import Context
from tidings.web.routing import Form, Who, field_errors, flash, redirect, render
from tidings.web.wording import say


def _shown_once(domain: dict[str, Any]) -> dict[str, Any]:
    """The domain with each record's problem pointing at its value instead of
    repeating it: a DKIM key is hundreds of characters, and the page shows it
    once, in the record's row, with a button to copy it."""
    records = []
    for record in domain["records"]:
        problem = record.get("problem")
        if problem and record["value"]:
            quoted = re.escape(f'"{record["value"]}"')
            problem = re.sub(rf"(?:the (?:TXT |single )?record )?{quoted}", "the record shown",
                             problem)
        records.append({**record, "problem": problem})
    return {**domain, "records": records}


def _health_besides_records(found: dict[str, Any], domain: dict[str, Any]) -> dict[str, Any]:
    """The health without the records' problems, which their rows already show."""
    shown = {c["problem"] for c in domain.get("checks") or [] if c.get("problem")}
    return {**found, "problems": [p for p in found["problems"] if p not in shown]}


def add_routes(r: APIRouter, ctx: Context) -> None:
    health = getattr(service, "health", None)

    def page(request: Request, *, errors: dict[str, str], values: dict[str, str],
             status: int = 200) -> Response:
        found = [_shown_once(d) for d in service.list_(ctx)]
        healths = {d["id"]: _health_besides_records(health(ctx, d["id"]), d) for d in found} \
            if health else {}
        return render(request, "domains.html", status_code=status, domains=found,
                      healths=healths, errors=errors, values=values)

    @r.get("/domains")
    def domains_page(request: Request, actor: Who) -> Response:
        return page(request, errors={}, values={})

    @r.post("/domains")
    def add_domain(request: Request, actor: Who, form: Form) -> Response:
        name = str(form.get("domain", "")).strip()
        try:
            domain = service.create(ctx, {"domain": name})
        except TidingsError as exc:
            message = next(iter(field_errors(exc).values()))
            return page(request, errors={"domain": message}, values={"domain": name},
                        status=exc.status)
        flash(request, f"{domain['domain']} added: publish its records, then verify it.")
        return redirect("/domains")

    @r.post("/domains/{domain_id}/verify")
    def verify(request: Request, actor: Who, domain_id: int) -> Response:
        try:
            domain = service.verify(ctx, domain_id)
        except TidingsError as exc:
            flash(request, say(exc), "error")
            return redirect("/domains")
        if domain.get("verified"):
            flash(request, f"{domain['domain']} is verified: mail can go out from it.")
        else:
            flash(request, f"{domain['domain']} is not verified yet: see the records marked "
                           "“no”. DNS changes can take a while to show.", "error")
        return redirect("/domains")
