"""CSV uploads (``POST /customers/import``, ``POST /orders/import``) share one
rule for the body, in ``tidings.api.dependencies.csv_body``."""

from __future__ import annotations

import pytest

UPLOADS = ["/customers/import", "/orders/import"]


@pytest.mark.parametrize("path", UPLOADS)
@pytest.mark.parametrize("blank", [b"", b" \r\n\n"])
def test_a_blank_csv_upload_is_refused_naming_the_body(make_ctx, api_for, path, blank):
    api = api_for(make_ctx())
    refused = api.request("POST", path, 422, content=blank,
                          headers={"Content-Type": "text/csv"}).json()["error"]
    assert refused == {"code": "invalid_input", "message": "The CSV body is empty.", "field": "body"}


@pytest.mark.parametrize("path", UPLOADS)
def test_a_csv_upload_without_a_token_is_refused_before_its_body_is_read(make_ctx, api_for, path):
    api = api_for(make_ctx())
    refused = api.client.post(f"/api/v1{path}", content=b"", headers={"Content-Type": "text/csv"})
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
