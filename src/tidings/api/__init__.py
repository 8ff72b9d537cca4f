"""The HTTP API (FastAPI): thin routes over :mod:`tidings.services`.

- :mod:`~tidings.api.app`: ``create_app``, which assembles everything below.
- :mod:`~tidings.api.dependencies`: the context, the bearer-token actor, body types.
- One router per resource under ``/api/v1`` (bearer token): :mod:`~tidings.api.customers`,
  :mod:`~tidings.api.segments`, :mod:`~tidings.api.templates`, :mod:`~tidings.api.quota`,
  :mod:`~tidings.api.mailings`, :mod:`~tidings.api.orders`, :mod:`~tidings.api.domains`,
  :mod:`~tidings.api.events`; each is a module-level ``router``.
- :mod:`~tidings.api.tracking`: the open pixel, clicks and unsubscribe pages (no login).
- :mod:`~tidings.api.errors` (the error envelope) and :mod:`~tidings.api.json_body`
  (a JSON body read as JSON whatever its declared ``Content-Type``).
"""
