"""The reputation verdict: too many bounces or spam complaints stop a mailing.

One formula for the guard that interrupts a mailing (worker and feedback) and
for a sending domain's health:

- bounce rate = (refused at SMTP time + hard bounced later) / handed to the
  server (sent + refused);
- complaint rate = complaints / sent.

:func:`verdict` judges a mailing's window once at least ``min_sample``
messages were handed over. Pure: standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Limits:
    max_bounce_rate: float
    max_complaint_rate: float
    min_sample: int


@dataclass(frozen=True, kw_only=True)
class Counts:
    """Messages in a window: ``sent`` and ``failed`` (refused) at SMTP time,
    ``bounced`` (hard bounces reported later, of messages not refused at
    SMTP time) and ``complained``."""

    sent: int = 0
    failed: int = 0
    bounced: int = 0
    complained: int = 0

    @property
    def handed(self) -> int:
        return self.sent + self.failed

    @property
    def bounce_rate(self) -> float | None:
        """None when nothing was handed to the server."""
        return (self.failed + self.bounced) / self.handed if self.handed else None

    @property
    def complaint_rate(self) -> float | None:
        return self.complained / self.sent if self.sent else None


def verdict(counts: Counts, limits: Limits) -> str | None:
    """Why the mailing must stop (a sentence for the manager), or None."""
    if counts.handed < limits.min_sample:
        return None
    bounce_rate = counts.bounce_rate or 0.0
    if bounce_rate > limits.max_bounce_rate:
        return (f"{bounce_rate:.1%} of {counts.handed} messages bounced or were refused (limit "
                f"{limits.max_bounce_rate:.1%}). Check the list's quality before an admin resumes it.")
    complaint_rate = counts.complained / max(1, counts.sent)
    if complaint_rate > limits.max_complaint_rate:
        return (f"{complaint_rate:.2%} of recipients complained of spam (limit "
                f"{limits.max_complaint_rate:.2%}). Check consent before an admin resumes it.")
    return None
