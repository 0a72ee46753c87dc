"""Changes caught inside the window: detection delay and false alarms, streaming vs windows.

A seeded 12-week stream (20,000 rows a week) of a binary classifier trained on week 0: weeks
1-5 are stable, a **concept change** starts at week 6 (row 100,000 of the monitored stream: the
same features now mean other labels), and a **covariate shift** at week 9 (the features move,
the concept stays). The champion is never retrained, so every detection after the change counts
once (the first) and detections before it are false alarms.

Contenders, each on the same stream:

- ``refit stream (errors)``: the trigger service's ``/hooks/stream`` detector (River's
  Page-Hinkley, `refit.triggers.streaming`) driven in-process through `StreamDetectors` and a real
  `TriggerService` (SQLite state, dedupe, cooldown 0 so every detection is decided), fed batches of
  ``--batch`` rows of the error stream (labels flow at once);
- ``refit stream (confidence)``: the same on the confidence stream (no labels);
- ``River ADWIN (errors)``: the peer, `river.drift.ADWIN` row by row on the error stream;
- ``refit window policy``: `refit.policy.decide` with a metric threshold of 0.8 on each
  window's accuracy (windows of ``--window`` rows), 1 and 2 consecutive windows: a change is seen
  when the window that shows it closes.

Also printed: the label-free estimate (CBPE) against the realised accuracy per week, from the
prediction log and labels joined by `refit.monitoring.labels.join_labels`.

    .venv/bin/python benchmarks/streaming.py [--seed 0] [--batch 1000] [--window 20000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from river.drift import ADWIN
from sklearn.linear_model import LogisticRegression

from refit.monitoring.labels import join_labels
from refit.policy import Observation, PolicyState, RetrainPolicy, decide
from refit.triggers.config import ServiceConfig
from refit.triggers.launchers import LogLauncher
from refit.triggers.service import TriggerService
from refit.triggers.streaming import StreamBatch, StreamDetectors

WEEK = 20_000
WEEKS = 12
CHANGE_WEEK, SHIFT_WEEK = 6, 9
FEATURES = 6


def make_stream(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weeks 0-11: features, labels, week index. Concept change at week 6, covariate at 9."""
    rng = np.random.default_rng(seed)
    w_before = np.array([1.5, -1.0, 0.8, 0.0, 0.5, -0.7])
    w_after = np.array([0.2, -1.0, 0.8, 1.4, 0.5, -0.7])  # feature 0 loses its meaning to 3
    xs, ys, weeks = [], [], []
    for week in range(WEEKS):
        x = rng.normal(size=(WEEK, FEATURES))
        if week >= SHIFT_WEEK:
            x[:, 1] += 0.8  # covariate shift
        w = w_after if week >= CHANGE_WEEK else w_before
        y = (x @ w + rng.normal(scale=0.8, size=WEEK) > 0).astype(int)
        xs.append(x)
        ys.append(y)
        weeks.append(np.full(WEEK, week))
    return np.vstack(xs), np.concatenate(ys), np.concatenate(weeks)


def detections(fired_rows: list[int], change_row: int) -> tuple[int | None, int]:
    """(delay in rows of the first detection at or after the change, false alarms before it)."""
    after = [r for r in fired_rows if r >= change_row]
    return (after[0] - change_row if after else None), sum(r < change_row for r in fired_rows)


def refit_stream(
    values: np.ndarray, stream: str, batch: int, root: Path
) -> tuple[list[int], float]:
    """Rows (0-based, in the monitored stream) where the service's detector fired."""
    config = ServiceConfig.from_dict(
        {
            "state_path": str(root / f"{stream}.db"),
            "cooldown_seconds": 0,
            "max_in_flight": 1_000_000,
            "models": {
                "m": {"params": {"data_uri": "gs://b/d.parquet", "store_uri": "gs://b/store"}}
            },
        }
    )
    service = TriggerService(config, LogLauncher())
    detectors = StreamDetectors(service)
    fired: list[int] = []
    started = time.perf_counter()
    for start in range(0, len(values), batch):
        chunk = tuple(float(v) for v in values[start : start + batch])
        result = detectors.process(StreamBatch(f"b{start}", "m", stream, chunk))
        fired += [start + i for i in result["fired_at"]]
    elapsed = time.perf_counter() - started
    detectors.close()
    service.state.close()
    return fired, elapsed


def adwin(values: np.ndarray) -> tuple[list[int], float]:
    """Rows where River's ADWIN fired, row by row."""
    detector = ADWIN()
    fired = []
    started = time.perf_counter()
    for i, v in enumerate(values):
        detector.update(float(v))
        if detector.drift_detected:
            fired.append(i)
    return fired, time.perf_counter() - started


def window_policy(errors: np.ndarray, window: int, consecutive: int) -> list[int]:
    """Rows (the last row of the window) where refit's policy decided to retrain."""
    policy = RetrainPolicy(
        drift_share_threshold=None, metric_threshold=0.8, consecutive_windows=consecutive
    )
    state, fired = PolicyState(), []
    for start in range(0, len(errors), window):
        accuracy = 1.0 - float(errors[start : start + window].mean())
        observation = Observation(
            drift_share=None,
            metric_value=accuracy,
            new_rows=window,
            now=f"2026-01-{1 + start // window:02d}T00:00:00Z",
            has_champion=True,
        )
        decision = decide(policy, state, observation)
        state = decision.state
        if decision.retrain:
            fired.append(min(start + window, len(errors)) - 1)
            state = PolicyState()  # a retrain resets the evidence, as after a run
    return fired


def main() -> None:
    """Run every contender on one seeded stream and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=1000, help="rows per /hooks/stream batch")
    parser.add_argument("--window", type=int, default=WEEK, help="rows per policy window")
    args = parser.parse_args()

    x, y, week = make_stream(args.seed)
    train = week == 0
    model = LogisticRegression().fit(x[train], y[train])
    proba = model.predict_proba(x[~train])
    predicted = proba.argmax(axis=1)
    errors = (predicted != y[~train]).astype(float)
    confidence = proba.max(axis=1)
    change = (CHANGE_WEEK - 1) * WEEK  # the monitored stream starts at week 1
    print(f"stream: {len(errors)} rows (weeks 1-{WEEKS - 1}), concept change at row {change}, "
          f"covariate shift at row {(SHIFT_WEEK - 1) * WEEK}; seed {args.seed}")  # fmt: skip
    acc = [1 - errors[i * WEEK : (i + 1) * WEEK].mean() for i in range(WEEKS - 1)]
    print("accuracy per week: " + " ".join(f"{a:.3f}" for a in acc))

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for stream, values in (("errors", errors), ("confidence", confidence)):
            fired, elapsed = refit_stream(values, stream, args.batch, Path(tmp))
            name = f"refit stream ({stream}, batches of {args.batch})"
            rows.append((name, fired, elapsed, args.batch))
    fired, elapsed = adwin(errors)
    rows.append(("River ADWIN (errors, row by row)", fired, elapsed, 1))
    for consecutive in (1, 2):
        fired = window_policy(errors, args.window, consecutive)
        name = f"refit window policy ({args.window} rows, {consecutive} window(s))"
        rows.append((name, fired, None, 1))

    print()
    # Detected: the row the test fired on. Decided: the rows the service had received when it
    # decided (the end of that batch; a window policy decides when its window closes).
    print("| contender | detected (rows after the change) | decided (rows after) | "
          "false alarms, weeks 1-5 | detections after | s |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    for name, fired, elapsed, batch in rows:
        delay, false_alarms = detections(fired, change)
        after = sum(r >= change for r in fired)
        secs = "-" if elapsed is None else f"{elapsed:.2f}"
        if delay is None:
            detected = decided = "never"
        else:
            detected = str(delay)
            decided = str(((change + delay) // batch + 1) * batch - change)
        print(f"| {name} | {detected} | {decided} | {false_alarms} | {after} | {secs} |")

    # Estimated (CBPE, no labels) against realised accuracy per week, through the label join.
    start = pd.Timestamp("2026-01-01T00:00:00Z")  # a Thursday: 7-day windows start on one
    n = len(errors)
    times = start + pd.to_timedelta(np.arange(n) * (7 * 86400 / WEEK), unit="s")
    ids = [f"p{i}" for i in range(n)]
    predictions = pd.DataFrame(
        {
            "id": ids,
            "time": times,
            "prediction": predicted,
            "proba": [{"0": float(p[0]), "1": float(p[1])} for p in proba],
        }
    )
    labels = pd.DataFrame({"id": ids, "label": y[~train]})
    joined = join_labels(predictions, labels, window=pd.Timedelta(days=7), seed=args.seed)
    print()
    print("| week | estimated accuracy (CBPE, 95% interval) | realised | realised inside |")
    print("|---:|---|---:|---|")
    for i, w in enumerate(joined.windows, start=1):
        e = w.estimate
        print(f"| {i} | {e['value']:.3f} ({e['lower']:.3f}-{e['upper']:.3f}) | "
              f"{w.realised:.3f} | {'yes' if w.realised_within_interval else 'no'} |")  # fmt: skip


if __name__ == "__main__":
    main()
