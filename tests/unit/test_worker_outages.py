"""The worker loop when the store cannot serve (:class:`StoreUnavailable`): it
waits and carries on, logs no traceback, and the lease rules decide what
happens to the group that was in flight."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest

from tidings.config import Settings
from tidings.domain.mailings import MailingStatus
from tidings.domain.messages import MessageStatus
from tidings.engine.worker import Worker
from tidings.errors import StoreUnavailable
from tidings.testing import InMemoryStore, RecordingTransport


class OutageStore(InMemoryStore):
    """An in-memory store whose transactions number ``down`` (counted from 1)
    cannot begin, as a database that went away."""

    def __init__(self, down: set[int]) -> None:
        super().__init__()
        self.down = down
        self.calls = 0

    @contextmanager
    def transaction(self) -> Iterator[InMemoryStore]:  # type: ignore[override]
        self.calls += 1
        if self.calls in self.down:
            raise StoreUnavailable()
        with super().transaction() as tx:
            yield tx


def run_until_sent(store: OutageStore, mailing_id: int, transport: RecordingTransport) -> None:
    worker = Worker(store=store, transport=transport, secret=b"test-secret",
                    settings=Settings(_env_file=None, smtp_url="smtp://relay.test:25",  # type: ignore[call-arg]
                                      package_size=4, send_group=2, worker_lease=1,
                                      poll_interval=0.01, require_verified_domain=False,
                                      public_url="http://tidings.test"),
                    clock=lambda: datetime.now(UTC), owner="worker-a")
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while store.mailing(mailing_id).status is not MailingStatus.SENT:  # type: ignore[union-attr]
            assert time.monotonic() < deadline, store.statuses(mailing_id)
            time.sleep(0.01)
    finally:
        worker.stop_event.set()
        thread.join(timeout=30)


@pytest.mark.parametrize("down", [{3}, {5, 6}, {7, 8, 9}], ids=str)
def test_the_worker_waits_for_the_store_and_finishes_with_nothing_sent_twice(down, caplog):
    store, transport = OutageStore(down), RecordingTransport()
    emails = [f"c{i}@example.org" for i in range(10)]
    for address in emails:
        store.add_customer(email=address)
    mailing = store.add_mailing()
    store.start(mailing, now=datetime.now(UTC), package_size=4)

    with caplog.at_level(logging.DEBUG, logger="tidings"):
        run_until_sent(store, mailing.id, transport)

    sent = transport.recipients()
    assert len(sent) == len(set(sent))  # nothing twice
    status = store.statuses(mailing.id)
    assert set(status.values()) <= {MessageStatus.SENT, MessageStatus.UNKNOWN}
    assert {a for a, s in status.items() if s is MessageStatus.SENT} <= set(sent)
    assert len(sent) >= len(emails) - list(status.values()).count(MessageStatus.UNKNOWN)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []  # no traceback storm
    assert any("cannot serve" in r.getMessage() for r in caplog.records)
