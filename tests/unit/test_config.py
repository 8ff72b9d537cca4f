"""Settings: the public URL follows the address serve listens on unless it is given."""

from __future__ import annotations

import socket

import pytest
from pydantic import ValidationError

from tidings.config import DEFAULT_PUBLIC_URL, Settings, address_url


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_an_unset_public_url_follows_the_address_listened_on(monkeypatch):
    monkeypatch.delenv("TIDINGS_PUBLIC_URL", raising=False)
    unset = settings()
    assert not unset.public_url_given and unset.public_url == DEFAULT_PUBLIC_URL
    assert unset.listening_on("127.0.0.1", 8601).public_url == "http://127.0.0.1:8601"
    assert unset.listening_on("::1", 8601).public_url == "http://[::1]:8601"
    assert unset.listening_on("localhost", 9000).public_url == "http://localhost:9000"


def test_a_given_public_url_wins_and_loses_its_trailing_slash(monkeypatch):
    monkeypatch.setenv("TIDINGS_PUBLIC_URL", "https://news.shop.example/")
    given = settings()
    assert given.public_url_given
    assert given.listening_on("127.0.0.1", 8601).public_url == "https://news.shop.example"


def test_every_address_stands_for_the_machine_name(monkeypatch):
    monkeypatch.setattr(socket, "getfqdn", lambda: "mail.shop.example")
    assert address_url("0.0.0.0", 8000) == "http://mail.shop.example:8000"
    assert address_url("::", 8000) == "http://mail.shop.example:8000"
    monkeypatch.setattr(socket, "getfqdn", lambda: "localhost")
    assert address_url("0.0.0.0", 8000) == "http://127.0.0.1:8000"


@pytest.mark.parametrize("value", ["news.shop.example", "ftp://shop.example", "http://"])
def test_a_public_url_that_is_no_web_address_is_refused(value):
    with pytest.raises(ValidationError, match="must be the http:// or https:// address"):
        settings(public_url=value)
