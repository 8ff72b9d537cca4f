"""A small authoritative DNS server on loopback for tests (dnslib, UDP).

    with LocalDns() as dns:
        dns.set_txt("shop.example", "v=spf1 a mx ~all")
        lookup_txt("shop.example", server=dns.address)   # "127.0.0.1:PORT"

Records can be changed while the server runs. It answers authoritatively for
every name: NXDOMAIN for a name that has no records (and no records below
it), an empty NOERROR answer for a name that exists but has none of the type
asked, SERVFAIL for names passed to :meth:`LocalDns.fail`. TXT values longer
than 255 bytes are split into several strings of one record, as real zones
do. ``queries`` lists every ``(name, type)`` asked, lowercased, without the dot.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

from dnslib import AAAA, MX, QTYPE, RCODE, RR, TXT, A, DNSRecord
from dnslib.server import BaseResolver, DNSServer


def _key(name: str) -> str:
    return name.strip().rstrip(".").lower()


def txt_strings(value: str | bytes) -> list[bytes]:
    """One TXT value as the strings of one record: pieces of at most 255 bytes."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    return [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]


class _SilentLogger:
    def __getattr__(self, _name: str) -> Any:
        return lambda *args, **kwargs: None


class _Zone(BaseResolver):  # type: ignore[misc]
    def __init__(self, ttl: int) -> None:
        self.ttl = ttl
        self.lock = threading.Lock()
        self.records: dict[tuple[str, str], list[Any]] = {}
        self.failing: set[str] = set()
        self.queries: list[tuple[str, str]] = []

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        reply = request.reply()
        reply.header.aa = 1
        qname = request.q.qname
        name = _key(str(qname))
        qtype = QTYPE[request.q.qtype]
        with self.lock:
            self.queries.append((name, qtype))
            if name in self.failing:
                reply.header.aa = 0
                reply.header.rcode = RCODE.SERVFAIL
                return reply
            answers = list(self.records.get((name, qtype), []))
            exists = any(n == name or n.endswith("." + name) for n, _ in self.records)
        for rdata in answers:
            reply.add_answer(RR(qname, getattr(QTYPE, qtype), rdata=rdata, ttl=self.ttl))
        if not answers and not exists:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


class LocalDns:
    """The server, as a context manager; ``address`` is ``"127.0.0.1:PORT"`` (a free port)."""

    def __init__(self, *, host: str = "127.0.0.1", ttl: int = 60) -> None:
        self.host = host
        self._zone = _Zone(ttl)
        self._server: DNSServer | None = None
        self.port = 0

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> LocalDns:
        server = DNSServer(self._zone, address=self.host, port=0, logger=_SilentLogger())
        # A short poll interval so that stop() returns at once, not after half a second.
        thread = threading.Thread(
            target=server.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        thread.start()
        self._server = server
        self.port = server.server.server_address[1]
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server.server.server_close()
            self._server = None

    def __enter__(self) -> LocalDns:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def address(self) -> str:
        """``host:port``, the form of ``TIDINGS_DNS_SERVER``."""
        return f"{self.host}:{self.port}"

    @property
    def queries(self) -> list[tuple[str, str]]:
        with self._zone.lock:
            return list(self._zone.queries)

    # -- records ----------------------------------------------------------------------------

    def _set(self, name: str, qtype: str, rdatas: list[Any]) -> None:
        with self._zone.lock:
            if rdatas:
                self._zone.records[(_key(name), qtype)] = rdatas
            else:
                self._zone.records.pop((_key(name), qtype), None)

    def set_txt(self, name: str, *values: str | bytes) -> None:
        """Replace the TXT records at ``name`` by one record per value (none: remove them)."""
        self._set(name, "TXT", [TXT(txt_strings(v)) for v in values])

    def add_txt(self, name: str, value: str | bytes) -> None:
        """Add one TXT record at ``name``, keeping those already there."""
        with self._zone.lock:
            self._zone.records.setdefault((_key(name), "TXT"), []).append(TXT(txt_strings(value)))

    def set_a(self, name: str, *addresses: str) -> None:
        self._set(name, "A", [A(a) for a in addresses])

    def set_aaaa(self, name: str, *addresses: str) -> None:
        self._set(name, "AAAA", [AAAA(a) for a in addresses])

    def set_mx(self, name: str, *hosts: tuple[int, str]) -> None:
        """``hosts`` are ``(preference, host)`` pairs."""
        self._set(name, "MX", [MX(host, preference) for preference, host in hosts])

    def remove(self, name: str, qtype: str | None = None) -> None:
        """Remove the records of ``qtype`` (all types when None) at ``name``."""
        with self._zone.lock:
            for key in [k for k in self._zone.records if k[0] == _key(name)]:
                if qtype is None or key[1] == qtype.upper():
                    del self._zone.records[key]

    def fail(self, name: str, failing: bool = True) -> None:
        """Answer SERVFAIL for ``name`` (or stop doing so)."""
        with self._zone.lock:
            (self._zone.failing.add if failing else self._zone.failing.discard)(_key(name))

    def clear(self) -> None:
        with self._zone.lock:
            self._zone.records.clear()
            self._zone.failing.clear()
            self._zone.queries.clear()
