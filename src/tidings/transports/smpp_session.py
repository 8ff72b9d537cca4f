"""One SMPP bind of :class:`~tidings.transports.smpp.SmppTransport`, and the
bookkeeping of one ``send`` call that the binds' reader threads share.

A :class:`Bind` owns its socket, its reader thread and the submits written on
it and not answered yet; it binds with one bounded attempt
(:meth:`Bind.connect`), answers what the SMSC asks (``enquire_link``,
``deliver_sm``, ``data_sm``, ``unbind``) and hands ``submit_sm_resp`` and
received messages to its transport. A bind that breaks loses its outstanding
submits (they may have been sent: never sent again). Every state change
happens under the transport's condition ``cond``.
"""

from __future__ import annotations

import collections
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tidings.transports.base import Envelope, Outcome, Result
from tidings.transports.smpp_pdu import (
    HEADER,
    Command,
    Pdu,
    PduError,
    Status,
    bind_body,
    message_id_of,
    parse_data_sm,
    parse_deliver_sm,
    read_header,
    status_name,
)

if TYPE_CHECKING:
    from tidings.transports.smpp import SmppTransport

log = logging.getLogger("tidings.smpp")

#: Pauses of the upkeep thread between bind attempts (seconds).
REBIND_FIRST, REBIND_MAX = 1.0, 30.0


# -- one send call's bookkeeping -----------------------------------------------------------


class SubmitState:
    QUEUED = "queued"
    OUTSTANDING = "outstanding"
    ACCEPTED = "accepted"
    REFUSED = "refused"
    LOST = "lost"
    GIVEN_UP = "given up"


@dataclass(eq=False)
class OutgoingMessage:
    envelope: Envelope
    parts: list[Submit] = field(default_factory=list)
    outcome: Outcome | None = None  # decided before any submit (bad address or text)
    refused: tuple[int, str] | None = None  # (status, detail) of the first refused part
    lost: str | None = None
    given_up: str | None = None

    @property
    def halted(self) -> bool:
        return self.refused is not None or self.lost is not None or self.given_up is not None

    def result(self, deferred_detail: str) -> Outcome:
        """The outcome once no part is queued or outstanding any more (or the call gave up)."""
        if self.outcome is not None:
            return self.outcome
        ids = tuple(p.remote_id for p in self.parts if p.state == SubmitState.ACCEPTED)
        if self.refused is not None:
            return Outcome(result=Result.REJECTED, code=self.refused[0], detail=self.refused[1],
                           remote_ids=ids)
        if self.lost is not None:
            return Outcome(result=Result.UNCERTAIN, detail=self.lost, remote_ids=ids)
        if len(ids) == len(self.parts):
            return Outcome(result=Result.SENT, remote_ids=ids)
        unsent = self.given_up or deferred_detail
        if ids:
            return Outcome(result=Result.UNCERTAIN, remote_ids=ids,
                           detail=f"{len(ids)} of {len(self.parts)} parts went out, then: {unsent}; the "
                                  "rest is not sent again")
        return Outcome(result=Result.DEFERRED, detail=unsent)


@dataclass(eq=False)
class Submit:
    message: OutgoingMessage
    index: int  # 1-based part number
    pdu: bytes  # the whole submit_sm, sequence number included: a retry sends these bytes again
    sequence: int
    state: str = SubmitState.QUEUED
    answers: int = 0  # throttled or queue-full answers so far
    not_before: float = 0.0
    sent_at: float = 0.0
    remote_id: str = ""

    def where(self) -> str:
        return f"part {self.index} of {len(self.message.parts)}"


@dataclass(eq=False)
class SendCall:
    """The submits of the batch being sent, shared with the reader threads."""

    queue: collections.deque[Submit]
    open: int


# -- one bind ------------------------------------------------------------------------------


class Bind:
    """One bind: its socket, reader thread, outstanding submits and pause."""

    def __init__(self, transport: SmppTransport, command: int, name: str) -> None:
        self.transport = transport
        self.command = command
        self.name = name
        self.sends = command in (Command.BIND_TRANSCEIVER, Command.BIND_TRANSMITTER)
        self.sock: socket.socket | None = None
        self.outstanding: dict[int, Submit] = {}
        self.paused_until = 0.0
        self.last_traffic = 0.0
        self.enquire_sent: tuple[int, float] | None = None
        self.last_error = ""
        self.write_lock = threading.Lock()
        self.connect_lock = threading.Lock()
        self.unbound = threading.Event()
        self.next_attempt = 0.0
        self.backoff = REBIND_FIRST

    @property
    def bound(self) -> bool:
        return self.sock is not None

    # -- connecting --------------------------------------------------------------

    def connect(self) -> bool:
        """Bind if not bound (one attempt, bounded by the timeouts). True when bound."""
        t = self.transport
        with self.connect_lock:
            if self.sock is not None or t.closed:
                return self.sock is not None
            s = t.settings
            try:
                sock = socket.create_connection((s.host, s.port), timeout=s.connect_timeout)
            except OSError as exc:
                return self._failed(f"cannot connect to {t.description}: {exc}")
            try:
                sock.settimeout(s.timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sequence = t.next_sequence()
                body = bind_body(system_id=s.system_id, password=s.password, system_type=s.system_type)
                sock.sendall(Pdu(self.command, 0, sequence, body).encode())
                deadline = time.monotonic() + s.timeout
                buffer = b""
                while True:
                    pdu, buffer = read_one(sock, buffer, deadline)
                    if pdu.command_id == Command.response(self.command) and pdu.sequence == sequence:
                        break
                    if pdu.command_id == Command.GENERIC_NACK:
                        raise PduError(f"the SMSC answered the bind with {status_name(pdu.status)}",
                                       status=pdu.status)
                    if pdu.command_id == Command.ENQUIRE_LINK:
                        sock.sendall(Pdu(Command.response(pdu.command_id), 0, pdu.sequence).encode())
                if pdu.status != Status.ROK:
                    sock.close()
                    return self._failed(f"{t.description} refused the bind of {s.system_id!r}: "
                                        f"{status_name(pdu.status)}")
            except TimeoutError:
                sock.close()
                return self._failed(f"cannot bind to {t.description}: no answer to the bind within "
                                    f"{s.timeout:g} s")
            except (OSError, PduError) as exc:
                sock.close()
                return self._failed(f"cannot bind to {t.description}: {exc}")
            with t.cond:
                if t.closed:
                    sock.close()
                    return False
                self.sock = sock
                self.last_traffic = time.monotonic()
                self.enquire_sent = None
                self.paused_until = 0.0
                self.last_error = ""
                self.backoff = REBIND_FIRST
                self.unbound.clear()
                t.cond.notify_all()
            threading.Thread(target=self._read, args=(sock, buffer), name=f"smpp-{self.name}",
                             daemon=True).start()
            log.info("bound to %s as %s (%s)", t.description, s.system_id, self.name)
            return True

    def _failed(self, error: str) -> bool:
        self.last_error = error
        log.warning("%s", error)
        return False

    def drop(self, sock: socket.socket, reason: str) -> None:
        """Close ``sock`` if it is still this bind's; its outstanding submits are lost."""
        t = self.transport
        with t.cond:
            if self.sock is not sock:
                return
            self.sock = None
            self.last_error = reason
            lost = list(self.outstanding.values())
            self.outstanding.clear()
            for submit in lost:
                t.lose(submit, f"{reason} while {submit.where()} waited for its answer; it may have been "
                               "sent, so it is not sent again")
            self.unbound.set()
            t.cond.notify_all()
        close_socket(sock)
        if not t.closed:
            log.warning("lost the bind %s to %s: %s (%d submits without an answer)", self.name,
                        t.description, reason, len(lost))

    # -- writing -----------------------------------------------------------------

    def write(self, sock: socket.socket, data: bytes) -> None:
        """Write a whole PDU; OSError when the socket cannot take it."""
        with self.write_lock:
            sock.sendall(data)
        self.last_traffic = time.monotonic()

    def answer(self, sock: socket.socket, pdu: Pdu, *, status: int = Status.ROK, body: bytes = b"") -> None:
        try:
            self.write(sock, Pdu(Command.response(pdu.command_id), status, pdu.sequence, body).encode())
        except OSError as exc:
            self.drop(sock, f"cannot answer the SMSC: {exc}")

    # -- reading -----------------------------------------------------------------

    def _read(self, sock: socket.socket, buffer: bytes) -> None:
        t = self.transport
        while True:
            while len(buffer) >= HEADER.size:
                try:
                    length = read_header(buffer[:HEADER.size])[0]
                except PduError as exc:
                    self.drop(sock, f"the SMSC sent a broken PDU ({exc})")
                    return
                if len(buffer) < length:
                    break
                pdu = Pdu(*read_header(buffer[:HEADER.size])[1:], body=buffer[HEADER.size:length])
                buffer = buffer[length:]
                self.last_traffic = time.monotonic()
                try:
                    self._dispatch(sock, pdu)
                except Exception:  # noqa: BLE001 - one bad PDU must not stop the reader
                    log.exception("cannot handle %s from %s", hex(pdu.command_id), t.description)
            if self.sock is not sock:
                return
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError as exc:
                self.drop(sock, f"the connection to {t.description} broke ({exc})")
                return
            if not chunk:
                self.drop(sock, f"{t.description} closed the connection")
                return
            buffer += chunk

    def _dispatch(self, sock: socket.socket, pdu: Pdu) -> None:
        t = self.transport
        command = pdu.command_id
        if command in (Command.response(Command.SUBMIT_SM), Command.GENERIC_NACK):
            t.answered(self, pdu.sequence, pdu.status,
                       message_id_of(pdu.body) if command != Command.GENERIC_NACK else "")
        elif command == Command.response(Command.ENQUIRE_LINK):
            with t.cond:
                if self.enquire_sent and self.enquire_sent[0] == pdu.sequence:
                    self.enquire_sent = None
        elif command == Command.ENQUIRE_LINK:
            self.answer(sock, pdu)
        elif command in (Command.DELIVER_SM, Command.DATA_SM):
            try:
                message = (parse_deliver_sm if command == Command.DELIVER_SM else parse_data_sm)(pdu.body)
            except PduError as exc:
                self.answer(sock, pdu, status=exc.status, body=b"\x00" if command == Command.DATA_SM else b"")
                log.warning("unreadable %s from %s: %s", "deliver_sm" if command == Command.DELIVER_SM
                            else "data_sm", t.description, exc)
                return
            self.answer(sock, pdu, body=b"\x00")  # message_id: empty (deliver_sm_resp's is unused)
            t.received(message)
        elif command == Command.UNBIND:
            self.answer(sock, pdu)
            self.drop(sock, f"{t.description} unbound")
        elif command == Command.response(Command.UNBIND):
            self.unbound.set()
        elif command == Command.ALERT_NOTIFICATION or pdu.is_response:
            pass  # nothing to answer
        else:
            try:
                self.write(sock, Pdu(Command.GENERIC_NACK, Status.RINVCMDID, pdu.sequence).encode())
            except OSError as exc:
                self.drop(sock, f"cannot answer the SMSC: {exc}")


def read_one(sock: socket.socket, buffer: bytes, deadline: float) -> tuple[Pdu, bytes]:
    """The next whole PDU from ``sock`` (and what came after it) before ``deadline``."""
    while True:
        if len(buffer) >= HEADER.size:
            length, command_id, status, sequence = read_header(buffer[:HEADER.size])
            if len(buffer) >= length:
                return Pdu(command_id, status, sequence, buffer[HEADER.size:length]), buffer[length:]
        if time.monotonic() >= deadline:
            raise TimeoutError
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the SMSC closed the connection")
        buffer += chunk


def close_socket(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()

