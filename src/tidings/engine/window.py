"""One group of email on its way out, chunk by chunk, and the records it is
written with.

A group is cut into chunks of ``TIDINGS_SEND_CHUNK`` consecutive messages; the
transport's connections take them through a :class:`Window` whose requests
the worker writes in turn (:meth:`tidings.engine.worker.Worker._send_window`),
so only the chunks on the wire and the next ones are ever marked in flight.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from tidings.domain.messages import Failure, MessageStatus, Recipient
from tidings.engine.foreground import Foreground
from tidings.engine.render import EmailRenderer, SmsRenderer
from tidings.errors import TidingsError
from tidings.transports.base import Done, Envelope, Outcome, Result, Take, Transport

#: Seconds the window waits after a request for more to share its commit.
GATHER = 0.003


@dataclass
class Group:
    recipients: Sequence[Recipient]
    envelopes: list[Envelope]
    broken: dict[int, str]
    future: Future[list[Outcome]] | None = None
    #: SMS: the parts of each rendered message (by message id), and the parts of
    #: the quota this group holds.
    parts: dict[int, int] = field(default_factory=dict)
    reserved: int = 0


@dataclass
class Tally:
    """The replies of some messages, ready to be written."""

    failures: list[Failure] = field(default_factory=list)
    bounced: list[tuple[int | None, str]] = field(default_factory=list)  # refused with 5.1.x
    sent: int = 0
    failed: int = 0
    deferred: int = 0


@dataclass
class Chunk:
    """Consecutive messages of a group that one connection takes at a time."""

    recipients: Sequence[Recipient]
    envelopes: list[Envelope]
    broken: dict[int, str]
    ready: threading.Event = field(default_factory=threading.Event)
    marked: bool = False


class Window:
    """One group on its way out, chunk by chunk (:meth:`Worker._send_window`).

    The transport's connections call :meth:`take` and :meth:`done` from their
    threads; the worker's sender thread writes what they ask in turn, several
    requests in one transaction. A connection asks for its next chunk to be
    marked while the one it takes goes out (so it does not wait for the
    commit), and its replies are put before that request: each commit holds
    at most two chunks per connection in flight, the one on the wire and the
    next.
    """

    END = object()

    def __init__(self, chunks: Sequence[Chunk], stop: threading.Event) -> None:
        self.chunks = list(reversed(chunks))
        self.by_first = {c.envelopes[0].message_id: c for c in chunks if c.envelopes}
        self.stop = stop
        self.closed = False
        self.lock = threading.Lock()
        self.requests: queue.SimpleQueue[object] = queue.SimpleQueue()
        #: The chunk each connection (thread) asked for ahead.
        self.ahead: dict[int, Chunk] = {}

    def _ask(self) -> Chunk | None:
        """The next chunk, asked to be marked in flight; None when none is to go."""
        with self.lock:
            if self.closed or self.stop.is_set() or not self.chunks:
                return None
            chunk = self.chunks.pop()
        self.requests.put(chunk)
        return chunk

    def take(self) -> Sequence[Envelope] | None:
        me = threading.get_ident()
        while True:
            chunk = self.ahead.pop(me, None) or self._ask()
            if chunk is None:
                return None
            following = self._ask()  # marked while this one goes out
            if following is not None:
                self.ahead[me] = following
            chunk.ready.wait()
            if not chunk.marked:
                return None
            if chunk.envelopes:
                return chunk.envelopes
            # nothing of it could be rendered: written already, take the next

    def done(self, envelopes: Sequence[Envelope], outcomes: list[Outcome]) -> None:
        self.requests.put((self.by_first[envelopes[0].message_id], outcomes))

    def close(self) -> None:
        """No more chunks go out."""
        with self.lock:
            self.closed = True


def cut_chunks(group: Group, size: int) -> list[Chunk]:
    """The group cut into chunks of ``size`` consecutive messages."""
    chunks = []
    for i in range(0, len(group.recipients), size):
        recipients = group.recipients[i:i + size]
        ids = {r.id for r in recipients}
        chunks.append(Chunk(recipients=recipients,
                             envelopes=[e for e in group.envelopes if e.message_id in ids],
                             broken={k: v for k, v in group.broken.items() if k in ids}))
    return chunks


def stream_plain(transport: Transport, take: Take, done: Done) -> None:
    """A transport without connections of its own sends its chunks one by one."""
    while (chunk := take()) is not None:
        done(chunk, transport.send(chunk))


def count_replies(part: Group | Chunk, outcomes: Sequence[Outcome]) -> Tally:
    """Count the replies of ``part`` (its unrenderable messages fail)."""
    tally = Tally(failures=[Failure(message_id=mid, status=MessageStatus.FAILED, error=err)
                             for mid, err in part.broken.items()])
    customer_of = {r.id: r.customer_id for r in part.recipients}
    for env, outcome in zip(part.envelopes, outcomes, strict=True):
        if outcome.result is Result.SENT:
            tally.sent += 1
            continue
        status = {Result.REJECTED: MessageStatus.FAILED, Result.DEFERRED: MessageStatus.QUEUED,
                  Result.UNCERTAIN: MessageStatus.UNKNOWN}[outcome.result]
        tally.failures.append(Failure(message_id=env.message_id, status=status, error=outcome.detail,
                                      smtp_code=outcome.code))
        if outcome.result is Result.REJECTED:
            tally.failed += 1
            if outcome.hard_bounce:
                tally.bounced.append((customer_of[env.message_id], env.rcpt))
        elif outcome.result is Result.DEFERRED:
            tally.deferred += 1
    return tally


def render_each(renderer: EmailRenderer | SmsRenderer, recipients: Sequence[Recipient],
                foreground: Foreground | None = None) -> tuple[list[Envelope], dict[int, str]]:
    """Each recipient's message rendered; one whose render fails is kept apart with
    why. Between two messages the requests of ``foreground`` go first."""
    envelopes: list[Envelope] = []
    broken: dict[int, str] = {}
    for recipient in recipients:
        if foreground is not None and foreground.active:
            foreground.give_way()
        try:
            envelopes.append(renderer.envelope(recipient))
        except TidingsError as exc:
            broken[recipient.id] = f"cannot render the template for this customer: {exc.message}"
        except Exception as exc:  # noqa: BLE001 - one customer's data must not stop the package
            broken[recipient.id] = f"cannot render the template for this customer: {exc}"
    return envelopes, broken
