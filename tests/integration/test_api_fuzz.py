"""The API fuzzed from its own OpenAPI document (schemathesis), in-process, on SQLite.

Every operation of ``/openapi.json`` gets :data:`EXAMPLES` generated requests
(a few bounded seconds in all), against a database with a customer, a
segment, templates and a mailing, so that ids and states exist. Each answer
must be:

- no server error (no 5xx);
- in the error envelope ``{"error": {"code", "message"}}`` whenever it is 4xx;
- a status the document declares for that operation, with the content type
  and a body matching the schema it declares.

SQLite is enough here: the database-specific refusals (NUL characters, names
over 255 characters, integers beyond 64 bits) are tested on both databases in
``test_hostile_input.py``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tidings.api.app import create_app
from tidings.config import Settings
from tidings.services import audience, mailings
from tidings.services import templates as template_service
from tidings.services.context import Context
from tidings.store.db import make_engine

#: Generated requests per operation and mode: about 35 operations, well under a minute in all
#: (``TIDINGS_FUZZ_EXAMPLES=1000`` for a longer hunt, not derandomized then).
EXAMPLES = int(os.environ.get("TIDINGS_FUZZ_EXAMPLES", "15"))
TOKEN = "fuzz-admin-token-of-more-than-thirty-two-characters"


@pytest.fixture
def fuzz_ctx(sqlite_template: Path, tmp_path: Path) -> Iterator[Context]:
    path = tmp_path / "fuzz.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    ctx = Context(settings=Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=url, smtp_url=f"file://{tmp_path / 'outbox'}",
        secret_key="fuzz-secret-key-of-more-than-thirty-two-characters", admin_token=TOKEN,
        public_url="http://tidings.test", require_verified_domain=False,
        dns_server="127.0.0.1:9"),  # a test send or a verification never leaves the machine
        engine=make_engine(url))
    customer = audience.upsert_customer(ctx, {"email": "ann@example.org", "first_name": "Ann"})
    segment = audience.create_segment(ctx, {"name": "All", "rules": {}})
    template = template_service.create_template(
        ctx, {"name": "T", "channel": "email", "subject": "Hi {{ customer.first_name }}",
              "html": "<p>Hello {{ customer.first_name }}</p>"})
    template_service.create_template(ctx, {"name": "S", "channel": "sms", "text": "Hi"})
    mailings.create(ctx, {"name": "M", "segment_id": segment["id"], "template_id": template["id"]})
    assert customer["id"] == 1
    yield ctx
    ctx.close()


def in_the_envelope(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx and 5xx answer is ``{"error": {"code", "message"}}``."""
    if response.status_code < 400:
        return None
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert isinstance(body["error"].get("code"), str) and isinstance(body["error"].get("message"), str)
    return True


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, in_the_envelope]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_answers_within_its_documented_schema(fuzz_ctx: Context, mode: Any) -> None:
    """Valid requests (positive) and requests that break the schema (negative)."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(fuzz_ctx))
    operations = [result.ok() for result in schema.get_all_operations()]
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 15, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS)

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - gather every operation's failure, then report
            failures.append(f"{operation.label}: {exc}"[:3000])

    assert len(operations) >= 30
    assert failures == []
