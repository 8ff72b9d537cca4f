"""What each column of a customer file means: the mapping step of an import.

A column's *target* is one of

- a customer field: ``email``, ``phone``, ``first_name``, ``last_name``,
  ``external_id``, ``email_status``, ``sms_status``;
- ``email_consent`` / ``sms_consent``: a yes/no column such as Shopify's
  "Accepts Email Marketing". **No** imports the customer as unsubscribed on
  that channel; **yes** leaves the status as it is (a new customer is
  subscribed), so a file exported from the shop never subscribes again
  someone who unsubscribed through Tidings; an empty cell says nothing;
  anything else is an error on that line (:data:`YES`, :data:`NO`);
- ``attributes.NAME``: an attribute called NAME;
- ``ignore``: the column is not read.

Without a mapping, a file is read as the contract says (:func:`default_targets`):
a column named like a customer field (any case, spaces or dashes for ``_``) is
that field, any other column an attribute under its header as written.
:func:`suggested_targets` is what the import page proposes instead: it also
knows common other names ("E-mail", "Surname", "Customer ID") and consent
columns. :func:`targets` applies a person's or a caller's choices on top.

Pure: standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from tidings.errors import InvalidInput

#: The customer fields a column may fill, in the contract's order.
FIELD_TARGETS = ("external_id", "email", "phone", "first_name", "last_name", "email_status",
                 "sms_status")
CONSENT_TARGETS = {"email_consent": "email_status", "sms_consent": "sms_status"}
IGNORE = "ignore"
ATTRIBUTE = "attributes."
MAX_ATTRIBUTE = 255

#: Consent cells, compared in lower case with surrounding blanks dropped.
YES = frozenset({"yes", "y", "true", "1", "subscribed", "opt-in", "opted in", "accepted", "x"})
NO = frozenset({"no", "n", "false", "0", "unsubscribed", "opt-out", "opted out", "declined"})

#: Other names of the fields that :func:`suggested_targets` recognises.
_SYNONYMS = {
    "email": {"e_mail", "email_address", "e_mail_address", "mail"},
    "phone": {"phone_number", "mobile", "mobile_phone", "cell", "telephone", "sms_phone"},
    "first_name": {"firstname", "given_name", "forename"},
    "last_name": {"lastname", "surname", "family_name"},
    "external_id": {"customer_id", "customer_number", "client_id", "id"},
}
_CONSENT_WORDS = {
    "sms_consent": re.compile(r"\b(sms|text)\b.*\b(marketing|consent|opt|subscri)|"
                              r"\b(marketing|consent)\b.*\bsms\b"),
    "email_consent": re.compile(r"\b(e_?mail|newsletter)\b.*\b(marketing|consent|opt|subscri)|"
                                r"\b(accepts_marketing|marketing_consent|newsletter)\b"),
}


def _canonical(header: str) -> str:
    return re.sub(r"[\s\-]+", "_", header.strip().lower())


def default_targets(header: Sequence[str]) -> list[str]:
    """The contract's reading of ``header``: field names, else attributes as
    written; a nameless column is ignored."""
    found: list[str] = []
    for name in header:
        canonical = _canonical(name)
        if canonical in FIELD_TARGETS:
            found.append(canonical)
        elif name.strip():
            found.append(ATTRIBUTE + name.strip())
        else:
            found.append(IGNORE)
    return found


def suggested_targets(header: Sequence[str]) -> list[str]:
    """What the import page proposes: :func:`default_targets`, plus other names
    of fields and consent columns, each target once (a later column that
    would repeat one becomes an attribute)."""
    proposed: list[str] = []
    for name, default in zip(header, default_targets(header), strict=True):
        canonical = _canonical(name)
        target = default
        if default.startswith(ATTRIBUTE):
            for field, names in _SYNONYMS.items():
                if canonical in names:
                    target = field
            for consent, words in _CONSENT_WORDS.items():
                if words.search(canonical.replace("_", " ")) or words.search(canonical):
                    target = consent
                    break
        if target != IGNORE and not target.startswith(ATTRIBUTE) and target in proposed:
            target = default if default not in proposed else ATTRIBUTE + name.strip()
        proposed.append(target)
    return proposed


def check_target(target: str, *, column: str) -> str:
    """``target`` if it is one, else :class:`InvalidInput` naming the column."""
    if target in FIELD_TARGETS or target in CONSENT_TARGETS or target == IGNORE:
        return target
    if target.startswith(ATTRIBUTE) and 0 < len(target) - len(ATTRIBUTE) <= MAX_ATTRIBUTE \
            and target[len(ATTRIBUTE):].strip():
        return ATTRIBUTE + target[len(ATTRIBUTE):].strip()
    raise InvalidInput(
        f"Column {column!r}: unknown target {target!r}; use one of {', '.join(FIELD_TARGETS)}, "
        "email_consent, sms_consent, attributes.NAME or ignore.", field="map",
        manager_message=f"Choose what the column “{column}” means.")


def targets(header: Sequence[str], choices: Mapping[str, str] | None = None, *,
            base: Sequence[str] | None = None) -> list[str]:
    """One target per column of ``header``: ``base`` (default
    :func:`default_targets`) with ``choices`` (header -> target) applied.

    Raises :class:`InvalidInput` (field ``map``) for a choice naming no column
    of the header, an unknown target, two columns with one field, a status and
    a consent column for one channel, or neither ``email`` nor ``external_id``.
    """
    found = list(base) if base is not None else default_targets(header)
    names = [h.strip() for h in header]
    for column, target in (choices or {}).items():
        if column.strip() not in names:
            raise InvalidInput(
                f"map: the file has no column {column!r}; its columns are "
                f"{', '.join(repr(h) for h in names)}.", field="map",
                manager_message=f"The file has no column “{column}”.")
        found[names.index(column.strip())] = check_target(target, column=column.strip())
    seen: dict[str, str] = {}
    for name, target in zip(names, found, strict=True):
        if target == IGNORE:
            continue
        field = CONSENT_TARGETS.get(target, target)
        if field in seen:
            raise InvalidInput(
                f"map: the columns {seen[field]!r} and {name!r} both give {field}; "
                "choose one of them.", field="map",
                manager_message=f"The columns “{seen[field]}” and “{name}” cannot both be "
                                f"{describe(field)}: choose one of them.")
        seen[field] = name
    if "email" not in seen and "external_id" not in seen:
        raise InvalidInput(
            'The file needs an "email" or an "external_id" column (map one with '
            "map=HEADER=email); found " + ", ".join(repr(h) for h in names) + ".",
            field="file", manager_message="Choose which column holds the email address "
                                          "(or your customer number, as External id).")
    return found


def parse_choices(pairs: Sequence[str]) -> dict[str, str]:
    """``HEADER=TARGET`` strings (the API's ``map`` parameters) as a mapping; the
    last ``=`` separates them, since no target contains one."""
    choices: dict[str, str] = {}
    for pair in pairs:
        column, equals, target = pair.rpartition("=")
        if not equals or not column.strip():
            raise InvalidInput(f"map: {pair!r} is not HEADER=TARGET, e.g. "
                               "map=Accepts%20Email%20Marketing=email_consent.", field="map")
        choices[column.strip()] = target.strip()
    return choices


def consent(cell: str, *, column: str) -> str | None:
    """A consent cell as a status: ``unsubscribed`` for no, ``None`` (leave as
    it is) for yes or an empty cell; raises :class:`InvalidInput` otherwise."""
    text = cell.strip().lower()
    if not text or text in YES:
        return None
    if text in NO:
        return "unsubscribed"
    raise InvalidInput(f"Column {column!r}: {cell.strip()!r} is neither yes nor no.",
                       field=column)


_WORDS = {"email": "the email address", "phone": "the phone number",
          "first_name": "the first name", "last_name": "the last name",
          "external_id": "the external id", "email_status": "the email subscription",
          "sms_status": "the SMS subscription"}


def describe(target: str) -> str:
    """A target as the import page says it."""
    if target.startswith(ATTRIBUTE):
        return f"the attribute “{target[len(ATTRIBUTE):]}”"
    if target in CONSENT_TARGETS:
        return "consent to " + ("emails" if target == "email_consent" else "text messages")
    return _WORDS.get(target, "ignored")


def fields_of(header: Sequence[str], found: Sequence[str], cells: Sequence[str]
              ) -> tuple[dict[str, object], dict[str, str]]:
    """One line's customer fields and attribute texts under ``found`` targets:
    ``(fields, attributes)``. Empty cells are left out. Raises
    :class:`InvalidInput` for a consent cell that is neither yes nor no."""
    fields: dict[str, object] = {}
    attributes: dict[str, str] = {}
    for name, target, cell in zip(header, found, cells, strict=False):
        if not cell or target == IGNORE:
            continue
        if target.startswith(ATTRIBUTE):
            attributes[target[len(ATTRIBUTE):]] = cell
        elif target in CONSENT_TARGETS:
            status = consent(cell, column=name.strip())
            if status is not None:
                fields[CONSENT_TARGETS[target]] = status
        else:
            fields[target] = cell
    return fields, attributes
