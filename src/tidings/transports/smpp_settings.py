"""The settings of an ``smpp://`` URL (``TIDINGS_SMS_URL``), checked as they are read.

``smpp://SYSTEM_ID:PASSWORD@HOST:PORT?source=SENDER[&...]``: see
:meth:`SmppSettings.from_url` for the query parameters and their bounds, and
:mod:`tidings.transports.smpp` for what each of them does.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from tidings.domain import sms
from tidings.errors import InvalidInput


@dataclass(frozen=True, kw_only=True)
class SmppSettings:
    """Everything an ``smpp://`` URL says; see the module docstring for each."""

    host: str
    port: int
    system_id: str
    password: str
    source: sms.Address
    bind: str = "trx"
    window: int = 10
    binds: int = 1
    sar: bool = False
    system_type: str = ""
    enquire: float = 30.0
    timeout: float = 30.0
    connect_timeout: float = 10.0
    throttle_pause: float = 1.0
    retries: int = 10

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 30.0) -> SmppSettings:
        """Read ``smpp://SYSTEM_ID:PASSWORD@HOST:PORT?source=SENDER&...``;
        ``timeout`` is the answer timeout unless the URL sets one. InvalidInput
        (field ``TIDINGS_SMS_URL``) naming the part that is wrong."""
        def bad(message: str) -> InvalidInput:
            return InvalidInput(f"TIDINGS_SMS_URL: {message}", field="TIDINGS_SMS_URL")

        parts = urlsplit(url)
        if parts.scheme != "smpp":
            raise bad("an SMPP gateway URL starts with smpp://.")
        try:
            port = parts.port or 2775
        except ValueError:
            raise bad("the port must be a number from 1 to 65535.") from None
        if not parts.hostname:
            raise bad("give the SMSC's host: smpp://SYSTEM_ID:PASSWORD@HOST:PORT?source=SENDER.")
        system_id, password = unquote(parts.username or ""), unquote(parts.password or "")
        if not system_id or len(system_id) > 15 or not system_id.isascii():
            raise bad("the system id (before the colon) must be 1 to 15 ASCII characters.")
        if len(password) > 8 or not password.isascii():
            raise bad("the SMPP password may have at most 8 ASCII characters.")
        query: dict[str, str] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            query[key] = value
        known = {"source", "bind", "window", "binds", "sar", "system_type", "enquire", "timeout",
                 "connect_timeout", "throttle_pause", "retries"}
        unknown = sorted(set(query) - known)
        if unknown:
            raise bad(f"unknown setting {unknown[0]!r}; the settings are {', '.join(sorted(known))}.")
        if not query.get("source"):
            raise bad("add the sender: ?source=ShopName (up to 11 characters) or ?source=+4915112345678.")
        source = sms.validate_sender(query["source"], field="TIDINGS_SMS_URL")

        def number(key: str, default: float, low: float, high: float, *, whole: bool = False) -> float:
            raw = query.get(key)
            if raw is None or raw == "":
                return default
            try:
                value = int(raw) if whole else float(raw)
            except ValueError:
                raise bad(f"{key} must be a number, not {raw!r}.") from None
            if not low <= value <= high:
                raise bad(f"{key} must be between {low:g} and {high:g}, not {raw}.")
            return value

        bind = query.get("bind", "trx") or "trx"
        if bind not in ("trx", "tx_rx"):
            raise bad(f"bind must be trx (one transceiver per bind) or tx_rx (a transmitter and a "
                      f"receiver), not {bind!r}.")
        sar = query.get("sar", "0")
        if sar not in ("0", "1", ""):
            raise bad(f"sar must be 0 (concatenate by UDH) or 1 (by SAR TLVs), not {sar!r}.")
        system_type = query.get("system_type", "")
        if len(system_type) > 12 or not system_type.isascii():
            raise bad("system_type may have at most 12 ASCII characters.")
        return cls(host=parts.hostname, port=port, system_id=system_id, password=password, source=source,
                   bind=bind, window=int(number("window", 10, 1, 1000, whole=True)),
                   binds=int(number("binds", 1, 1, 32, whole=True)), sar=sar == "1",
                   system_type=system_type, enquire=number("enquire", 30.0, 0.05, 3600.0),
                   timeout=number("timeout", timeout, 0.05, 600.0),
                   connect_timeout=number("connect_timeout", 10.0, 0.05, 600.0),
                   throttle_pause=number("throttle_pause", 1.0, 0.0, 600.0),
                   retries=int(number("retries", 10, 0, 10_000, whole=True)))

