"""Attribute values: one typing rule for CSV files, the API and segment rules.

A customer's ``attributes`` hold JSON values: strings, numbers, booleans, null
and lists of those. JSON sent to the API keeps the type it was sent with.
Text typed by a person has no type of its own, and is given one here:

=============================  ======================  ========================
text                           a CSV cell is stored    the segment builder's
                               as (:func:`cell_value`) value box gives
                                                       (:func:`typed_value`)
=============================  ======================  ========================
``true``, ``FALSE`` (any case) boolean                 boolean
``42``, ``-1.5``, ``0.25``     text, as written        number
``0042``, ``1e5``, ``1,5``     text                    text
``2024-05-01``                 text                    text
anything else                  text                    text
=============================  ======================  ========================

A segment rule compares an attribute by the type of the rule's value, and
takes text that spells that type for it, so a value means the same whether it
came from a CSV file, the API or the builder:

- a boolean matches JSON booleans and the text ``true``/``false`` in any case
  (:func:`flag_of`);
- a number matches JSON numbers and text that spells a decimal number
  (:data:`NUMERIC_TEXT`; ``"0042"`` is 42);
- text matches JSON strings, compared by code point: ISO dates
  (``2024-05-01``) therefore order by date, other date formats do not.

Any other attribute counts as missing for that comparison.

Why a CSV cell of digits stays text: such columns are as often identifiers
(zip codes like ``01067``, customer numbers) as quantities; text keeps what
the file says, a rule with a number still compares it as a number, and a rule
with text still finds it. Why ``true``/``false`` do not stay text: a template's
``{% if customer.attributes.vip %}`` holds for any non-empty text, ``"false"``
included.
"""

from __future__ import annotations

import re

#: Text that a comparison with a number reads as a number (``"0042"`` too).
NUMERIC_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?")
#: A number as a person writes one: no leading zero, no exponent, at most 15
#: digits before the point (beyond that it is an identifier, and no double holds it).
PLAIN_NUMBER = re.compile(r"-?(0|[1-9][0-9]{0,14})(\.[0-9]+)?")
_FLAGS = {"true": True, "false": False}


def flag_of(text: str) -> bool | None:
    """``True``/``False`` for ``true``/``false`` in any case, else ``None``.

    Only ASCII letters fold: Python would fold the long s (``ſ``) to ``s``, and
    the databases do not."""
    return _FLAGS.get(text.lower()) if text.isascii() else None


def cell_value(text: str) -> str | bool:
    """The attribute value a CSV cell stands for: a boolean for ``true`` and
    ``false`` in any case, else the text as written."""
    flag = flag_of(text)
    return text if flag is None else flag


def typed_value(text: str) -> str | int | float | bool:
    """The value of a rule that a person typed: a boolean for ``true`` and
    ``false`` in any case, a number for a :data:`PLAIN_NUMBER`, else the text
    (surrounding blanks dropped)."""
    text = text.strip()
    flag = flag_of(text)
    if flag is not None:
        return flag
    if PLAIN_NUMBER.fullmatch(text):
        return float(text) if "." in text else int(text)
    return text


#: Text that is a date (``2024-05-01``), or a date and time, as ISO 8601 writes it:
#: compared as text, such values order by date.
ISO_DATE = re.compile(r"[0-9]{4}-[0-1][0-9]-[0-3][0-9](?:[T ][0-9:.+\-Z]*)?")
#: The kinds :func:`kind_of` tells apart, as the segment builder names them.
KINDS = ("boolean", "number", "date", "text", "list")


def kind_of(values: list[object]) -> str:
    """The kind of an attribute from values it has (``None`` ignored), by the
    typing rule above: ``boolean`` when every value is a boolean or
    ``true``/``false`` text, ``number`` when every value is a number or text
    spelling one, ``date`` when every value is ISO date text, ``list`` when
    every value is a list, else ``text``. A key whose values disagree is text,
    which every rule on text can still compare."""
    seen = [v for v in values if v is not None]
    if not seen:
        return "text"
    if all(isinstance(v, bool) or (isinstance(v, str) and flag_of(v) is not None) for v in seen):
        return "boolean"
    if all((isinstance(v, int | float) and not isinstance(v, bool))
           or (isinstance(v, str) and NUMERIC_TEXT.fullmatch(v)) for v in seen):
        return "number"
    if all(isinstance(v, str) and ISO_DATE.fullmatch(v) for v in seen):
        return "date"
    if all(isinstance(v, list) for v in seen):
        return "list"
    return "text"
