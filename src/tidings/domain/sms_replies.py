"""What a reply to an SMS asks for: STOP, START or HELP, and the opt-out line.

A reply is read as a keyword only when the whole message is the keyword,
in any case, with the blanks around it trimmed ("stop" and " Stop " are
STOP; "please stop" is a reply, not a keyword):

- :data:`STOP_WORDS` and the shop's own words (``TIDINGS_SMS_STOP_WORDS``)
  unsubscribe the sender's phone from SMS;
- :data:`START_WORDS` subscribe it again;
- :data:`HELP_WORDS` ask for the shop's help text.

A sender that is a name (alphanumeric) cannot be replied to, so its messages
can end with :func:`opt_out_line` instead.

Pure: standard library only.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

STOP_WORDS = ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT")
START_WORDS = ("START", "UNSTOP", "YES")
HELP_WORDS = ("HELP",)


class Keyword(enum.StrEnum):
    STOP = "stop"
    START = "start"
    HELP = "help"


def _folded(word: str) -> str:
    return word.strip().casefold()


def keyword(text: str, *, stop_words: Iterable[str] = ()) -> Keyword | None:
    """The keyword the whole of ``text`` is (see the module docstring), or None."""
    said = _folded(text)
    if not said:
        return None
    if said in {_folded(w) for w in (*STOP_WORDS, *stop_words) if w.strip()}:
        return Keyword.STOP
    if said in {_folded(w) for w in START_WORDS}:
        return Keyword.START
    if said in {_folded(w) for w in HELP_WORDS}:
        return Keyword.HELP
    return None


def opt_out_line(url: str) -> str:
    """The line that ends an SMS from a sender that cannot be replied to."""
    return f"STOP: {url}"


def with_opt_out(text: str, url: str) -> str:
    """``text`` ending with :func:`opt_out_line` on a line of its own, unless it
    already shows ``url`` (the template placed the unsubscribe link itself)."""
    if url in text:
        return text
    return f"{text}\n{opt_out_line(url)}" if text else opt_out_line(url)
