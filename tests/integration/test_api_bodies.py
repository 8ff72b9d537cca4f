"""Bodies as people send them: ``curl -d`` declares a form, but the body is JSON."""

from __future__ import annotations

import pytest

FORM = "application/x-www-form-urlencoded"  # what curl -d declares


@pytest.mark.parametrize("declared", [FORM, None, "text/plain"])
def test_a_json_body_is_read_as_json_whatever_its_declared_type(make_ctx, api_for, declared):
    api = api_for(make_ctx())
    headers = {"Content-Type": declared} if declared else {}
    made = api.request("POST", "/customers", 201, content=b'{"email": "ann@example.org"}',
                       headers=headers).json()
    assert made["email"] == "ann@example.org"
    renamed = api.request("PATCH", "/segments/999", None,
                          content=b'{"name": "x"}', headers=headers)
    assert renamed.status_code == 404  # read as JSON, then the segment is not found


def test_a_body_that_is_not_json_gets_415_saying_what_to_send(make_ctx, api_for):
    api = api_for(make_ctx())
    refused = api.request("POST", "/customers", 415, content=b"email=ann@example.org",
                          headers={"Content-Type": FORM}).json()["error"]
    assert refused["code"] == "unsupported_media_type"
    assert "Content-Type: application/json" in refused["message"]
    assert api.ok("GET", "/customers?email=ann@example.org")["customers"] == []


def test_a_csv_upload_declared_as_a_form_is_still_imported(make_ctx, api_for):
    api = api_for(make_ctx())
    result = api.request("POST", "/customers/import", 200, content=b"email\nbob@example.org\n",
                         headers={"Content-Type": FORM}).json()
    assert result["created"] == 1


def test_an_action_without_a_body_needs_no_content_type(make_ctx, api_for):
    api = api_for(make_ctx())
    made = api.ok("POST", "/mailings", {"name": "M"}, status=201)
    copied = api.request("POST", f"/mailings/{made['id']}/copy", 201)
    assert copied.json()["status"] == "draft"
