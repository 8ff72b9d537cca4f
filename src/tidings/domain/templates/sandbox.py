"""The Jinja sandbox every template field is compiled and rendered in.

Guarantees:

- templates run in Jinja's immutable sandbox: they cannot change what they
  are given, and an unsafe access raises
  ``InvalidInput(code="unsafe_template")`` at once instead of rendering empty;
- :func:`compile_field` refuses, before anything runs, ``include``/``extends``
  /``import`` and any name starting with ``_`` (as attribute, constant
  subscript or argument of the ``attr`` filter) with
  ``InvalidInput(code="unsafe_template")`` naming the field and the line, and
  turns a syntax error into :class:`~tidings.errors.TemplateSyntaxError`
  naming the field and the line;
- ``*`` cannot build a string or list longer than :data:`MAX_REPEAT`, and
  ``**`` refuses an exponent larger than :data:`MAX_EXPONENT`;
- a missing variable, key or attribute and ``None`` render as an empty
  string; on a plain dict a key wins over a method of the same name.

:data:`HTML_ENV` autoescapes (the ``html`` field), :data:`TEXT_ENV` does not
(subject, text, SMS). Their default globals (``range``, ``dict``, ...) are
:data:`GLOBALS`, which a renderer puts into the context itself.
"""

from __future__ import annotations

from typing import Any

import jinja2
from jinja2 import ChainableUndefined, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tidings.errors import InvalidInput, TemplateSyntaxError

__all__ = ["GLOBALS", "HTML_ENV", "MAX_EXPONENT", "MAX_REPEAT", "TEXT_ENV", "compile_field"]

#: Largest string or list a template may build with ``*``, and largest exponent.
MAX_REPEAT = 100_000
MAX_EXPONENT = 100


def _finalize(value: Any) -> Any:
    return "" if value is None else value


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus: dict keys before dict methods, unsafe access
    raises at once instead of rendering empty, and no giant ``'x' * 10**9``."""

    intercepted_binops = frozenset({"*", "**"})

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

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
            raise InvalidInput("The exponent in the template is too large.", code="unsafe_template")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(times, int)
                    and len(seq) * times > MAX_REPEAT
                ):
                    raise InvalidInput(
                        "The template repeats a text or list too often.", code="unsafe_template"
                    )
        return super().call_binop(context, operator, left, right)


def _environment(*, autoescape: bool) -> _Sandbox:
    return _Sandbox(
        autoescape=autoescape,
        undefined=ChainableUndefined,
        finalize=_finalize,
        keep_trailing_newline=True,
    )


HTML_ENV = _environment(autoescape=True)
TEXT_ENV = _environment(autoescape=False)
# Both environments have the same default globals (range, dict, ...).
GLOBALS: dict[str, Any] = dict(TEXT_ENV.globals)
_REFUSED_NODES = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)


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
    """Parse, check and compile one field; raise the contract's errors."""
    try:
        ast = env.parse(source)
        _refuse_unsafe(ast, field)
        return env.from_string(ast)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateSyntaxError(
            f"The {field} template has a syntax error on line {exc.lineno}: {exc.message}",
            line=exc.lineno,
            field=field,
        ) from exc

