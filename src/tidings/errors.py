"""The one exception tree of Tidings.

Every error a caller can act on derives from :class:`TidingsError`; the API
maps ``status`` and ``code`` to the contract's envelope
``{"error": {"code", "message"}}``.

``message`` speaks the API's language (``send_at``, ``POST /api/v1/domains``).
Where that differs from what a manager sees in the web UI, the raiser also
gives ``manager_message``: the same error in the words of the page (a field's
label, the Domains page). The web UI shows :attr:`TidingsError.manager_message`
(which is ``message`` when none was given); the API never sends it.

    TidingsError
    ├── InvalidInput (422)            bad field, rule, template or CSV
    │   └── TemplateSyntaxError (422) names the line
    ├── NotFound (404)
    ├── Conflict (409)
    │   ├── IllegalTransition (409)   the state machine refuses the move
    │   └── MailingLocked (409)       editing after start or within 5 minutes of send_at
    ├── Unauthorized (401)
    ├── Forbidden (403)
    ├── RateLimited (429)             too many requests or attempts; says when to try again
    └── StoreUnavailable (503)        the database cannot be reached, is busy, or its disk is full

Transports raise none of these for one recipient's trouble: they return an
outcome per message (see :mod:`tidings.transports.base`).
"""

from __future__ import annotations


class TidingsError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str | None = None, *, code: str | None = None,
                 manager_message: str | None = None) -> None:
        self.message = message or (self.__doc__ or self.code).strip()
        #: The error as the web UI says it; ``message`` unless the raiser gave other words.
        self.manager_message = manager_message or self.message
        if code is not None:
            self.code = code
        super().__init__(self.message)


class InvalidInput(TidingsError):
    """The input is not valid."""

    status = 422
    code = "invalid_input"

    def __init__(
        self, message: str | None = None, *, code: str | None = None, field: str | None = None,
        manager_message: str | None = None,
    ) -> None:
        self.field = field
        super().__init__(message, code=code, manager_message=manager_message)


class TemplateSyntaxError(InvalidInput):
    """The template has a syntax error."""

    code = "template_syntax_error"

    def __init__(self, message: str, *, line: int | None, field: str | None = None,
                 manager_message: str | None = None) -> None:
        self.line = line
        super().__init__(message, field=field, manager_message=manager_message)


class NotFound(TidingsError):
    """The object does not exist."""

    status = 404
    code = "not_found"


class Conflict(TidingsError):
    """The request conflicts with the object's current state."""

    status = 409
    code = "conflict"


class IllegalTransition(Conflict):
    """The mailing cannot do that in its current status."""

    code = "illegal_transition"


class MailingLocked(Conflict):
    """The mailing cannot be edited now."""

    code = "mailing_locked"


class Unauthorized(TidingsError):
    """A valid token or session is required."""

    status = 401
    code = "unauthorized"


class Forbidden(TidingsError):
    """Your role does not allow this."""

    status = 403
    code = "forbidden"


class RateLimited(TidingsError):
    """Too many requests: try again later."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str | None = None, *, retry_after: float, code: str | None = None,
                 manager_message: str | None = None) -> None:
        #: Seconds until trying again can succeed (the ``Retry-After`` header, rounded up).
        self.retry_after = retry_after
        super().__init__(message, code=code, manager_message=manager_message)


class StoreUnavailable(TidingsError):
    """The database cannot be reached right now: try again in a moment."""

    status = 503
    code = "database_unavailable"

    def __init__(self, message: str | None = None, *, code: str | None = None,
                 manager_message: str | None = None, retry_after: float = 5) -> None:
        #: Seconds after which trying again may succeed (the ``Retry-After`` header).
        self.retry_after = retry_after
        super().__init__(message, code=code, manager_message=manager_message)
