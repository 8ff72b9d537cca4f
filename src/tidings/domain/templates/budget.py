"""What rendering one message may cost: the rendering budget.

A template is code a manager writes, and it runs once per recipient: one
template must not be able to hold a worker, a preview or the server's memory.
Every render (one message: its subject, HTML and text together) gets a
:class:`Budget`, and the sandbox (:mod:`.sandbox`) charges it as the template
runs:

- **steps**: each loop round, call, filter, test, arithmetic operation and
  concatenation is a step; at most :data:`MAX_STEPS`;
- **time**: the render stops after :data:`MAX_SECONDS` of wall-clock time,
  checked at every loop round and every few other steps;
- **values**: no expression may build a text longer than :data:`MAX_VALUE`
  characters or a list, tuple or dict of more than :data:`MAX_VALUE` items
  (nested ones counted in, by :func:`weight`); operations whose result size is
  known beforehand (``*``, ``+``, ``~``, ``center``, ``indent``, ``replace``,
  ``join``, ``format``, ``%``, ``ljust``, ``expandtabs``, ...) are refused
  *before* they run, the others are checked right after;
- **building**: all the text and items built during one render, output
  included, add up to at most :data:`MAX_BUILT`;
- **output**: a rendered field is at most :data:`MAX_OUTPUT` characters,
  counted as it streams, so rendering stops as soon as it is exceeded;
- **numbers**: an integer argument larger than :data:`MAX_VALUE` is refused
  (``'x'.ljust(10**9)``), and integer arithmetic stops at
  :data:`MAX_INT_BITS` bits.

Going over any of these raises :class:`TemplateTooCostly`, an
:class:`~tidings.errors.InvalidInput` with code ``template_too_costly``; the
compiled templates (:mod:`.compiled`) add the field and say which limit.

Pure: standard library only.
"""

from __future__ import annotations

import re
import string
import time
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field

from tidings.errors import InvalidInput

__all__ = [
    "MAX_BUILT",
    "MAX_INT_BITS",
    "MAX_OUTPUT",
    "MAX_SECONDS",
    "MAX_SOURCE",
    "MAX_STEPS",
    "MAX_VALUE",
    "Budget",
    "TemplateTooCostly",
    "activate",
    "charge",
    "current",
    "deactivate",
    "format_size",
    "percent_format_size",
    "weight",
]

#: Loop rounds, calls, filters, operations per message.
MAX_STEPS = 100_000
#: Wall-clock seconds one message's render may take.
MAX_SECONDS = 2.0
#: Characters of one rendered field (subject, HTML, text).
MAX_OUTPUT = 1_000_000
#: Characters of one text, or items of one list or dict, an expression may build.
MAX_VALUE = 1_000_000
#: Characters and items built in one message's render, output included.
MAX_BUILT = 5_000_000
#: Bits of an integer a template may compute.
MAX_INT_BITS = 4_096
#: Characters of one template field's source (subject, HTML, text).
MAX_SOURCE = 500_000

#: Every how many steps the clock is read (loop rounds always read it).
_CLOCK_EVERY = 64


class TemplateTooCostly(InvalidInput):
    """The template needs more work or memory than one message may use."""

    code = "template_too_costly"

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        #: What went over its limit, as a clause ("it loops or calls more than ...").
        self.reason = reason
        where = f"The {field} template" if field else "The template"
        super().__init__(
            f"{where} is too costly to render for one message: {reason}. "
            "Loop over fewer items and build less text.",
            field=field,
        )

    def for_field(self, field: str) -> TemplateTooCostly:
        """The same error naming ``field``."""
        return TemplateTooCostly(self.reason, field=field)


@dataclass
class Budget:
    """What is left of one render's allowance; :func:`charge` spends it."""

    steps: int = MAX_STEPS
    built: int = MAX_BUILT
    seconds: float = MAX_SECONDS
    clock: Callable[[], float] = time.monotonic
    deadline: float = field(init=False)

    def __post_init__(self) -> None:
        self.deadline = self.clock() + self.seconds

    def spend(self, built: int = 0, look_at_clock: bool = False) -> None:
        """One step and ``built`` characters or items; raises
        :class:`TemplateTooCostly` past any limit. The fast path is one test."""
        steps = self.steps = self.steps - 1
        left = self.built = self.built - built
        if look_at_clock or not steps % _CLOCK_EVERY or left < 0 or steps < 0 or built > MAX_VALUE:
            self._check(built)

    def _check(self, built: int) -> None:
        if self.steps < 0:
            raise TemplateTooCostly(f"it loops, calls or computes more than {MAX_STEPS:,} times")
        if built > MAX_VALUE:
            raise TemplateTooCostly(f"it builds a text or list of more than {MAX_VALUE:,} characters "
                                    "or items")
        if self.built < 0:
            raise TemplateTooCostly(f"it builds more than {MAX_BUILT:,} characters in all")
        if self.clock() > self.deadline:
            raise TemplateTooCostly(f"it takes more than {self.seconds:g} seconds")


_CURRENT: ContextVar[Budget | None] = ContextVar("tidings_template_budget", default=None)
_OUTSIDE_A_RENDER = Budget(steps=1 << 62, built=1 << 62, seconds=1e9)


def current() -> Budget | None:
    """The budget of the render running in this thread, if any."""
    return _CURRENT.get()


def activate(budget: Budget | None) -> object:
    """Make ``budget`` the current one; returns a token for :func:`deactivate`."""
    return _CURRENT.set(budget)


def deactivate(token: object) -> None:
    _CURRENT.reset(token)  # type: ignore[arg-type]


def charge(*, built: int = 0, look_at_clock: bool = False) -> None:
    """One step and ``built`` characters or items from the current budget;
    only the value limit applies when no render is running (e.g. compiling)."""
    budget = _CURRENT.get()
    if budget is None:
        if built > MAX_VALUE:
            _OUTSIDE_A_RENDER._check(built)
        return
    budget.spend(built, look_at_clock)


_SIZED = (str, bytes, bytearray)
_CONTAINERS = (list, tuple, dict, set, frozenset)


def weight(value: object, limit: int = MAX_VALUE) -> int:
    """The size of ``value``: characters of a text, items of a container plus
    the weight of what they hold (a shared item counts each time it is held,
    as ``str()`` would print it each time). Stops counting once past ``limit``
    (so it costs at most about ``limit`` steps) and returns what it counted."""
    if isinstance(value, _SIZED):
        return len(value)
    if not isinstance(value, _CONTAINERS):
        return _scalar_weight(value)
    total = 0
    todo: list[object] = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, _SIZED):
            total += len(item)
        elif isinstance(item, dict):
            total += len(item)
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, _CONTAINERS):
            total += len(item)
            todo.extend(item)  # type: ignore[arg-type]
        else:
            total += _scalar_weight(item)
        if total > limit:
            return total
        if len(todo) > limit:
            return limit + 1
    return total


def _scalar_weight(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return max(1, value.bit_length() // 3)  # about its number of digits
    return 1


def _largest_int(values: Iterable[object]) -> int:
    return max((abs(v) for v in values if isinstance(v, int) and not isinstance(v, bool)), default=0)


def _heaviest(values: Iterable[object]) -> int:
    return max((weight(v) for v in values), default=0)


def format_size(template: str, args: Iterable[object], kwargs: Mapping[str, object]) -> int:
    """An upper bound of the length of ``template.format(*args, **kwargs)``
    (``str.format``), before it runs; widths taken from the arguments
    (``{:{w}}``) count as large as the largest integer argument."""
    values = [*args, *kwargs.values()]
    fields = widest = 0
    for _, name, spec, _ in string.Formatter().parse(template):
        if name is None:
            continue
        fields += 1
        numbers = [int(n) for n in re.findall(r"[0-9]+", spec or "")]
        if spec and "{" in spec:
            numbers.append(_largest_int(values))
        widest = max(widest, *numbers, 0)
    return len(template) + fields * (widest + 4 * _heaviest(values) + 32)


_PERCENT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|[0-9]+)?(?:\.(\*|[0-9]+))?[hlL]?[a-zA-Z%]")


def percent_format_size(template: str, args: object) -> int:
    """An upper bound of the length of ``template % args`` (printf style), before it runs."""
    values: list[object]
    if isinstance(args, tuple):
        values = list(args)
    elif isinstance(args, Mapping):
        values = list(args.values())
    else:
        values = [args]
    fields = widest = 0
    for match in _PERCENT.finditer(template):
        fields += 1
        for number in match.groups():
            if number == "*":
                widest = max(widest, _largest_int(values))
            elif number:
                widest = max(widest, int(number))
    return len(template) + fields * (widest + 4 * _heaviest(values) + 32)
