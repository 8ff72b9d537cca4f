"""Settings: the only module that reads the environment.

Every setting is ``TIDINGS_<NAME>`` in the environment; a ``.env`` file in the
working directory may add to it. See the README for the meaning of each.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tidings.domain.reputation import Limits


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TIDINGS_", env_file=".env", extra="ignore", frozen=True
    )

    database_url: str = "sqlite:///tidings.db"
    smtp_url: str = "file://outbox"
    smtp_connections: int = Field(default=8, ge=1, le=256)
    send_rate: float = Field(default=0, ge=0)
    package_size: int = Field(default=5000, ge=1)
    worker_lease: float = Field(default=60, gt=0)
    smtp_retry_for: float = Field(default=600, ge=0)
    smtp_timeout: float = Field(default=30, gt=0)
    admin_token: str | None = None
    secret_key: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    sms_url: str | None = None
    dns_server: str | None = None
    # What authorizes the sending host in the SPF record we advise: an IP address, a
    # relay's SPF domain, or SPF mechanisms; unset means "a mx" (see domain/domains.py).
    spf_include: str | None = None
    bounce_listen: str | None = None
    max_bounce_rate: float = Field(default=0.05, ge=0, le=1)
    max_complaint_rate: float = Field(default=0.003, ge=0, le=1)
    reputation_min_sample: int = Field(default=500, ge=1)
    require_verified_domain: bool = True
    soft_bounce_limit: int = Field(default=3, ge=1)
    # Messages handed to SMTP as one group: marked in flight together, recorded together.
    send_group: int = Field(default=200, ge=1)
    # Seconds between scheduler/worker polls when there is nothing to do.
    poll_interval: float = Field(default=1.0, gt=0)
    default_from_email: str = "shop@example.com"
    default_from_name: str = "Tidings demo shop"

    @property
    def reputation_limits(self) -> Limits:
        """The reputation guard's limits."""
        return Limits(max_bounce_rate=self.max_bounce_rate, max_complaint_rate=self.max_complaint_rate,
                      min_sample=self.reputation_min_sample)
