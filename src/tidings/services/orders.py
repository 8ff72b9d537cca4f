"""Orders: recorded one by one or from CSV, each attributed to the mailing that
brought it.

:func:`create_order` and :func:`import_orders` attribute each order with
:func:`~tidings.domain.engagement.attribute` and update the mailing's
``orders_count``/``revenue`` and the customer's ``orders_count``,
``orders_total`` and ``last_order_at`` in the same transaction.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tidings.domain.csvfiles import MAX_ERRORS
from tidings.domain.engagement import OrderInput, attribute, money, parse_orders_csv, validate_order
from tidings.errors import Conflict, InvalidInput, NotFound
from tidings.services.context import Context
from tidings.store import customers as customer_store
from tidings.store import engagement as store


def order_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"], "external_id": row["external_id"], "customer_id": row["customer_id"],
        "total": money(row["total"]), "created_at": row["ordered_at"].isoformat(),
        "utm": row["utm"] or {}, "mailing_id": row["mailing_id"],
        "message_id": row["message_id"], "recorded_at": row["created_at"].isoformat(),
    }


def _record(conn: sa.Connection, ctx: Context, order: OrderInput) -> dict[str, Any]:
    """Attribute and store one valid order in the caller's transaction."""
    if order.customer_id is not None:
        customer = customer_store.get(conn, order.customer_id)
        if customer is None:
            raise InvalidInput(f"There is no customer {order.customer_id}.", field="customer_id")
    else:
        assert order.customer_email is not None
        customer = customer_store.find_by_email(conn, order.customer_email)
        if customer is None:
            raise InvalidInput(f"There is no customer with the email {order.customer_email}.",
                               field="customer_email")
    if store.order_exists(conn, order.external_id):
        raise Conflict(f"An order {order.external_id} was already recorded.",
                       code="duplicate_order")
    credit = attribute(order.ordered_at, store.reaches(conn, customer["id"], before=order.ordered_at))
    now = ctx.now()
    try:
        order_id = store.insert_order(conn, {
            "external_id": order.external_id, "customer_id": customer["id"],
            "total": order.total, "utm": order.utm or None,
            "mailing_id": credit.mailing_id if credit else None,
            "message_id": credit.message_id if credit else None,
            "ordered_at": order.ordered_at, "created_at": now,
        })
    except sa.exc.IntegrityError:  # the same order recorded concurrently
        raise Conflict(f"An order {order.external_id} was already recorded.",
                       code="duplicate_order") from None
    if credit is not None:
        store.add_conversion(conn, credit.mailing_id, order.total)
    store.add_customer_order(conn, customer["id"], total=order.total,
                             ordered_at=order.ordered_at, now=now)
    row = store.get_order(conn, order_id)
    assert row is not None
    return order_json(row)


def create_order(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Record one order (see :func:`~tidings.domain.engagement.validate_order`)
    and return it with ``mailing_id`` (the mailing credited, or null).

    Raises ``InvalidInput`` (bad field, unknown customer) and
    ``Conflict(code="duplicate_order")`` for an ``external_id`` seen before;
    nothing is written then.
    """
    order = validate_order(data)
    with ctx.tx() as conn:
        return _record(conn, ctx, order)


def get_order(ctx: Context, order_id: int) -> dict[str, Any]:
    with ctx.read() as conn:
        row = store.get_order(conn, order_id)
        if row is None:
            raise NotFound(f"There is no order {order_id}.", code="order_not_found")
        return order_json(row)


def import_orders(ctx: Context, data: bytes) -> dict[str, Any]:
    """Record the orders of a CSV file (see
    :func:`~tidings.domain.engagement.parse_orders_csv`); good lines are kept.

    Returns ``{"created": n, "attributed": n, "errors": [{"line", "message"}]}``,
    the first :data:`~tidings.domain.csvfiles.MAX_ERRORS` errors in line order
    (and ``errors_omitted``, how many more, when there are more). Raises
    ``InvalidInput`` only for a file that cannot be read at all (no header, a
    required column missing).
    """
    parsed = parse_orders_csv(data)
    errors = list(parsed.errors)
    created = attributed = 0
    with ctx.tx() as conn:
        for line, order in parsed.orders:
            try:
                with conn.begin_nested():
                    recorded = _record(conn, ctx, order)
            except (InvalidInput, Conflict) as exc:
                errors.append((line, exc.message))
                continue
            created += 1
            attributed += recorded["mailing_id"] is not None
    errors.sort()
    shown = [{"line": line, "message": text} for line, text in errors[:MAX_ERRORS]]
    omitted = len(errors) - len(shown)
    return {"created": created, "attributed": attributed, "errors": shown} | (
        {"errors_omitted": omitted} if omitted else {})


