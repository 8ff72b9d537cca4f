"""The OpenAPI document: FastAPI's, completed with what the routes accept and answer.

The JSON bodies of the API are read by the services, which name the field
that is wrong in their own words, so the routes take them as plain objects;
:data:`BODIES` says what each holds, for the document only (what is
accepted is what the service accepts). :func:`document` puts those schemas
in, declares the bearer token, and lists on every ``/api/v1`` operation the
errors it can answer, each in the envelope :data:`ERROR`:

- every operation: 401 (no or unknown token), 403 (role), 422 (a parameter
  or body the operation cannot use), 429 (too many requests), 500, and 503
  (the database cannot serve right now: unreachable, busy or its disk full);
- an operation with a path parameter, or one that finds an object named in
  its body (``/events``): 404;
- an operation with a body: 400 (not JSON), 413 (too large), 415 (not
  declared as JSON and not JSON);
- a change to an object with a state (mailings, templates, segments,
  domains, orders, quota): 409.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from tidings.api.dependencies import API_PREFIX

_STR = {"type": "string"}
_NULLABLE_STR = {"type": ["string", "null"]}
_ID = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
_SCALAR = {"type": ["string", "number", "boolean", "null"]}
_STATUS = {"type": ["string", "null"], "enum": ["subscribed", "unsubscribed", "bounced", "complained", None]}

ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "string", "description": "snake_case, e.g. invalid_input"},
            "message": {"type": "string", "description": "a sentence a person understands"},
            "field": {"type": "string", "description": "the field or rule at fault"},
            "line": {"type": ["integer", "null"], "description": "the template line at fault"},
        },
    }},
}

CUSTOMER: dict[str, Any] = {
    "type": "object",
    "description": "Upserted by external_id, else email; at least one of them is needed.",
    "properties": {
        "external_id": {"type": ["string", "integer", "null"], "maxLength": 255},
        "email": {**_NULLABLE_STR, "format": "email", "maxLength": 320},
        "phone": {**_NULLABLE_STR, "description": "+ and 7-15 digits", "maxLength": 32},
        "first_name": {**_NULLABLE_STR, "maxLength": 255},
        "last_name": {**_NULLABLE_STR, "maxLength": 255},
        "attributes": {"type": ["object", "null"], "additionalProperties": {
            "anyOf": [_SCALAR, {"type": "array", "items": _SCALAR}]}},
        "email_status": _STATUS,
        "sms_status": _STATUS,
    },
}

RULE: dict[str, Any] = {
    "description": "{} (everyone), {\"all\": [rule]}, {\"any\": [rule]}, {\"not\": rule}, or "
                   "{\"field\", \"op\", \"value\"}; at most 20 levels deep and 500 rules.",
    "anyOf": [
        {"type": "object", "maxProperties": 0},
        {"type": "object", "required": ["all"], "properties": {"all": {
            "type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/Rule"}}}},
        {"type": "object", "required": ["any"], "properties": {"any": {
            "type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/Rule"}}}},
        {"type": "object", "required": ["not"], "properties": {"not": {"$ref": "#/components/schemas/Rule"}}},
        {"type": "object", "required": ["field", "op", "value"], "properties": {
            "field": {"type": "string", "description": "email, first_name, ..., attributes.KEY"},
            "op": {"type": "string", "enum": ["eq", "ne", "lt", "lte", "gt", "gte", "in", "contains",
                                              "exists"]},
            "value": {"anyOf": [_SCALAR, {"type": "array", "items": _SCALAR}]},
        }},
    ],
}

_CONVERSION = {"type": ["object", "null"], "properties": {
    "window_days": {"type": "integer", "minimum": 1, "maximum": 365},
    "basis": {"type": "string", "enum": ["received", "opened", "clicked"]},
    "utm": {"type": "object"},
}}
_MAILING_FIELDS: dict[str, Any] = {
    "name": {"type": "string", "maxLength": 255},
    "segment_id": {"type": ["integer", "null"], "minimum": 1},
    "template_id": {"type": ["integer", "null"], "minimum": 1},
    "from_email": {**_NULLABLE_STR, "format": "email"},
    "from_name": {**_NULLABLE_STR, "maxLength": 255},
    "reply_to": {**_NULLABLE_STR, "format": "email"},
    "conversion": _CONVERSION,
}
_TEMPLATE_FIELDS: dict[str, Any] = {
    "name": {"type": "string", "maxLength": 255},
    "channel": {"type": "string", "enum": ["email", "sms"]},
    "subject": {**_NULLABLE_STR, "maxLength": 500_000},
    "html": {**_NULLABLE_STR, "maxLength": 500_000},
    "text": {**_NULLABLE_STR, "maxLength": 500_000},
}

#: Schemas of the request bodies, by name (``components/schemas``).
SCHEMAS: dict[str, Any] = {
    "Error": ERROR,
    "Customer": CUSTOMER,
    "Rule": RULE,
    "CustomersBody": {"anyOf": [
        {"$ref": "#/components/schemas/Customer"},
        {"type": "object", "required": ["customers"], "properties": {"customers": {
            "type": "array", "maxItems": 10_000, "items": {"$ref": "#/components/schemas/Customer"}}}},
    ]},
    "SegmentBody": {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string", "maxLength": 255}, "rules": {"$ref": "#/components/schemas/Rule"}}},
    "SegmentChanges": {"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 255}, "rules": {"$ref": "#/components/schemas/Rule"}}},
    "RulesBody": {"type": "object", "properties": {"rules": {"$ref": "#/components/schemas/Rule"}}},
    "TemplateBody": {"type": "object", "required": ["name"], "properties": _TEMPLATE_FIELDS},
    "TemplateChanges": {"type": "object", "properties": _TEMPLATE_FIELDS},
    "MailingBody": {"type": "object", "required": ["name"], "properties": {
        **_MAILING_FIELDS, "channel": {"type": "string", "enum": ["email", "sms"]}}},
    "MailingChanges": {"type": "object", "properties": {
        **_MAILING_FIELDS,
        "delay_hours": {"type": ["number", "null"], "minimum": 0, "maximum": 8760},
        "condition": {"type": ["string", "null"]}}},
    "StepBody": {"type": "object", "required": ["template_id"], "properties": {
        **_MAILING_FIELDS,
        "delay_hours": {"type": "number", "minimum": 0, "maximum": 8760},
        "condition": {"type": "string", "enum": ["all", "opened", "not_opened", "clicked", "not_clicked",
                                                 "not_converted"]}}},
    "TestSendBody": {"type": "object", "required": ["email"], "properties": {
        "email": {"type": "string", "format": "email"}}},
    "OrderBody": {"type": "object", "required": ["external_id", "total", "created_at"], "properties": {
        "external_id": {"type": ["string", "integer"], "maxLength": 255},
        "customer_id": {"type": ["integer", "null"], "minimum": 1},
        "customer_email": {**_NULLABLE_STR, "format": "email"},
        "total": {"type": ["string", "number"], "description": "a decimal amount, e.g. \"42.50\""},
        "created_at": {"type": "string", "format": "date-time"},
        "utm": {"type": ["object", "null"], "additionalProperties": _STR}}},
    "DomainBody": {"type": "object", "required": ["domain"], "properties": {
        "domain": {"type": "string", "maxLength": 253}, "selector": {"type": "string", "maxLength": 63}}},
    "EventBody": {"type": "object", "required": ["type", "message_id"], "properties": {
        "type": {"type": "string", "enum": ["delivered", "bounce", "complaint"]},
        "message_id": {"type": ["string", "integer"]},
        "hard": {"type": "boolean"},
        "detail": {"type": "string"}}},
}

#: ``(method, path)`` -> the name of its body in :data:`SCHEMAS`.
BODIES: dict[tuple[str, str], str] = {
    ("post", "/customers"): "CustomersBody",
    ("post", "/segments"): "SegmentBody",
    ("patch", "/segments/{segment_id}"): "SegmentChanges",
    ("post", "/segments/count"): "RulesBody",
    ("post", "/templates"): "TemplateBody",
    ("patch", "/templates/{template_id}"): "TemplateChanges",
    ("post", "/mailings"): "MailingBody",
    ("patch", "/mailings/{mailing_id}"): "MailingChanges",
    ("post", "/mailings/{mailing_id}/steps"): "StepBody",
    ("post", "/mailings/{mailing_id}/test"): "TestSendBody",
    ("post", "/orders"): "OrderBody",
    ("post", "/domains"): "DomainBody",
    ("post", "/events"): "EventBody",
}

#: Reads that answer only for an object in a fitting state, and so may answer 409.
_STATEFUL_READS = ("/mailings/{mailing_id}/sms-parts", "/mailings/{mailing_id}/checklist")
#: Operations that look up an object named in their body or query (``segment_id``),
#: and so may answer 404.
_FINDS_BY_BODY = ("/events", "/customers", "/customers/export.csv")
#: Operations that change an object with a state, and so may answer 409.
_STATEFUL = ("/mailings", "/templates", "/segments", "/domains", "/orders", "/quota", "/customers",
             "/users", "/test-addresses", "/media")

_DESCRIPTIONS = {
    400: "The body is not valid JSON.",
    401: "No token, or a token that is not valid.",
    403: "The token's role may not do this.",
    404: "There is no such object.",
    409: "The object's state does not allow this now.",
    413: "The body is larger than allowed.",
    415: "The body is not JSON and was not declared as JSON.",
    422: "A parameter or field is not valid; field names it.",
    429: "Too many requests; try again later.",
    500: "Something went wrong on our side; the message has a reference that is logged.",
    503: "The database cannot serve right now (unreachable, busy, or its disk is full); nothing "
         "was applied. Try again after Retry-After seconds.",
}


def _error(status: int) -> dict[str, Any]:
    return {"description": _DESCRIPTIONS[status],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def document(app: FastAPI) -> dict[str, Any]:
    """The completed OpenAPI document of ``app`` (built once, then cached)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description,
                         routes=app.routes)
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {}).update(SCHEMAS)
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    for path, item in schema.get("paths", {}).items():
        if not path.startswith(API_PREFIX):
            continue
        short = path.removeprefix(API_PREFIX)
        for method, operation in item.items():
            operation["security"] = [{"bearer": []}]
            body = BODIES.get((method, short))
            if body is not None:
                operation["requestBody"] = {"required": True, "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}}}
            if short.endswith("/import"):
                operation["requestBody"] = {"required": True, "content": {
                    "text/csv": {"schema": {"type": "string"}}}}
            codes = {401, 403, 422, 429, 500, 503}
            if "{" in short or short in _FINDS_BY_BODY:
                codes.add(404)
            if "requestBody" in operation:
                codes |= {400, 413, 415}
            if method in ("post", "patch", "delete") and short.startswith(_STATEFUL) \
                    or short in _STATEFUL_READS:
                codes.add(409)
            responses = operation.setdefault("responses", {})
            for code in sorted(codes):
                responses[str(code)] = _error(code)
    app.openapi_schema = schema
    return schema
