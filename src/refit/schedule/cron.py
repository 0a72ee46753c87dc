"""Cron and interval schedules, converted to what KFP recurring runs expect.

KFP's scheduler (robfig/cron with seconds) reads **six** fields, seconds first:
``SEC MIN HOUR DOM MON DOW``. The standard five-field cron ``0 2 * * *`` ("02:00 daily") passed
through unchanged means "second 0 of minute 2 of every hour" there: hourly at :02. This module
turns a standard five-field expression into the six-field form by prepending ``0`` seconds,
accepts a six-field expression whose seconds field is ``0``, and refuses everything else with a
message that says what is wrong and what to write instead.

Accepted ``@`` macros: ``@yearly``/``@annually``, ``@monthly``, ``@weekly``, ``@daily``/
``@midnight``, ``@hourly``; ``@every DURATION`` and ``@reboot`` are refused (use an interval
schedule for the first; the second has no meaning for a recurring run).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from refit.errors import RefitError

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# (name, low, high, named values)
_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
_FIELDS5 = [
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {m: i + 1 for i, m in enumerate(_MONTHS)}),
    ("day of week", 0, 6, {d: i for i, d in enumerate(_DAYS)}),
]

_INTERVAL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_INTERVAL_RE = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$", re.IGNORECASE)


class ScheduleError(RefitError, ValueError):
    """A schedule (cron string, interval, recurring-run setting) cannot be honoured."""


@dataclass(frozen=True)
class CronSchedule:
    """A validated cron schedule.

    Attributes:
        source: The expression as the user wrote it.
        standard: The five-field form (minute hour day-of-month month day-of-week).
        kfp: The six-field form KFP expects (seconds first, always ``0``).
    """

    source: str
    standard: str
    kfp: str

    def next_times(self, start: datetime, count: int = 3) -> list[datetime]:
        """The next ``count`` fire times after ``start`` (naive times are taken as UTC)."""
        from croniter import croniter

        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        it = croniter(self.standard, start)
        return [it.get_next(datetime) for _ in range(count)]


@dataclass(frozen=True)
class IntervalSchedule:
    """A fixed-interval schedule.

    Attributes:
        source: The interval as the user wrote it.
        seconds: Seconds between runs (>= 60).
    """

    source: str
    seconds: int


Schedule = CronSchedule | IntervalSchedule


def _atom_value(b: str, name: str, low: int, high: int, names: dict[str, int], expr: str) -> int:
    """The number of one bound of a field value: a name (``MON``, ``JAN``) or N in LOW-HIGH."""
    key = b.upper()
    if key in names:
        return names[key]
    if not b.isdigit():
        known = f" or one of {', '.join(names)}" if names else ""
        raise ScheduleError(
            f"cron {expr!r}: {name} value {b!r} is not a number in {low}-{high}{known}"
        )
    v = int(b)
    # Day of week 7 is Sunday in Vixie cron but not in KFP's robfig/cron: refuse it.
    if not low <= v <= high:
        hint = " (Sunday is 0)" if name == "day of week" and v == 7 else ""
        raise ScheduleError(f"cron {expr!r}: {name} value {v} is out of range {low}-{high}{hint}")
    return v


def _check_atom(
    atom: str, name: str, low: int, high: int, names: dict[str, int], expr: str
) -> None:
    """Validate one comma-separated part of a field: ``*``, ``N``, ``A-B``, with ``/STEP``."""
    base, _, step = atom.partition("/")
    if "/" in atom:
        if not step.isdigit() or int(step) == 0:
            raise ScheduleError(
                f"cron {expr!r}: {name} step {step!r} in {atom!r} must be a positive integer"
            )
    if base in ("*", "?"):
        if base == "?" and name not in ("day of month", "day of week"):
            raise ScheduleError(
                f"cron {expr!r}: '?' is allowed only in day of month or day of week, not in {name}"
            )
        return
    bounds = base.split("-")
    if len(bounds) > 2 or not all(bounds):
        raise ScheduleError(f"cron {expr!r}: {name} value {atom!r} is not N, N-M, * or */STEP")
    values = [_atom_value(b, name, low, high, names, expr) for b in bounds]
    if len(values) == 2 and values[0] > values[1]:
        raise ScheduleError(
            f"cron {expr!r}: {name} range {base!r} runs backwards ({values[0]} > {values[1]})"
        )


def _check_fields(fields: list[str], expr: str) -> None:
    for text, (name, low, high, names) in zip(fields, _FIELDS5, strict=True):
        for atom in text.split(","):
            if not atom:
                raise ScheduleError(f"cron {expr!r}: {name} field {text!r} has an empty list item")
            _check_atom(atom, name, low, high, names, expr)


def _expand_macro(text: str, source: str) -> str:
    """``text`` with a macro (``@daily``) replaced by its five fields; refuses ``@every``."""
    if not text.startswith("@"):
        return text
    macro = text.lower()
    if macro.startswith("@every"):
        raise ScheduleError(
            f"cron {source!r}: '@every' is an interval, not a cron schedule; "
            "use an interval schedule (e.g. --interval 6h) instead"
        )
    if macro not in _MACROS:
        raise ScheduleError(
            f"cron {source!r}: unknown or unsupported macro; supported: {', '.join(_MACROS)}"
        )
    return _MACROS[macro]


def _five_fields(text: str, source: str) -> list[str]:
    """The five standard fields of ``text``: five as given, or six with a seconds field of 0."""
    fields = text.split(" ")
    if len(fields) == 6:
        seconds = fields[0]
        if seconds != "0":
            raise ScheduleError(
                f"cron {source!r}: six fields are read as KFP's form, seconds first, and the "
                f"seconds field is {seconds!r}; refit schedules at most once a minute, so it must "
                "be 0 (for standard cron write five fields: MIN HOUR DOM MON DOW)"
            )
        return fields[1:]
    if len(fields) == 7:
        raise ScheduleError(
            f"cron {source!r} has 7 fields (a Quartz cron with a year field?); KFP takes 6 "
            "(SEC MIN HOUR DOM MON DOW) and refit also accepts standard 5-field cron"
        )
    if len(fields) != 5:
        raise ScheduleError(
            f"cron {source!r} has {len(fields)} field(s); expected 5 (MIN HOUR DOM MON DOW) "
            "or 6 with seconds first (0 MIN HOUR DOM MON DOW)"
        )
    return fields


def parse_cron(expr: str) -> CronSchedule:
    """Validate a cron expression and convert it to KFP's six-field form.

    Args:
        expr: Five fields (``MIN HOUR DOM MON DOW``, standard cron), six fields with seconds
            first and the seconds field ``0`` (KFP's form), or a macro such as ``@daily``.

    Returns:
        The validated schedule with both forms.

    Raises:
        ScheduleError: Naming the expression and what is wrong: field count, a value out of
            range, a malformed field, non-zero or stepped seconds (a retraining run more
            than once a minute is refused), an unsupported macro, or a schedule that never
            fires (e.g. 30 February).
    """
    if not isinstance(expr, str) or not expr.strip():
        raise ScheduleError(f"cron expression must be a non-empty string, got {expr!r}")
    source = expr
    fields = _five_fields(_expand_macro(" ".join(expr.split()), source), source)
    _check_fields(fields, source)
    dom, dow = fields[2], fields[4]
    if dom == "?" and dow == "?":
        raise ScheduleError(f"cron {source!r}: day of month and day of week cannot both be '?'")
    standard = " ".join("*" if f == "?" else f for f in fields)
    from croniter import croniter

    if not croniter.is_valid(standard):
        raise ScheduleError(f"cron {source!r} is not a valid cron expression")
    try:
        croniter(standard, datetime(2026, 1, 1, tzinfo=UTC)).get_next(datetime)
    except Exception as exc:  # croniter raises CroniterBadDateError for impossible dates
        raise ScheduleError(
            f"cron {source!r} never fires (no such date, e.g. 30 February): {exc}"
        ) from None
    return CronSchedule(source=source, standard=standard, kfp="0 " + " ".join(fields))


def parse_interval(value: str | int) -> IntervalSchedule:
    """Validate an interval such as ``"6h"``, ``"30m"``, ``"1d"``, ``"2w"`` or seconds.

    Args:
        value: A positive integer with an optional unit (s, m, h, d, w); seconds without one.

    Returns:
        The interval in seconds.

    Raises:
        ScheduleError: A malformed value, or an interval shorter than 60 seconds.
    """
    source = str(value)
    if isinstance(value, bool):
        raise ScheduleError(f"interval must be a duration such as 6h, got {value!r}")
    match = _INTERVAL_RE.match(source)
    if not match:
        raise ScheduleError(
            f"interval {source!r} is not a duration; write a positive integer with a unit "
            "s, m, h, d or w (e.g. 30m, 6h, 1d)"
        )
    seconds = int(match.group(1)) * _INTERVAL_UNITS[(match.group(2) or "s").lower()]
    if seconds < 60:
        raise ScheduleError(
            f"interval {source!r} is {seconds} s; refit schedules at most once a minute (>= 60 s)"
        )
    return IntervalSchedule(source=source, seconds=seconds)


def parse_schedule(
    cron: str | None = None, interval: str | int | None = None
) -> CronSchedule | IntervalSchedule:
    """Build exactly one schedule from a cron expression or an interval.

    Raises:
        ScheduleError: Both or neither given, or the one given is invalid.
    """
    if (cron is None) == (interval is None):
        raise ScheduleError("give exactly one of a cron expression or an interval")
    # (ignore below) exactly one is given (checked above): interval is not None here
    return parse_cron(cron) if cron is not None else parse_interval(interval)  # type: ignore[arg-type]


def schedule_kind(schedule: CronSchedule | IntervalSchedule) -> Literal["cron", "interval"]:
    """``"cron"`` or ``"interval"``."""
    return "cron" if isinstance(schedule, CronSchedule) else "interval"
