"""What a template asks of the customer, read from its Jinja syntax tree.

``{{ customer.firstname }}`` renders as nothing (a missing key is empty), so a
typo goes out silently. :func:`template_warnings` reads the syntax tree of each
field (nothing is rendered) and finds

- ``customer.X`` / ``customer["X"]`` where X is not one of :data:`CUSTOMER_FIELDS`;
- ``customer.attributes.X`` / ``customer.attributes["X"]`` where no customer
  has the attribute X (the caller passes the attribute keys customers have);
- a variable that is none of ``customer``, ``unsubscribe_url``, ``mailing``,
  the sandbox's globals or one the template sets itself (``{{ first_name }}``);
- an email whose HTML and text never use ``unsubscribe_url``.

Each finding is a :class:`TemplateWarning` with a code, the variable, and a message in
the manager's words. A field that does not parse is left to the validation
that refuses it. :data:`CUSTOMER_FIELDS` is what
:meth:`~tidings.domain.messages.Recipient.customer_context` gives templates.

Pure: standard library and ``jinja2``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import jinja2
from jinja2 import meta, nodes

from tidings.domain.templates.sandbox import GLOBALS, TEXT_ENV

__all__ = ["CONTEXT_NAMES", "CUSTOMER_FIELDS", "TemplateWarning", "has_unsubscribe_link",
           "references", "template_warnings"]

#: The customer's own fields, as templates see them (besides ``attributes``).
CUSTOMER_FIELDS = ("first_name", "last_name", "email", "phone", "external_id", "id")
#: The names a template is given.
CONTEXT_NAMES = frozenset({"customer", "unsubscribe_url", "mailing"})


@dataclass(frozen=True, kw_only=True)
class TemplateWarning:
    """Something that will not render as the author likely meant."""

    code: str  # unknown_variable, unknown_attribute, no_unsubscribe_link
    variable: str | None
    message: str


def _parse(source: str) -> nodes.Template | None:
    try:
        return TEXT_ENV.parse(source)
    except jinja2.TemplateSyntaxError:
        return None


def _key(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Getattr):
        return node.attr
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) \
            and isinstance(node.arg.value, str):
        return node.arg.value
    return None


def _is_customer(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Name) and node.name == "customer"


def references(source: str) -> tuple[set[str], set[str], set[str]]:
    """``(customer fields, attribute keys, free variables)`` that ``source`` uses."""
    ast = _parse(source)
    if ast is None:
        return set(), set(), set()
    fields: set[str] = set()
    attributes: set[str] = set()
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        key = _key(node)
        target: nodes.Node = node.node  # type: ignore[attr-defined]
        if key is None:
            continue
        if _is_customer(target):
            fields.add(key)
        elif _key(target) == "attributes" and _is_customer(target.node):  # type: ignore[attr-defined]
            attributes.add(key)
    return fields, attributes, set(meta.find_undeclared_variables(ast))


def has_unsubscribe_link(sources: Iterable[str]) -> bool:
    """Whether any of ``sources`` uses ``unsubscribe_url``."""
    return any("unsubscribe_url" in references(source)[2] for source in sources if source)


def _suggest(name: str, known: Iterable[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" Did you mean {prefix}{close[0]}?" if close else ""


def template_warnings(sources: Mapping[str, str | None], *, attributes: Iterable[str],
                      email: bool) -> list[TemplateWarning]:
    """The warnings for a template's fields (``{"subject": ..., "html": ...}``),
    given the attribute keys customers have; ``email`` adds the unsubscribe check."""
    fields: set[str] = set()
    used_attributes: set[str] = set()
    free: set[str] = set()
    for source in sources.values():
        if source:
            f, a, v = references(source)
            fields |= f
            used_attributes |= a
            free |= v
    known_attributes = set(attributes)
    found: list[TemplateWarning] = []
    for name in sorted(fields - set(CUSTOMER_FIELDS) - {"attributes"}):
        hint = _suggest(name, CUSTOMER_FIELDS, "customer.")
        if not hint and name in known_attributes:
            hint = f" Did you mean customer.attributes.{name}?"
        found.append(TemplateWarning(code="unknown_variable", variable=f"customer.{name}",
                             message=f"customer.{name} is not a customer field, so it prints "
                                     f"nothing.{hint}"))
    for key in sorted(used_attributes - known_attributes):
        hint = _suggest(key, known_attributes, "customer.attributes.")
        found.append(TemplateWarning(code="unknown_attribute", variable=f"customer.attributes.{key}",
                             message=f"No customer has the attribute {key}, so "
                                     f"customer.attributes.{key} prints nothing.{hint}"))
    for name in sorted(free - CONTEXT_NAMES - set(GLOBALS)):
        hint = _suggest(name, CONTEXT_NAMES)
        if not hint and name in CUSTOMER_FIELDS:
            hint = f" Did you mean customer.{name}?"
        found.append(TemplateWarning(code="unknown_variable", variable=name,
                             message=f"{name} is not something a template is given, so it "
                                     f"prints nothing.{hint}"))
    if email and not has_unsubscribe_link(
            [sources.get("html") or "", sources.get("text") or ""]):
        found.append(TemplateWarning(code="no_unsubscribe_link", variable="unsubscribe_url",
                             message="The email has no unsubscribe link. Mail programs still offer "
                                     "one (List-Unsubscribe), but put {{ unsubscribe_url }} in the "
                                     "message too, e.g. with a Footer block."))
    return found
