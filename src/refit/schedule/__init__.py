"""Schedules: cron done right for KFP recurring runs, and replay over history.

* ``refit.schedule.cron``: 5-field cron -> KFP's 6-field form, validation, intervals.
* ``refit.schedule.kfp``: recurring runs through ``kfp.Client`` (kfp imported lazily).
* ``refit.schedule.backfill``: ``refit backfill``, the policy or the pipeline over past windows.
"""

from refit.schedule.cron import (
    CronSchedule,
    IntervalSchedule,
    ScheduleError,
    parse_cron,
    parse_interval,
    parse_schedule,
)

__all__ = [
    "CronSchedule",
    "IntervalSchedule",
    "ScheduleError",
    "parse_cron",
    "parse_interval",
    "parse_schedule",
]
