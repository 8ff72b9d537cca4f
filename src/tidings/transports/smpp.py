"""SMS over SMPP 3.4: an ESME client that keeps its binds up and a window full.

``TIDINGS_SMS_URL=smpp://SYSTEM_ID:PASSWORD@HOST:PORT?source=SENDER[&...]``;
the query parameters (all optional but ``source``) are read by
:meth:`SmppSettings.from_url`: ``bind=trx|tx_rx``, ``window=10``, ``binds=1``,
``sar=0|1``, ``system_type=``, ``enquire=30``, ``timeout=30``,
``connect_timeout=10``, ``throttle_pause=1``, ``retries=10``.

What :meth:`SmppTransport.send` guarantees (the contract of
:mod:`tidings.transports.base`, one outcome per envelope, never an exception
for one recipient):

- Each envelope's text (``data``, UTF-8) is split by :mod:`tidings.domain.sms`
  and goes as one ``submit_sm`` per part with ``registered_delivery`` 1, to
  ``rcpt`` as an international number (TON 1, NPI 1).
- ``SENT`` when every part got ``submit_sm_resp`` status 0; ``remote_ids``
  holds the SMSC's ``message_id`` of each part, in part order, as it wrote it.
- ``REJECTED`` with ``code`` = the ``command_status`` when the SMSC refuses a
  part for good (any status but those below), or when the address or text
  cannot be sent at all (``code`` None).
- ``ESME_RTHROTTLED`` pauses that bind for ``throttle_pause`` seconds and
  sends the same submit again (same bytes, same sequence number: never a new
  message); ``ESME_RMSGQFUL``, ``ESME_RSYSERR``, ``ESME_RX_T_APPN`` and
  ``ESME_RINVBNDSTS`` retry the same submit after that pause without pausing
  the bind. After ``retries`` such answers for one part the message is given
  up as below.
- ``DEFERRED`` when no part of the message was accepted and none may have
  been: no bind could be made, or it was given up. The worker retries it.
- ``UNCERTAIN`` when a part was written and its answer never came (the link
  broke, or no answer within ``timeout``), or when some part was accepted and
  the rest could not be sent: never sent again automatically.

Binds: ``binds`` transceivers (``bind=trx``, the default) or, with
``bind=tx_rx``, ``binds`` transmitters and as many receivers. Each bind has
a window of ``window`` outstanding ``submit_sm``; a bind that drops is bound
again by the next ``send`` and, between batches, by its upkeep thread (after
1, 2, 4 ... up to 30 s), so receipts keep arriving. The upkeep thread sends
``enquire_link`` after ``enquire`` seconds without traffic and drops a bind
whose ``enquire_link`` or submit has no answer after ``timeout`` seconds.
Nothing waits forever: connecting waits ``connect_timeout`` seconds, a bind
response and every other answer ``timeout`` seconds; a send call makes at
most two rounds of bind attempts before it answers ``DEFERRED``.

Incoming ``deliver_sm`` and ``data_sm`` are answered at once; a delivery
receipt (esm_class message type 0x04 or 0x20, a ``receipted_message_id``
TLV, or the standard ``id:... stat:...`` text) becomes a
:class:`~tidings.domain.sms.DeliveryReceipt` handed to ``on_receipt``; any
other message an :class:`~tidings.domain.sms.InboundMessage` (decoded per
``data_coding``, concatenated parts joined by UDH or SAR) handed to
``on_inbound``. Both callbacks run one at a time, in the order received, on
the transport's callback thread (so a slow callback never holds up the
answers to submits); an exception in one is logged and the next goes on.

Why our own PDU layer (:mod:`tidings.transports.smpp_pdu`, under 300 lines)
rather than a library, judged in November 2026 from their released code:

- smpplib 2.2.4 (sync): one socket, ``send_message`` writes and returns;
  matching ``submit_sm_resp`` to submits, any window, reconnection and
  periodic ``enquire_link`` are left to the caller, and reads and writes
  share the socket without a lock. We would have rewritten all of it but the
  encoder.
- aiosmpplib 0.7.4 and naz 0.8.1 (asyncio): a broker queue feeds submits
  without a bound on outstanding ones (a rate limiter, no window); a
  throttled answer slows the rate and reports the message back instead of
  resending it; long texts are split with SAR TLVs only. naz has had no
  release since 2020.
- smpp34 1.5.0 (Rust core, asyncio): has a window, timers and TLS, but hides
  whether a submit reached the wire when the session breaks (the line between
  DEFERRED and UNCERTAIN), has no ``data_sm`` receipt path, needs an event
  loop inside our threaded worker, and ships one prebuilt binary.
Writing the PDUs ourselves keeps every rule above in our hands and tested.

The modules: :mod:`.smpp_settings` reads the URL, :mod:`.smpp_session` is one
bind (its socket, reader thread and outstanding submits), :mod:`.smpp_pdu`
the wire format; this one is the transport that spreads a batch over the binds.
"""

from __future__ import annotations

import collections
import functools
import itertools
import logging
import queue
import random
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from tidings.domain import sms
from tidings.errors import InvalidInput
from tidings.transports.base import Envelope, Outcome, Result
from tidings.transports.smpp_pdu import (
    ESM_INTERMEDIATE_NOTIFICATION,
    ESM_SMSC_RECEIPT,
    ESM_TYPE_MASK,
    ESM_UDHI,
    Command,
    Pdu,
    ShortMessage,
    Status,
    SubmitSm,
    Tag,
    sar_tlvs,
    status_name,
)
from tidings.transports.smpp_session import (
    REBIND_MAX,
    Bind,
    OutgoingMessage,
    SendCall,
    Submit,
    SubmitState,
)
from tidings.transports.smpp_settings import SmppSettings

__all__ = ["InboundCallback", "ReceiptCallback", "SmppSettings", "SmppTransport"]

log = logging.getLogger("tidings.smpp")

#: Answers after which the same submit is sent again; RTHROTTLED also pauses its bind.
RETRY_STATUSES = frozenset({Status.RTHROTTLED, Status.RMSGQFUL, Status.RSYSERR, Status.RX_T_APPN,
                            Status.RINVBNDSTS})
#: Incomplete inbound concatenated messages are dropped after this long (seconds).
INBOUND_PARTS_KEPT_FOR = 3600.0
INBOUND_PARTS_KEPT_AT_MOST = 10_000

ReceiptCallback = Callable[[sms.DeliveryReceipt], None]
InboundCallback = Callable[[sms.InboundMessage], None]
T = TypeVar("T")



# -- the transport ---------------------------------------------------------------------------


class SmppTransport:
    """The SMPP ESME: see the module docstring for what it guarantees.

    ``on_receipt`` and ``on_inbound`` are called from its callback thread.
    The binds are made by the first :meth:`send` (or :meth:`start`) and kept
    until :meth:`close`, which also waits (up to 5 s) for the callbacks of
    what was already received."""

    def __init__(self, settings: SmppSettings, *, on_receipt: ReceiptCallback | None = None,
                 on_inbound: InboundCallback | None = None) -> None:
        self.settings = settings
        self.description = f"SMSC {settings.host}:{settings.port}"
        self.on_receipt = on_receipt
        self.on_inbound = on_inbound
        self.cond = threading.Condition()
        self.closed = False
        self._closing = threading.Event()
        self._sequence = itertools.count(1)
        self._sequence_lock = threading.Lock()
        self._reference = random.randrange(0x10000)
        self._call: SendCall | None = None
        self._send_lock = threading.Lock()
        self._started = False
        self._start_lock = threading.Lock()
        self._events: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._round_robin = 0
        self._inbound_parts: dict[tuple[str, str, int, int], tuple[float, dict[int, tuple[int, bytes]]]] = {}
        self._inbound_lock = threading.Lock()
        if settings.bind == "tx_rx":
            binds = range(1, settings.binds + 1)
            self.sessions = [Bind(self, Command.BIND_TRANSMITTER, f"tx{i}") for i in binds]
            self.sessions += [Bind(self, Command.BIND_RECEIVER, f"rx{i}") for i in binds]
        else:
            self.sessions = [Bind(self, Command.BIND_TRANSCEIVER, f"trx{i + 1}")
                             for i in range(settings.binds)]
        self._threads: list[threading.Thread] = []

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 30.0, on_receipt: ReceiptCallback | None = None,
                 on_inbound: InboundCallback | None = None) -> SmppTransport:
        return cls(SmppSettings.from_url(url, timeout=timeout), on_receipt=on_receipt,
                   on_inbound=on_inbound)

    def next_sequence(self) -> int:
        with self._sequence_lock:
            value = next(self._sequence)
            if value > 0x7FFFFFFF:
                self._sequence = itertools.count(2)
                value = 1
            return value

    def _next_reference(self) -> int:
        self._reference = (self._reference + 1) % 0x10000
        return self._reference

    # -- life --------------------------------------------------------------------

    def start(self) -> None:
        """Bind every session (one attempt each) and start their upkeep threads.
        Idempotent; :meth:`send` calls it."""
        with self._start_lock:
            if self._started or self.closed:
                return
            self._started = True
            callbacks = threading.Thread(target=self._run_callbacks, name="smpp-callbacks", daemon=True)
            callbacks.start()
            self._threads.append(callbacks)
            for session in self.sessions:
                session.connect()
                thread = threading.Thread(target=self._keep, args=(session,),
                                          name=f"smpp-upkeep-{session.name}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def close(self) -> None:
        """Unbind (waiting up to ``timeout`` for each answer) and close every bind."""
        with self.cond:
            if self.closed:
                return
            self.closed = True
            self.cond.notify_all()
        self._closing.set()
        for session in self.sessions:
            sock = session.sock
            if sock is None:
                continue
            try:
                session.write(sock, Pdu(Command.UNBIND, 0, self.next_sequence()).encode())
                session.unbound.wait(min(self.settings.timeout, 5.0))
            except OSError:
                pass
            session.drop(sock, "unbound on close")
        self._events.put(None)
        deadline = time.monotonic() + 5.0
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _run_callbacks(self) -> None:
        while (event := self._events.get()) is not None:
            event()

    def _keep(self, session: Bind) -> None:
        """Upkeep of one bind: enquire_link when idle, drop when unanswered, bind again when down."""
        s = self.settings
        tick = max(0.01, min(1.0, s.enquire / 4, s.timeout / 4))
        while not self._closing.wait(tick):
            now = time.monotonic()
            sock = session.sock
            if sock is None:
                if now >= session.next_attempt:
                    if not session.connect():
                        session.next_attempt = time.monotonic() + session.backoff
                        session.backoff = min(session.backoff * 2, REBIND_MAX)
                continue
            with self.cond:
                late = [sub for sub in session.outstanding.values() if now - sub.sent_at > s.timeout]
                enquire = session.enquire_sent
            if late:
                session.drop(sock, f"{self.description} did not answer a submit within {s.timeout:g} s")
            elif enquire is not None:
                if now - enquire[1] > s.timeout:
                    session.drop(sock, f"{self.description} did not answer enquire_link within "
                                       f"{s.timeout:g} s")
            elif now - session.last_traffic >= s.enquire:
                sequence = self.next_sequence()
                with self.cond:
                    session.enquire_sent = (sequence, now)
                try:
                    session.write(sock, Pdu(Command.ENQUIRE_LINK, 0, sequence).encode())
                except OSError as exc:
                    session.drop(sock, f"cannot write enquire_link: {exc}")

    # -- answers (reader threads) -----------------------------------------------

    def answered(self, session: Bind, sequence: int, status: int, message_id: str) -> None:
        """A ``submit_sm_resp`` (or ``generic_nack``) for ``sequence`` on ``session``."""
        s = self.settings
        with self.cond:
            submit = session.outstanding.pop(sequence, None)
            if submit is None or self._call is None:
                log.warning("an answer from %s to an unknown submit (sequence %d, %s)", self.description,
                            sequence, status_name(status))
                return
            call = self._call
            now = time.monotonic()
            if status == Status.ROK:
                submit.state, submit.remote_id = SubmitState.ACCEPTED, message_id
                call.open -= 1
            elif status in RETRY_STATUSES and submit.answers < s.retries and not submit.message.halted:
                submit.answers += 1
                submit.state = SubmitState.QUEUED
                submit.not_before = now + s.throttle_pause
                if status == Status.RTHROTTLED:
                    session.paused_until = max(session.paused_until, now + s.throttle_pause)
                call.queue.appendleft(submit)
            elif status in RETRY_STATUSES:
                submit.state = SubmitState.GIVEN_UP
                call.open -= 1
                if not submit.message.halted:
                    submit.message.given_up = (f"{self.description} answered {status_name(status)} "
                                               f"{submit.answers + 1} times to {submit.where()}")
            else:
                submit.state = SubmitState.REFUSED
                call.open -= 1
                if submit.message.refused is None:
                    submit.message.refused = (status, f"{self.description} refused {submit.where()}: "
                                                      f"{status_name(status)}")
            self.cond.notify_all()

    def lose(self, submit: Submit, detail: str) -> None:
        """Under ``cond``: a submit written without an answer, on a bind that broke."""
        if submit.state != SubmitState.OUTSTANDING or self._call is None:
            return
        submit.state = SubmitState.LOST
        self._call.open -= 1
        if submit.message.lost is None:
            submit.message.lost = detail

    def received(self, message: ShortMessage) -> None:
        """A ``deliver_sm``/``data_sm``, already answered: to ``on_receipt`` or ``on_inbound``."""
        receipt = _receipt(message)
        if receipt is not None:
            if self.on_receipt is not None:
                self._events.put(functools.partial(_call_back, self.on_receipt, receipt))
            return
        inbound = self._inbound(message)
        if inbound is not None and self.on_inbound is not None:
            self._events.put(functools.partial(_call_back, self.on_inbound, inbound))

    def _inbound(self, message: ShortMessage) -> sms.InboundMessage | None:
        """The message, or None while parts of a concatenated one are missing."""
        payload = message.payload
        concatenation: sms.Concatenation | None = None
        if message.esm_class & ESM_UDHI:
            concatenation, payload = sms.read_udh(payload)
        elif Tag.SAR_MSG_REF_NUM in message.tlvs and Tag.SAR_TOTAL_SEGMENTS in message.tlvs \
                and Tag.SAR_SEGMENT_SEQNUM in message.tlvs:
            concatenation = sms.Concatenation(
                reference=int.from_bytes(message.tlvs[Tag.SAR_MSG_REF_NUM], "big"),
                total=message.tlvs[Tag.SAR_TOTAL_SEGMENTS][0], seq=message.tlvs[Tag.SAR_SEGMENT_SEQNUM][0])
        if concatenation is None or concatenation.total <= 1:
            text = sms.decode_text(payload, message.data_coding)
        else:
            now = time.monotonic()
            key = (message.source_addr, message.destination_addr, concatenation.reference,
                   concatenation.total)
            with self._inbound_lock:
                for old in [k for k, (at, _) in self._inbound_parts.items()
                            if now - at > INBOUND_PARTS_KEPT_FOR]:
                    del self._inbound_parts[old]
                while len(self._inbound_parts) >= INBOUND_PARTS_KEPT_AT_MOST:
                    del self._inbound_parts[next(iter(self._inbound_parts))]  # the oldest
                _, parts = self._inbound_parts.setdefault(key, (now, {}))
                parts[concatenation.seq] = (message.data_coding, payload)
                if len(parts) < concatenation.total:
                    return None
                del self._inbound_parts[key]
            ordered = [parts[i] for i in sorted(parts)]
            text = sms.decode_text(b"".join(p for _, p in ordered), ordered[0][0])
        return sms.InboundMessage(source=message.source_addr, destination=message.destination_addr,
                                  text=text)

    # -- sending -----------------------------------------------------------------

    def _prepare(self, envelope: Envelope) -> OutgoingMessage:
        message = OutgoingMessage(envelope=envelope)
        s = self.settings
        try:
            destination = sms.international_number(envelope.rcpt, field="rcpt")
            text = envelope.data.decode("utf-8", "replace")
            prepared = sms.prepare(text, reference=self._next_reference(), sar=s.sar)
        except InvalidInput as exc:
            message.outcome = Outcome(result=Result.REJECTED, detail=exc.message)
            return message
        try:
            self._add_parts(message, prepared, destination)
        except ValueError as exc:  # a field the PDU cannot hold
            message.parts.clear()
            message.outcome = Outcome(result=Result.REJECTED, detail=f"cannot be sent over SMPP: {exc}")
        return message

    def _add_parts(self, message: OutgoingMessage, prepared: sms.SmsMessage,
                   destination: sms.Address) -> None:
        s = self.settings
        for index, part in enumerate(prepared.parts, start=1):
            tlvs = sar_tlvs(reference=part.sar.reference, total=part.sar.total, seq=part.sar.seq) \
                if part.sar else {}
            body = SubmitSm(source_addr=s.source.value, source_addr_ton=s.source.ton,
                            source_addr_npi=s.source.npi, destination_addr=destination.value,
                            dest_addr_ton=destination.ton, dest_addr_npi=destination.npi,
                            esm_class=ESM_UDHI if part.udh else 0, registered_delivery=1,
                            data_coding=prepared.data_coding, short_message=part.short_message,
                            service_type="", tlvs=tlvs).body()
            sequence = self.next_sequence()
            message.parts.append(Submit(message=message, index=index, sequence=sequence,
                                         pdu=Pdu(Command.SUBMIT_SM, 0, sequence, body).encode()))

    def send(self, batch: Sequence[Envelope]) -> list[Outcome]:
        """One outcome per envelope, in order (see the module docstring). Calls
        from several threads (the worker's batches, an answer to HELP from the
        callback thread) take their turns."""
        if not batch:
            return []
        if self.closed:
            return [Outcome(result=Result.DEFERRED, detail=f"the connection to {self.description} is closed")
                    for _ in batch]
        self.start()
        with self._send_lock:
            messages = [self._prepare(envelope) for envelope in batch]
            submits = [p for m in messages for p in m.parts]
            call = SendCall(queue=collections.deque(submits), open=len(submits))
            with self.cond:
                self._call = call
            try:
                detail = self._run(call)
            finally:
                with self.cond:
                    self._call = None
        return [m.result(detail) for m in messages]

    def _run(self, call: SendCall) -> str:
        """Send the call's submits until each is answered or lost; returns, when it
        gives up for want of a bind, why (the detail of its DEFERRED outcomes)."""
        senders = [s for s in self.sessions if s.sends]
        bind_rounds = 2
        while True:
            action: tuple[Bind, socket.socket, Submit] | None = None
            with self.cond:
                while True:
                    if call.open == 0:
                        return ""
                    if self.closed:
                        return self._give_up(call, f"the connection to {self.description} was closed")
                    now = time.monotonic()
                    self._expire(senders, now)
                    submit = self._next_submit(call, now)
                    if submit is None:
                        if call.open == 0:
                            return ""
                        self.cond.wait(self._wait_time(call, senders, now))
                        continue
                    session = self._free_session(senders, now)
                    if session is not None:
                        assert session.sock is not None
                        call.queue.remove(submit)
                        submit.state, submit.sent_at = SubmitState.OUTSTANDING, now
                        session.outstanding[submit.sequence] = submit
                        action = (session, session.sock, submit)
                        break
                    if any(s.bound for s in senders):
                        self.cond.wait(self._wait_time(call, senders, now))
                        continue
                    if bind_rounds == 0:
                        errors = [s.last_error for s in senders if s.last_error]
                        return self._give_up(call, errors[-1] if errors else
                                             f"no bind to {self.description}")
                    bind_rounds -= 1
                    break
            if action is None:
                for session in senders:  # outside the lock: binding takes up to the timeouts
                    session.connect()
                continue
            session, sock, submit = action
            try:
                session.write(sock, submit.pdu)
            except OSError as exc:
                with self.cond:
                    # A PDU not written whole cannot be acted on: send it again, unless the
                    # reader already counted it lost.
                    if session.outstanding.pop(submit.sequence, None) is submit:
                        submit.state = SubmitState.QUEUED
                        call.queue.appendleft(submit)
                session.drop(sock, f"cannot write to {self.description}: {exc}")

    def _next_submit(self, call: SendCall, now: float) -> Submit | None:
        """Under ``cond``: the first queued submit that may go now (left in the queue).
        Submits of halted messages are dropped on the way."""
        queue = call.queue
        while queue and queue[0].message.halted:
            dropped = queue.popleft()
            dropped.state = SubmitState.GIVEN_UP
            call.open -= 1
        for submit in queue:
            if submit.not_before <= now and not submit.message.halted:
                return submit
        return None

    def _free_session(self, senders: list[Bind], now: float) -> Bind | None:
        n = len(senders)
        for k in range(n):
            session = senders[(self._round_robin + k) % n]
            if session.bound and session.paused_until <= now and \
                    len(session.outstanding) < self.settings.window:
                self._round_robin = (self._round_robin + k + 1) % n
                return session
        return None

    def _wait_time(self, call: SendCall, senders: list[Bind], now: float) -> float:
        times = [sub.not_before for sub in call.queue if sub.not_before > now]
        times += [s.paused_until for s in senders if s.paused_until > now]
        times += [sub.sent_at + self.settings.timeout for s in senders for sub in s.outstanding.values()]
        return max(0.001, min([t - now for t in times] + [1.0]))

    def _expire(self, senders: list[Bind], now: float) -> None:
        """Under ``cond``: drop a bind with a submit unanswered past the timeout."""
        for session in senders:
            sock = session.sock
            if sock is not None and any(now - sub.sent_at > self.settings.timeout
                                        for sub in session.outstanding.values()):
                session.drop(sock, f"{self.description} did not answer a submit within "
                                   f"{self.settings.timeout:g} s")

    def _give_up(self, call: SendCall, reason: str) -> str:
        """Under ``cond``: what is still queued stays unsent; outstanding ones are lost."""
        for submit in call.queue:
            if submit.state == SubmitState.QUEUED:
                submit.state = SubmitState.GIVEN_UP
        call.queue.clear()
        for session in self.sessions:
            for submit in list(session.outstanding.values()):
                self.lose(submit, f"{reason} while {submit.where()} waited for its answer")
            session.outstanding.clear()
        call.open = 0
        return reason


def _call_back(callback: Callable[[T], None], value: T) -> None:
    try:
        callback(value)
    except Exception:  # noqa: BLE001 - the next callback must still run
        log.exception("the SMS callback failed for %r", value)


def _receipt(message: ShortMessage) -> sms.DeliveryReceipt | None:
    """The delivery receipt a ``deliver_sm``/``data_sm`` carries, or None if it is none."""
    kind = message.esm_class & ESM_TYPE_MASK
    flagged = kind in (ESM_SMSC_RECEIPT, ESM_INTERMEDIATE_NOTIFICATION)
    tlv_id = message.tlvs.get(Tag.RECEIPTED_MESSAGE_ID)
    if not flagged and tlv_id is None and message.esm_class & ESM_UDHI:
        return None
    text = message.payload.decode("latin-1")
    from_text = sms.receipt_from_text(text) if (flagged or tlv_id is not None or "stat:" in text.lower()) \
        else None
    if from_text is None and not flagged and tlv_id is None:
        return None
    remote_id = tlv_id.rstrip(b"\x00").decode("latin-1") if tlv_id else (from_text.remote_id if from_text
                                                                        else "")
    state_value = message.tlvs.get(Tag.MESSAGE_STATE)
    if state_value:
        state = sms.MESSAGE_STATE.get(state_value[0], sms.ReceiptState.UNKNOWN)
    elif from_text is not None:
        state = from_text.state
    else:
        state = sms.ReceiptState.UNKNOWN
    error = from_text.error if from_text else None
    network_error = message.tlvs.get(Tag.NETWORK_ERROR_CODE)
    if network_error and len(network_error) == 3 and int.from_bytes(network_error[1:], "big"):
        error = error or f"network {network_error[0]}:{int.from_bytes(network_error[1:], 'big')}"
    if not remote_id:
        log.warning("a delivery receipt without a message id: %r", text[:200])
        return None
    return sms.DeliveryReceipt(remote_id=remote_id, state=state, error=error,
                               done_at=from_text.done_at if from_text else None)
