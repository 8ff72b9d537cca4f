"""Progress is read from package counts plus the active packages, never by
counting every message: it must still equal counting every message."""

from __future__ import annotations

import threading
from datetime import timedelta

import sqlalchemy as sa

from tests.builders import draft_mailing, numbered
from tidings.domain.mailings import Progress
from tidings.engine.window import Tally, cut_chunks
from tidings.services.sending import make_worker
from tidings.store import mailings as store
from tidings.store import packages
from tidings.store.tables import messages


def counted(conn: sa.Connection, mailing_id: int) -> Progress:
    """What the progress must say: every message row counted."""
    rows = dict(conn.execute(
        sa.select(messages.c.status, sa.func.count())
        .where(messages.c.mailing_id == mailing_id).group_by(messages.c.status)
    ).all())
    return Progress(total=sum(rows.values()), queued=rows.get("queued", 0),
                          sending=rows.get("sending", 0), sent=rows.get("sent", 0),
                          failed=rows.get("failed", 0), skipped=rows.get("skipped", 0),
                          unknown=rows.get("unknown", 0))


def snapshot(ctx, mailing_id: int) -> tuple[Progress, Progress]:
    with ctx.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        else:
            conn = conn.execution_options(read_only=True)
        with conn.begin():
            return packages.progress(conn, mailing_id), counted(conn, mailing_id)


def test_progress_equals_counting_every_message_while_sending(make_ctx, api_for, smtp_server):
    smtp_server.handler.delay = 0.01
    smtp_server.handler.reject["c004@example.org"] = "550 5.1.1 No such user"
    smtp_server.handler.reject["c017@example.org"] = "550 5.7.1 Refused"
    ctx = make_ctx(smtp_url=smtp_server.url, package_size=7, send_group=3, smtp_connections=2)
    api = api_for(ctx)
    gone = {"email": "gone@example.org", "email_status": "unsubscribed"}
    data = draft_mailing(api, numbered(30), extra=[gone])
    mid = data["mailing"]["id"]
    api.ok("POST", f"/mailings/{mid}/send")

    worker = make_worker(ctx)
    runner = threading.Thread(target=worker.run_until_idle)
    runner.start()
    seen = []
    while runner.is_alive():
        fast, slow = snapshot(ctx, mid)
        assert fast == slow
        seen.append(fast)
    runner.join()

    fast, slow = snapshot(ctx, mid)
    assert fast == slow
    assert (fast.total, fast.sent, fast.failed, fast.skipped, fast.queued) == (31, 28, 2, 1, 0)
    assert any(0 < p.sent < 28 for p in seen)  # it was watched mid-way, not only at the ends


def test_a_late_result_after_a_takeover_still_counts(make_ctx, api_for, smtp_server):
    """A worker whose package was taken over records its replies after the new
    owner closed the package: the messages it had in flight are sent, not unknown."""
    clock = {"now": None}
    ctx = make_ctx(smtp_url=smtp_server.url, package_size=50, send_group=5, worker_lease=30)
    base = ctx.now()
    clock["now"] = base
    ctx.clock = lambda: clock["now"]
    api = api_for(ctx)
    data = draft_mailing(api, numbered(12))
    mid = data["mailing"]["id"]
    api.ok("POST", f"/mailings/{mid}/send")

    slow = make_worker(ctx)
    package = slow.claim()
    assert package is not None
    with ctx.read() as conn:
        mailing = store.get(conn, mid)
    assert mailing is not None
    renderer = slow._renderer(mailing)
    group = slow._prepare_group(package, renderer, 5)
    assert group is not None
    (chunk,) = cut_chunks(group, 5)
    # five in flight ... and it stalls
    assert slow._write_window(package, mailing, [chunk], [], Tally(), last=True)

    clock["now"] = base + timedelta(seconds=31)  # its lease runs out; another worker takes over
    make_worker(ctx).run_until_idle()
    with ctx.read() as conn:
        assert packages.progress(conn, mid).unknown == 5

    outcomes = slow._send(slow.transport, group.envelopes)  # the stalled replies arrive at last
    slow._write_window(package, mailing, [], [(chunk, outcomes)], Tally(), last=True)
    slow.close()

    fast, counted_ = snapshot(ctx, mid)
    assert fast == counted_
    assert (fast.sent, fast.unknown) == (12, 0)
