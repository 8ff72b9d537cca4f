"""DNS lookups for sending-domain verification (dnspython).

:func:`lookup_txt` asks one server, ``TIDINGS_DNS_SERVER`` (``host[:port]``)
when set, else the system resolver, over UDP with a short timeout. It never
caches, so a record published a second ago is seen at once (by this side; the
world may still hold the old one until its TTL runs out).

:func:`verify_domain` fetches the SPF, DKIM and DMARC names and judges them
with :func:`tidings.domain.domains.check_records`. A lookup that fails (timeout,
SERVFAIL, refused) becomes a failed check whose problem names the DNS server,
never an exception.
"""

from __future__ import annotations

import ipaddress

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from tidings.domain.domains import (
    RecordCheck,
    check_records,
    dkim_record_name,
    dmarc_record_name,
    is_spf_record,
    records_to_publish,
)
from tidings.errors import InvalidInput, TidingsError

DEFAULT_TIMEOUT = 3.0


class DnsLookupFailed(TidingsError):
    """The DNS server did not answer the lookup."""

    status = 502
    code = "dns_lookup_failed"

    def __init__(self, message: str, *, name: str, server: str | None) -> None:
        self.name = name
        self.server = server
        super().__init__(message)


def parse_server(server: str) -> tuple[str, int]:
    """``host[:port]`` (``[v6]:port`` for IPv6) as ``(ip, port)``; port 53 by default.

    The host must be an IP address: the resolver to ask cannot itself need resolving.
    """
    text = server.strip()
    host, port = text, "53"
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        ipaddress.ip_address(host)
        number = int(port)
        if not 0 < number < 65536:
            raise ValueError(port)
    except ValueError:
        raise InvalidInput(
            f"The DNS server {server!r} must be an IP address with an optional port, "
            "like 127.0.0.1:5353.",
            field="TIDINGS_DNS_SERVER",
        ) from None
    return host, number


def _resolver(server: str | None, timeout: float) -> dns.resolver.Resolver:
    if server:
        host, port = parse_server(server)
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [host]
        resolver.port = port
    else:
        resolver = dns.resolver.Resolver()
    resolver.timeout = timeout
    resolver.lifetime = timeout
    resolver.cache = None
    return resolver


def lookup_txt(name: str, *, server: str | None, timeout: float = DEFAULT_TIMEOUT) -> list[str]:
    """The TXT records at ``name``, each record's strings joined, in the server's order.

    ``[]`` when the name does not exist (NXDOMAIN) or has no TXT records.
    Raises :class:`DnsLookupFailed` when no answer came (timeout, SERVFAIL,
    REFUSED); :class:`InvalidInput` for a malformed ``server``.
    """
    resolver = _resolver(server, timeout)
    try:
        answer = resolver.resolve(
            dns.name.from_text(name), dns.rdatatype.TXT, tcp=False, raise_on_no_answer=False
        )
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except (dns.exception.DNSException, OSError) as exc:
        where = f"The DNS server {server}" if server else "The system resolver"
        if isinstance(exc, dns.exception.Timeout):
            reason = f"did not answer within {timeout:g} seconds"
        elif isinstance(exc, dns.resolver.NoNameservers):
            reason = "refused or failed to answer (SERVFAIL or REFUSED)"
        else:
            reason = f"could not be asked ({exc})"
        raise DnsLookupFailed(
            f"{where} {reason} when looking up {name}.", name=name, server=server
        ) from exc
    if answer.rrset is None:
        return []
    return [
        b"".join(rdata.strings).decode("utf-8", "replace")
        for rdata in answer.rrset
        if rdata.rdtype == dns.rdatatype.TXT
    ]


def verify_domain(
    *,
    domain: str,
    selector: str,
    public_key_b64: str,
    server: str | None,
    include: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[RecordCheck]:
    """Check the domain's SPF, DKIM and DMARC records over DNS; one verdict each, in that order.

    The SPF expectation is computed against the record found, so a domain that
    already has SPF passes as soon as it authorizes Tidings (``include``, see
    :func:`tidings.domain.domains.spf_mechanisms`), and a failure shows the
    merged record to publish. ``domain`` must already be validated.
    """
    names = [
        domain,
        dkim_record_name(domain=domain, selector=selector),
        dmarc_record_name(domain),
    ]
    found: dict[str, list[str]] = {}
    failures: dict[str, str] = {}
    for name in names:
        try:
            found[name] = lookup_txt(name, server=server, timeout=timeout)
        except DnsLookupFailed as exc:
            failures[name] = exc.message
    spf = [v for v in found.get(domain, []) if is_spf_record(v)]
    expected = records_to_publish(
        domain=domain,
        selector=selector,
        public_key_b64=public_key_b64,
        existing_spf=spf[0] if len(spf) == 1 else None,
        include=include,
    )
    checks = check_records(expected, found)
    return [
        RecordCheck(
            type=check.type,
            name=check.name,
            ok=False,
            problem=failures[check.name] + " Check the DNS server setting and try again.",
            purpose=check.purpose,
        )
        if check.name in failures
        else check
        for check in checks
    ]
