"""The customer form: its fields to the API's customer object (a merge patch) and back.

Attributes are rows of a name and a value. A value is read by the rule for
text a person types into a customer (:func:`~tidings.domain.attributes.cell_value`:
``true``/``false`` are booleans, all else text), except that a value left as
it was keeps its type, and a number stays a number when it is changed to
another number. Lists cannot be edited here (the API can); they are kept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData

from tidings.domain.attributes import PLAIN_NUMBER, cell_value

FIELDS = ("email", "phone", "first_name", "last_name", "external_id")
LABELS = {"email": "Email", "phone": "Phone", "first_name": "First name",
          "last_name": "Last name", "external_id": "External id (your shop's customer number)"}
#: Empty rows the form offers for new attributes.
NEW_ROWS = 2


@dataclass(frozen=True, kw_only=True)
class AttributeRow:
    name: str = ""
    value: str = ""
    editable: bool = True


def shown(value: Any) -> str:
    """An attribute value as the form shows it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else str(value)


def rows_of(attributes: dict[str, Any]) -> list[AttributeRow]:
    """The attribute rows of a stored customer, then :data:`NEW_ROWS` empty ones."""
    rows = [AttributeRow(name=k, value=shown(v), editable=not isinstance(v, list))
            for k, v in sorted(attributes.items())]
    return rows + [AttributeRow() for _ in range(NEW_ROWS)]


def submitted_rows(form: FormData) -> list[AttributeRow]:
    names, values = form.getlist("attr_name"), form.getlist("attr_value")
    rows = [AttributeRow(name=str(n), value=str(v)) for n, v in zip(names, values, strict=False)]
    return rows + [AttributeRow()] * (NEW_ROWS - sum(1 for r in rows if not r.name.strip()))


def _value(text: str, before: Any) -> Any:
    text = text.strip()
    if shown(before) == text:
        return before
    if isinstance(before, int | float) and not isinstance(before, bool) \
            and PLAIN_NUMBER.fullmatch(text):
        return float(text) if "." in text else int(text)
    return cell_value(text)


def patch_of(form: FormData, current: dict[str, Any] | None) -> dict[str, Any]:
    """The merge patch (or, without ``current``, the new customer) the form
    describes: its fields (empty clears), and attributes: rows with a name set
    that value, an existing attribute whose row was emptied is removed."""
    before = (current or {}).get("attributes") or {}
    data: dict[str, Any] = {}
    for field in FIELDS:
        text = str(form.get(field, "")).strip()
        data[field] = text or None
    attributes: dict[str, Any] = {}
    kept = set()
    for row in submitted_rows(form):
        name = row.name.strip()
        if not name:
            continue
        kept.add(name)
        if not row.value.strip():
            attributes[name] = None
        else:
            attributes[name] = _value(row.value, before.get(name))
    for name, value in before.items():
        if name not in kept and not isinstance(value, list):
            attributes[name] = None
    if current is None:
        data = {k: v for k, v in data.items() if v is not None}
        attributes = {k: v for k, v in attributes.items() if v is not None}
        for channel in ("email_status", "sms_status"):
            if form.get(channel) == "unsubscribed":
                data[channel] = "unsubscribed"
    data["attributes"] = attributes
    return data


def values_of(form: FormData) -> dict[str, str]:
    """The form's field texts, to show them again after a refusal."""
    return {f: str(form.get(f, "")) for f in FIELDS}
