""""Send to the N unknown" on the mailing page, in a real browser (1280 and 390 px)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import Page, expect

from tests.e2e.test_browser import (
    WIDTHS,
    _wait_for_status,
    assert_fits,
    at_width,
    button,
    dialog,
    seed,
    sign_in,
    status_line,
)
from tidings.services import mailings
from tidings.store import packages as package_store
from tidings.store.tables import messages, packages

pytestmark = pytest.mark.browser


def leave_unknown(site, mailing_id: int, n: int) -> None:  # type: ignore[no-untyped-def]
    """As a worker killed with messages on the wire would: ``n`` of them unknown."""
    with site.ctx.engine.begin() as conn:
        ids = conn.execute(sa.select(messages.c.id).where(messages.c.mailing_id == mailing_id)
                           .order_by(messages.c.id).limit(n)).scalars().all()
        conn.execute(messages.update().where(messages.c.id.in_(ids)).values(status="unknown"))
        for package_id in conn.execute(sa.select(packages.c.id)
                                       .where(packages.c.mailing_id == mailing_id)).scalars():
            package_store.store_counts(conn, package_id)


@WIDTHS
def test_send_to_the_unknown_says_some_may_get_it_twice_then_sends_them(
        serve, page: Page, tmp_path: Path, width: int) -> None:
    site = serve(with_worker=True)
    mailing = seed(site.ctx, customers=5)["mailing"]
    mailings.send_now(site.ctx, mailing["id"])
    _wait_for_status(site.ctx, mailing["id"], "sent")
    leave_unknown(site, mailing["id"], 2)
    outbox = tmp_path / "outbox"
    before = len(list(outbox.iterdir()))

    at_width(page, width)
    sign_in(page, site, f"/mailings/{mailing['id']}")
    expect(status_line(page)).to_have_text("Sent")
    assert_fits(page)
    button(page, "Send to the 2 unknown").click()
    confirm = dialog(page, "Send again to the 2 unknown?")
    expect(confirm).to_contain_text("Some of these 2 people may already have it and could get it twice.")
    assert_fits(page)
    confirm.get_by_role("button", name="Yes, send to the 2 again").click()
    expect(status_line(page)).to_have_text("Sent", timeout=15_000)
    expect(button(page, "Send to the 2 unknown")).to_have_count(0)
    assert mailings.get(site.ctx, mailing["id"])["progress"]["unknown"] == 0
    assert len(list(outbox.iterdir())) == before + 2  # the two, and nobody else
