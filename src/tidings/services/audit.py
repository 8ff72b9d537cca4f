"""Who did what: a stand-in for the audit log with its ``record`` signature.

The audit log itself (a table, ``GET /api/v1/audit``, the Audit log page) is
built on another branch with this same :func:`record`; until it is merged,
entries go to the ``tidings.audit`` logger. Services call it through the
module (``audit.record(...)``) with the connection of their own transaction,
so the entry is written if and only if the change is.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tidings.domain.actors import Actor

log = logging.getLogger("tidings.audit")


def record(conn: sa.Connection, actor: Actor, action: str, subject: str,
           detail: dict[str, Any] | None = None, *, at: datetime | None = None) -> None:
    """``actor`` did ``action`` (a ``noun.verb`` code) to ``subject`` (a few
    words), with ``detail`` (a small JSON object without personal data)."""
    log.info("%s (%s) %s %s %s", actor.name, actor.role, action, subject,
             json.dumps(detail or {}, sort_keys=True))
