"""DKIM signing cost per message: Tidings' DkimSigner against dkimpy's ``dkim.sign``.

Run: ``.venv/bin/python bench/dkim.py [--messages N] [--threads T]``. Prints
microseconds per message for a ~4 KB marketing email, one thread each, then the
throughput of DkimSigner shared by T threads: the RSA signature, most of the
cost, is computed by OpenSSL without the GIL, so signing spreads over the
sending threads (on a 2-core machine 2 threads gave about 1.6 times one).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from types import ModuleType

from tidings.transports.dkim import DEFAULT_HEADERS, DkimSigner, generate_keypair


def _import_dkimpy() -> ModuleType:
    """dkimpy's ``dkim``, not this file, which has the same name and sits first on sys.path."""
    here = Path(__file__).resolve().parent
    saved = sys.path[:]
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    sys.modules.pop("dkim", None)
    try:
        return importlib.import_module("dkim")
    finally:
        sys.path[:] = saved


dkim = _import_dkimpy()

DOMAIN = "shop.example"
SELECTOR = "tidings1"


def sample_message(size: int = 4096) -> bytes:
    """A multipart/alternative message of about ``size`` bytes with Tidings' headers."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = "Example Shop <news@shop.example>"
    msg["To"] = "Ada Lovelace <ada@customer.example>"
    msg["Subject"] = "Our spring collection is here, Ada"
    msg["Date"] = "Tue, 05 Mar 2024 09:30:00 +0000"
    msg["Message-ID"] = "<m42.c1001@shop.example>"
    msg["List-Unsubscribe"] = "<https://shop.example/u/abcdef>, <mailto:unsub+abcdef@shop.example>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["X-Tidings-Mailing"] = "42"
    paragraph = (
        "Dear Ada, our spring collection has arrived with linen shirts, light jackets "
        "and sandals for the warmer days ahead. "
    )
    text = "\n\n".join([paragraph] * 6)
    html = "<html><body>" + "".join(f"<p>{paragraph}</p>" for _ in range(6))
    msg.set_content(text)
    msg.add_alternative(html + "</body></html>", subtype="html")
    raw = msg.as_bytes()
    if len(raw) < size:
        msg.get_payload()[1].set_content(
            html + "<p>" + "x " * ((size - len(raw)) // 2) + "</p></body></html>", subtype="html"
        )
        raw = msg.as_bytes()
    return raw


def per_message_us(sign, message: bytes, count: int) -> float:
    sign(message)  # warm-up
    start = time.perf_counter()
    for _ in range(count):
        sign(message)
    return (time.perf_counter() - start) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()

    private_pem, public_b64 = generate_keypair()
    message = sample_message()
    signer = DkimSigner(DOMAIN, SELECTOR, private_pem)

    record = f"v=DKIM1; k=rsa; p={public_b64}".encode("ascii")
    signed = signer.sign(message)
    assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: record), "signature rejected"

    include = [h.lower().encode("ascii") for h in DEFAULT_HEADERS]

    def dkimpy_sign(raw: bytes) -> bytes:
        return (
            dkim.sign(
                raw,
                SELECTOR.encode("ascii"),
                DOMAIN.encode("ascii"),
                private_pem,
                canonicalize=(b"relaxed", b"relaxed"),
                include_headers=include,
            )
            + raw
        )

    ours = per_message_us(signer.sign, message, args.messages)
    theirs = per_message_us(dkimpy_sign, message, max(args.messages // 10, 20))
    print(f"message size: {len(message)} bytes")
    print(f"DkimSigner.sign (cryptography/OpenSSL): {ours:8.0f} us per message")
    print(f"dkim.sign (dkimpy, pure-Python RSA):    {theirs:8.0f} us per message")
    print(f"speed-up: {theirs / ours:.1f}x")

    total = args.messages * args.threads
    with ThreadPoolExecutor(max_workers=args.threads) as pool:
        start = time.perf_counter()
        list(pool.map(lambda _: signer.sign(message), range(total)))
        elapsed = time.perf_counter() - start
    print(
        f"DkimSigner.sign over {args.threads} threads: {total / elapsed:8.0f} messages per second "
        f"({elapsed / total * 1e6:.0f} us per message of wall time)"
    )


if __name__ == "__main__":
    main()
