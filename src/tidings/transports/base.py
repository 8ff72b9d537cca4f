"""The transport contract the engine consumes.

A transport takes a batch of :class:`Envelope` and returns one :class:`Outcome`
per envelope, in order. It never raises for a single recipient's trouble; the
outcome says what happened:

- ``SENT``: the server accepted the message (250 after DATA).
- ``REJECTED``: refused for good (5xx); ``code`` and ``detail`` keep the reply.
- ``DEFERRED``: not handed over (refused connection, timeout before DATA, 4xx);
  safe to try again.
- ``UNCERTAIN``: the link broke after the message body went out; it may have
  been delivered, so it must never be sent again automatically.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


class Result(enum.StrEnum):
    SENT = "sent"
    REJECTED = "rejected"
    DEFERRED = "deferred"
    UNCERTAIN = "uncertain"


@dataclass(frozen=True, kw_only=True, slots=True)
class Envelope:
    message_id: int
    mail_from: str
    rcpt: str
    data: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class Outcome:
    result: Result
    code: int | None = None
    detail: str | None = None
    #: The gateway's id of each part it accepted, in part order (SMPP ``message_id``s);
    #: empty where the gateway gives none.
    remote_ids: tuple[str, ...] = ()
    #: For a ``DEFERRED`` outcome whose cause the transport can name for the
    #: manager (the outbox disk is full): the whole message of the
    #: ``technical_error`` interruption if retrying does not help.
    interruption: str | None = None

    @property
    def hard_bounce(self) -> bool:
        """A permanent refusal of the address itself (RFC 3463 status 5.1.x)."""
        return self.result is Result.REJECTED and (self.detail or "").lstrip().startswith("5.1.")


SENT = Outcome(result=Result.SENT)


class Transport(Protocol):
    """Sends batches; implementations keep their connections between calls."""

    description: str

    def send(self, batch: Sequence[Envelope]) -> list[Outcome]: ...

    def close(self) -> None: ...


#: Hands a connection its next chunk of envelopes, or None when there is no more.
Take = Callable[[], Sequence[Envelope] | None]
#: Receives a chunk's outcomes (in order) as soon as its replies are in.
Done = Callable[[Sequence[Envelope], list[Outcome]], None]


class StreamingTransport(Transport, Protocol):
    """A transport whose connections each ask for their next chunk as they get
    free (so only the chunks on the wire need to be in flight)."""

    connections: int

    def stream(self, take: Take, done: Done) -> None:
        """Every connection calls ``take`` for a chunk, sends it and hands its
        outcomes to ``done``, until ``take`` returns None; returns when all are."""
