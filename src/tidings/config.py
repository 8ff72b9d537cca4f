"""Settings: the only module that reads the environment.

Every setting is ``TIDINGS_<NAME>`` in the environment; a ``.env`` file in the
working directory may add to it. See the README for the meaning of each.

Every number has bounds: a value outside them stops the process at start with
one line naming the variable (``tidings serve`` and ``tidings worker`` also
refuse an admin token or secret key shorter than :data:`MIN_SECRET_LENGTH`,
see :meth:`Settings.weak_secrets`).

The public URL (the base of links placed in messages) is the one setting with
a default that depends on how Tidings runs: unless ``TIDINGS_PUBLIC_URL`` is
set, ``tidings serve`` makes it the address it listens on
(:meth:`Settings.listening_on`), and a process that listens nowhere
(``tidings worker``) keeps :data:`DEFAULT_PUBLIC_URL`, the address of
``tidings serve`` with its default host and port.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tidings.domain.phones import REGIONS
from tidings.domain.quiet_hours import QuietHours, check_zone
from tidings.domain.reputation import Limits
from tidings.domain.sms import TON_ALPHANUMERIC, Address, validate_sender
from tidings.errors import InvalidInput

#: ``tidings serve``'s default address, and the public URL of a process that listens nowhere.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_PUBLIC_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
#: Hosts that mean "every address of this machine": no link can point at them.
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})
#: Characters an admin token or a secret key needs at least (a guessable one is no secret).
MIN_SECRET_LENGTH = 32
MIB = 1024 * 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TIDINGS_", env_file=".env", extra="ignore", frozen=True
    )

    database_url: str = "sqlite:///tidings.db"
    smtp_url: str = "file://outbox"
    smtp_connections: int = Field(default=8, ge=1, le=256)
    send_rate: float = Field(default=0, ge=0, le=1_000_000)
    package_size: int = Field(default=5000, ge=1, le=100_000)
    worker_lease: float = Field(default=60, ge=1, le=3600)
    smtp_retry_for: float = Field(default=600, ge=0, le=7 * 24 * 3600)
    smtp_timeout: float = Field(default=30, gt=0, le=600)
    admin_token: str | None = None
    secret_key: str | None = None
    # Set or not is what matters (see the module docstring): read it through
    # ``public_url_given`` and resolve it with ``listening_on``.
    public_url: str = DEFAULT_PUBLIC_URL
    sms_url: str | None = None
    dns_server: str | None = None
    # What authorizes the sending host in the SPF record we advise: an IP address, a
    # relay's SPF domain, or SPF mechanisms; unset means "a mx" (see domain/domains.py).
    spf_include: str | None = None
    bounce_listen: str | None = None
    max_bounce_rate: float = Field(default=0.05, ge=0, le=1)
    max_complaint_rate: float = Field(default=0.003, ge=0, le=1)
    reputation_min_sample: int = Field(default=500, ge=1, le=10_000_000)
    require_verified_domain: bool = True
    soft_bounce_limit: int = Field(default=3, ge=1, le=100)
    # Messages handed to SMTP as one group: marked in flight together, recorded together.
    send_group: int = Field(default=200, ge=1, le=10_000)
    # Messages an SMTP connection takes at a time: marked in flight together while the
    # chunk before goes out, and recorded as soon as their replies are in, so a worker
    # that dies leaves at most TIDINGS_SMTP_CONNECTIONS x 2 x TIDINGS_SEND_CHUNK unknown.
    send_chunk: int = Field(default=5, ge=1, le=1000)
    # Seconds between scheduler/worker polls when there is nothing to do.
    poll_interval: float = Field(default=1.0, ge=0.01, le=60)
    # Seconds a SQLite writer waits for another's lock before the database counts as
    # busy (503 database_busy in the API; the worker tries again).
    sqlite_busy_timeout: float = Field(default=30, ge=0.1, le=600)
    # Largest request bodies, in bytes (413 past them): JSON, the customer batch
    # (up to 10,000 customers), CSV files, and the web UI's forms.
    max_json_bytes: int = Field(default=1 * MIB, ge=64 * 1024, le=64 * MIB)
    max_batch_bytes: int = Field(default=16 * MIB, ge=64 * 1024, le=256 * MIB)
    max_csv_bytes: int = Field(default=50 * MIB, ge=64 * 1024, le=1024 * MIB)
    max_form_bytes: int = Field(default=4 * MIB, ge=64 * 1024, le=64 * MIB)
    default_from_email: str = "shop@example.com"
    # -- SMS (README "SMS"): phones, receipts, replies, quiet hours
    # ISO 3166 code whose national phone numbers are accepted; unset: international form only.
    default_region: str | None = None
    # The shop's IANA time zone: quiet hours use it when a recipient's zone is unknown.
    timezone: str = "UTC"
    # Seconds after sending during which delivery receipts are counted (48 h).
    sms_receipt_wait: float = Field(default=172800, ge=60, le=30 * 86400)
    # The quiet hours new SMS mailings get (local time of each recipient).
    sms_quiet_hours: str = "21:00-09:00"
    # More words (comma-separated) that unsubscribe a phone, besides STOP and the rest.
    sms_stop_words: str = ""
    # The answer to HELP; unset: HELP is recorded and not answered.
    sms_help_text: str | None = None
    # "STOP: <link>" at the end of each SMS: auto (when the sender is a name, which
    # cannot be replied to), always, or never.
    sms_opt_out: Literal["auto", "always", "never"] = "auto"
    default_from_name: str = "Tidings demo shop"
    # Web sign-in: a session ends after this many seconds without a request, and
    # this many seconds after sign-in whatever happens (see services/sessions.py).
    session_idle_timeout: float = Field(default=2 * 3600, ge=60, le=30 * 24 * 3600)
    session_lifetime: float = Field(default=12 * 3600, ge=300, le=90 * 24 * 3600)
    # Behind a reverse proxy that sets X-Forwarded-For and X-Forwarded-Proto: believe
    # them (the client's address for rate limits, https for Secure cookies and HSTS).
    # Never set it when clients can reach Tidings without the proxy.
    trust_proxy: bool = False
    # Per-address rate limits on the public endpoints (web/security.py); off only for
    # benchmarks that flood them from one address.
    rate_limits: bool = True

    @property
    def reputation_limits(self) -> Limits:
        """The reputation guard's limits."""
        return Limits(max_bounce_rate=self.max_bounce_rate, max_complaint_rate=self.max_complaint_rate,
                      min_sample=self.reputation_min_sample)

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "must be the http:// or https:// address where people "
                f"reach Tidings, e.g. https://news.shop.example; got {value!r}"
            )
        return value.strip().rstrip("/")

    @field_validator("default_region")
    @classmethod
    def _check_region(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        region = value.strip().upper()
        if region not in REGIONS:
            raise ValueError(f"must be a two-letter country code such as LV or GB, not {value!r}")
        return region

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            return check_zone(value, field="TIDINGS_TIMEZONE")
        except InvalidInput as exc:
            raise ValueError(exc.message) from None

    @field_validator("sms_quiet_hours")
    @classmethod
    def _check_quiet_hours(cls, value: str) -> str:
        try:
            return str(QuietHours.parse(value, field="TIDINGS_SMS_QUIET_HOURS"))
        except InvalidInput as exc:
            raise ValueError(exc.message) from None

    @field_validator("sms_url")
    @classmethod
    def _check_sms_sender(cls, value: str | None) -> str | None:
        """An ``smpp://`` URL's sender is checked at start-up, in the words of
        :func:`tidings.domain.sms.validate_sender` (the rest of the URL when the
        transport is made)."""
        if value and value.startswith("smpp://"):
            source = dict(parse_qsl(urlsplit(value).query, keep_blank_values=True)).get("source")
            if source:
                try:
                    validate_sender(source, field="TIDINGS_SMS_URL")
                except InvalidInput as exc:
                    raise ValueError(f"the source (sender) is wrong: {exc.message}") from None
        return value

    @property
    def sms_sender(self) -> Address | None:
        """The sender of the ``smpp://`` URL; None for other gateways (their
        sender is theirs to set)."""
        if not self.sms_url or not self.sms_url.startswith("smpp://"):
            return None
        source = dict(parse_qsl(urlsplit(self.sms_url).query, keep_blank_values=True)).get("source")
        return validate_sender(source) if source else None

    @property
    def sms_opt_out_link(self) -> bool:
        """Whether SMS end with "STOP: <link>" (see ``sms_opt_out``): ``auto``
        adds it when the sender is a name, which a phone cannot answer."""
        if self.sms_opt_out == "auto":
            sender = self.sms_sender
            return sender is not None and sender.ton == TON_ALPHANUMERIC
        return self.sms_opt_out == "always"

    @property
    def stop_words(self) -> tuple[str, ...]:
        """``sms_stop_words`` split, trimmed, upper case."""
        return tuple(w.strip().upper() for w in self.sms_stop_words.split(",") if w.strip())

    @property
    def public_url_is_https(self) -> bool:
        """Whether people reach Tidings over https (``TIDINGS_PUBLIC_URL`` says so)."""
        return self.public_url.lower().startswith("https://")
    def weak_secrets(self) -> list[str]:
        """What is wrong with ``TIDINGS_ADMIN_TOKEN`` and ``TIDINGS_SECRET_KEY``
        as a server's secrets: each one set but shorter than
        :data:`MIN_SECRET_LENGTH` characters. Unset is fine (no admin token; a
        key generated and kept in the database)."""
        problems = []
        for name, value in (("TIDINGS_ADMIN_TOKEN", self.admin_token),
                            ("TIDINGS_SECRET_KEY", self.secret_key)):
            if value is not None and len(value.strip()) < MIN_SECRET_LENGTH:
                problems.append(
                    f"{name} has {len(value.strip())} characters; it needs at least "
                    f"{MIN_SECRET_LENGTH} (e.g. the output of: python3 -c "
                    "'import secrets; print(secrets.token_urlsafe(32))'), or leave it unset")
        return problems

    @property
    def public_url_given(self) -> bool:
        """Whether ``TIDINGS_PUBLIC_URL`` (or an argument) set the public URL."""
        return "public_url" in self.model_fields_set

    def listening_on(self, host: str, port: int) -> Settings:
        """These settings for a server listening on ``host``:``port``: the public
        URL is :func:`address_url` of it unless it was given."""
        if self.public_url_given:
            return self
        return self.model_copy(update={"public_url": address_url(host, port)})


def address_url(host: str, port: int) -> str:
    """``http://HOST:PORT`` for a server listening on ``host``:``port``.

    A wildcard host (``0.0.0.0``, ``::``) is no address to link to; it stands
    for this machine's name (``socket.getfqdn()``), or 127.0.0.1 when the
    machine has no name but ``localhost``.
    """
    if host in WILDCARD_HOSTS:
        name = socket.getfqdn()
        host = DEFAULT_HOST if not name or name.startswith("localhost") else name
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass  # a name, not an address
    return f"http://{host}:{port}"

