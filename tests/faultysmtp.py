"""A loopback SMTP server whose faults the test controls (blocking sockets, a thread
per connection), for what aiosmtpd cannot be made to do: refuse at the greeting,
stall, break the connection half-way through a message body, break a TLS
handshake, read slowly.

It counts what it sees: every connection (with its time), every command, every
``RCPT TO``, and every message it took in full (``delivered``). A message is
delivered once the server has read it up to the final dot, whether or not its
reply ever reaches the client (``stall_after_data``): that is the case that
makes a message *uncertain*, and the count shows it was never sent twice.

Faults are plain attributes, changed while it runs::

    server = FaultySmtp().start()
    server.refuse = "421 4.3.2 Service not available"   # every connection, until None
    server.refuse_ehlo = "421 4.3.2 Too busy"            # the same, as the answer to EHLO
    server.defer_data = {"c001@example.org"}             # 451 after that message's body
    server.drop_mid_data = {"c002@example.org"}          # link closed half-way through the body
    server.on_drop = lambda: ...                         # called then (to change faults from there)
    server.stall_greeting = True                         # never says hello
    server.stall_after_data = {"c003@example.org"}       # takes the body, never answers
    server.stall_at_rcpt = {"c004@example.org"}          # never answers that RCPT TO
    server.idle_close = 0.2                              # 421 and closed after 0.2 s of silence
    server.read_delay, server.read_chunk = 0.002, 512    # a slow reader
    server.slow_bytes = 16_000_000                       # ... for the first 16 MB of a connection
    server.tls_broken = True                             # no TLS where TLS is expected
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable

from tests.smtpserver import Received, free_port


class _Closed(Exception):
    """The client went away (or the server was stopped)."""


class FaultySmtp:
    def __init__(self, *, port: int | None = None, implicit_tls: bool = False, starttls: bool = False,
                 tls: ssl.SSLContext | None = None, receive_buffer: int | None = None) -> None:
        self.port = port or free_port()
        #: smtps: TLS from the first byte; starttls: STARTTLS offered. Both need ``tls``.
        self.implicit_tls = implicit_tls
        self.starttls = starttls
        self.tls = tls
        self.receive_buffer = receive_buffer
        # -- faults (see the module docstring) --
        self.refuse: str | None = None
        self.stall_greeting = False
        self.tls_broken = False
        #: Seconds a connection may stay silent; then "421 4.4.2 Idle too long" and closed.
        self.idle_close: float | None = None
        #: The answer to STARTTLS instead of 220, e.g. "454 4.7.0 TLS not available".
        self.refuse_starttls: str | None = None
        self.pipelining = True
        self.defer_data: set[str] = set()
        self.drop_mid_data: set[str] = set()
        #: Called when a link is dropped mid-DATA (to change the faults from then on).
        self.on_drop: Callable[[], None] | None = None
        #: The reply to EHLO for refused sessions, e.g. "421 4.7.0 Too busy", until None.
        self.refuse_ehlo: str | None = None
        self.stall_after_data: set[str] = set()
        self.stall_at_rcpt: set[str] = set()
        self.read_delay = 0.0
        self.read_chunk = 65536
        #: Read slowly only the first this many bytes of each connection (None: all).
        self.slow_bytes: int | None = None
        # -- what it saw --
        self.lock = threading.Lock()
        self.connections: list[float] = []
        self.commands: list[str] = []
        self.timed: list[tuple[float, str]] = []  # (when, command)
        self.replies: list[str] = []  # every reply line it sent
        self.rcpts: list[str] = []
        self.delivered: list[Received] = []
        self.delivered_over_tls: list[bool] = []
        self._open: set[socket.socket] = set()
        self._stopped = threading.Event()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        scheme = "smtps" if self.implicit_tls else "smtp+starttls" if self.starttls else "smtp"
        tail = "?verify=false" if self.implicit_tls or self.starttls else ""
        return f"{scheme}://127.0.0.1:{self.port}{tail}"

    # -- counts ------------------------------------------------------------------

    def recipients(self) -> list[str]:
        with self.lock:
            return [m.rcpt for m in self.delivered]

    def delivered_counts(self) -> Counter[str]:
        return Counter(self.recipients())

    def rcpt_counts(self) -> Counter[str]:
        with self.lock:
            return Counter(self.rcpts)

    def connection_times(self) -> list[float]:
        with self.lock:
            return list(self.connections)

    def said(self) -> list[str]:
        with self.lock:
            return list(self.replies)

    def verbs(self) -> list[str]:
        with self.lock:
            return [c.split(" ", 1)[0].split(":", 1)[0].upper() for c in self.commands]

    # -- running -----------------------------------------------------------------

    def start(self) -> FaultySmtp:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.receive_buffer:  # inherited by accepted sockets: a small window, so slow reading shows
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, daemon=True, name="faulty-smtp")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept (close alone does not)
            except OSError:
                pass
            self._listener.close()
        with self.lock:
            for sock in list(self._open):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stopped.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            # Replies go out as they are written, as a real server's do (not held back by
            # Nagle's algorithm until the client's delayed ACK: 40 ms a message).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.connections.append(time.monotonic())
                self._open.add(sock)
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        conn = _Connection(self, sock)
        try:
            conn.run()
        except (_Closed, OSError):
            pass
        finally:
            with self.lock:
                self._open.discard(sock)
                self._open.discard(conn.sock)
            try:
                conn.sock.close()
            except OSError:
                pass


class _Connection:
    def __init__(self, server: FaultySmtp, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.buf = bytearray()
        self.pos = 0
        self.read = 0

    # -- the wire --

    def send(self, *lines: str) -> None:
        with self.server.lock:
            self.server.replies.extend(lines)
        self.sock.sendall("".join(f"{line}\r\n" for line in lines).encode())

    def _more(self) -> None:
        s = self.server
        slow = s.slow_bytes is None or self.read < s.slow_bytes
        if s.read_delay and slow:
            time.sleep(s.read_delay)
        data = self.sock.recv(s.read_chunk if slow else 1 << 20)
        if not data:
            raise _Closed
        self.read += len(data)
        del self.buf[:self.pos]
        self.pos = 0
        self.buf += data

    def line(self) -> bytes:
        while (end := self.buf.find(b"\n", self.pos)) < 0:
            self._more()
        line = bytes(self.buf[self.pos:end])
        self.pos = end + 1
        return line.rstrip(b"\r")

    def wait_for_close(self) -> None:
        """Stall: say nothing until the client gives up (or the server stops)."""
        while True:
            self._more()

    def _wrap(self) -> None:
        assert self.server.tls is not None
        with self.server.lock:
            self.server._open.add(self.sock)
        self.sock = self.server.tls.wrap_socket(self.sock, server_side=True)
        with self.server.lock:
            self.server._open.add(self.sock)

    # -- the dialogue --

    def run(self) -> None:
        s = self.server
        if s.implicit_tls and not s.tls_broken:
            self._wrap()
        if s.refuse:
            self.send(s.refuse)
            return
        if s.stall_greeting:
            self.wait_for_close()
        self.send("220 faulty.test ESMTP")
        sender: str | None = None
        rcpts: list[str] = []
        while True:
            self.sock.settimeout(s.idle_close)
            try:
                raw = self.line().decode("utf-8", "replace")
            except TimeoutError:
                self.send("421 4.4.2 Idle too long, closing connection")
                return
            with s.lock:
                s.commands.append(raw)
                s.timed.append((time.monotonic(), raw))
            verb = raw.split(" ", 1)[0].split(":", 1)[0].upper()
            if verb == "EHLO" and s.refuse_ehlo:
                self.send(s.refuse_ehlo)
                return
            if verb == "EHLO":
                offers = ["8BITMIME", "SMTPUTF8"]
                if s.pipelining:
                    offers.append("PIPELINING")
                if s.starttls and not isinstance(self.sock, ssl.SSLSocket):
                    offers.append("STARTTLS")
                self.send("250-faulty.test", *[f"250-{o}" for o in offers[:-1]], f"250 {offers[-1]}")
            elif verb == "HELO":
                self.send("250 faulty.test")
            elif verb == "STARTTLS" and s.starttls and s.refuse_starttls:
                self.send(s.refuse_starttls)
            elif verb == "STARTTLS" and s.starttls:
                self.send("220 2.0.0 Ready to start TLS")
                if s.tls_broken:
                    self.send("this is not TLS")
                    return
                self._wrap()
            elif verb == "MAIL":
                sender, rcpts = raw.split(":", 1)[1].strip().strip("<>"), []
                self.send("250 2.1.0 OK")
            elif verb == "RCPT":
                address = raw.split(":", 1)[1].strip().strip("<>")
                with s.lock:
                    s.rcpts.append(address)
                if address in s.stall_at_rcpt:
                    self.wait_for_close()
                rcpts.append(address)
                self.send("250 2.1.5 OK")
            elif verb == "DATA":
                if sender is None or not rcpts:
                    self.send("503 5.5.1 MAIL and RCPT first")
                    continue
                self.send("354 End data with <CR><LF>.<CR><LF>")
                self._data(sender, rcpts)
                sender, rcpts = None, []
            elif verb in ("RSET", "NOOP"):
                sender, rcpts = (None, []) if verb == "RSET" else (sender, rcpts)
                self.send("250 2.0.0 OK")
            elif verb == "QUIT":
                self.send("221 2.0.0 Bye")
                return
            else:
                self.send("502 5.5.2 Command not recognized")

    def _data(self, sender: str, rcpts: list[str]) -> None:
        s = self.server
        if s.drop_mid_data & set(rcpts):
            self.line()  # the first line of the body has come in; the rest never will be read
            if s.on_drop is not None:
                s.on_drop()
            raise _Closed
        lines: list[bytes] = []
        while (line := self.line()) != b".":
            lines.append(line[1:] if line.startswith(b".") else line)
        data = b"\r\n".join(lines) + b"\r\n"
        if s.defer_data & set(rcpts):
            self.send("451 4.3.0 Try again later")
            return
        with s.lock:
            s.delivered.extend(Received(sender, rcpt, data) for rcpt in rcpts)
            s.delivered_over_tls.extend(isinstance(self.sock, ssl.SSLSocket) for _ in rcpts)
        if s.stall_after_data & set(rcpts):
            self.wait_for_close()
        self.send("250 2.0.0 Queued")
