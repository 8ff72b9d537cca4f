"""Use cases: the only API that ``tidings.api``, ``tidings.web`` and ``tidings.cli`` call.

Each public function takes the :class:`~tidings.services.context.Context`
first, owns its transaction (``with ctx.tx() as conn``) and returns plain
dicts shaped like the contract's JSON.
"""
