"""Segments: the list with audience sizes, the rule builder with its live count,
copy and delete."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tidings.errors import Conflict, InvalidInput, TidingsError
from tidings.services import segments
from tidings.services.context import Context
from tidings.web import rules_form
from tidings.web.routing import Form, Who, field_errors, flash, redirect, render
from tidings.web.rules_form import Builder, Row
from tidings.web.wording import say


def add_routes(r: APIRouter, ctx: Context) -> None:
    def choices(rules: Any = None) -> dict[str, Any]:
        """What the rows offer: the attributes customers have, the mailings sent."""
        return {"attributes": segments.attributes_in_use(ctx),
                "mailings": segments.mailing_choices(ctx, also=rules_form.mailings_named(rules))}

    def page(request: Request, *, segment: dict[str, Any] | None, name: str, builder: Builder,
             errors: dict[str, str], status: int = 200, confirm: str = "",
             offered: dict[str, Any] | None = None) -> Response:
        offered = offered or choices(rules_form.rules_of(builder) if builder.mode == "builder"
                                     else None)
        views = [rules_form.view(row, **offered) for row in builder.rows]
        return render(request, "segment.html", status_code=status, segment=segment, name=name,
                      builder=builder, rows=views, errors=errors, matches=rules_form.MATCHES,
                      new_id=lambda: uuid.uuid4().hex[:8], confirm=confirm)

    def save(request: Request, form: Any, segment: dict[str, Any] | None) -> Response:
        builder, name = rules_form.from_form(form), str(form.get("name", ""))
        if form.get("add_row"):  # the no-JavaScript "Add condition" button
            builder = Builder(match=builder.match, rows=(*builder.rows, Row()), mode=builder.mode,
                              json_text=builder.json_text)
            return page(request, segment=segment, name=name, builder=builder, errors={})
        try:
            data = {"name": name, "rules": rules_form.rules_of(builder)}
            if segment is None:
                saved = segments.create_segment(ctx, data)
            else:
                saved = segments.update_segment(ctx, segment["id"], data)
        except InvalidInput as exc:
            if exc.field and exc.field.startswith("rules"):
                return page(request, segment=segment, name=name, status=422, errors={},
                            builder=builder.with_error(exc))
            return page(request, segment=segment, name=name, builder=builder, status=422,
                        errors=field_errors(exc))
        flash(request, f"Segment {saved['name']} saved.")
        return redirect(f"/segments/{saved['id']}")

    @r.get("/segments")
    def segments_page(request: Request, actor: Who) -> Response:
        found = segments.list_segments(ctx)
        counts = {s["id"]: segments.count_segment(ctx, s["id"]) for s in found}
        return render(request, "segments.html", segments=found, counts=counts)

    @r.get("/segments/new")
    def new_segment(request: Request, actor: Who) -> Response:
        return page(request, segment=None, name="", builder=Builder(rows=(Row(),)), errors={})

    @r.post("/segments/new")
    def create_segment(request: Request, actor: Who, form: Form) -> Response:
        return save(request, form, None)

    @r.get("/segments/row")
    def row(request: Request, actor: Who, row_id: str = "", negate: str = "",
            field: str = "email", key: str = "", op: str = "eq", value: str = "",
            kind: str = "") -> Response:
        """One condition, drawn for its field: a new one (Add condition), or one
        whose field or operator just changed (the controls follow the kind)."""
        offered = choices()
        changed = rules_form.adjusted(rules_form.row_of(
            {"negate": negate, "field": field, "key": key, "op": op, "value": value}),
            attributes=offered["attributes"])
        return render(request, "_rule_row.html", fragment=True,
                      view=rules_form.view(changed, **offered),
                      row_id=row_id if row_id.isalnum() else uuid.uuid4().hex[:8])

    @r.post("/segments/count")
    def count(request: Request, actor: Who, form: Form) -> Response:
        try:
            counts = segments.count_rules(ctx, rules_form.rules_of(rules_form.from_form(form)))
        except TidingsError as exc:
            return render(request, "_segment_count.html", fragment=True, counts=None,
                          error=say(exc))
        return render(request, "_segment_count.html", fragment=True, counts=counts, error=None)

    @r.get("/segments/{segment_id}")
    def segment_page(request: Request, actor: Who, segment_id: int, confirm: str = "") -> Response:
        segment = segments.get_segment(ctx, segment_id)
        offered = choices(segment["rules"])
        builder = rules_form.from_rules(segment["rules"], attributes=offered["attributes"])
        return page(request, segment=segment, name=segment["name"], builder=builder, errors={},
                    confirm=confirm, offered=offered)

    @r.post("/segments/{segment_id}")
    def update_segment(request: Request, actor: Who, segment_id: int, form: Form) -> Response:
        return save(request, form, segments.get_segment(ctx, segment_id))

    @r.post("/segments/{segment_id}/copy")
    def copy(request: Request, actor: Who, segment_id: int) -> Response:
        made = segments.copy_segment(ctx, segment_id)
        flash(request, f"This is a copy: {made['name']}. Rename it and change its rules.")
        return redirect(f"/segments/{made['id']}")

    @r.post("/segments/{segment_id}/delete")
    def delete(request: Request, actor: Who, segment_id: int) -> Response:
        segment = segments.get_segment(ctx, segment_id)
        try:
            segments.delete_segment(ctx, segment_id, actor=actor)
        except Conflict as exc:
            flash(request, say(exc), "error")
            return redirect(f"/segments/{segment_id}")
        flash(request, f"Segment {segment['name']} deleted.")
        return redirect("/segments")
