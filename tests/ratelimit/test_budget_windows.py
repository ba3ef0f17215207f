"""How long a spend budget's record lives in Redis, and where calendar windows start and end.

A budget key expires when its units are back: a rolling budget's when the bucket has refilled what was spent, a
calendar budget's when its window ends (local midnight in `reset_time_zone`). Windows are whole local days,
`period` days long, counted from 1970-01-01 in that zone: every replica and every caller share the same windows,
whoever spent first."""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis

from service.ratelimit.rules import calendar_window
from tests.support.service import auth, build_settings, make_jwt, running_app, service_env, write_config

EPOCH = date(1970, 1, 1)


def _budget(period: str, zone: str | None) -> str:
    calendar = f'reset_time_zone = "{zone}"\n' if zone else ""
    return f'\n[[budgets]]\nlayer = "subject"\nunits = 30\nperiod = "{period}"\nprofiles = ["voice"]\n{calendar}'


def _next_window_end(now: float, days: int, zone: str) -> float:
    """The end of the window holding `now`: the first local midnight after today whose day, counted from
    1970-01-01, is a multiple of `days`."""
    tz = ZoneInfo(zone)
    end = datetime.fromtimestamp(now, tz).date() + timedelta(days=1)
    while (end - EPOCH).days % days:
        end += timedelta(days=1)
    return datetime.combine(end, datetime.min.time(), tz).timestamp()


def _budget_ttls(url: str) -> list[float]:
    """The seconds each budget key in Redis has left to live."""
    with redis.Redis.from_url(url) as client:
        return [client.pttl(key) / 1000 for key in client.scan_iter("*:b:*")]


@pytest.mark.parametrize(
    ("period", "zone"),
    [
        pytest.param("1d", None, id="rolling-day"),
        pytest.param("1d", "Asia/Tokyo", id="calendar-day"),
        pytest.param("1d", "America/Los_Angeles", id="calendar-day-behind-utc"),
        pytest.param("7d", "Asia/Tokyo", id="calendar-week"),
    ],
)
async def test_a_budget_key_lives_until_its_units_are_back(
    tmp_path: Path, emulator: Any, redis_url: str, period: str, zone: str | None
) -> None:
    """One voice token (15 of 30 units), then a failed mint (refunded): the budget's one key in Redis expires when
    the units come back, not a second later or sooner: 12 h on (15 units of a rolling 30 a day), or at the end of the
    calendar window (the next local midnight for a day; for a week, the next midnight that starts a 7-day window
    counted from 1970-01-01, a Thursday). The refund keeps that expiry."""
    settings = build_settings(write_config(tmp_path, extra=_budget(period, zone)), service_env(emulator, redis_url))
    token = make_jwt(sub="ttl-spender")
    async with running_app(settings) as client:
        issued = await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth(token))
        spent = _budget_ttls(redis_url)
        emulator.fail_next(400)
        failed = await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth(token))
        refunded = _budget_ttls(redis_url)
    now = time.time()
    expected = 43_200.0 if zone is None else _next_window_end(now, int(period.removesuffix("d")), zone) - now
    assert (issued.status_code, failed.status_code) == (201, 502)
    assert len(spent) == 1
    assert expected - 5 <= spent[0] <= expected + 1
    assert len(refunded) == 1
    assert expected - 5 <= refunded[0] <= expected + 1


def _at(zone: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone)).timestamp()


@pytest.mark.parametrize(
    ("zone", "days", "now", "first", "end"),
    [
        pytest.param(
            "Asia/Tokyo", 1, (2024, 3, 20, 23, 59), date(2024, 3, 20), (2024, 3, 21), id="day-before-midnight"
        ),
        pytest.param("Asia/Tokyo", 1, (2024, 3, 21, 0, 0), date(2024, 3, 21), (2024, 3, 22), id="day-at-midnight"),
        pytest.param(
            "Europe/Paris", 1, (2024, 3, 31, 12, 0), date(2024, 3, 31), (2024, 4, 1), id="23-hour-day-spring-forward"
        ),
        pytest.param(
            "America/New_York", 1, (2024, 11, 3, 23, 30), date(2024, 11, 3), (2024, 11, 4), id="25-hour-day-fall-back"
        ),
        pytest.param("Asia/Tokyo", 7, (2024, 3, 20, 12, 0), date(2024, 3, 14), (2024, 3, 21), id="week-from-thursday"),
        pytest.param(
            "Europe/Paris", 30, (2024, 3, 20, 12, 0), date(2024, 3, 18), (2024, 4, 17), id="30-days-across-dst"
        ),
        pytest.param("Europe/Paris", 30, (2024, 4, 17, 0, 0), date(2024, 4, 17), (2024, 5, 17), id="the-next-30"),
    ],
)
def test_calendar_windows_are_local_days_counted_from_1970(
    zone: str, days: int, now: tuple[int, ...], first: date, end: tuple[int, ...]
) -> None:
    """A calendar window starts and ends at local midnight in its zone, `days` local days long (23 or 25 hours for a
    day when the clocks change; 30 days across a change is 719 hours), and the windows tile the calendar from
    1970-01-01: the one holding 2024-03-20 in Paris runs 18 March to 17 April, the next 17 April to 17 May."""
    start_day, ends = calendar_window(_at(zone, *now), days * 86_400.0, zone)
    assert date.fromordinal(start_day) == first
    assert ends == _at(zone, *end)
    assert (first - EPOCH).days % days == 0
