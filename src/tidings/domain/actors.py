"""Who acts: a person signed in to the web UI, or an API token, with a role.

Roles: ``admin`` (everything, including quota top-ups, people and tokens, and
resuming a mailing stopped for its reputation) and ``manager``. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from tidings.errors import Forbidden

ROLES = ("admin", "manager")


@dataclass(frozen=True, kw_only=True)
class Actor:
    """``name`` says who in the audit log: a person's email, ``API token “NAME” (#ID)``,
    ``TIDINGS_ADMIN_TOKEN``, ``command line (USER)`` or ``system``; ``user_id`` is
    the person's id when a person signed in."""

    name: str
    role: str
    user_id: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden("Only an admin may do this.")


SYSTEM = Actor(name="system", role="admin")


