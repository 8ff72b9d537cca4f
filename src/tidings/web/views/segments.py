"""Segments: the list with audience sizes, the rule builder, the live count."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tidings.errors import InvalidInput, TidingsError
from tidings.services import audience
from tidings.services.context import Context
from tidings.web import rules_form
from tidings.web.routing import Form, Who, field_errors, flash, redirect, render
from tidings.web.rules_form import Builder, Row
from tidings.web.wording import say


def _page(request: Request, *, segment: dict[str, Any] | None, name: str, builder: Builder,
          errors: dict[str, str], status: int = 200) -> Response:
    return render(request, "segment.html", status_code=status, segment=segment, name=name,
                  builder=builder, errors=errors, fields=rules_form.FIELD_LABELS,
                  operators=rules_form.OPERATORS, matches=rules_form.MATCHES,
                  new_id=lambda: uuid.uuid4().hex[:8])


def add_routes(r: APIRouter, ctx: Context) -> None:
    def save(request: Request, form: Any, segment: dict[str, Any] | None) -> Response:
        builder, name = rules_form.from_form(form), str(form.get("name", ""))
        if form.get("add_row"):  # the no-JavaScript "Add condition" button
            builder = Builder(match=builder.match, rows=(*builder.rows, Row()), mode=builder.mode,
                              json_text=builder.json_text)
            return _page(request, segment=segment, name=name, builder=builder, errors={})
        try:
            data = {"name": name, "rules": rules_form.rules_of(builder)}
            if segment is None:
                saved = audience.create_segment(ctx, data)
            else:
                saved = audience.update_segment(ctx, segment["id"], data)
        except InvalidInput as exc:
            if exc.field and exc.field.startswith("rules"):
                return _page(request, segment=segment, name=name, status=422, errors={},
                             builder=builder.with_error(exc))
            return _page(request, segment=segment, name=name, builder=builder, status=422,
                         errors=field_errors(exc))
        flash(request, f"Segment {saved['name']} saved.")
        return redirect(f"/segments/{saved['id']}")

    @r.get("/segments")
    def segments_page(request: Request, actor: Who) -> Response:
        found = audience.list_segments(ctx)
        counts = {s["id"]: audience.count_segment(ctx, s["id"]) for s in found}
        return render(request, "segments.html", segments=found, counts=counts)

    @r.get("/segments/new")
    def new_segment(request: Request, actor: Who) -> Response:
        return _page(request, segment=None, name="", builder=Builder(rows=(Row(),)), errors={})

    @r.post("/segments/new")
    def create_segment(request: Request, actor: Who, form: Form) -> Response:
        return save(request, form, None)

    @r.get("/segments/row")
    def new_row(request: Request, actor: Who) -> Response:
        return render(request, "_rule_row.html", fragment=True, row=Row(),
                      row_id=uuid.uuid4().hex[:8], fields=rules_form.FIELD_LABELS,
                      operators=rules_form.OPERATORS)

    @r.post("/segments/count")
    def count(request: Request, actor: Who, form: Form) -> Response:
        try:
            counts = audience.count_rules(ctx, rules_form.rules_of(rules_form.from_form(form)))
        except TidingsError as exc:
            return render(request, "_segment_count.html", fragment=True, counts=None,
                          error=say(exc))
        return render(request, "_segment_count.html", fragment=True, counts=counts, error=None)

    @r.get("/segments/{segment_id}")
    def segment_page(request: Request, actor: Who, segment_id: int) -> Response:
        segment = audience.get_segment(ctx, segment_id)
        return _page(request, segment=segment, name=segment["name"],
                     builder=rules_form.from_rules(segment["rules"]), errors={})

    @r.post("/segments/{segment_id}")
    def update_segment(request: Request, actor: Who, segment_id: int, form: Form) -> Response:
        return save(request, form, audience.get_segment(ctx, segment_id))
