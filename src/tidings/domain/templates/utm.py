"""UTM tags: :func:`merge_utm` adds campaign parameters to a link.

Guarantees: a parameter the URL already has is never overwritten, an empty
value is not added, and the rest of the URL, fragment included, is left byte
for byte. Results are cached (4,096 URLs): a mailing sends few distinct links
many times.

Pure: standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from urllib.parse import unquote_plus, urlencode

__all__ = ["merge_utm"]


def merge_utm(url: str, utm: Mapping[str, str]) -> str:
    """Return ``url`` with the ``utm`` parameters added to its query.

    Parameters the URL already has are kept as they are (never overwritten),
    empty values are not added, and the rest of the URL, fragment included,
    is left byte for byte.
    """
    if not utm:
        return url
    return _merge_utm(url, tuple(utm.items()))


@lru_cache(maxsize=4096)  # a mailing has few distinct links and sends them many times
def _merge_utm(url: str, utm: tuple[tuple[str, str], ...]) -> str:
    base, hash_, fragment = url.partition("#")
    _, question, query = base.partition("?")
    if query:
        present = {unquote_plus(pair.partition("=")[0]) for pair in query.split("&")}
        pairs = [(k, v) for k, v in utm if v and k not in present]
    else:
        pairs = [(k, v) for k, v in utm if v]
    if not pairs:
        return url
    addition = urlencode(pairs)
    if not question:
        base += "?" + addition
    elif query and not query.endswith("&"):
        base += "&" + addition
    else:
        base += addition
    return base + hash_ + fragment
