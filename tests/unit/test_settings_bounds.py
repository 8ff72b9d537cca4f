"""Every number of the settings has bounds, and a server's secrets a length."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tidings.config import MIN_SECRET_LENGTH, Settings


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize(("name", "value"), [
    ("package_size", 100_001), ("package_size", 0), ("send_group", 10_001), ("smtp_connections", 257),
    ("worker_lease", 0.5), ("worker_lease", 3601), ("smtp_retry_for", 8 * 24 * 3600),
    ("smtp_timeout", 601), ("send_rate", 10**7), ("poll_interval", 0), ("soft_bounce_limit", 101),
    ("reputation_min_sample", 10**8), ("max_json_bytes", 2**40), ("max_csv_bytes", 1024),
])
def test_a_number_outside_its_bounds_is_refused_naming_the_setting(name: str, value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        settings(**{name: value})

    assert caught.value.errors()[0]["loc"] == (name,)


def test_every_numeric_setting_has_an_upper_bound() -> None:
    unbounded = []
    for name, field in Settings.model_fields.items():
        if field.annotation in (int, float):
            limits = {type(m).__name__ for m in field.metadata}
            if not limits & {"Le", "Lt"}:
                unbounded.append(name)

    assert unbounded == []


def test_short_secrets_are_named_and_unset_or_long_ones_are_fine() -> None:
    weak = settings(admin_token="x", secret_key="y" * (MIN_SECRET_LENGTH - 1)).weak_secrets()

    assert [problem.split(" has ")[0] for problem in weak] == ["TIDINGS_ADMIN_TOKEN", "TIDINGS_SECRET_KEY"]
    assert settings().weak_secrets() == []
    assert settings(admin_token="t" * MIN_SECRET_LENGTH,
                    secret_key="s" * MIN_SECRET_LENGTH).weak_secrets() == []
