"""Cron and interval schedules: conversion to KFP's six-field form and every wrong shape."""

from datetime import UTC, datetime

import pytest

from refit.schedule.cron import (
    CronSchedule,
    IntervalSchedule,
    ScheduleError,
    parse_cron,
    parse_interval,
    parse_schedule,
)


def test_standard_five_fields_become_six_with_zero_seconds():
    s = parse_cron("0 2 * * *")
    assert s.kfp == "0 0 2 * * *"
    assert s.standard == "0 2 * * *"
    # 02:00 daily, not hourly at :02.
    times = s.next_times(datetime(2026, 3, 1, 5, 0, tzinfo=UTC), 2)
    assert times == [datetime(2026, 3, 2, 2, 0, tzinfo=UTC), datetime(2026, 3, 3, 2, 0, tzinfo=UTC)]


@pytest.mark.parametrize(
    ("expr", "kfp"),
    [
        ("*/15 * * * *", "0 */15 * * * *"),
        ("30 6 * * MON-FRI", "0 30 6 * * MON-FRI"),
        ("0 0 1 JAN,JUL *", "0 0 0 1 JAN,JUL *"),
        ("  0   3  * *  1-5 ", "0 0 3 * * 1-5"),
        ("0 0 9 ? * 2-6", "0 0 9 ? * 2-6"),
        ("0 0 2 * * *", "0 0 2 * * *"),
        ("0 5,35 */2 * * *", "0 5,35 */2 * * *"),
    ],
)
def test_accepted_forms(expr, kfp):
    assert parse_cron(expr).kfp == kfp


@pytest.mark.parametrize(
    ("macro", "kfp"),
    [
        ("@daily", "0 0 0 * * *"),
        ("@midnight", "0 0 0 * * *"),
        ("@hourly", "0 0 * * * *"),
        ("@weekly", "0 0 0 * * 0"),
        ("@monthly", "0 0 0 1 * *"),
        ("@yearly", "0 0 0 1 1 *"),
        ("@ANNUALLY", "0 0 0 1 1 *"),
    ],
)
def test_macros(macro, kfp):
    assert parse_cron(macro).kfp == kfp


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("", "non-empty"),
        ("   ", "non-empty"),
        ("0 2 * *", "has 4 field(s)"),
        ("*", "has 1 field(s)"),
        ("0 0 0 0 0 0 0 0", "has 8 field(s)"),
        ("0 0 2 * * ? 2026", "7 fields"),
        ("30 0 2 * * *", "seconds field is '30'"),
        ("*/10 * * * * *", "seconds field is '*/10'"),
        ("* * * * * *", "seconds field is '*'"),
        ("60 * * * *", "minute value 60 is out of range 0-59"),
        ("0 24 * * *", "hour value 24 is out of range 0-23"),
        ("0 0 0 * * *x", "day of week value"),
        ("0 0 32 * *", "day of month value 32 is out of range 1-31"),
        ("0 0 0 * *", "day of month value 0 is out of range 1-31"),
        ("0 0 * 13 *", "month value 13 is out of range 1-12"),
        ("0 0 * * 7", "Sunday is 0"),
        ("0 0 * * 8", "day of week value 8 is out of range 0-6"),
        ("0 0 * FOO *", "month value 'FOO'"),
        ("0 0 * * FUNDAY", "day of week value 'FUNDAY'"),
        ("*/0 * * * *", "step '0'"),
        ("*/x * * * *", "step 'x'"),
        ("10-5 * * * *", "runs backwards"),
        ("1-2-3 * * * *", "is not N, N-M"),
        ("1,,2 * * * *", "empty list item"),
        ("-1 * * * *", "is not N, N-M"),
        ("0 ? * * *", "'?' is allowed only"),
        ("0 0 ? * ?", "cannot both be '?'"),
        ("0 0 30 2 *", "never fires"),
        ("@reboot", "unsupported macro"),
        ("@fortnightly", "unsupported macro"),
        ("@every 1h", "use an interval schedule"),
        ("L * * * *", "minute value 'L'"),
    ],
)
def test_rejected_with_reason(expr, fragment):
    with pytest.raises(ScheduleError) as info:
        parse_cron(expr)
    assert fragment in str(info.value)


def test_non_string_is_refused():
    with pytest.raises(ScheduleError, match="non-empty string"):
        parse_cron(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("6h", 21600), ("30m", 1800), ("1d", 86400), ("2w", 1209600), ("3600", 3600), (90, 90)],
)
def test_intervals(value, seconds):
    assert parse_interval(value).seconds == seconds


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("30s", "at most once a minute"),
        ("0", "at most once a minute"),
        ("-5m", "not a duration"),
        ("1.5h", "not a duration"),
        ("6 hours", "not a duration"),
        ("", "not a duration"),
        (True, "duration such as 6h"),
    ],
)
def test_bad_intervals(value, fragment):
    with pytest.raises(ScheduleError) as info:
        parse_interval(value)
    assert fragment in str(info.value)


def test_parse_schedule_needs_exactly_one():
    assert isinstance(parse_schedule(cron="@daily"), CronSchedule)
    assert isinstance(parse_schedule(interval="1h"), IntervalSchedule)
    with pytest.raises(ScheduleError, match="exactly one"):
        parse_schedule()
    with pytest.raises(ScheduleError, match="exactly one"):
        parse_schedule(cron="@daily", interval="1h")
