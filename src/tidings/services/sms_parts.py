"""What an SMS costs before it goes: encoding, characters and parts of one text
and of a mailing's whole audience (the quota is charged per part).

Texts are rendered as the worker renders them (:class:`~tidings.engine.render.SmsRenderer`:
short links of their real length, the opt-out line when the sender needs one),
so the figures are those of the messages that would go.

- :func:`summary` of one rendered text: the template preview shows it;
- :func:`audience_parts` of a first step's audience as it would be frozen
  now: every recipient's text is rendered when there are at most
  :data:`EXACT_UP_TO` of them; beyond, :data:`SAMPLE` recipients drawn at
  random are, and the total is their average times the audience, marked
  ``estimated`` (the text varies with what is personalised, so it cannot be
  exact without rendering them all).
"""

from __future__ import annotations

from typing import Any

from tidings.domain import sms
from tidings.domain.mailings import Channel
from tidings.engine.render import SmsRenderer
from tidings.errors import Conflict, NotFound, TidingsError
from tidings.services.context import Context
from tidings.store import audience
from tidings.store import mailings as mailing_store
from tidings.store import templates as template_store

EXACT_UP_TO = 2000
SAMPLE = 1000


def summary(text: str) -> dict[str, Any]:
    """``{"encoding": "GSM-7"|"UCS-2", "characters", "parts", "ucs2_because",
    "warning"}`` (see :func:`tidings.domain.sms.summarize` and
    :func:`~tidings.domain.sms.ucs2_warning`)."""
    return {**sms.summarize(text).as_dict(), "warning": sms.ucs2_warning(text)}


def audience_parts(ctx: Context, mailing_id: int) -> dict[str, Any]:
    """The parts an SMS mailing (a first step) would take if it went now.

    Returns ``{"recipients", "rendered", "estimated", "parts", "gsm7",
    "ucs2", "parts_per_message": {"min", "max"}, "failed", "warning"}``:
    ``gsm7``/``ucs2`` and ``failed`` (cannot be rendered) count the rendered
    messages; ``warning`` is the first :func:`~tidings.domain.sms.ucs2_warning`
    met, with how many rendered messages it concerns. Raises ``NotFound``,
    and ``Conflict`` (``not_sms``) for an email mailing or one without a
    template or segment.
    """
    with ctx.read() as conn:
        mailing = mailing_store.get(conn, mailing_id)
        if mailing is None:
            raise NotFound(f"There is no mailing {mailing_id}.", code="mailing_not_found")
        if mailing.channel is not Channel.SMS or mailing.template_id is None or mailing.is_later_step \
                or mailing.segment_id is None:
            raise Conflict("Parts are counted for an SMS mailing (a first step) with a segment and a "
                           "template.", code="not_sms")
        template = template_store.get(conn, mailing.template_id)
        assert template is not None  # a mailing's template cannot be deleted
        count = audience.count_receivable(conn, mailing)
        estimated = count > EXACT_UP_TO
        recipients = audience.receivable_sample(conn, mailing, limit=SAMPLE if estimated else EXACT_UP_TO,
                                                shuffled=estimated)
    renderer = SmsRenderer(mailing=mailing, template=template, secret=ctx.secret,
                           public_url=ctx.settings.public_url, opt_out=ctx.settings.sms_opt_out_link)
    seen: set[str] = set()
    parts: list[int] = []
    encodings = {sms.Encoding.GSM7: 0, sms.Encoding.UCS2: 0}
    failed = 0
    warning: tuple[str, int] | None = None
    for recipient in recipients:
        if not estimated and recipient.address in seen:
            continue  # one SMS a phone, as the audience is frozen
        seen.add(recipient.address)
        try:
            text = renderer.text(recipient)
        except TidingsError:
            failed += 1
            continue
        found = sms.summarize(text)
        parts.append(found.parts)
        encodings[found.encoding] += 1
        said = sms.ucs2_warning(text)
        if said is not None:
            warning = (warning[0], warning[1] + 1) if warning else (said, 1)
    rendered = len(parts) + failed
    total = sum(parts)
    if estimated and parts:
        total = round(total / len(parts) * count)
    return {
        "recipients": count if estimated else len(seen), "rendered": rendered, "estimated": estimated,
        "parts": total, "gsm7": encodings[sms.Encoding.GSM7], "ucs2": encodings[sms.Encoding.UCS2],
        "parts_per_message": {"min": min(parts, default=0), "max": max(parts, default=0)},
        "failed": failed,
        "warning": None if warning is None else {"message": warning[0], "messages": warning[1]},
    }
