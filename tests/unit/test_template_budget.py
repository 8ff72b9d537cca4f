"""The rendering budget: no template can hold a worker, a preview or the memory.

The hostile templates run in a child process under an address-space and a
CPU limit (``tests/limits.py``): a regression fails the test there instead of
taking the machine's memory. The budget's edges are checked in-process with
templates that stay small whichever way they go.
"""

from __future__ import annotations

from typing import Any

import pytest
from jinja2 import pass_context

from tests.limits import run_python
from tests.unit.test_worker import Clock, make
from tidings.domain.mailings import InterruptCode, MailingStatus
from tidings.domain.messages import MessageStatus
from tidings.domain.templates import compile_email, compile_sms, sandbox
from tidings.domain.templates.budget import MAX_OUTPUT, MAX_SOURCE, MAX_STEPS, MAX_VALUE, Budget, weight
from tidings.errors import InvalidInput
from tidings.testing import InMemoryStore, RecordingTransport

CHILD = r"""
import json, sys, time
from tidings.domain.templates import compile_email
from tidings.errors import InvalidInput

context = {"customer": {"first_name": "Ann", "attributes": {}}, "unsubscribe_url": "u",
           "mailing": {"id": 1, "name": "m"}}
results = []
for source in json.load(sys.stdin):
    start = time.monotonic()
    code = field = None
    compiled_in = None
    try:
        compiled = compile_email(subject="Hi", html=source, text="plain")
        compiled_in = time.monotonic() - start
        compiled.render(context)
        code = "rendered"
    except InvalidInput as exc:
        code, field = exc.code, exc.field
    except BaseException as exc:
        code = type(exc).__name__
    results.append({"code": code, "field": field, "compile": compiled_in,
                    "seconds": time.monotonic() - start})
# VmHWM, not ru_maxrss: ru_maxrss outlives exec, so it would count the forking test
# process's own size (half a gigabyte late in a full run); VmHWM starts anew at exec.
with open("/proc/self/status") as status:
    peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
print(json.dumps({"results": results, "peak_mb": peak}))
"""

#: Templates that took a whole server down (issue 14) and their cousins.
HOSTILE = [
    "{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{{ lipsum(n=10000000) }}",
    "{{ 'x'|center(10**9) }}",
    "{{ 'x'|center(1000000000) }}",
    "{{ 'x'|indent(1000000000, true) }}",
    "{{ ('a\n' * 100000)|indent('y' * 100000) }}",
    "{{ '%01000000000d'|format(1) }}",
    "{{ '%0*d' % (1000000000, 1) }}",
    "{{ ('x' * 100000)|replace('x', 'y' * 100000) }}",
    "{{ ('x' * 100000)|wordwrap(1, wrapstring='y' * 100000) }}",
    "{{ ('x' * 100000)|truncate(1000000000) }}",
    "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
    "{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l * 2 %}{% endfor %}",
    "{% set s %}{% for i in range(100000) %}" + "y" * 50_000 + "{% endfor %}{% endset %}{{ s }}",
    "{% macro m() %}{% for i in range(1000) %}" + "z" * 10_000 + "{% endfor %}{% endmacro %}{{ m() }}",
    "{{ '{:>1000000000}'.format(1) }}",
    "{% for i in range(100) %}{{ '{:{w}}'.format(1, w=999999) }}{% endfor %}",
    "{{ 'x'.ljust(1000000000) }}",
    "{{ ('x' * 100000).join(range(100000)) }}",
    "{{ ('\t' * 100000).expandtabs(100000) }}",
    "{{ (10 ** 100) ** 100 }}",
    "{% set l = range(100000)|list %}{{ [l] * 100000 }}",
    "{% set l = range(100000)|list %}{{ [l, l, l, l, l, l, l, l, l, l, l]|string }}",
    "{% set l = range(100000)|list %}{{ [l, l, l, l, l, l, l, l, l, l, l]|join(',') }}",
    "{% macro f(n) %}{% if n < 40 %}{{ f(n + 1) }}{{ f(n + 1) }}{% endif %}{% endmacro %}{{ f(0) }}",
    "{% for x in [[1, 2]] recursive %}{% if loop.depth < 40 %}{{ loop([x, x]) }}{% endif %}{% endfor %}",
    "{{ range(1000000)|list }}",
    "{% set a = range(100000)|list %}{% set b = range(100000)|list %}"
    "{% for i in range(100000) %}{{ a == b }}{% endfor %}",
    "{{ [[1]] * 300000|sum(start=[]) }}",
    "{% for i in range(100000) %}{% set x = range(100000)|list %}{% endfor %}",
]


@pytest.fixture(scope="module")
def hostile_results() -> dict[str, Any]:
    return run_python(CHILD, HOSTILE)  # type: ignore[no-any-return]


@pytest.mark.parametrize("index", range(len(HOSTILE)), ids=[s[:50] for s in HOSTILE])
def test_a_hostile_template_is_refused_quickly_as_too_costly_and_names_the_field(
        hostile_results: dict[str, Any], index: int) -> None:
    result = hostile_results["results"][index]
    # adding lists is refused outright (it is quadratic), as a plain error
    expected = "template_render_error" if "sum(start=[])" in HOSTILE[index] else "template_too_costly"

    assert (result["code"], result["field"]) == (expected, "html"), result
    assert result["compile"] is not None and result["compile"] < 1.0  # nothing of it ran when saved
    assert result["seconds"] < 5.0


def test_hostile_templates_are_refused_before_they_take_memory(hostile_results: dict[str, Any]) -> None:
    assert hostile_results["peak_mb"] < 500  # the child's peak over all of them


def context() -> dict[str, Any]:
    return {"customer": {"first_name": "Ann", "attributes": {"n": 3}}, "unsubscribe_url": "u",
            "mailing": {"id": 1, "name": "m"}}


def too_costly(source: str) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        compile_sms(text=source).render(context())
    assert caught.value.code == "template_too_costly", caught.value.message
    return caught.value


def test_loops_may_run_up_to_the_step_budget_and_no_further() -> None:
    within = "{% for i in range(300) %}{% for j in range(300) %}{% endfor %}{% endfor %}"
    beyond = "{% for i in range(400) %}{% for j in range(300) %}{% endfor %}{% endfor %}"

    assert compile_sms(text=within + "done").render(context()) == "done"
    assert f"more than {MAX_STEPS:,} times" in too_costly(beyond).message


def test_a_field_may_write_up_to_the_output_limit_and_no_further() -> None:
    rounds = MAX_OUTPUT // 100_000

    assert len(compile_sms(text=f"{{% for i in range({rounds}) %}}{{{{ 'x' * 100000 }}}}{{% endfor %}}")
               .render(context())) == MAX_OUTPUT
    error = too_costly(f"{{% for i in range({rounds}) %}}{{{{ 'x' * 100000 }}}}{{% endfor %}}!")
    assert f"writes more than {MAX_OUTPUT:,} characters" in error.message


def test_the_error_names_the_field_that_went_over() -> None:
    compiled = compile_email(subject="Hi", html="<p>{{ 'x' * 10000000 }}</p>", text="fine")

    with pytest.raises(InvalidInput) as caught:
        compiled.render(context())

    assert (caught.value.code, caught.value.field) == ("template_too_costly", "html")
    assert caught.value.message.startswith("The html template is too costly to render")


def test_one_budget_covers_the_whole_message() -> None:
    half = "{% for i in range(200) %}{% for j in range(300) %}{% endfor %}{% endfor %}"
    compiled = compile_email(subject=half, html=f"<p>{half}</p>", text="t")

    with pytest.raises(InvalidInput) as caught:
        compiled.render(context())

    assert (caught.value.code, caught.value.field) == ("template_too_costly", "html")


@pytest.mark.parametrize("source", [
    "{{ lipsum() }}",
    "{{ range(100001)|length }}",
])
def test_lipsum_is_gone_and_range_is_capped(source: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        compile_sms(text=source).render(context())

    assert caught.value.code in ("template_render_error", "template_too_costly")


def test_compiling_runs_no_filter_even_with_constant_arguments() -> None:
    calls: list[str] = []
    env = sandbox._environment(autoescape=False)
    original = env.filters["center"]

    @pass_context
    def center(context: Any, value: Any, *args: Any) -> Any:
        calls.append("center")
        return original(context, value, *args)

    env.filters["center"] = center
    compiled = sandbox.compile_field(env, "{% autoescape 'x'|center(5) %}{{ 'x'|center(5) }}"
                                          "{% endautoescape %}", "text")

    assert calls == []  # nothing of the template ran while it was compiled
    assert compiled.render() == "  x  " and calls == ["center", "center"]


def test_everyday_templates_render_as_before() -> None:
    source = ("{% set items = customer.attributes.get('items', [1, 2, 3]) %}"
              "{% for i in items if i > 1 %}{{ loop.index }}:{{ i }}{{ ',' if not loop.last }}{% endfor %}"
              " {{ customer.first_name|upper ~ '!' }} {{ 'a' in 'cat' }} {{ [1, 2, 3][1:] }}"
              " {{ '%s-%d'|format('x', 4) }} {{ '{}/{}'.format(1, 2) }} {{ 2 ** 10 }}"
              " {{ (customer.attributes.n * 2.5)|round(1) }} {{ 'a,b'.split(',')|join('+') }}")

    assert compile_sms(text=source).render(context()) == "1:2,2:3 ANN! True [2, 3] x-4 1/2 1024 7.5 a+b"


def test_weight_counts_what_str_would_print_and_stops_past_the_limit() -> None:
    shared = ["ab"] * 1000

    assert weight("abc") == 3
    assert weight([shared, shared]) == 2 + 2 * (1000 + 2 * 1000)
    assert weight(2**300) == 100  # about its digits
    assert weight([shared] * 10_000, limit=5000) > 5000  # stops early, not after 10 million
    assert weight({"k": "vv"}) == 1 + 1 + 2


def test_the_clock_stops_a_render_that_takes_too_long() -> None:
    ticks = iter(range(10_000))
    budget = Budget(seconds=5, clock=lambda: float(next(ticks)))

    with pytest.raises(InvalidInput) as caught:
        for _ in range(20):
            budget.spend(look_at_clock=True)

    assert "more than 5 seconds" in caught.value.message
    assert budget.built == Budget().built  # nothing was built meanwhile
    assert MAX_VALUE <= Budget().built


# -------------------------------------------------------------------- the worker


def test_a_template_too_costly_for_everyone_interrupts_the_mailing_before_anything_is_sent() -> None:
    store, clock = InMemoryStore(), Clock()
    for i in range(3):
        store.add_customer(email=f"c{i}@example.org", first_name="C")
    tid = store.add_template(html="{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}")
    mailing = store.add_mailing(template_id=tid)
    store.start(mailing, now=clock())
    transport = RecordingTransport()

    make(store, transport, clock).run_until_idle()

    stopped = store.mailing(mailing.id)
    assert stopped is not None and stopped.status is MailingStatus.INTERRUPTED
    assert stopped.interrupt_code == InterruptCode.TECHNICAL_ERROR
    assert stopped.interrupt_message is not None
    assert "The template cannot be sent: The html template is too costly" in stopped.interrupt_message
    assert transport.recipients() == []
    assert set(store.statuses(mailing.id).values()) == {MessageStatus.QUEUED}  # resume sends them


def test_a_template_too_costly_for_one_customers_data_fails_that_message_only() -> None:
    store, clock = InMemoryStore(), Clock()
    store.add_customer(email="ok@example.org", first_name="Ok", n=10)
    store.add_customer(email="big@example.org", first_name="Big", n=100_000)
    tid = store.add_template(html="<p>{% for i in range(customer.attributes.n) %}"
                                  "{% for j in range(customer.attributes.n) %}{% endfor %}{% endfor %}</p>")
    mailing = store.add_mailing(template_id=tid)
    store.start(mailing, now=clock())
    transport = RecordingTransport()

    make(store, transport, clock).run_until_idle()

    assert transport.recipients() == ["ok@example.org"]
    assert store.statuses(mailing.id) == {"ok@example.org": MessageStatus.SENT,
                                          "big@example.org": MessageStatus.FAILED}
    big = store.messages_of(mailing.id)[1]
    assert big.error is not None and "too costly to render" in big.error
    assert store.mailing(mailing.id).status is MailingStatus.SENT  # type: ignore[union-attr]


def test_a_template_field_over_the_size_limit_is_refused_before_it_is_parsed() -> None:
    with pytest.raises(InvalidInput) as caught:
        compile_email(subject="Hi", html="<p>" + "x" * MAX_SOURCE + "</p>", text=None)

    assert (caught.value.code, caught.value.field) == ("template_too_large", "html")
    assert compile_sms(text="y" * MAX_SOURCE).render(context()) == "y" * MAX_SOURCE
