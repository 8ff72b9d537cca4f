"""Customers and segments, as callers knew them before they became two
modules: :mod:`tidings.services.customers` and :mod:`tidings.services.segments`
(and CSV imports, :mod:`tidings.services.imports`). New code imports those."""

from __future__ import annotations

from tidings.services.customers import (
    MAX_BATCH,
    customer_json,
    find_customers,
    get_customer,
    upsert_customer,
    upsert_customers,
)
from tidings.services.imports import import_csv
from tidings.services.segments import (
    count_rules,
    count_segment,
    create_segment,
    get_segment,
    list_segments,
    segment_json,
    update_segment,
)

__all__ = ["MAX_BATCH", "count_rules", "count_segment", "create_segment", "customer_json",
           "find_customers", "get_customer", "get_segment", "import_csv", "list_segments",
           "segment_json", "update_segment", "upsert_customer",
           "upsert_customers"]
