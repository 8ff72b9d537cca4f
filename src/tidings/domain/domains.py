"""Sending domains: name validation, the DNS records to publish, and their check.

Pure: this module does no DNS lookups; :mod:`tidings.transports.dns_check`
fetches the TXT records and hands them to :func:`check_records`.

What we ask a shop to publish (all ``TXT`` records):

SPF at ``DOMAIN``
    Authorizes the host that sends for the domain. The mechanism is the
    ``include`` parameter of :func:`records_to_publish`, because only the
    operator knows where Tidings' mail leaves from:

    - the sending host's address, ``203.0.113.7`` or ``2001:db8::7``
      (becomes ``ip4:203.0.113.7`` / ``ip6:2001:db8::7``): a self-hosted sender;
    - a domain, ``_spf.relay.example`` (becomes ``include:_spf.relay.example``):
      sending through a relay or provider that publishes its own SPF record;
    - explicit mechanisms, ``ip4:203.0.113.0/28 include:_spf.relay.example``;
    - ``None``: ``a mx``, the domain's own web and mail hosts, which is right
      when Tidings runs on the shop's server.

    The qualifier of a new record is ``~all`` (soft fail): with DMARC at
    ``p=none`` nothing is rejected while the shop checks its reports. When the
    domain already has an SPF record we never add a second one (two SPF records
    are a permanent error for receivers): we advise replacing it by the same
    record with our mechanisms inserted before its ``all`` (or its
    ``redirect=``), keeping its own mechanisms and its ``all`` qualifier.

DKIM at ``SELECTOR._domainkey.DOMAIN``
    ``v=DKIM1; k=rsa; p=PUBLIC_KEY``. The value is longer than the 255
    characters of one TXT string; DNS hosting panels split it themselves, and
    receivers join the strings of one record without separators.

DMARC at ``_dmarc.DOMAIN``
    ``v=DMARC1; p=none; rua=mailto:dmarc@DOMAIN; adkim=r; aspf=r``: the
    minimum the large mailbox providers require of bulk senders. ``p=none``
    only monitors, so publishing it cannot lose mail; aggregate reports go to
    ``dmarc@DOMAIN`` (create that mailbox, or change the address); relaxed
    alignment lets the VERP envelope sender ``bounces+TOKEN@DOMAIN`` and a
    ``From`` on a subdomain align with ``d=DOMAIN``. Any existing DMARC record
    with a valid policy (``none``, ``quarantine`` or ``reject``) passes the check.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tidings.errors import InvalidInput

SPF = "spf"
DKIM = "dkim"
DMARC = "dmarc"

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_SELECTOR = re.compile(
    r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$"
)
# Any DNS name, underscores allowed (SPF include targets are often like _spf.host.example).
_DNS_NAME = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))+$")
_WSP = re.compile(r"\s+")
_DMARC_POLICIES = ("none", "quarantine", "reject")
_SPF_MECHANISMS = ("a", "mx", "ip4", "ip6", "include", "exists", "ptr")


@dataclass(frozen=True, kw_only=True)
class Record:
    """One DNS record to publish.

    ``type`` is the DNS type (always ``TXT`` here), ``name`` the fully
    qualified owner name without a trailing dot, ``value`` the whole text,
    ``purpose`` one of ``spf``, ``dkim``, ``dmarc``, and ``note`` a sentence
    for the person publishing it (the merge advice for an existing SPF record).
    """

    type: str
    name: str
    value: str
    purpose: str
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class RecordCheck:
    """The verdict on one expected record: ``problem`` is a sentence for a person, or None."""

    type: str
    name: str
    ok: bool
    problem: str | None
    purpose: str


def validate_domain(name: str) -> str:
    """Return the domain in canonical form: lowercase ASCII (IDNA), no trailing dot.

    Accepts internationalized names (``bücher.example`` becomes
    ``xn--bcher-kva.example``). Raises :class:`InvalidInput` (field ``domain``)
    for anything that is not a registrable host name of at least two labels:
    IP addresses, underscores, wildcards, empty or over-long labels.
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("A domain name is required.", field="domain")
    text = name.strip().rstrip(".").lower()
    if "@" in text:
        raise InvalidInput(
            f"{name!r} looks like an email address; give only the domain after the @.",
            field="domain",
        )
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        pass
    else:
        raise InvalidInput(f"{name!r} is an IP address, not a domain name.", field="domain")
    try:
        ascii_name = text.encode("idna").decode("ascii").lower()
    except (UnicodeError, ValueError):
        raise InvalidInput(f"{name!r} is not a valid domain name.", field="domain") from None
    labels = ascii_name.split(".")
    if len(ascii_name) > 253:
        raise InvalidInput(f"{name!r} is longer than 253 characters.", field="domain")
    if len(labels) < 2:
        raise InvalidInput(
            f"{name!r} is not a full domain name; give one like shop.example.", field="domain"
        )
    for label in labels:
        if not _LABEL.match(label):
            raise InvalidInput(
                f"{name!r} is not a valid domain name: the part {label!r} may hold only "
                "letters, digits and inner hyphens, 1 to 63 of them.",
                field="domain",
            )
    if labels[-1].isdigit():
        raise InvalidInput(f"{name!r} does not end in a valid top-level domain.", field="domain")
    return ascii_name


def validate_selector(selector: str) -> str:
    """The selector lowercased; :class:`InvalidInput` unless it is one or more host labels."""
    text = (selector or "").strip().lower()
    if not _SELECTOR.match(text):
        raise InvalidInput(
            f"{selector!r} is not a valid DKIM selector: use letters, digits and hyphens.",
            field="selector",
        )
    return text


def dkim_record_name(*, domain: str, selector: str) -> str:
    return f"{selector}._domainkey.{domain}"


def dmarc_record_name(domain: str) -> str:
    return f"_dmarc.{domain}"


def spf_mechanisms(include: str | None) -> list[str]:
    """The SPF mechanisms that authorize the sending host, from the ``include`` setting.

    See the module docstring: an IP address becomes ``ip4:``/``ip6:``, a bare
    domain ``include:``, mechanisms pass unchanged, ``None`` gives ``a mx``.
    Raises :class:`InvalidInput` for ``all`` or a modifier, which would change
    the meaning of the whole record.
    """
    if include is None or not include.strip():
        return ["a", "mx"]
    out: list[str] = []
    for term in include.split():
        bare = term.lower().removeprefix("+")
        if _is_all(bare) or "=" in bare or bare[:1] in ("-", "~", "?"):
            raise InvalidInput(
                f"The SPF setting must list mechanisms that authorize the sending host; "
                f"{term!r} is not one.",
                field="spf_include",
            )
        name, _, _ = bare.partition(":")
        if name.partition("/")[0] in _SPF_MECHANISMS:
            out.append(bare)
            continue
        try:
            network = ipaddress.ip_network(bare, strict=False)
        except ValueError:
            if not _DNS_NAME.match(bare.rstrip(".")):
                raise InvalidInput(
                    f"{term!r} is neither an IP address, a domain nor an SPF mechanism.",
                    field="spf_include",
                ) from None
            out.append(f"include:{bare.rstrip('.')}")
        else:
            prefix = "ip4" if network.version == 4 else "ip6"
            whole = network.prefixlen == network.max_prefixlen
            out.append(f"{prefix}:{network.network_address if whole else network}")
    return out


def _spf_terms(record: str) -> list[str]:
    return _WSP.split(record.strip())[1:]


def is_spf_record(text: str) -> bool:
    low = text.strip().lower()
    return low == "v=spf1" or low.startswith("v=spf1 ")


def _mechanism_key(term: str) -> str:
    """A term without its ``+`` qualifier, lowercased, for comparisons."""
    return term.lower().lstrip("+")


def _is_all(term: str) -> bool:
    return term.lower().lstrip("+-~?") == "all"


def merge_spf(existing: str, mechanisms: Sequence[str]) -> str:
    """``existing`` with every missing one of ``mechanisms`` inserted before its ``all``.

    Modifiers (``redirect=``, ``exp=``) stay at the end; a record without
    ``all`` gets ours before its first modifier or at its end. Idempotent.
    """
    terms = _spf_terms(existing)
    present = {_mechanism_key(t) for t in terms}
    missing = [m for m in mechanisms if _mechanism_key(m) not in present]
    if not missing:
        return " ".join(["v=spf1", *terms])
    position = len(terms)
    for index, term in enumerate(terms):
        if _is_all(term) or "=" in term:
            position = index
            break
    return " ".join(["v=spf1", *terms[:position], *missing, *terms[position:]])


def records_to_publish(
    *,
    domain: str,
    selector: str,
    public_key_b64: str,
    existing_spf: str | None,
    include: str | None,
) -> list[Record]:
    """The SPF, DKIM and DMARC records the domain needs, in that order.

    ``existing_spf`` is the domain's current SPF record, if it has one: the SPF
    value returned is then that record with our mechanisms merged in (see
    :func:`merge_spf`), to publish *instead of* it. ``include`` says what
    authorizes the sending host (see :func:`spf_mechanisms`). ``domain`` must
    already be validated.
    """
    mechanisms = spf_mechanisms(include)
    if existing_spf is not None and is_spf_record(existing_spf):
        spf_value = merge_spf(existing_spf, mechanisms)
        if spf_value == " ".join(["v=spf1", *_spf_terms(existing_spf)]):
            spf_note = "Your SPF record already authorizes Tidings; keep it as it is."
        else:
            spf_note = (
                "Replace your current SPF record with this one; it keeps your mechanisms "
                "and authorizes Tidings (a domain may have only one SPF record)."
            )
    else:
        spf_value = " ".join(["v=spf1", *mechanisms, "~all"])
        spf_note = "Authorizes the host Tidings sends from (SPF)."
    key = _WSP.sub("", public_key_b64)
    return [
        Record(type="TXT", name=domain, value=spf_value, purpose=SPF, note=spf_note),
        Record(
            type="TXT",
            name=dkim_record_name(domain=domain, selector=selector),
            value=f"v=DKIM1; k=rsa; p={key}",
            purpose=DKIM,
            note=(
                "The public half of the key Tidings signs with (DKIM). The value is longer "
                "than 255 characters: if your DNS panel asks, split it into several quoted "
                "strings of one record."
            ),
        ),
        Record(
            type="TXT",
            name=dmarc_record_name(domain),
            value=f"v=DMARC1; p=none; rua=mailto:dmarc@{domain}; adkim=r; aspf=r",
            purpose=DMARC,
            note=(
                f"Tells receivers to report on mail using the domain, to dmarc@{domain} "
                "(DMARC, monitoring only). Keep your own DMARC record if you have one."
            ),
        ),
    ]


def parse_tags(text: str) -> dict[str, str]:
    """``tag=value; ...`` lists of DKIM and DMARC records; tags lowercased, values stripped.

    A later duplicate tag does not override the first one.
    """
    tags: dict[str, str] = {}
    for part in text.split(";"):
        if "=" not in part:
            continue
        tag, _, value = part.partition("=")
        tags.setdefault(tag.strip().lower(), value.strip())
    return tags


def _normalize_name(name: str) -> str:
    return name.strip().rstrip(".").lower()


def check_records(
    expected: Sequence[Record], found: Mapping[str, Sequence[str]]
) -> list[RecordCheck]:
    """Compare the records found in DNS with those expected; one verdict per expected record.

    ``found`` maps an owner name to the TXT records there, each record's
    strings already joined. Names are compared case-insensitively, ignoring a
    trailing dot; a name absent from ``found`` has no records.

    - SPF passes when the domain has exactly one SPF record and it contains
      every mechanism of the expected value before any ``all``.
    - DKIM passes when the selector has exactly one key record and its ``p=``
      is the expected key.
    - DMARC passes when there is exactly one DMARC record with a valid ``p=``.
    - Any other purpose passes on an exact match of the value.
    """
    by_name: dict[str, list[str]] = {}
    for name, values in found.items():
        by_name.setdefault(_normalize_name(name), []).extend(values)
    checks = []
    for record in expected:
        values = by_name.get(_normalize_name(record.name), [])
        if record.purpose == SPF:
            problem = _check_spf(record, values)
        elif record.purpose == DKIM:
            problem = _check_dkim(record, values)
        elif record.purpose == DMARC:
            problem = _check_dmarc(record, values)
        else:
            problem = _check_exact(record, values)
        checks.append(
            RecordCheck(
                type=record.type,
                name=record.name,
                ok=problem is None,
                problem=problem,
                purpose=record.purpose,
            )
        )
    return checks


def _check_spf(record: Record, values: Sequence[str]) -> str | None:
    spf = [v for v in values if is_spf_record(v)]
    if not spf:
        return f'No SPF record found at {record.name}: publish the TXT record "{record.value}".'
    if len(spf) > 1:
        return (
            f"{record.name} has {len(spf)} SPF records, which receivers treat as an error; "
            f'replace them with the single record "{record.value}".'
        )
    terms = _spf_terms(spf[0])
    keys = [_mechanism_key(t) for t in terms]
    wanted = [t for t in _spf_terms(record.value) if not _is_all(t) and "=" not in t]
    missing = [t for t in wanted if _mechanism_key(t) not in keys]
    if missing:
        return (
            f"The SPF record at {record.name} does not authorize Tidings "
            f'(missing {" ".join(missing)}): replace it with "{record.value}".'
        )
    first_all = next((i for i, t in enumerate(terms) if _is_all(t)), None)
    if first_all is not None:
        late = [t for t in wanted if keys.index(_mechanism_key(t)) > first_all]
        if late:
            return (
                f"The SPF record at {record.name} lists {' '.join(late)} after 'all', where "
                f'receivers never look: replace it with "{record.value}".'
            )
        if terms[first_all].lower().lstrip("+") == "all":
            return (
                f"The SPF record at {record.name} ends in '+all', which lets anyone send as "
                f"the domain: use '~all' or '-all', as in \"{record.value}\"."
            )
    return None


def _check_dkim(record: Record, values: Sequence[str]) -> str | None:
    keys = [v for v in values if "p" in parse_tags(v) or parse_tags(v).get("v") == "DKIM1"]
    if not keys:
        return f'No DKIM key found at {record.name}: publish the TXT record "{record.value}".'
    if len(keys) > 1:
        return f'{record.name} has {len(keys)} DKIM key records; keep only "{record.value}".'
    tags = parse_tags(keys[0])
    expected = parse_tags(record.value)
    want_key = _WSP.sub("", expected.get("p", ""))
    if "v" in tags and tags["v"] != "DKIM1":
        return f"The DKIM record at {record.name} has v={tags['v']}; it must be v=DKIM1."
    if tags.get("k", "rsa").lower() != expected.get("k", "rsa").lower():
        return (
            f"The DKIM record at {record.name} is for a {tags.get('k')} key; Tidings signs "
            f'with {expected.get("k", "rsa")}: publish "{record.value}".'
        )
    have_key = _WSP.sub("", tags.get("p", "")).strip('"')
    if not have_key:
        return (
            f"The DKIM record at {record.name} has an empty key (p=), which revokes it: "
            f'publish "{record.value}".'
        )
    if have_key != want_key:
        if want_key.startswith(have_key):
            return (
                f"The DKIM key at {record.name} is cut short ({len(have_key)} of "
                f"{len(want_key)} characters), often a 255-character limit of the DNS panel: "
                "publish the whole value, split into several strings if the panel asks."
            )
        return (
            f"The DKIM key at {record.name} is not this domain's Tidings key (an old or "
            f'another sender\'s key?): publish "{record.value}".'
        )
    return None


def _check_dmarc(record: Record, values: Sequence[str]) -> str | None:
    dmarc = [v for v in values if v.strip().lower().replace(" ", "").startswith("v=dmarc1")]
    if not dmarc:
        others = [v for v in values if "dmarc" in v.lower()]
        if others:
            return (
                f"The DMARC record at {record.name} does not start with v=DMARC1, so "
                f'receivers ignore it: publish "{record.value}".'
            )
        return f'No DMARC record found at {record.name}: publish the TXT record "{record.value}".'
    if len(dmarc) > 1:
        return (
            f"{record.name} has {len(dmarc)} DMARC records, so receivers ignore all of them; "
            f'keep only one, such as "{record.value}".'
        )
    tags = parse_tags(dmarc[0])
    if "p" not in tags:
        return (
            f"The DMARC record at {record.name} has no policy (p=); add p=none, as in "
            f'"{record.value}".'
        )
    if tags["p"].lower() not in _DMARC_POLICIES:
        return (
            f"The DMARC record at {record.name} has the policy p={tags['p']}; it must be "
            "none, quarantine or reject."
        )
    return None


def _check_exact(record: Record, values: Sequence[str]) -> str | None:
    if record.value in values:
        return None
    if not values:
        return f'No record found at {record.name}: publish the TXT record "{record.value}".'
    return f'The record at {record.name} differs: publish "{record.value}".'
