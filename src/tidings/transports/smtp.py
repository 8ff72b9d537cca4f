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
    text = reply.decode("utf-8", "replace")
    result = Result.DEFERRED if 400 <= code < 500 or code < 0 else Result.REJECTED
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
        if self.conn is not None:
            return self.conn
        t = self.target
        conn: smtplib.SMTP
        if t.mode == "tls":
            conn = smtplib.SMTP_SSL(t.host, t.port, timeout=self.timeout, context=self._context())
        else:
            conn = smtplib.SMTP(t.host, t.port, timeout=self.timeout)
        try:
            conn.ehlo()
            if t.mode == "starttls":
                conn.starttls(context=self._context())
                conn.ehlo()
            if t.username:
                conn.login(t.username, t.password or "")
        except Exception:
            self.drop()
            conn.close()
            raise
        self.conn = conn
        return conn

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
        except (OSError, smtplib.SMTPException):
            return [self.send_one(env) for env in envs]  # reports the connect error each
        if not (conn.does_esmtp and conn.has_extn("pipelining")) or not all(
            (env.mail_from + env.rcpt).isascii() for env in envs
        ):
            return [self.send_one(env) for env in envs]
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
                return lost(i, Outcome(result=Result.DEFERRED,
                                       detail=f"connection to {self.target} lost before DATA"), exc)
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
            try:
                sock.sendall(dot_stuff(env.data) + b".\r\n" + nxt)
                ((code, reply),) = replies.take(1)
            except (OSError, smtplib.SMTPException) as exc:
                uncertain = Outcome(result=Result.UNCERTAIN,
                                    detail=f"connection to {self.target} lost after the message: {exc}")
                return lost(i, uncertain, exc)
            outcomes.append(SENT if code == 250 else _reply_outcome(code, reply, "end of DATA"))
        if replies.buf:  # a reply nobody asked for: the dialogue is out of step
            self.drop()
        return outcomes

    def send_one(self, env: Envelope) -> Outcome:
        try:
            conn = self.connect()
        except smtplib.SMTPAuthenticationError as exc:
            return Outcome(result=Result.DEFERRED, code=exc.smtp_code,
                           detail=f"SMTP login to {self.target} refused: {exc.smtp_error!r}")
        except (OSError, smtplib.SMTPException) as exc:
            return Outcome(result=Result.DEFERRED,
                           detail=f"cannot connect to SMTP server {self.target}: {exc}")
        try:
            if conn.does_esmtp and conn.has_extn("pipelining") and (env.mail_from + env.rcpt).isascii():
                failure = self._envelope_pipelined(conn, env)
            else:
                failure = self._envelope_stepwise(conn, env)
            if failure is not None:
                return failure
        except (OSError, smtplib.SMTPException) as exc:
            self.drop()
            return Outcome(result=Result.DEFERRED,
                           detail=f"connection to {self.target} lost before DATA: {exc}")
        body = dot_stuff(env.data)
        try:
            conn.send(body + b".\r\n")
            code, reply = conn.getreply()
        except (OSError, smtplib.SMTPException) as exc:
            self.drop()
            return Outcome(result=Result.UNCERTAIN,
                           detail=f"connection to {self.target} lost after the message: {exc}")
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
