"""CSV imports of customers.

- :func:`import_csv` (``POST /customers/import``): the whole file at once;
  good lines are kept, bad ones reported by line number. An optional mapping
  says what columns mean (:mod:`tidings.domain.columns`).
- The import page's steps: :func:`preview` keeps the uploaded file in an
  import row and shows its first lines with the suggested meaning of each
  column; :func:`start` takes the mapping the person chose and imports in a
  background thread of the serving process, :data:`CHUNK` lines per
  transaction, recording progress that the page polls (:func:`status`).
  The file is kept until it is imported; one never started is deleted a day
  later (at the next preview).
  Each chunk is committed on its own: a file stopped half-way (a broken CSV
  line, the server restarting) keeps the lines before, and importing it again
  updates those customers, never duplicates them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from tidings.domain import columns
from tidings.domain.actors import Actor
from tidings.domain.csvfiles import BrokenCsv, CsvText, ErrorList, read_csv
from tidings.domain.customers import CustomerInput, customer_lines
from tidings.errors import Conflict, InvalidInput, NotFound, TidingsError
from tidings.services import audit
from tidings.services.context import Context
from tidings.services.customers import honour_erasures
from tidings.store import customers as store
from tidings.store import imports as import_store

#: Lines imported per transaction by a background import.
CHUNK = 1000
#: Lines upserted together by :func:`import_csv` (all in one transaction).
IMPORT_BATCH = 5000
#: Lines the preview shows.
PREVIEW_LINES = 5
#: A running import that has not moved for this long was stopped (the server restarted).
STALLED_AFTER = timedelta(minutes=2)
#: The largest file the import page keeps for a background import.
MAX_FILE = 100 * 1024 * 1024
#: A previewed file that was not imported within this time is deleted.
KEEP_UNSTARTED = timedelta(days=1)

log = logging.getLogger("tidings.imports")


def import_csv(ctx: Context, data: bytes, *, encoding: str | None = None,
               delimiter: str | None = None,
               mapping: Sequence[str] | Mapping[str, str] | None = None) -> dict[str, Any]:
    """Good lines are kept, bad lines are reported by number: the first
    :data:`~tidings.domain.csvfiles.MAX_ERRORS` of them, and when there are
    more, how many were left out in ``errors_omitted``. ``mapping`` is header
    -> target, or the API's ``HEADER=TARGET`` strings. The file is read a line
    at a time and upserted in batches of :data:`IMPORT_BATCH`, all in one
    transaction: a file that cannot be read to its end (``BrokenCsv``) imports
    nothing."""
    choices = mapping if mapping is None or isinstance(mapping, Mapping) \
        else columns.parse_choices(mapping)
    table = read_csv(data, what="customers", encoding=encoding, delimiter=delimiter)
    errors = ErrorList()
    created = total = 0
    now = ctx.now()

    def store_batch(conn: Any, batch: list[CustomerInput]) -> int:
        ids, made = store.upsert_many(conn, batch, now=now)
        honour_erasures(ctx, conn, batch, ids)
        return made

    with ctx.tx() as conn:
        batch: list[CustomerInput] = []
        for line, item in customer_lines(table, mapping=choices or None,
                                         region=ctx.settings.default_region):
            if isinstance(item, str):
                errors.add(line, item)
                continue
            batch.append(item)
            if len(batch) >= IMPORT_BATCH:
                created += store_batch(conn, batch)
                total, batch = total + len(batch), []
        if batch:
            created += store_batch(conn, batch)
            total += len(batch)
    return {
        "created": created,
        "updated": total - created,
        "errors": [{"line": line, "message": message} for line, message in errors.kept],
    } | ({"errors_omitted": errors.omitted} if errors.omitted else {})


# -- the import page: preview, mapping, a background import -------------------------------


def _lines(table: CsvText) -> int:
    """Physical lines of the file, read as it is decoded (never all of it at once)."""
    return sum(1 for _ in table.lines())


def preview(ctx: Context, data: bytes, *, filename: str | None, delimiter: str | None = None,
            encoding: str | None = None, actor: Actor) -> dict[str, Any]:
    """Keep an uploaded file and return its preview (:func:`status` with ``header``,
    ``rows``: the first :data:`PREVIEW_LINES` lines, and ``targets``: the
    suggested meaning of each column). Raises :class:`InvalidInput` for a file
    that cannot be read as CSV or is too large."""
    if len(data) > MAX_FILE:
        raise InvalidInput(f"The file is larger than {MAX_FILE // (1024 * 1024)} MB; split it "
                           "into smaller files.", field="file")
    table = read_csv(data, what="customers", encoding=encoding, delimiter=delimiter)
    records = table.records()
    header = next(records)[1]
    suggested = columns.suggested_targets(header)
    with ctx.tx() as conn:
        import_store.forget_unstarted(conn, before=ctx.now() - KEEP_UNSTARTED)
        import_id = import_store.insert(
            conn, data=data, filename=(filename or "")[:255] or None, encoding=table.encoding,
            delimiter=table.delimiter, mapping=dict(zip(header, suggested, strict=False)),
            total_lines=_lines(table), created_by=actor.name, now=ctx.now())
    return status(ctx, import_id)


def _header_and_rows(job: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    table = read_csv(job["data"], what="customers", encoding=job["encoding"],
                     delimiter=job["delimiter"])
    found: list[list[str]] = []
    try:
        for _, cells in table.records():
            found.append(cells)
            if len(found) > PREVIEW_LINES:
                break
    except BrokenCsv:
        pass  # the preview shows what could be read; the import reports the line
    return found[0], found[1:]


def status(ctx: Context, import_id: int) -> dict[str, Any]:
    """The import as the page shows it: ``{"id", "status" (previewed, running,
    done, failed, stalled), "filename", "total_lines", "done_lines", "percent",
    "created", "updated", "errors" [{"line", "message"}], "error_count",
    "failure"}``, and while previewed ``header``, ``rows`` and ``targets``."""
    with ctx.read() as conn:
        job = import_store.get(conn, import_id, with_data=True)
    if job is None:
        raise NotFound(f"There is no import {import_id}.", code="import_not_found",
                       manager_message="This import does not exist.")
    state = job["status"]
    if state == "running" and job["updated_at"] < ctx.now() - STALLED_AFTER:
        state = "stalled"
    total = max(1, job["total_lines"])
    percent = 100.0 if state == "done" else min(99.0, round(100 * job["done_lines"] / total, 1))
    data: dict[str, Any] = {
        "id": job["id"], "status": state, "filename": job["filename"],
        "total_lines": job["total_lines"], "done_lines": job["done_lines"], "percent": percent,
        "created": job["created"], "updated": job["updated"], "errors": job["errors"],
        "error_count": job["error_count"], "failure": job["failure"],
    }
    if state == "previewed" and job["data"] is not None:
        header, rows = _header_and_rows(job)
        data |= {"header": header, "rows": rows,
                 "targets": [job["mapping"].get(h, columns.IGNORE) for h in header]}
    return data


def start(ctx: Context, import_id: int, choices: Mapping[str, str], *, actor: Actor,
          background: bool = True) -> dict[str, Any]:
    """Import the previewed file with ``choices`` (header -> target), in a
    background thread (or at once, ``background=False``). Raises
    :class:`InvalidInput` for a mapping that does not fit (``field`` ``map``),
    ``Conflict`` if it was started already."""
    with ctx.read() as conn:
        job = import_store.get(conn, import_id, with_data=True)
    if job is None or job["data"] is None:
        raise NotFound(f"There is no import {import_id} waiting to start.",
                       code="import_not_found", manager_message="This import has no file waiting.")
    header, _ = _header_and_rows(job)
    columns.targets(header, choices)
    with ctx.tx() as conn:
        if not import_store.start(conn, import_id, mapping=dict(choices), now=ctx.now()):
            raise Conflict("This import has started already.", code="import_started")
        audit.record(conn, actor, "customer.import", f"import {import_id} "
                     f"“{job['filename'] or 'a file'}”", {"lines": job["total_lines"]})
    if background:
        threading.Thread(target=run, args=(ctx, import_id), name=f"tidings-import-{import_id}",
                         daemon=True).start()
    else:
        run(ctx, import_id)
    return status(ctx, import_id)


def run(ctx: Context, import_id: int) -> None:
    """Import a started file, :data:`CHUNK` lines a transaction. Never raises: a
    failure is recorded on the import."""
    try:
        _run(ctx, import_id)
    except Exception as exc:  # the page must say it stopped, whatever stopped it
        log.exception("import %s failed", import_id)
        text = exc.message if isinstance(exc, TidingsError) else f"Internal error: {exc}"
        with ctx.tx() as conn:
            import_store.finish(conn, import_id, status="failed", failure=text, now=ctx.now())


def _run(ctx: Context, import_id: int) -> None:
    with ctx.read() as conn:
        job = import_store.get(conn, import_id, with_data=True)
    assert job is not None and job["status"] == "running"
    table = read_csv(job["data"], what="customers", encoding=job["encoding"],
                     delimiter=job["delimiter"])
    items: list[CustomerInput] = []
    errors: list[dict[str, Any]] = []
    try:
        for line, item in customer_lines(table, mapping=job["mapping"],
                                         region=ctx.settings.default_region):
            if isinstance(item, CustomerInput):
                items.append(item)
            else:
                errors.append({"line": line, "message": item})
            if len(items) + len(errors) >= CHUNK:
                _write(ctx, import_id, items, errors, line)
                items, errors = [], []
    except BrokenCsv as exc:
        _write(ctx, import_id, items, errors, exc.line - 1)
        with ctx.tx() as conn:
            import_store.finish(conn, import_id, status="failed", now=ctx.now(),
                                failure=f"{exc.message} The lines before it were imported.")
        return
    _write(ctx, import_id, items, errors, job["total_lines"])
    with ctx.tx() as conn:
        import_store.finish(conn, import_id, status="done", now=ctx.now())


def _write(ctx: Context, import_id: int, items: list[CustomerInput],
           errors: list[dict[str, Any]], line: int) -> None:
    with ctx.tx() as conn:
        ids, created = store.upsert_many(conn, items, now=ctx.now()) if items else ([], 0)
        honour_erasures(ctx, conn, items, ids)
        import_store.progress(conn, import_id, done_lines=line, created=created,
                              updated=len(items) - created, errors=errors, now=ctx.now())
