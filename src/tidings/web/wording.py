"""What a page says when the service refuses: the manager's words, not the API's.

Every error text the web UI shows goes through :func:`say`. The service's
``message`` is written for API callers and names API fields (``send_at``,
``rules.all[0]``, ``POST /api/v1/domains``); a page shows instead

- the error's ``manager_message``, which its raiser gives where the two differ
  (see :mod:`tidings.errors`), or
- for a segment rule error, whose ``field`` is the rule's path, the rule put as
  the builder shows it (:func:`tidings.web.rules_form.rule_error`): "Condition
  2: Number of orders needs a number", or
- for a template error, the part named as the template editor labels it ("The
  HTML has a syntax error", not "The html template has ..."), or
- the message itself, which then has no API names in it.
"""

from __future__ import annotations

import re

from tidings.errors import InvalidInput, TidingsError
from tidings.web import rules_form

#: The template editor's names of a template's fields.
TEMPLATE_PARTS = {"subject": "subject", "html": "HTML", "text": "text"}


def say(exc: TidingsError) -> str:
    """The text a page shows for ``exc``."""
    if exc.manager_message != exc.message or not isinstance(exc, InvalidInput):
        return exc.manager_message
    if rules_form.is_rule_path(exc.field):
        return rules_form.rule_error(exc)
    if exc.field in TEMPLATE_PARTS:
        return re.sub(rf"\b([Tt]he) {exc.field} template(?=\b)",
                      rf"\1 {TEMPLATE_PARTS[exc.field]}", exc.message, count=1)
    return exc.message
