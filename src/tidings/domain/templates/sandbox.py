"""The Jinja sandbox every template field is compiled and rendered in.

Guarantees:

- templates run in Jinja's immutable sandbox: they cannot change what they
  are given, and an unsafe access raises
  ``InvalidInput(code="unsafe_template")`` at once instead of rendering empty;
- :func:`compile_field` refuses, before anything runs, ``include``/``extends``
  /``import`` and any name starting with ``_`` (as attribute, constant
  subscript or argument of the ``attr`` filter) with
  ``InvalidInput(code="unsafe_template")`` naming the field and the line, a
  field longer than :data:`~.budget.MAX_SOURCE` characters with
  ``InvalidInput(code="template_too_large")``, and turns a syntax error into
  :class:`~tidings.errors.TemplateSyntaxError` naming the field and the line;
- nothing of a template runs while it is compiled: Jinja's constant folding
  is off (the optimizer, and every filter and test asks for the render's
  context, which a constant cannot have), so ``{{ 'x'|center(10**9) }}`` costs
  nothing to save;
- while it renders, every loop round, call, filter, test, operation,
  comparison, concatenation, slice and output is charged to the render's
  :class:`~.budget.Budget` (see :mod:`.budget` for the limits), and going over
  raises :class:`~.budget.TemplateTooCostly`;
- ``**`` refuses an exponent larger than :data:`MAX_EXPONENT`; ``range``
  refuses more than :data:`MAX_RANGE` numbers; ``lipsum`` does not exist;
- a missing variable, key or attribute and ``None`` render as an empty
  string; on a plain dict a key wins over a method of the same name.

:data:`HTML_ENV` autoescapes (the ``html`` field), :data:`TEXT_ENV` does not
(subject, text, SMS). Their globals (``range``, ``dict``, ``namespace``,
``cycler``, ``joiner``) are :data:`GLOBALS`, which a renderer puts into the
context itself.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from typing import Any, cast

import jinja2
from jinja2 import ChainableUndefined, nodes, pass_context
from jinja2.runtime import Context, LoopContext, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from tidings.domain.templates.budget import (
    MAX_INT_BITS,
    MAX_SOURCE,
    MAX_VALUE,
    TemplateTooCostly,
    charge,
    current,
    format_size,
    percent_format_size,
    weight,
)
from tidings.errors import InvalidInput, TemplateSyntaxError

__all__ = ["GLOBALS", "HTML_ENV", "MAX_EXPONENT", "MAX_RANGE", "TEXT_ENV", "compile_field"]

#: Largest exponent of ``**``, and most numbers one ``range()`` may give.
MAX_EXPONENT = 100
MAX_RANGE = 100_000

# -------------------------------------------------------------------- checks


def _refuse(reason: str) -> TemplateTooCostly:
    return TemplateTooCostly(reason)


def _check_numbers(values: Any) -> None:
    """Integer arguments (widths, counts) no larger than :data:`MAX_VALUE`."""
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_VALUE:
            raise _refuse(f"it passes the number {value:,} where at most {MAX_VALUE:,} is allowed"
                          if abs(value) < 10**30 else "it passes a number that is far too large")


def _check_weights(values: Any) -> None:
    for value in values:
        if weight(value) > MAX_VALUE:
            raise _refuse(f"it works on a value of more than {MAX_VALUE:,} characters or items")


def _charge_result(result: Any) -> Any:
    """Charge a value just built (and refuse it if too large)."""
    if isinstance(result, str | bytes | list | tuple | dict | set | frozenset):
        charge(built=weight(result))
    elif isinstance(result, int) and not isinstance(result, bool) and result.bit_length() > MAX_INT_BITS:
        raise _refuse(f"it computes a number of more than {MAX_INT_BITS:,} bits")
    return result


def _estimate(size: int) -> None:
    if size > MAX_VALUE:
        raise _refuse(f"it would build a text of about {size:,} characters, more than {MAX_VALUE:,}")


# -------------------------------------------------------------------- operators


def _check_binop(op: str, left: Any, right: Any) -> None:
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (left, right))
    if op == "**":
        if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
            raise InvalidInput("The exponent in the template is too large.", code="unsafe_template")
        if ints and right > 0 and left.bit_length() * right > MAX_INT_BITS:
            raise _refuse(f"it computes a number of more than {MAX_INT_BITS:,} bits")
    elif op == "*":
        if ints:
            if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise _refuse(f"it computes a number of more than {MAX_INT_BITS:,} bits")
            return
        for seq, times in ((left, right), (right, left)):
            if isinstance(times, int) and not isinstance(times, bool) and \
                    isinstance(seq, str | bytes | list | tuple):
                if times > 0 and weight(seq) * times > MAX_VALUE:
                    raise TemplateTooCostly("it repeats a text or list to more than "
                                            f"{MAX_VALUE:,} characters or items")
    elif op == "+":
        if not ints and weight(left) + weight(right) > MAX_VALUE:
            raise _refuse(f"it joins values into more than {MAX_VALUE:,} characters or items")
    elif op == "%" and isinstance(left, str):
        _check_weights((right,))
        _estimate(percent_format_size(left, right))


_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "lteq": operator.le,
    "gt": operator.gt, "gteq": operator.ge,
    "in": lambda a, b: a in b, "notin": lambda a, b: a not in b,
}


def _compare(values: list[Any], ops: tuple[str, ...]) -> bool:
    """``values[0] ops[0] values[1] ops[1] ...`` as Jinja compares, each
    comparison charged (its cost grows with the smaller side, or the container)."""
    result: Any = True
    for op, left, right in zip(ops, values, values[1:], strict=False):
        charge()
        if op in ("in", "notin"):
            _check_weights((left, right))
        elif min(weight(left), weight(right)) > MAX_VALUE:
            raise _refuse(f"it compares values of more than {MAX_VALUE:,} characters or items")
        result = _COMPARE[op](left, right)
        if not result:
            return False
    return bool(result)


# -------------------------------------------------------------------- filters and tests

def _replace_size(s: Any, old: Any = "", new: Any = "", count: Any = None, *_: Any) -> int:
    text = str(s)
    times = text.count(str(old))
    if isinstance(count, int) and count >= 0:
        times = min(times, count)
    return len(text) + times * max(0, len(str(new)) - len(str(old)))


def _indent_size(s: Any, width: Any = 4, *_: Any, **__: Any) -> int:
    text = str(s)
    prefix = len(width) if isinstance(width, str) else width if isinstance(width, int) else 4
    return len(text) + (text.count("\n") + 1) * prefix


def _wordwrap_size(s: Any, width: Any = 79, break_long_words: Any = True, wrapstring: Any = None,
                   *_: Any, **__: Any) -> int:
    text = str(s)
    lines = len(text) // max(1, width if isinstance(width, int) else 1) + text.count("\n") + 1
    return len(text) + lines * len(str(wrapstring or "\n"))


def _join_size(value: Any, d: Any = "", *_: Any, **__: Any) -> int:
    items = value if isinstance(value, list | tuple) else []
    return sum(weight(item) for item in items) + len(str(d)) * max(0, len(items) - 1)


def _format_size(value: Any, *args: Any, **kwargs: Any) -> int:
    return percent_format_size(str(value), kwargs or args)


def _sum_size(value: Any, attribute: Any = None, start: Any = 0, **kwargs: Any) -> int:
    start = kwargs.get("start", start)
    if not isinstance(start, int | float):  # lists would be added quadratically
        raise InvalidInput("The sum filter adds numbers only.", code="template_render_error")
    return 0


#: Filters whose result size is known before they run: estimated and refused first.
_ESTIMATES: dict[str, Callable[..., int]] = {
    "replace": _replace_size, "indent": _indent_size, "wordwrap": _wordwrap_size,
    "join": _join_size, "format": _format_size, "sum": _sum_size,
}


def _guarded(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` (a filter or test) charged to the budget, with its arguments and
    result checked; it asks for the context, so Jinja never folds it as a constant."""
    passed = getattr(getattr(func, "jinja_pass_arg", None), "name", None)
    estimate = _ESTIMATES.get(name)

    @pass_context
    def guarded(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        charge()
        _check_numbers((*args, *kwargs.values()))
        if name == "join" and not isinstance(value, list | tuple):
            value = list(value)  # to measure it; a generator would be used up
        _check_weights((value, *args, *kwargs.values()))
        if estimate is not None:
            _estimate(estimate(value, *args, **kwargs))
        if passed == "context":
            result = func(context, value, *args, **kwargs)
        elif passed == "eval_context":
            result = func(context.eval_ctx, value, *args, **kwargs)
        elif passed == "environment":
            result = func(context.environment, value, *args, **kwargs)
        else:
            result = func(value, *args, **kwargs)
        return _charge_result(result)

    guarded.__name__ = guarded.__qualname__ = f"guarded_{name}"
    return guarded


def _counted(iterable: Any) -> Iterator[Any]:
    """The items of a loop, one step each (the clock is read every round)."""
    for item in iterable:
        charge(look_at_clock=True)
        yield item


@pass_context
def _loop(context: Context, iterable: Any) -> Iterator[Any]:
    return _counted(iterable)


@pass_context
def _concat(context: Context, values: list[Any]) -> str:
    """``a ~ b``: checked before the text is built."""
    charge()
    pieces = [value if isinstance(value, str) else str(value) for value in values]
    _check_weights(pieces)
    charge(built=sum(map(len, pieces)))
    return markup_join(pieces) if context.eval_ctx.autoescape else str_join(pieces)


@pass_context
def _slice(context: Context, value: Any, start: Any, stop: Any, step: Any) -> Any:
    charge()
    return _charge_result(value[start:stop:step])


@pass_context
def _compare_filter(context: Context, values: list[Any], ops: tuple[str, ...]) -> bool:
    return _compare(values, ops)


def _range(*args: int) -> range:
    """``range``, charged; at most :data:`MAX_RANGE` numbers."""
    charge()
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise TemplateTooCostly(f"it asks range() for {len(numbers):,} numbers; at most "
                                f"{MAX_RANGE:,} are allowed")
    return numbers


#: The filters our rewritten templates call (see :class:`_Meter`); not for authors.
#: Each asks for the context, so that none is ever folded as a constant.
_INTERNAL = {"tidings_loop": _loop, "tidings_concat": _concat, "tidings_slice": _slice,
             "tidings_compare": _compare_filter}


# -------------------------------------------------------------------- the environment


@pass_context
def _finalize(context: Context, value: Any) -> Any:
    # Every {{ ... }} passes here: charge it before it is turned into text.
    budget = current()
    if value is None:
        if budget is not None:
            budget.spend()
        return ""
    size = len(value) if type(value) is str else weight(value)
    if budget is not None:
        budget.spend(size)
    elif size > MAX_VALUE:
        charge(built=size)
    return value


def _concat_buffer(pieces: Any) -> str:
    """``environment.concat``: joins the buffers of ``{% set %}`` blocks, macros,
    calls and filter blocks; measured before the text is built."""
    pieces = list(pieces)
    charge(built=sum(map(len, pieces)))
    return "".join(pieces)


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus: dict keys before dict methods, unsafe access
    raises at once instead of rendering empty, and everything metered."""

    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
    concat = staticmethod(_concat_buffer)  # type: ignore[assignment]

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict:  # the context is plain dicts: avoid an AttributeError per lookup
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        raise InvalidInput(
            f"Templates cannot use {attribute!r} of {type(obj).__name__!r} objects.",
            code="unsafe_template",
        )

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        charge()
        _check_binop(operator, left, right)
        return _charge_result(super().call_binop(context, operator, left, right))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        charge()
        _check_numbers((*args, *kwargs.values()))
        owner = getattr(obj, "__self__", None)
        method = getattr(obj, "__name__", "")
        if isinstance(obj, LoopContext) and args:
            args = (_counted(args[0]), *args[1:])  # a recursive loop's inner items
        elif isinstance(owner, str | bytes):
            args = self._check_text_method(owner, method, args)
        return _charge_result(super().call(context, obj, *args, **kwargs))

    @staticmethod
    def _check_text_method(owner: str | bytes, method: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
        if method == "join" and args:
            items = list(args[0])
            _estimate(sum(weight(i) for i in items) + len(owner) * max(0, len(items) - 1))
            return (items, *args[1:])
        if method == "replace" and len(args) >= 2:
            _estimate(_replace_size(owner, *args))
        elif method == "expandtabs":
            size = args[0] if args and isinstance(args[0], int) else 8
            tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
            _estimate(len(owner) + tabs * size)
        elif method == "translate" and args and isinstance(args[0], dict):
            _estimate(len(owner) * max([1, *(weight(v) for v in args[0].values())]))
        return args

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        template: str = value.__self__
        is_map = value.__name__ == "format_map"

        def measured(*args: Any, **kwargs: Any) -> str:
            mapping = args[0] if is_map and args and isinstance(args[0], dict) else kwargs
            _check_weights((*args, *kwargs.values()))
            _estimate(format_size(template, () if is_map else args, mapping))
            return wrapper(*args, **kwargs)

        return measured


def _environment(*, autoescape: bool) -> _Sandbox:
    env = _Sandbox(
        autoescape=autoescape,
        undefined=ChainableUndefined,
        finalize=_finalize,
        keep_trailing_newline=True,
        optimized=False,
    )
    env.filters = {name: _guarded(name, f) for name, f in env.filters.items()} | _INTERNAL
    tests = cast(dict[str, Callable[..., Any]], env.tests)
    env.tests = {name: _guarded(name, test) for name, test in tests.items()}
    env.globals.pop("lipsum", None)
    env.globals["range"] = _range
    return env


HTML_ENV = _environment(autoescape=True)
TEXT_ENV = _environment(autoescape=False)
# Both environments have the same globals (range, dict, ...).
GLOBALS: dict[str, Any] = dict(TEXT_ENV.globals)
_REFUSED_NODES = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)


# -------------------------------------------------------------------- compiling


class _Meter(NodeTransformer):
    """Rewrites the parts of a template that Jinja runs without asking the
    environment (loops, ``~``, comparisons, slices) into calls of the
    :data:`_INTERNAL` filters, which charge the budget."""

    @staticmethod
    def _filter(node: nodes.Node, name: str, *args: nodes.Expr) -> nodes.Filter:
        return nodes.Filter(node, name, list(args), [], None, None, lineno=node.lineno)

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = self._filter(node.iter, "tidings_loop")
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return self._filter(nodes.List(node.nodes, lineno=node.lineno), "tidings_concat")

    def visit_Compare(self, node: nodes.Compare) -> nodes.Node:
        self.generic_visit(node)
        values = nodes.List([node.expr, *(o.expr for o in node.ops)], lineno=node.lineno)
        return self._filter(values, "tidings_compare", nodes.Const(tuple(o.op for o in node.ops)))

    def visit_Getitem(self, node: nodes.Getitem) -> nodes.Node:
        self.generic_visit(node)
        if not isinstance(node.arg, nodes.Slice):
            return node
        parts = (node.arg.start, node.arg.stop, node.arg.step)
        return self._filter(node.node, "tidings_slice",
                            *(p if p is not None else nodes.Const(None) for p in parts))


def _refuse_unsafe(ast: nodes.Template, field: str) -> None:
    for refused in ast.find_all(_REFUSED_NODES):
        raise InvalidInput(
            f"The {field} template cannot include, import or extend other templates (line {refused.lineno}).",
            code="unsafe_template",
            field=field,
        )
    for node in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        name: Any = None
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            name = node.arg.value
        elif isinstance(node, nodes.Filter) and node.name == "attr" and node.args:
            arg = node.args[0]
            name = arg.value if isinstance(arg, nodes.Const) else None
        if isinstance(name, str) and name.startswith("_"):
            raise InvalidInput(
                f"The {field} template uses {name!r} on line {node.lineno}; "
                "names starting with an underscore are not allowed.",
                code="unsafe_template",
                field=field,
            )


def compile_field(env: _Sandbox, source: str, field: str) -> jinja2.Template:
    """Parse, check, meter and compile one field; raise the contract's errors.
    Runs nothing of the template."""
    if len(source) > MAX_SOURCE:
        raise InvalidInput(
            f"The {field} template has {len(source):,} characters; at most {MAX_SOURCE:,} are allowed.",
            code="template_too_large", field=field)
    try:
        ast = env.parse(source)
        _refuse_unsafe(ast, field)
        metered = _Meter().visit(ast)
        metered.set_environment(env)
        return env.from_string(metered)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateSyntaxError(
            f"The {field} template has a syntax error on line {exc.lineno}: {exc.message}",
            line=exc.lineno,
            field=field,
        ) from exc
    except (ValueError, OverflowError, RecursionError) as exc:  # e.g. a 5,000-digit number
        raise InvalidInput(f"The {field} template cannot be compiled: {exc}",
                           code="template_syntax_error", field=field) from exc
