"""A loopback SMSC for tests: SMPP 3.4 over real sockets on 127.0.0.1.

It speaks the wire format with its own ``struct`` code (not Tidings' PDU
module), so a mistake in the client's encoding shows up here. What it does:

- binds (transmitter, receiver, transceiver), checking system id and
  password; ``refuse_binds`` answers every bind with that status;
- answers ``submit_sm`` with the next status of :meth:`answer_next` (ROK when
  none is queued), after ``response_delay`` seconds, each answer in its own
  time so that many submits can be outstanding; records every submit with its
  decoded fields, UDH and SAR values (:class:`Submit`) and the most submits
  outstanding at once;
- gives message ids in the form ``id_form`` (``hex``, ``HEX8``, ``decimal``,
  ``decimal10``);
- sends ``deliver_sm`` to the bound ESME: receipts (:meth:`send_receipt`) and
  replies (:meth:`send_inbound`), and waits for their answers;
- answers ``enquire_link``, counts those received, sends one on request;
- drops every connection on :meth:`drop`, or when submit number
  ``drop_at_submit`` arrives (leaving it and all outstanding ones unanswered).
"""

from __future__ import annotations

import collections
import queue
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from tidings.domain.sms import decode_gsm7

HEADER = struct.Struct(">IIII")
BIND_RECEIVER, BIND_TRANSMITTER, BIND_TRANSCEIVER = 0x01, 0x02, 0x09
SUBMIT_SM, DELIVER_SM, UNBIND, ENQUIRE_LINK, DATA_SM = 0x04, 0x05, 0x06, 0x15, 0x103
GENERIC_NACK = 0x80000000
RESP = 0x80000000
ROK, RTHROTTLED, RMSGQFUL, RINVDSTADR, RINVPASWD = 0x00, 0x58, 0x14, 0x0B, 0x0E
BIND_NAMES = {BIND_RECEIVER: "rx", BIND_TRANSMITTER: "tx", BIND_TRANSCEIVER: "trx"}


def pdu(command_id: int, sequence: int, body: bytes = b"", status: int = 0) -> bytes:
    return HEADER.pack(16 + len(body), command_id, status, sequence) + body


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def cstr(self) -> str:
        end = self.data.index(b"\x00", self.at)
        value, self.at = self.data[self.at:end].decode("latin-1"), end + 1
        return value

    def byte(self) -> int:
        self.at += 1
        return self.data[self.at - 1]

    def take(self, n: int) -> bytes:
        self.at += n
        return self.data[self.at - n:self.at]

    def tlvs(self) -> dict[int, bytes]:
        found = {}
        while self.at < len(self.data):
            tag, length = struct.unpack(">HH", self.take(4))
            found[tag] = self.take(length)
        return found


@dataclass
class Submit:
    """One ``submit_sm`` as received, and what the SMSC answered."""

    connection: int
    sequence: int
    raw: bytes
    service_type: str
    source_addr_ton: int
    source_addr_npi: int
    source_addr: str
    dest_addr_ton: int
    dest_addr_npi: int
    destination_addr: str
    esm_class: int
    registered_delivery: int
    data_coding: int
    short_message: bytes
    tlvs: dict[int, bytes]
    udh: tuple[int, int, int] | None  # (reference, total, seq) from IEI 0x00
    body: bytes  # short_message without the UDH
    status: int | None = None  # None: never answered
    message_id: str | None = None
    received_at: float = field(default_factory=time.monotonic)

    @property
    def text(self) -> str:
        if self.data_coding == 8:
            return self.body.decode("utf-16-be", "surrogatepass")
        return decode_gsm7(self.body)

    @property
    def sar(self) -> tuple[int, int, int] | None:
        if 0x020C not in self.tlvs:
            return None
        return (int.from_bytes(self.tlvs[0x020C], "big"), self.tlvs[0x020E][0], self.tlvs[0x020F][0])


def parse_submit(connection: int, sequence: int, body: bytes) -> Submit:
    r = _Body(body)
    service_type = r.cstr()
    s_ton, s_npi, source = r.byte(), r.byte(), r.cstr()
    d_ton, d_npi, dest = r.byte(), r.byte(), r.cstr()
    esm_class, _pid, _prio = r.byte(), r.byte(), r.byte()
    r.cstr(), r.cstr()
    registered, _replace, coding, _default, length = (r.byte() for _ in range(5))
    short_message = r.take(length)
    tlvs = r.tlvs()
    udh, text = None, short_message
    if esm_class & 0x40:
        udhl = short_message[0]
        header, text = short_message[1:1 + udhl], short_message[1 + udhl:]
        i = 0
        while i < len(header):
            iei, iedl = header[i], header[i + 1]
            if iei == 0x00 and iedl == 3:
                udh = (header[i + 2], header[i + 3], header[i + 4])
            i += 2 + iedl
    return Submit(connection=connection, sequence=sequence, raw=body, service_type=service_type,
                  source_addr_ton=s_ton, source_addr_npi=s_npi, source_addr=source, dest_addr_ton=d_ton,
                  dest_addr_npi=d_npi, destination_addr=dest, esm_class=esm_class,
                  registered_delivery=registered, data_coding=coding, short_message=short_message,
                  tlvs=tlvs, udh=udh, body=text)


@dataclass(eq=False)
class _Connection:
    number: int
    sock: socket.socket
    bind: str | None = None
    system_id: str | None = None
    outstanding: int = 0
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    waiting: dict[int, threading.Event] = field(default_factory=dict)
    answers: dict[int, int] = field(default_factory=dict)
    closed: bool = False
    delayed: queue.SimpleQueue[tuple[float, Submit, int, bytes]] | None = None

    def write(self, data: bytes) -> None:
        with self.write_lock:
            self.sock.sendall(data)


class LoopbackSmsc:
    """See the module docstring. ``with LoopbackSmsc() as smsc: smsc.url(...)``."""

    def __init__(self, *, system_id: str = "tidings", password: str = "secret", id_form: str = "hex",
                 response_delay: float = 0.0, port: int = 0) -> None:
        self.system_id, self.password = system_id, password
        self.id_form = id_form
        self.response_delay = response_delay
        self.refuse_binds: int | None = None
        self.drop_at_submit: int | None = None
        self.binds: list[tuple[str, str]] = []  # (rx|tx|trx, system id) of accepted binds
        self.bind_attempts = 0
        self.submits: list[Submit] = []
        self.enquire_links_received = 0
        self.unbinds = 0
        self.max_outstanding = 0
        self.lock = threading.Lock()
        self._statuses: collections.deque[int] = collections.deque()
        self._next_id = 0xFE  # the first id is 0xFF: 255, "ff", "000000FF"
        self._sequence = 0
        self._connections: list[_Connection] = []
        self._listener = socket.create_server(("127.0.0.1", port))
        self.port = self._listener.getsockname()[1]
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True, name="smsc-accept").start()

    def __enter__(self) -> LoopbackSmsc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def url(self, source: str = "Shop", **query: object) -> str:
        params = "&".join([f"source={source}"] + [f"{k}={v}" for k, v in query.items()])
        return f"smpp://{self.system_id}:{self.password}@127.0.0.1:{self.port}?{params}"

    # -- control ----------------------------------------------------------------

    def answer_next(self, status: int, times: int = 1) -> None:
        """The next ``times`` submits are answered with ``status``."""
        with self.lock:
            self._statuses.extend([status] * times)

    def drop(self) -> None:
        """Close every connection at once (no unbind)."""
        with self.lock:
            connections, self._connections = self._connections, []
        for c in connections:
            self._close(c)

    def stop(self) -> None:
        self._stopped = True
        self._listener.close()
        self.drop()

    def bound(self, kinds: tuple[str, ...] = ("trx", "rx", "tx")) -> list[_Connection]:
        with self.lock:
            return [c for c in self._connections if c.bind in kinds and not c.closed]

    def wait_bound(self, count: int = 1, timeout: float = 5.0, kinds: tuple[str, ...] = ("trx", "rx", "tx")
                   ) -> None:
        deadline = time.monotonic() + timeout
        while len(self.bound(kinds)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"no {count} binds of {kinds} within {timeout} s")
            time.sleep(0.01)

    def accepted(self) -> list[Submit]:
        with self.lock:
            return [s for s in self.submits if s.status == ROK]

    def accepted_texts(self) -> list[str]:
        """The texts the SMSC accepted, concatenated parts joined (by destination and
        UDH or SAR reference), in the order their first part arrived."""
        messages: dict[object, dict[int, Submit]] = {}
        for s in self.accepted():
            concat = s.udh or s.sar
            key = (s.destination_addr, concat[0], concat[1]) if concat else (s.sequence, s.connection)
            messages.setdefault(key, {})[concat[2] if concat else 1] = s
        texts = []
        for parts in messages.values():
            first = parts[min(parts)]
            data = b"".join(parts[i].body for i in sorted(parts))
            texts.append(data.decode("utf-16-be") if first.data_coding == 8 else decode_gsm7(data))
        return texts

    # -- towards the ESME ----------------------------------------------------------

    def deliver(self, *, source: str, destination: str, short_message: bytes = b"", esm_class: int = 0,
                data_coding: int = 0, tlvs: dict[int, bytes] | None = None, timeout: float = 5.0) -> int:
        """Send a ``deliver_sm`` to a bound receiver or transceiver; returns the
        status of its ``deliver_sm_resp``."""
        body = (b"\x00" + bytes((1, 1)) + source.encode() + b"\x00" + bytes((5, 0)) + destination.encode()
                + b"\x00" + bytes((esm_class, 0, 0)) + b"\x00\x00" + bytes((0, 0, data_coding, 0))
                + bytes((len(short_message),)) + short_message
                + b"".join(struct.pack(">HH", t, len(v)) + v for t, v in (tlvs or {}).items()))
        return self._request(DELIVER_SM, body, timeout)

    def send_receipt(self, message_id: str, *, stat: str = "DELIVRD", err: str = "000", form: str = "text",
                     done: str = "2611291230", destination: str = "Shop", source: str = "37120000001"
                     ) -> int:
        """A delivery receipt for ``message_id``: ``form`` ``text`` (esm_class 0x04 and
        the standard text), ``text-only`` (the text, esm_class 0), or ``tlv``
        (esm_class 0x04, ``receipted_message_id`` and ``message_state`` TLVs only)."""
        text = (f"id:{message_id} sub:001 dlvrd:{'001' if stat == 'DELIVRD' else '000'} "
                f"submit date:2611291229 done date:{done} stat:{stat} err:{err} text:").encode()
        if form == "tlv":
            state = {"DELIVRD": 2, "EXPIRED": 3, "UNDELIV": 5, "REJECTD": 8}[stat]
            return self.deliver(source=source, destination=destination, esm_class=0x04,
                                tlvs={0x001E: message_id.encode() + b"\x00", 0x0427: bytes((state,))})
        return self.deliver(source=source, destination=destination, short_message=text,
                            esm_class=0x04 if form == "text" else 0)

    def send_inbound(self, text: str, *, source: str = "37120000001", destination: str = "Shop") -> int:
        """A reply from a phone: GSM-7 when ASCII letters and digits do, else UCS-2."""
        if text.isascii():
            return self.deliver(source=source, destination=destination, short_message=text.encode())
        return self.deliver(source=source, destination=destination, data_coding=8,
                            short_message=text.encode("utf-16-be"))

    def send_data_sm(self, *, source: str, destination: str, payload: bytes, esm_class: int = 0,
                     data_coding: int = 0, tlvs: dict[int, bytes] | None = None, timeout: float = 5.0) -> int:
        """A ``data_sm`` (its text in the ``message_payload`` TLV); returns the answer's status."""
        fields = {**(tlvs or {}), 0x0424: payload}
        body = (b"\x00" + bytes((1, 1)) + source.encode() + b"\x00" + bytes((5, 0)) + destination.encode()
                + b"\x00" + bytes((esm_class, 0, data_coding))
                + b"".join(struct.pack(">HH", t, len(v)) + v for t, v in fields.items()))
        return self._request(DATA_SM, body, timeout)

    def send_enquire_link(self, timeout: float = 5.0) -> int:
        return self._request(ENQUIRE_LINK, b"", timeout)

    def _request(self, command_id: int, body: bytes, timeout: float) -> int:
        receivers = self.bound(("trx", "rx"))
        if not receivers:
            raise AssertionError("no ESME is bound to receive")
        c = receivers[0]
        with self.lock:
            self._sequence += 1
            sequence = self._sequence
        event = c.waiting[sequence] = threading.Event()
        c.write(pdu(command_id, sequence, body))
        if not event.wait(timeout):
            raise AssertionError(f"the ESME did not answer command 0x{command_id:x} within {timeout} s")
        return c.answers.pop(sequence)

    # -- serving --------------------------------------------------------------------

    def _accept(self) -> None:
        number = 0
        while not self._stopped:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            number += 1
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c = _Connection(number=number, sock=sock)
            with self.lock:
                self._connections.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True, name=f"smsc-{number}").start()

    def _close(self, c: _Connection) -> None:
        c.closed = True
        try:
            c.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        c.sock.close()

    def _serve(self, c: _Connection) -> None:
        buffer = b""
        try:
            while not c.closed:
                chunk = c.sock.recv(65536)
                if not chunk:
                    break
                buffer += chunk
                while len(buffer) >= 16:
                    length, command_id, status, sequence = HEADER.unpack(buffer[:16])
                    if len(buffer) < length:
                        break
                    body, buffer = buffer[16:length], buffer[length:]
                    self._handle(c, command_id, status, sequence, body)
        except OSError:
            pass
        finally:
            self._close(c)

    def _handle(self, c: _Connection, command_id: int, status: int, sequence: int, body: bytes) -> None:
        if command_id in (BIND_RECEIVER, BIND_TRANSMITTER, BIND_TRANSCEIVER):
            r = _Body(body)
            system_id, password = r.cstr(), r.cstr()
            self.bind_attempts += 1
            if self.refuse_binds is not None:
                answer = self.refuse_binds
            elif system_id != self.system_id or password != self.password:
                answer = RINVPASWD
            else:
                answer = ROK
            c.write(pdu(command_id | RESP, sequence, b"LoopSMSC\x00" if answer == ROK else b"", answer))
            if answer == ROK:
                c.bind, c.system_id = BIND_NAMES[command_id], system_id
                with self.lock:
                    self.binds.append((c.bind, system_id))
        elif command_id == SUBMIT_SM:
            self._submit(c, sequence, body)
        elif command_id == ENQUIRE_LINK:
            with self.lock:
                self.enquire_links_received += 1
            c.write(pdu(ENQUIRE_LINK | RESP, sequence))
        elif command_id == UNBIND:
            with self.lock:
                self.unbinds += 1
            c.write(pdu(UNBIND | RESP, sequence))
            self._close(c)
        elif command_id & RESP:
            c.answers[sequence] = status
            event = c.waiting.pop(sequence, None)
            if event:
                event.set()
        else:
            c.write(pdu(GENERIC_NACK, sequence, status=0x03))

    def _submit(self, c: _Connection, sequence: int, body: bytes) -> None:
        submit = parse_submit(c.number, sequence, body)
        with self.lock:
            self.submits.append(submit)
            if self.drop_at_submit is not None and len(self.submits) >= self.drop_at_submit:
                self.drop_at_submit = None
                drop = True
            else:
                drop = False
                c.outstanding += 1
                self.max_outstanding = max(self.max_outstanding, c.outstanding)
                status = self._statuses.popleft() if self._statuses else ROK
                if status == ROK:
                    self._next_id += 1
                    n = self._next_id
                    submit.message_id = {"hex": format(n, "x"), "HEX8": f"{n:08X}", "decimal": str(n),
                                         "decimal10": f"{n:010d}"}[self.id_form]
        if drop:
            self.drop()
            return
        answer = pdu(SUBMIT_SM | RESP, sequence,
                     (submit.message_id or "").encode() + b"\x00" if status == ROK else b"", status)

        if self.response_delay:
            if c.delayed is None:
                c.delayed = queue.SimpleQueue()
                threading.Thread(target=self._answer_later, args=(c,), daemon=True,
                                 name=f"smsc-answers-{c.number}").start()
            c.delayed.put((time.monotonic() + self.response_delay, submit, status, answer))
        else:
            self._answer(c, submit, status, answer)

    def _answer(self, c: _Connection, submit: Submit, status: int, answer: bytes) -> None:
        with self.lock:
            if c.closed:
                return
            submit.status = status
            c.outstanding -= 1
        try:
            c.write(answer)
        except OSError:
            submit.status = None

    def _answer_later(self, c: _Connection) -> None:
        """Each answer when its delay is over, in the order the submits came (the delay
        is the same for all, so the first due is always the first in line)."""
        assert c.delayed is not None
        while not c.closed:
            try:
                due, submit, status, answer = c.delayed.get(timeout=0.2)
            except queue.Empty:
                continue
            time.sleep(max(0.0, due - time.monotonic()))
            self._answer(c, submit, status, answer)
