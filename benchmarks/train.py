"""Benchmark: refit's XGBoost trainer against a bare ``xgboost.train`` on the same data.

Notes (issue 5; benchmarks/README.md did not exist when this was written):

- What is timed. *bare*: ``xgboost.train`` on a ``QuantileDMatrix`` built from the float32
  matrix (the fastest plain-XGBoost path for ``hist``), timed from the matrix to the booster.
  *refit*: ``refit.training.train`` from the Arrow table: input checks, feature encoding,
  device choice, the sklearn-API fit with refit's round callback, timed from the table to the
  fitted model. Same objective (binary:logistic), ``hist``, depth 6, eta 0.3, 256 bins, the same
  thread count and rounds. The two runs alternate, ``--repeat`` times each; the ratio is
  refit's median over bare's median (target <= 1.05); the ratio of the fastest runs
  is printed too (on a shared machine the fastest run is the least disturbed).
- ``--device cuda`` times both on the GPU and, with ``--compare-cpu``, a bare CPU run with
  ``--cpu-threads`` threads for the GPU speed-up.
- Measured on the 2-core development machine (shared with other jobs; ratios, not absolute
  times, are the result): see the issue-5 report.

Usage::

    python benchmarks/train.py                       # 1M x 50, 200 rounds, CPU
    python benchmarks/train.py --rows 100000 --repeat 3
    python benchmarks/train.py --device cuda --compare-cpu --cpu-threads 16
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pyarrow as pa


def make_data(rows: int, features: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded binary task: a linear score plus an interaction, with noise."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, features), dtype=np.float32)
    w = rng.standard_normal(features).astype(np.float32)
    score = X @ w + X[:, 0] * X[:, 1] + rng.standard_normal(rows, dtype=np.float32)
    return X, (score > 0).astype(np.int64)


def to_table(X: np.ndarray, y: np.ndarray) -> pa.Table:
    """The same data as an Arrow table, as refit reads it."""
    columns = {f"f{j:02d}": pa.array(X[:, j]) for j in range(X.shape[1])}
    columns["label"] = pa.array(y)
    return pa.table(columns)


def run_bare(
    X: np.ndarray, y: np.ndarray, rounds: int, device: str, threads: int
) -> tuple[float, np.ndarray]:
    """Time plain xgboost.train; return seconds and predictions on the first 10k rows."""
    import xgboost as xgb

    params = {
        "objective": "binary:logistic",
        "tree_method": "hist",
        "device": device,
        "max_depth": 6,
        "eta": 0.3,
        "max_bin": 256,
        "seed": 0,
        "nthread": threads,
    }
    start = time.perf_counter()
    booster = xgb.train(params, xgb.QuantileDMatrix(X, label=y, nthread=threads), rounds)
    seconds = time.perf_counter() - start
    booster.set_param({"device": "cpu"})
    return seconds, booster.inplace_predict(X[:10_000])


def run_refit(
    table: pa.Table, rounds: int, device: str, threads: int
) -> tuple[float, np.ndarray, str, float]:
    """Time refit's trainer from the table; return seconds, predictions, device, fit seconds."""
    from refit.training import train

    start = time.perf_counter()
    model = train(
        table,
        "label",
        trainer="xgboost",
        params={"n_estimators": rounds, "max_depth": 6, "learning_rate": 0.3, "n_jobs": threads},
        device=device,
    )
    seconds = time.perf_counter() - start
    proba = model.predict_proba(table.slice(0, 10_000))[:, 1]
    return seconds, proba, model.device, float(model.info["fit_seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="0: all cores")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--compare-cpu", action="store_true", help="also a bare CPU run (cuda)")
    parser.add_argument("--cpu-threads", type=int, default=0)
    args = parser.parse_args()

    import os

    threads = args.threads or os.cpu_count() or 1
    X, y = make_data(args.rows, args.features)
    table = to_table(X, y)
    print(
        f"data: {args.rows} rows x {args.features} features, {args.rounds} rounds, "
        f"device {args.device}, {threads} threads, {args.repeat} repeats"
    )
    bare_times, refit_times, prep_times = [], [], []
    max_diff = 0.0
    for i in range(args.repeat):
        seconds, bare_pred = run_bare(X, y, args.rounds, args.device, threads)
        bare_times.append(seconds)
        seconds, refit_pred, used, fit_seconds = run_refit(table, args.rounds, args.device, threads)
        refit_times.append(seconds)
        prep_times.append(seconds - fit_seconds)
        max_diff = max(max_diff, float(np.max(np.abs(bare_pred - refit_pred))))
        print(
            f"  repeat {i + 1}: bare {bare_times[-1]:.2f} s, refit {refit_times[-1]:.2f} s "
            f"({used}; checks + encoding {prep_times[-1]:.2f} s of it)"
        )
    bare, refit = statistics.median(bare_times), statistics.median(refit_times)
    print(f"bare xgboost.train  median {bare:.2f} s")
    print(f"refit train()       median {refit:.2f} s")
    print(f"overhead ratio refit/bare: {refit / bare:.3f} (target <= 1.05)")
    # on a shared machine the fastest run is the least disturbed one
    print(f"overhead ratio of the fastest runs: {min(refit_times) / min(bare_times):.3f}")
    print(f"refit checks + encoding (before the fit) median {statistics.median(prep_times):.2f} s")
    print(f"max |prediction difference| on 10k rows: {max_diff:.2e}")
    if args.device == "cuda" and args.compare_cpu:
        cpu_threads = args.cpu_threads or os.cpu_count() or 1
        seconds, _ = run_bare(X, y, args.rounds, "cpu", cpu_threads)
        print(
            f"bare CPU ({cpu_threads} threads) {seconds:.2f} s; GPU speed-up {seconds / bare:.1f}x"
        )


if __name__ == "__main__":
    main()
