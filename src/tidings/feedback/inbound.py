"""The inbound SMTP listener for bounces (RFC 3464) and complaints (RFC 5965).

:class:`BounceListener` runs an aiosmtpd server in a background thread. It
accepts every recipient (VERP addresses are endless), reads each message with
:func:`~tidings.feedback.reports.parse_report`, passing the envelope
recipients so the VERP token attributes the report, and calls ``on_report``
for every report. It answers ``250`` to everything it received whole, junk
included, so senders neither retry nor bounce the bounce; junk and exceptions
raised by ``on_report`` are logged and dropped. A message larger than
``max_size`` is refused with ``552`` by aiosmtpd before it is read.

``on_report`` runs in one worker thread, one call at a time, so it may use a
blocking database session; the ``250`` is sent after it returns, so a report
is acknowledged only once it was handled (or failed and was logged).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tidings.errors import InvalidInput
from tidings.feedback.reports import DEFAULT_VERP_PREFIX, FeedbackReport, parse_report

log = logging.getLogger("tidings.feedback")

OnReport = Callable[[FeedbackReport, bytes], None]

DEFAULT_MAX_SIZE = 10 * 1024 * 1024


def parse_listen(value: str) -> tuple[str, int]:
    """``host:port`` (``TIDINGS_BOUNCE_LISTEN``; ``[v6]:port`` for IPv6) as ``(host, port)``."""
    text = value.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":")
    else:
        host, _, port_text = text.rpartition(":")
    try:
        port = int(port_text)
        if not host or not 0 <= port < 65536:
            raise ValueError(value)
    except ValueError:
        raise InvalidInput(
            f"The bounce listener address {value!r} must be host:port, like 0.0.0.0:2525.",
            field="TIDINGS_BOUNCE_LISTEN",
        ) from None
    return host, port


class _Controller(Controller):
    """aiosmtpd's controller, able to listen on port 0 (a free port chosen by the system)."""

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        create = super()._create_server()

        async def created() -> asyncio.AbstractServer:
            server = await create
            if isinstance(server, asyncio.Server):
                self.port = server.sockets[0].getsockname()[1]
            return server

        return created()


class BounceListener:
    """An SMTP server on ``host:port`` that turns inbound reports into ``on_report`` calls.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. With
    ``port=0`` a free port is chosen; :attr:`port` holds it once started.
    ``hostname`` is the name the server greets with (default: this machine's
    name). The counters ``received``, ``reports``, ``dropped`` and ``failed``
    (the callback raised) count messages since the start.
    """

    def __init__(
        self,
        host: str,
        port: int,
        on_report: OnReport,
        *,
        max_size: int = DEFAULT_MAX_SIZE,
        verp_prefix: str = DEFAULT_VERP_PREFIX,
        hostname: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.on_report = on_report
        self.max_size = max_size
        self.verp_prefix = verp_prefix
        self.hostname = hostname
        self.received = 0
        self.reports = 0
        self.dropped = 0
        self.failed = 0
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._controller: _Controller | None = None

    @classmethod
    def from_setting(cls, listen: str, on_report: OnReport, **options: Any) -> BounceListener:
        """A listener for a ``TIDINGS_BOUNCE_LISTEN`` value (``host:port``)."""
        host, port = parse_listen(listen)
        return cls(host, port, on_report, **options)

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> BounceListener:
        """Start listening; returns once the server accepts connections."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tidings-bounces")
        smtp_options: dict[str, Any] = {
            "data_size_limit": self.max_size,
            "enable_SMTPUTF8": True,
            "decode_data": False,
            "ident": "Tidings feedback listener",
        }
        controller = _Controller(
            _Handler(self),
            hostname=self.host,
            port=self.port,
            # The name in the greeting; aiosmtpd would otherwise call getfqdn() per connection.
            server_hostname=self.hostname or socket.gethostname(),
            **smtp_options,
        )
        try:
            controller.start()
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        self._controller = controller
        self.port = controller.port
        log.info("bounce listener on %s:%s", self.host, self.port)
        return self

    def stop(self) -> None:
        """Stop listening and wait for the report being handled, if any."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def __enter__(self) -> BounceListener:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- one message ------------------------------------------------------------------------

    def handle(self, raw: bytes, *, envelope_recipients: list[str], mail_from: str | None) -> str:
        """Parse one message and hand its report on; returns the SMTP reply. Never raises."""
        with self._lock:
            self.received += 1
        try:
            report = parse_report(
                raw, envelope_recipients=envelope_recipients, verp_prefix=self.verp_prefix
            )
        except Exception:  # parse_report does not raise; this is the last line of defence
            report = None
            log.exception("reading an inbound message failed")
        if report is None:
            with self._lock:
                self.dropped += 1
            log.info(
                "dropped an inbound message that is not a report (from %r to %r, %d bytes)",
                mail_from,
                envelope_recipients,
                len(raw),
            )
            return "250 OK: not a report, dropped"
        try:
            self.on_report(report, raw)
        except Exception:
            with self._lock:
                self.failed += 1
            log.exception(
                "handling a %s report for %r failed; the report is dropped",
                report.kind,
                report.recipient,
            )
            return "250 OK: report dropped"
        with self._lock:
            self.reports += 1
        return "250 OK: report received"


class _Handler:
    def __init__(self, listener: BounceListener) -> None:
        self.listener = listener

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        executor = self.listener._executor
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                executor,
                lambda: self.listener.handle(
                    raw,
                    envelope_recipients=list(envelope.rcpt_tos),
                    mail_from=envelope.mail_from,
                ),
            )
        except Exception:  # e.g. the executor shut down while stopping
            log.exception("could not handle an inbound message")
            return "451 4.3.0 Try again later"
