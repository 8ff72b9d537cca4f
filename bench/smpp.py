"""SMS per second through the SMPP transport with window 1 against window 10.

Run: ``.venv/bin/python bench/smpp.py [--messages N] [--delay MS] [--group G]``.
Sends N one-part SMS (in groups of G, as the worker does) through
:class:`~tidings.transports.smpp.SmppTransport` into the loopback SMSC of
``tests/smsc.py``, run in a process of its own, which answers each ``submit_sm`` after DELAY milliseconds
(2 by default: a near SMSC; across a network it is more, and the window
matters more). Prints the rate for each window and their ratio; every message
must come back SENT and be accepted once, or it stops with an error.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.smsc import LoopbackSmsc  # noqa: E402

from tidings.transports.base import Envelope, Result  # noqa: E402
from tidings.transports.smpp import SmppTransport  # noqa: E402


def serve(connection: Connection, delay: float) -> None:
    """The loopback SMSC in its own process (so that it does not share our GIL):
    sends its port, then on "stats" answers (accepted, most outstanding) and stops."""
    with LoopbackSmsc(response_delay=delay) as smsc:
        connection.send(smsc.url())
        connection.recv()
        connection.send((len(smsc.accepted()), smsc.max_outstanding))


def run(*, window: int, messages: int, delay: float, group: int) -> float:
    """SMS per second with ``window`` outstanding submits on one bind."""
    ours, theirs = multiprocessing.Pipe()
    smsc = multiprocessing.Process(target=serve, args=(theirs, delay), daemon=True)
    smsc.start()
    url = ours.recv()
    transport = SmppTransport.from_url(f"{url}&window={window}")
    transport.start()
    envelopes = [Envelope(message_id=i, mail_from="1", rcpt=f"+3712{i:07d}",
                          data=f"Spring sale: 20% off everything until Sunday, code SPRING{i}".encode())
                 for i in range(messages)]
    started = time.perf_counter()
    for at in range(0, messages, group):
        outcomes = transport.send(envelopes[at:at + group])
        if any(o.result is not Result.SENT for o in outcomes):
            raise SystemExit(f"not every message was sent: {outcomes}")
    elapsed = time.perf_counter() - started
    transport.close()
    ours.send("stats")
    accepted, outstanding = ours.recv()
    smsc.join(timeout=10)
    if accepted != messages:
        raise SystemExit(f"the SMSC accepted {accepted} of {messages}")
    if outstanding > window:
        raise SystemExit(f"{outstanding} outstanding with window {window}")
    return messages / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--delay", type=float, default=2.0, help="SMSC answer delay, ms")
    parser.add_argument("--group", type=int, default=200, help="messages per send() call")
    args = parser.parse_args()
    sys.setswitchinterval(0.0005)  # as `tidings worker` runs
    print(f"{args.messages} one-part SMS, SMSC answers after {args.delay:g} ms, groups of {args.group}")
    rates = {}
    for window in (1, 10):
        rates[window] = run(window=window, messages=args.messages, delay=args.delay / 1000, group=args.group)
        print(f"window {window:>2}: {rates[window]:8.0f} SMS/s")
    print(f"window 10 / window 1: {rates[10] / rates[1]:.1f}x")


if __name__ == "__main__":
    main()
