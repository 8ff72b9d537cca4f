"""Quiet hours in the recipient's own time zone, with fixed clocks."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from tidings.domain.phones import number_time_zones
from tidings.domain.quiet_hours import QuietHours, recipient_zones, wait_until
from tidings.errors import InvalidInput

NIGHT = QuietHours.parse("21:00-09:00")
RIGA, NEW_YORK, UTC_ZONE = ZoneInfo("Europe/Riga"), ZoneInfo("America/New_York"), ZoneInfo("UTC")


def at(text: str, zone: ZoneInfo = UTC_ZONE) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone)


def test_a_window_across_midnight_is_quiet_from_its_start_until_its_end() -> None:
    assert [NIGHT.is_quiet(time(h, m)) for h, m in ((20, 59), (21, 0), (0, 0), (8, 59), (9, 0))] == [
        False, True, True, True, False]
    day = QuietHours.parse("12:00-13:30")
    assert [day.is_quiet(time(h, m)) for h, m in ((11, 59), (12, 0), (13, 29), (13, 30))] == [
        False, True, True, False]


@pytest.mark.parametrize("text", ["21-09", "25:00-09:00", "21:00-09:60", "09:00-09:00", ""])
def test_a_window_that_is_not_two_different_times_is_refused_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        QuietHours.parse(text, field="quiet_hours.window")
    assert caught.value.field == "quiet_hours.window"


def test_a_message_waits_until_nine_in_the_recipients_zone_not_in_utc() -> None:
    # 20:30 UTC is 22:30 in Riga (winter, UTC+2): quiet there until 09:00 Riga = 07:00 UTC.
    now = at("2026-01-15T20:30")
    assert wait_until(now, NIGHT, (RIGA,), UTC_ZONE) == at("2026-01-16T09:00", RIGA)
    assert wait_until(now, NIGHT, (RIGA,), UTC_ZONE) == at("2026-01-16T07:00")
    # the same moment is 15:30 in New York: it goes now
    assert wait_until(now, NIGHT, (NEW_YORK,), UTC_ZONE) is None


def test_daylight_saving_moves_the_end_of_the_window_in_utc() -> None:
    summer = wait_until(at("2026-07-15T22:00", RIGA), NIGHT, (RIGA,), UTC_ZONE)
    assert summer == at("2026-07-16T06:00")  # UTC+3 in summer
    # the night the clocks go forward (29 March 2026, 03:00 -> 04:00 in Riga)
    spring = wait_until(at("2026-03-29T01:00", RIGA), NIGHT, (RIGA,), UTC_ZONE)
    assert spring == at("2026-03-29T06:00")


def test_a_number_in_several_zones_waits_until_it_is_allowed_in_all_of_them() -> None:
    zones = (RIGA, NEW_YORK)
    # 08:00 UTC: 10:00 in Riga but 03:00 in New York -> 09:00 New York = 14:00 UTC
    assert wait_until(at("2026-01-15T08:00"), NIGHT, zones, UTC_ZONE) == at("2026-01-15T14:00")
    # 19:30 UTC: 21:30 in Riga -> next morning in Riga, 07:00 UTC, then New York: 14:00 UTC
    assert wait_until(at("2026-01-15T19:30"), NIGHT, zones, UTC_ZONE) == at("2026-01-16T14:00")


def test_zones_that_share_no_allowed_time_fall_back_to_the_shop_zone() -> None:
    long_night = QuietHours.parse("18:00-10:00")  # 8 allowed hours, zones 12 hours apart
    zones = (RIGA, ZoneInfo("Pacific/Honolulu"))
    berlin = ZoneInfo("Europe/Berlin")
    assert wait_until(at("2026-01-15T12:00"), long_night, zones, berlin) is None  # 13:00 in Berlin
    assert wait_until(at("2026-01-15T17:00"), long_night, zones, berlin) == at("2026-01-16T10:00",
                                                                              berlin)


def test_the_recipients_zone_comes_from_the_attribute_then_the_number_then_the_shop() -> None:
    latvian = number_time_zones("+37120000001")
    assert recipient_zones(attributes={"timezone": "Asia/Tokyo"}, number_zones=latvian,
                           shop_zone="UTC") == (ZoneInfo("Asia/Tokyo"),)
    assert recipient_zones(attributes={"timezone": "not a zone"}, number_zones=latvian,
                           shop_zone="UTC") == tuple(ZoneInfo(z) for z in latvian)
    assert latvian and all(ZoneInfo(z).utcoffset(datetime(2026, 1, 1)).total_seconds() == 7200
                           for z in latvian)
    assert recipient_zones(attributes={}, number_zones=(), shop_zone="Europe/Riga") == (RIGA,)


def test_a_number_without_a_known_area_fails_closed_to_the_shop_zone() -> None:
    assert number_time_zones("+999123456789") == ()
    zones = recipient_zones(attributes=None, number_zones=number_time_zones("+999123456789"),
                            shop_zone="Europe/Riga")
    assert wait_until(at("2026-01-15T20:30"), NIGHT, zones, RIGA) == at("2026-01-16T09:00", RIGA)


def test_a_moment_in_the_window_is_never_returned_as_allowed() -> None:
    now = at("2026-01-15T00:00")
    for minutes in range(0, 24 * 60, 7):
        moment = now.replace(hour=minutes // 60, minute=minutes % 60)
        until = wait_until(moment, NIGHT, (RIGA, NEW_YORK), UTC_ZONE)
        allowed = moment if until is None else until
        assert until is None or until > moment
        assert not any(NIGHT.is_quiet(allowed.astimezone(z).time()) for z in (RIGA, NEW_YORK))
        assert allowed.tzinfo is not None and allowed.astimezone(UTC) >= moment.astimezone(UTC)
