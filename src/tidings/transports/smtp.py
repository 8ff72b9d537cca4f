"""SMTP transport: a pool of reused connections, each driven by one thread.

URLs: ``smtp://[user:pass@]host:port``, ``smtp+starttls://...``, ``smtps://...``;
``?verify=false`` accepts any server certificate (for test servers only).

The standard ``smtplib`` client is used rather than aiosmtplib: on this kind of
machine blocking smtplib with threads moved more messages per CPU second, and
the transactions are driven step by step here so that a broken link is
classified exactly (before DATA: safe to retry; after the body went out: the
message is *uncertain* and is never resent).
"""

from __future__ import annotations

import queue
import select
import smtplib
import socket
import ssl
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from tidings.errors import InvalidInput
from tidings.transports.base import SENT, Done, Envelope, Outcome, Result, Take


def dot_stuff(data: bytes) -> bytes:
    """The DATA payload: CRLF-terminated, every line starting with "." doubled
    (RFC 5321 4.5.2). ``bytes.replace`` is some hundred times faster than a
    multi-line regular expression over a 12 KB message."""
    body = data.replace(b"\r\n.", b"\r\n..")
    if body.startswith(b"."):
        body = b"." + body
    return body if body.endswith(b"\r\n") else body + b"\r\n"


@dataclass(frozen=True, kw_only=True)
class SmtpTarget:
    host: str
    port: int
    mode: str  # plain | starttls | tls
    username: str | None
    password: str | None
    verify: bool

    @classmethod
    def parse(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        modes = {"smtp": "plain", "smtp+starttls": "starttls", "smtps": "tls"}
        if parts.scheme not in modes or not parts.hostname:
            raise InvalidInput(f"Unsupported SMTP URL {url!r}.", field="TIDINGS_SMTP_URL")
        query = parse_qs(parts.query)
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if parts.scheme == "smtps" else 25),
            mode=modes[parts.scheme],
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            verify=query.get("verify", ["true"])[0].lower() not in ("0", "false", "no"),
        )

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def _reply_outcome(code: int, reply: bytes, stage: str) -> Outcome:
    """A refusal. A rejection's detail is the reply's text ("5.1.1 No such user",
    which :attr:`Outcome.hard_bounce` reads); a deferral's has the code and the
    command too ("451 4.3.0 Try again later (at end of DATA)"), as the manager
    reads it in a ``technical_error`` when deferrals go on."""
    text = reply.decode("utf-8", "replace")
    result = Result.DEFERRED if 400 <= code < 500 or code < 0 else Result.REJECTED
    if result is Result.DEFERRED:
        said = f"{code} {' '.join(text.split())}" if code > 0 else f"an unreadable reply {text!r}"
        return Outcome(result=result, code=code, detail=f"{said} (at {stage})")
    return Outcome(result=result, code=code, detail=text or f"{code} at {stage}")


def _envelope_commands(env: Envelope) -> bytes:
    return f"MAIL FROM:<{env.mail_from}>\r\nRCPT TO:<{env.rcpt}>\r\nDATA\r\n".encode("ascii")


def _envelope_failure(replies: Sequence[tuple[int, bytes]]) -> Outcome | None:
    """The outcome of a refused MAIL, RCPT or DATA, or None when DATA may follow."""
    (mail_code, mail_reply), (rcpt_code, rcpt_reply), (data_code, data_reply) = replies
    if mail_code != 250:
        return _reply_outcome(mail_code, mail_reply, "MAIL FROM")
    if rcpt_code not in (250, 251):
        return _reply_outcome(rcpt_code, rcpt_reply, "RCPT TO")
    if data_code != 354:
        return _reply_outcome(data_code, data_reply, "DATA")
    return None


class _Replies:
    """SMTP replies read straight off the socket, several at a time.

    The pipelined path reads four replies a message; ``smtplib.getreply`` reads
    them line by line through a file object and cost more CPU than all the
    rest of the SMTP client. Same results as ``getreply``: ``(code, text)``
    with the lines of a multi-line reply joined by newlines, code -1 when the
    server sent no number.
    """

    MAX_LINE = 8192  # as smtplib

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def take(self, n: int) -> list[tuple[int, bytes]]:
        replies: list[tuple[int, bytes]] = []
        lines: list[bytes] = []
        buf, pos = self.buf, 0
        while len(replies) < n:
            end = buf.find(b"\n", pos)
            if end < 0:
                if len(buf) - pos > self.MAX_LINE:
                    raise smtplib.SMTPResponseException(500, "Line too long.")
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
                buf, pos = buf[pos:] + chunk, 0
                continue
            line = buf[pos:end].rstrip(b"\r")
            pos = end + 1
            lines.append(line[4:].strip(b" \t"))
            if line[3:4] != b"-":
                try:
                    code = int(line[:3])
                except ValueError:
                    code = -1
                replies.append((code, b"\n".join(lines)))
                lines = []
        self.buf = buf[pos:]
        return replies


class ConnectFailed(Exception):
    """No usable connection; ``outcome`` (deferred) says why."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.detail)
        self.outcome = outcome


def _text(reply: bytes | str) -> str:
    """A server's reply text on one line."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return " ".join(text.split())


def _lost_before(target: SmtpTarget, timeout: float, exc: BaseException) -> Outcome:
    """The link broke (or the server fell silent) before the body went out: safe
    to send again."""
    if _timed_out(exc):
        return Outcome(result=Result.DEFERRED,
                       detail=f"the SMTP server {target} did not answer within {timeout:g} s "
                              "(TIDINGS_SMTP_TIMEOUT) before the message went out")
    return Outcome(result=Result.DEFERRED, detail=f"connection to {target} lost before DATA: {exc}")


def _lost_after(target: SmtpTarget, timeout: float, exc: BaseException) -> Outcome:
    """The body went out and no reply came back: the message may have been
    delivered, so it is *uncertain* and never sent again."""
    if _timed_out(exc):
        why = f"no reply from the SMTP server {target} within {timeout:g} s after the message went out"
    else:
        why = f"connection to {target} lost after the message: {exc}"
    return Outcome(result=Result.UNCERTAIN,
                   detail=f"{why}; it may have been delivered, so it is not sent again")


class _WriteFailed(Exception):
    """A write broke off after ``written`` bytes had been handed to the kernel."""

    def __init__(self, written: int, cause: OSError) -> None:
        super().__init__(str(cause))
        self.written = written
        self.cause = cause


def _write(sock: socket.socket, data: bytes) -> None:
    """``sendall``, but the timeout is for each step of progress rather than for the
    whole write (a server that reads slowly is not a stalled one), and a failure
    says how much went out: bytes never handed to the kernel never left."""
    view = memoryview(data)
    written = 0
    try:
        while written < len(view):
            written += sock.send(view[written:])
    except OSError as exc:
        raise _WriteFailed(written, exc) from exc


def _not_taken(target: SmtpTarget, timeout: float, exc: BaseException) -> Outcome:
    """The link broke while the body was still being written: its final dot never
    left, so the server cannot have taken the message; it is sent again."""
    if _timed_out(exc):
        why = f"the SMTP server {target} took nothing more of the message for {timeout:g} s"
    else:
        why = f"connection to {target} lost while the message was being written: {exc}"
    return Outcome(result=Result.DEFERRED,
                   detail=f"{why}; the server cannot have taken it, so it is sent again")


def _body_failure(target: SmtpTarget, timeout: float, failed: _WriteFailed, body: int) -> Outcome:
    """Deferred when the write broke off within the first ``body`` bytes (the
    message and its final dot), uncertain when all of them had gone out."""
    if failed.written < body:
        return _not_taken(target, timeout, failed.cause)
    return _lost_after(target, timeout, failed.cause)


def _timed_out(exc: BaseException) -> bool:
    """A timeout, also when smtplib wrapped it (``SMTPServerDisconnected`` from a
    timed-out read of the greeting)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TimeoutError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _connect_failure(target: SmtpTarget, timeout: float, stage: str, exc: BaseException) -> Outcome:
    """Why no connection could be made, in the manager's words. All are deferred
    (retried for ``TIDINGS_SMTP_RETRY_FOR``). ``stage``: connect, tls (the
    handshake of smtps://, with the TCP connect and the greeting), starttls, login."""
    code: int | None = None
    tls_failed = (isinstance(exc, ssl.SSLError) and stage in ("tls", "starttls")) or (
        stage == "starttls" and isinstance(exc, ConnectionError | smtplib.SMTPResponseException))
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        code = exc.smtp_code
        detail = f"SMTP login to {target} refused: {exc.smtp_error!r}"
    elif isinstance(exc, smtplib.SMTPConnectError | smtplib.SMTPHeloError):
        # A greeting (or EHLO reply) other than 2xx: "421 4.3.2 Service not available".
        code = exc.smtp_code
        detail = f"the SMTP server {target} refused the connection: {code} {_text(exc.smtp_error)}"
    elif tls_failed:
        reason = getattr(exc, "reason", None) or str(exc)
        if isinstance(exc, smtplib.SMTPResponseException):  # STARTTLS answered 454, say
            code = exc.smtp_code
            reason = f"it answered STARTTLS with {code} {_text(exc.smtp_error)}"
        elif isinstance(exc, ssl.SSLCertVerificationError):
            reason = f"its certificate cannot be verified ({exc.verify_message})"
        detail = (f"TLS handshake with SMTP server {target} failed: {reason}; nothing was sent "
                  "without encryption")
    elif _timed_out(exc):
        detail = f"the SMTP server {target} did not answer within {timeout:g} s (TIDINGS_SMTP_TIMEOUT)"
    elif isinstance(exc, ConnectionRefusedError):
        detail = f"the SMTP server {target} refused the connection (nothing listens there)"
    else:
        detail = f"cannot connect to SMTP server {target}: {exc}"
    return Outcome(result=Result.DEFERRED, code=code, detail=detail)


class _Slot:
    """One connection, used by one thread at a time."""

    def __init__(self, target: SmtpTarget, timeout: float) -> None:
        self.target = target
        self.timeout = timeout
        self.conn: smtplib.SMTP | None = None

    def _context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        if not self.target.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def connect(self) -> smtplib.SMTP:
        """The open connection, or a new one: greeted, encrypted as the URL says and
        logged in. Raises :class:`ConnectFailed` saying why in the manager's words;
        a TLS failure never falls back to plain text."""
        if self.conn is not None:
            if not self._stale():
                return self.conn
            self.drop()
        t = self.target
        conn: smtplib.SMTP | None = None
        stage = "tls" if t.mode == "tls" else "connect"
        try:
            if t.mode == "tls":
                conn = smtplib.SMTP_SSL(t.host, t.port, timeout=self.timeout, context=self._context())
            else:
                conn = smtplib.SMTP(t.host, t.port, timeout=self.timeout)
            stage = "connect"
            code, reply = conn.ehlo()
            if 400 <= code < 500:  # "421 too busy" to EHLO (a 5xx is an old server: HELO follows)
                raise smtplib.SMTPHeloError(code, reply)
            if t.mode == "starttls":
                if not conn.has_extn("starttls"):
                    raise ConnectFailed(Outcome(
                        result=Result.DEFERRED,
                        detail=f"the SMTP server {t} does not offer STARTTLS, so nothing was sent "
                               "without encryption (the URL asks for smtp+starttls://)"))
                stage = "starttls"
                conn.starttls(context=self._context())
                stage = "connect"
                conn.ehlo()
            if t.username:
                stage = "login"
                conn.login(t.username, t.password or "")
        except (OSError, smtplib.SMTPException) as exc:
            if conn is not None:
                conn.close()
            raise ConnectFailed(_connect_failure(t, self.timeout, stage, exc)) from exc
        except BaseException:  # ConnectFailed, or a fault of ours: the connection goes either way
            if conn is not None:
                conn.close()
            raise
        self.conn = conn
        return conn

    def _stale(self) -> bool:
        """Whether the server spoke unasked on the idle connection: a "421 idle too
        long" before closing it, or the close itself. Such a connection is opened
        again rather than used, so that its end is not taken for a fault (a
        deferral, a pause, the retry clock started)."""
        assert self.conn is not None
        sock = self.conn.sock
        if sock is None:
            return True
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        poller = select.poll()  # not select(): no limit on the descriptor's number
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))  # data, a close, a reset or an error

    def drop(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001 - closing a broken socket
                pass
        self.conn = None

    def quit(self) -> None:
        if self.conn is not None:
            try:
                self.conn.quit()
            except Exception:  # noqa: BLE001
                pass
        self.drop()

    @staticmethod
    def _envelope_stepwise(conn: smtplib.SMTP, env: Envelope) -> Outcome | None:
        code, reply = conn.mail(env.mail_from)
        if code != 250:
            conn.rset()
            return _reply_outcome(code, reply, "MAIL FROM")
        code, reply = conn.rcpt(env.rcpt)
        if code not in (250, 251):
            conn.rset()
            return _reply_outcome(code, reply, "RCPT TO")
        code, reply = conn.docmd("DATA")
        if code != 354:
            conn.rset()
            return _reply_outcome(code, reply, "DATA")
        return None

    @staticmethod
    def _envelope_pipelined(conn: smtplib.SMTP, env: Envelope) -> Outcome | None:
        """MAIL, RCPT and DATA in one write, three replies read back (RFC 2920):
        one round trip instead of three."""
        conn.send(_envelope_commands(env))
        replies = [conn.getreply() for _ in range(3)]
        failure = _envelope_failure(replies)
        if failure is not None:
            if replies[2][0] == 354:  # a server that opened DATA anyway: close it empty
                conn.send(b".\r\n")
                conn.getreply()
            conn.rset()
        return failure

    def send_many(self, envs: Sequence[Envelope]) -> list[Outcome]:
        """Send ``envs`` in order over this connection. With PIPELINING each message
        body goes out in one write together with the next message's MAIL, RCPT and
        DATA (RFC 2920 allows message content first in a group): one round trip a
        message. Without it, or for non-ASCII addresses, one message at a time."""
        try:
            conn = self.connect()
        except ConnectFailed as failed:
            # One attempt for the whole chunk: a server refusing connections is not
            # asked again for every message of it.
            return [failed.outcome] * len(envs)
        if not (conn.does_esmtp and conn.has_extn("pipelining")) or not all(
            (env.mail_from + env.rcpt).isascii() for env in envs
        ):
            return self._one_by_one(envs)
        outcomes: list[Outcome] = []
        sock = conn.sock
        assert sock is not None  # connected
        replies = _Replies(sock)

        def lost(i: int, first: Outcome, exc: Exception) -> list[Outcome]:
            self.drop()
            rest = Outcome(result=Result.DEFERRED, detail=f"connection to {self.target} lost: {exc}")
            return [*outcomes, first, *[rest] * (len(envs) - i - 1)]

        try:
            sock.sendall(_envelope_commands(envs[0]))
        except OSError as exc:
            self.drop()
            return [Outcome(result=Result.DEFERRED, detail=f"connection to {self.target} lost: {exc}")
                    ] * len(envs)
        for i, env in enumerate(envs):
            nxt = _envelope_commands(envs[i + 1]) if i + 1 < len(envs) else b""
            try:
                envelope = replies.take(3)
            except (OSError, smtplib.SMTPException) as exc:
                return lost(i, _lost_before(self.target, self.timeout, exc), exc)
            failure = _envelope_failure(envelope)
            if failure is not None:
                try:
                    if envelope[2][0] == 354:  # a server that opened DATA anyway: close it empty
                        sock.sendall(b".\r\n")
                        replies.take(1)
                    sock.sendall(b"RSET\r\n" + nxt)
                    replies.take(1)
                except (OSError, smtplib.SMTPException) as exc:
                    return lost(i, failure, exc)
                outcomes.append(failure)
                continue
            data = dot_stuff(env.data) + b".\r\n" + nxt
            try:
                _write(sock, data)
            except _WriteFailed as failed:
                body = len(data) - len(nxt)
                return lost(i, _body_failure(self.target, self.timeout, failed, body), failed.cause)
            try:
                ((code, reply),) = replies.take(1)
            except (OSError, smtplib.SMTPException) as exc:
                return lost(i, _lost_after(self.target, self.timeout, exc), exc)
            outcomes.append(SENT if code == 250 else _reply_outcome(code, reply, "end of DATA"))
        if replies.buf:  # a reply nobody asked for: the dialogue is out of step
            self.drop()
        return outcomes

    def _one_by_one(self, envs: Sequence[Envelope]) -> list[Outcome]:
        """Each message in its own transaction; when a connection lost on the way
        cannot be made again, the rest get that reason without each asking again."""
        outcomes: list[Outcome] = []
        for i, env in enumerate(envs):
            try:
                self.connect()
            except ConnectFailed as failed:
                return [*outcomes, *[failed.outcome] * (len(envs) - i)]
            outcomes.append(self.send_one(env))
        return outcomes

    def send_one(self, env: Envelope) -> Outcome:
        try:
            conn = self.connect()
        except ConnectFailed as failed:
            return failed.outcome
        try:
            if conn.does_esmtp and conn.has_extn("pipelining") and (env.mail_from + env.rcpt).isascii():
                failure = self._envelope_pipelined(conn, env)
            else:
                failure = self._envelope_stepwise(conn, env)
            if failure is not None:
                return failure
        except (OSError, smtplib.SMTPException) as exc:
            self.drop()
            return _lost_before(self.target, self.timeout, exc)
        data = dot_stuff(env.data) + b".\r\n"
        assert conn.sock is not None  # connected
        try:
            _write(conn.sock, data)
        except _WriteFailed as failed:
            self.drop()
            return _body_failure(self.target, self.timeout, failed, len(data))
        try:
            code, reply = conn.getreply()
        except (OSError, smtplib.SMTPException) as exc:
            self.drop()
            return _lost_after(self.target, self.timeout, exc)
        if code == 250:
            return SENT
        return _reply_outcome(code, reply, "end of DATA")


class SmtpTransport:
    """Sends each batch over up to ``connections`` reused connections in parallel."""

    def __init__(self, url: str, *, connections: int = 8, timeout: float = 30.0) -> None:
        self.target = SmtpTarget.parse(url)
        self.description = f"SMTP server {self.target}"
        self._slots: queue.SimpleQueue[_Slot] = queue.SimpleQueue()
        self._all = [_Slot(self.target, timeout) for _ in range(connections)]
        for slot in self._all:
            self._slots.put(slot)
        self._pool = ThreadPoolExecutor(max_workers=connections, thread_name_prefix="smtp")
        self.connections = connections

    def _send_chunk(self, chunk: Sequence[Envelope]) -> list[Outcome]:
        slot = self._slots.get()
        try:
            return slot.send_many(chunk)
        finally:
            self._slots.put(slot)

    def send(self, batch: Sequence[Envelope]) -> list[Outcome]:
        if not batch:
            return []
        n = min(self.connections, len(batch))
        chunks = [batch[i::n] for i in range(n)]
        results = list(self._pool.map(self._send_chunk, chunks))
        outcomes: list[Outcome] = [SENT] * len(batch)
        for i, chunk_outcomes in enumerate(results):
            outcomes[i::n] = chunk_outcomes
        return outcomes

    def stream(self, take: Take, done: Done) -> None:
        """Each connection asks ``take`` for its next chunk when it is free, sends
        it (pipelined) and hands the replies to ``done`` at once: the caller
        marks a chunk in flight in ``take`` and records it in ``done``, so only
        what is on the wire (``connections`` chunks at most) is in flight."""

        def run() -> None:
            slot = self._slots.get()
            try:
                while (chunk := take()) is not None:
                    done(chunk, slot.send_many(chunk))
            finally:
                self._slots.put(slot)

        for future in [self._pool.submit(run) for _ in range(self.connections)]:
            future.result()

    def close(self) -> None:
        for slot in self._all:
            slot.quit()
        self._pool.shutdown(wait=False)


__all__ = ["SmtpTarget", "SmtpTransport"]
