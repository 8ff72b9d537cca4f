"""Sandboxed message templates: compile once per mailing, render once per message.

:func:`compile_email` and :func:`compile_sms` do everything that does not
depend on the recipient, once: Jinja parsing and the safety check, CSS
inlining (``<style>`` rules become ``style=""`` attributes) and, when no text
part is given, deriving a personalised plain-text template from the HTML.
:meth:`CompiledEmail.render` then only runs the compiled templates and, when
asked, rewrites links for click tracking and adds the open pixel.

Templates use Jinja syntax in an immutable sandbox. The context is
``customer`` (a dict: ``customer.first_name``, ``customer.attributes.city``),
``unsubscribe_url`` and ``mailing``. A missing variable, key or attribute
renders as an empty string, and so does ``None``. Dict keys win over dict
methods (``customer.attributes.items`` is the attribute named ``items`` when
there is one).

Errors:

- a syntax error raises :class:`~tidings.errors.TemplateSyntaxError` naming
  the field (``subject``, ``html``, ``text``) and the line;
- names starting with ``_`` (``{{ ''.__class__ }}``), ``include``/``extends``
  /``import`` are refused at compile time with
  ``InvalidInput(code="unsafe_template")``; any unsafe access only discovered
  while rendering raises the same error;
- a field over 500,000 characters is refused at compile time with
  ``InvalidInput(code="template_too_large")``;
- a render that goes over its budget (loop rounds, calls, time, size of a
  value, of everything built and of a field's output: see :mod:`.budget`)
  raises ``InvalidInput(code="template_too_costly")`` naming the field, as
  soon as it does;
- any other failure while rendering (``{{ 1 / 0 }}``) raises
  ``InvalidInput(code="template_render_error")``.

Pure: standard library, ``jinja2``, ``css_inline`` and ``mjml``.

The package, one module a concern, each stating its guarantees:

- :mod:`.budget`: what one message's render may cost, and the error past it;
- :mod:`.sandbox`: the Jinja sandbox, the compile-time safety check, and the
  metering of everything a template does;
- :mod:`.protection`: hiding Jinja from css_inline and html.parser;
- :mod:`.text`: HTML to plain text (:func:`html_to_text`, and the derived
  text template);
- :mod:`.links`: link rewriting for click tracking, and the open pixel;
- :mod:`.utm`: :func:`merge_utm`;
- :mod:`.compiled`: :func:`compile_email`, :func:`compile_sms` and what they
  return, CSS inlining;
- :mod:`.records`: :class:`Template`, a stored template;
- :mod:`.blocks`: the email builder's document (block schema, limits,
  :func:`validate_blocks`); :mod:`.layout`: blocks to MJML to responsive
  HTML, and the preheader; :mod:`.starters`: the builder's starter layouts;
- :mod:`.variables`: what a template asks of the customer, and the warnings
  for unknown variables and a missing unsubscribe link.

Dependency order (a module imports only the ones on its right; no cycles)::

    budget, protection, text, utm,
    records, starters               <-  nothing of this package
    sandbox                         <-  budget
    links                           <-  protection
    variables                       <-  sandbox
    blocks                          <-  sandbox, protection
    layout                          <-  blocks, protection
    compiled                        <-  budget, sandbox, protection, text, links
    __init__                        <-  compiled, records, text, utm, blocks, layout,
                                        starters, variables

Import the public names from here; the modules are for this package.
"""

from tidings.domain.templates.blocks import BLOCK_NAMES, NETWORKS, validate_blocks
from tidings.domain.templates.compiled import (
    CompiledEmail,
    CompiledSms,
    RenderedEmail,
    compile_email,
    compile_sms,
)
from tidings.domain.templates.layout import blocks_to_html, blocks_to_mjml, with_preheader
from tidings.domain.templates.records import Template
from tidings.domain.templates.starters import STARTERS, Starter
from tidings.domain.templates.text import html_to_text
from tidings.domain.templates.utm import merge_utm
from tidings.domain.templates.variables import (
    CUSTOMER_FIELDS,
    TemplateWarning,
    has_unsubscribe_link,
    template_warnings,
)

__all__ = [
    "BLOCK_NAMES",
    "CUSTOMER_FIELDS",
    "NETWORKS",
    "STARTERS",
    "Starter",
    "TemplateWarning",
    "blocks_to_html",
    "blocks_to_mjml",
    "has_unsubscribe_link",
    "template_warnings",
    "validate_blocks",
    "with_preheader",
    "CompiledEmail",
    "CompiledSms",
    "RenderedEmail",
    "Template",
    "compile_email",
    "compile_sms",
    "html_to_text",
    "merge_utm",
]
