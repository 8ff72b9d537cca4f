"""The checklist in the mailing page's Send now and Schedule confirmations, and
the test send from there.

The dialog asks for ``GET /mailings/{id}/checklist?action=send|schedule``
when it opens (htmx); the answer lists the checks and, out of band, replaces
the dialog's confirm button: disabled, with the reason, when an item blocks.
Link checks still running are asked for again every second
(``.../checklist/links``) until each has answered or failed.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tidings.errors import TidingsError
from tidings.services import checklist, mailings, test_sends
from tidings.services.context import Context
from tidings.web.routing import Form, Who, flash, redirect, render
from tidings.web.wording import say


def _busy(checks: list[checklist.Check]) -> bool:
    """Whether a check of another server has not answered yet."""
    return any(c.level == "pending" or any(d.endswith("checking…") for d in c.details)
               for c in checks)


#: The confirm button of each dialog.
CONFIRMS = {"send": "Yes, send now", "schedule": "Yes, schedule it"}


def add_routes(r: APIRouter, ctx: Context) -> None:
    @r.get("/mailings/{mailing_id}/checklist")
    def checklist_part(request: Request, actor: Who, mailing_id: int, action: str = "send") -> Response:
        action = action if action in CONFIRMS else "send"
        mailing = mailings.get(ctx, mailing_id)
        checks = checklist.checklist(ctx, mailing_id)
        network = [c for c in checks if c.key in ("links", "public_url")]
        label = CONFIRMS[action]
        if action == "schedule" and mailing["status"] == "scheduled":
            label = "Yes, reschedule it"
        return render(request, "_checklist.html", fragment=True, mailing=mailing, action=action,
                      checks=checks, blocking=[c for c in checks if c.level == "blocking"],
                      network=network, busy=_busy(network), label=label, with_button=True)

    @r.get("/mailings/{mailing_id}/checklist/links")
    def network_part(request: Request, actor: Who, mailing_id: int, action: str = "send") -> Response:
        network = checklist.network_checks(ctx, mailing_id)
        return render(request, "_checklist_network.html", fragment=True,
                      mailing={"id": mailing_id}, action=action if action in CONFIRMS else "send",
                      network=network, busy=_busy(network))

    @r.post("/mailings/{mailing_id}/test-send")
    def test_send(request: Request, actor: Who, mailing_id: int, form: Form) -> Response:
        """One test message of the mailing; from the dialog (htmx) the answer is a
        line in it, without JavaScript a message on the page."""
        to = str(form.get("email", "")).strip()
        in_dialog = bool(request.headers.get("hx-request"))
        try:
            sent = test_sends.send_test(ctx, mailing_id, {"email": to}, actor=actor)
        except TidingsError as exc:
            if in_dialog:
                return render(request, "_test_result.html", fragment=True, ok=False, message=say(exc))
            flash(request, say(exc), "error")
            return redirect(f"/mailings/{mailing_id}")
        message = f"A test message is on its way to {sent['email']}."
        if in_dialog:
            return render(request, "_test_result.html", fragment=True, ok=True, message=message)
        flash(request, message)
        return redirect(f"/mailings/{mailing_id}")
