"""A seeded, built-in dataset that replays consecutive windows of a credit-default model's traffic.

The story the windows tell (defaults of :func:`make_windows`):

- windows 0-2: a stable population;
- from window 3: a covariate shift (incomes rise, credit scores fall, the partner channel grows);
- window 4: a bad window, ``credit_score`` arrives renamed as ``creditScore``;
- from window 6: a concept change (debt matters less, short tenure much more), so the champion
  decays while its inputs barely move.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

REGIONS = ["north", "south", "east", "west"]
CHANNELS = ["web", "branch", "partner"]
TARGET = "default"
TIME_COLUMN = "event_time"


@dataclass(frozen=True)
class DemoScenario:
    """Where the injected events fall in the replay."""

    windows: int = 10
    rows: int = 2000
    shift_from: int = 3
    bad_window: int = 4
    concept_from: int = 6
    seed: int = 7


def _window(
    rng: np.random.Generator, index: int, rows: int, shifted: bool, concept: bool
) -> pa.Table:
    income = rng.lognormal(mean=3.9 + (0.35 if shifted else 0.0), sigma=0.35, size=rows)
    age = np.clip(rng.normal(41, 11, rows), 18, 85)
    debt_ratio = rng.beta(2.0, 5.0, rows)
    credit_score = rng.normal(655 - (45 if shifted else 0), 55, rows)
    tenure = rng.exponential(30.0, rows)
    region = rng.choice(REGIONS, size=rows, p=[0.3, 0.3, 0.2, 0.2])
    channel_p = [0.35, 0.25, 0.40] if shifted else [0.5, 0.35, 0.15]
    channel = rng.choice(CHANNELS, size=rows, p=channel_p)

    score_term = (credit_score - 650) / 55
    income_term = (np.log(income) - 3.9) / 0.35
    if not concept:
        z = 4.5 * (debt_ratio - 0.28) / 0.16 - 1.6 * score_term - 0.6 * income_term
    else:
        z = 0.5 * (debt_ratio - 0.28) / 0.16 - 1.5 * score_term + 4.5 * (30 - tenure) / 30
    z = z + 0.4 * (channel == "partner") - 0.8
    default = (rng.random(rows) < 1.0 / (1.0 + np.exp(-z))).astype(np.int64)

    start = np.datetime64("2026-01-05T00:00:00") + np.timedelta64(7 * index, "D")
    seconds = np.sort(rng.integers(0, 7 * 24 * 3600, rows))
    times = start + seconds.astype("timedelta64[s]")
    return pa.table(
        {
            TIME_COLUMN: pa.array(times, pa.timestamp("s")),
            "income": pa.array(np.round(income, 2)),
            "age": pa.array(np.round(age).astype(np.int64)),
            "debt_ratio": pa.array(np.round(debt_ratio, 4)),
            "credit_score": pa.array(np.round(credit_score).astype(np.int64)),
            "tenure_months": pa.array(np.round(tenure, 1)),
            "region": pa.array(region),
            "channel": pa.array(channel),
            TARGET: pa.array(default),
        }
    )


def make_windows(scenario: DemoScenario = DemoScenario()) -> list[pa.Table]:
    """Generate the replayed windows, one table per week.

    Args:
        scenario: Number and size of windows, where each event is injected, and the seed.

    Returns:
        One table per window, in time order.
    """
    rng = np.random.default_rng(scenario.seed)
    out = []
    for i in range(scenario.windows):
        table = _window(
            rng,
            i,
            scenario.rows,
            shifted=i >= scenario.shift_from,
            concept=i >= scenario.concept_from,
        )
        if i == scenario.bad_window:
            table = table.rename_columns(
                ["creditScore" if c == "credit_score" else c for c in table.column_names]
            )
        out.append(table)
    return out


def make_user_history(
    weeks: int = 12,
    rows: int = 2000,
    concept_from: int = 6,
    shift_from: int = 9,
    seed: int = 11,
) -> pa.Table:
    """A user's own history as one table: what "bring your own data" replays.

    Unlike :func:`make_windows` it has no time column: each row carries its ``week`` (an
    integer period) and a ``customer_id`` (an index, not a feature). The label is ``churned``.
    From ``concept_from`` the label depends on other features (the champion decays while its
    inputs do not move); from ``shift_from`` salaries rise by half (covariate shift).

    Args:
        weeks: Number of weeks.
        rows: Rows per week.
        concept_from: First week of the concept change.
        shift_from: First week of the salary shift.
        seed: Seed.

    Returns:
        ``weeks * rows`` rows, in week order.
    """
    rng = np.random.default_rng(seed)
    parts = []
    for week in range(weeks):
        age = np.clip(rng.normal(40, 12, rows), 18, 80)
        salary = rng.lognormal(10.6 + (0.4 if week >= shift_from else 0.0), 0.3, rows)
        tenure = rng.exponential(24.0, rows)
        visits = rng.poisson(6, rows)
        plan = rng.choice(["basic", "plus", "pro"], size=rows, p=[0.5, 0.3, 0.2])
        if week < concept_from:
            z = 3.0 * (1.6 - 0.08 * tenure + 0.35 * (6 - visits) + 0.6 * (plan == "basic"))
        else:
            z = 3.0 * (0.1 * (age - 40) - 0.5 * (plan == "basic") + 0.25 * (visits - 6))
        churned = (rng.random(rows) < 1.0 / (1.0 + np.exp(-z))).astype(np.int64)
        parts.append(
            pa.table(
                {
                    "customer_id": pa.array(np.arange(week * rows, (week + 1) * rows)),
                    "week": pa.array(np.full(rows, week, dtype=np.int64)),
                    "age": pa.array(np.round(age).astype(np.int64)),
                    "salary": pa.array(np.round(salary, 2)),
                    "tenure_months": pa.array(np.round(tenure, 1)),
                    "visits": pa.array(visits.astype(np.int64)),
                    "plan": pa.array(plan),
                    "churned": pa.array(churned),
                }
            )
        )
    return pa.concat_tables(parts)
