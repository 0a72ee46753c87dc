"""Benchmark: distributed XGBoost (1, 2, 4 local workers) against bare one-process XGBoost.

The workers are refit's TrainJob workers (``python -m refit.training.distributed``) started
by ``run_local`` with the ``DMLC_*`` variables the ``xgboost-distributed`` runtime injects, on
loopback; each reads only its own row groups of one Parquet window. The peer is bare
``xgboost.train`` on a ``QuantileDMatrix`` of the same training rows in one process (the whole
window read into memory). Every contender trains the same rows (the seeded hash holdout of
:func:`refit.training.distributed_plan.holdout_mask`) with the same parameters and is scored on
the same holdout.

What is measured:

- wall s: the parent's clock around the whole job (interpreter start, imports, tracker,
  reading, training, writing), so the 1-worker row shows refit's fixed cost over bare;
- peak MB per worker: each worker's own ``VmHWM`` (from its report); bare: the child's
  ``VmHWM``;
- holdout AUC on the same holdout rows.

On a machine with C cores the workers split them (``OMP_NUM_THREADS = C // workers``), so
this shows the collective's overhead and the memory per worker, not a speed-up: the speed-up
of distributed training comes from more machines, which a loopback run cannot show.

Usage::

    python benchmarks/distributed_train.py                    # 400k rows x 20, 100 rounds
    python benchmarks/distributed_train.py --rows 2000000 --workers 1 2 4
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

BARE = r"""
import json, sys, time
from pathlib import Path
import numpy as np, pyarrow.parquet as pq, xgboost as xgb
from sklearn.metrics import roc_auc_score
from refit.training.distributed_plan import holdout_mask
path, rounds, seed, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
table = pq.read_table(path)
y = table.column("label").to_numpy()
X = np.column_stack([table.column(n).to_numpy() for n in table.column_names if n != "label"])
held = holdout_mask(np.arange(len(y)), 0.25, seed)
dtrain = xgb.QuantileDMatrix(X[~held], y[~held])
params = {"objective": "binary:logistic", "tree_method": "hist", "max_depth": 6, "eta": 0.3,
          "max_bin": 256, "nthread": threads, "seed": seed}
booster = xgb.train(params, dtrain, num_boost_round=rounds)
auc = roc_auc_score(y[held], booster.predict(xgb.DMatrix(X[held])))
hwm = next(int(l.split()[1]) for l in Path("/proc/self/status").read_text().splitlines()
           if l.startswith("VmHWM:")) / 1024
print(json.dumps({"auc": float(auc), "peak_mb": hwm}))
"""


def make_window(path: Path, rows: int, features: int, row_group: int, seed: int = 0) -> None:
    """A seeded binary task as one Parquet window with many row groups."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, features), dtype=np.float32)
    w = rng.standard_normal(features).astype(np.float32)
    score = X @ w + X[:, 0] * X[:, 1] + rng.standard_normal(rows, dtype=np.float32)
    columns = {f"f{j:02d}": pa.array(X[:, j]) for j in range(features)}
    columns["label"] = pa.array((score > 0).astype(np.int64))
    pq.write_table(pa.table(columns), path, row_group_size=row_group)


def run_bare(path: Path, rounds: int, seed: int) -> dict:
    started = time.perf_counter()
    threads = os.cpu_count() or 1
    out = subprocess.run(
        [sys.executable, "-c", BARE, str(path), str(rounds), str(seed), str(threads)],
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return {"wall_s": time.perf_counter() - started, **result}


def run_distributed(path: Path, work: Path, workers: int, rounds: int, seed: int) -> dict:
    from refit.io.tables import read_table
    from refit.training import load_model
    from refit.training.card import validation_metrics
    from refit.training.distributed_local import run_local
    from refit.training.distributed_plan import DistributedConfig

    out = work / f"w{workers}"
    config = DistributedConfig(
        snapshot=str(path),
        label_column="label",
        model_uri=str(out / "model"),
        holdout_uri=str(out / "holdout"),
        report_uri=str(out / "workers"),
        params={"n_estimators": rounds, "max_depth": 6, "learning_rate": 0.3, "max_bin": 256},
        seed=seed,
        timeout_s=1800,
    )
    started = time.perf_counter()
    run_local(config, workers, timeout_s=3600)
    wall = time.perf_counter() - started
    reports = [json.loads(p.read_text()) for p in sorted((out / "workers").glob("*.json"))]
    model = load_model(out / "model")
    auc = validation_metrics(model, read_table(str(out / "holdout")))["roc_auc"]
    return {
        "wall_s": wall,
        "auc": auc,
        "peak_mb": max(r["peak_rss_mb"] for r in reports),
        "rows_per_worker": [r["rows_read"] for r in reports],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--row-group", type=int, default=25_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="refit-dist-bench-") as tmp:
        work = Path(tmp)
        path = work / "window.parquet"
        make_window(path, args.rows, args.features, args.row_group, args.seed)
        print(
            f"{args.rows} rows x {args.features} features, {args.rounds} rounds, "
            f"{os.cpu_count()} cores, window {path.stat().st_size / 2**20:.1f} MiB"
        )
        bare = run_bare(path, args.rounds, args.seed)
        rows = [("bare xgboost.train (1 process)", bare)]
        for n in args.workers:
            rows.append((f"refit distributed, {n} worker(s)", run_distributed(
                path, work, n, args.rounds, args.seed)))  # fmt: skip
        print()
        print(
            "| contender | wall s | wall vs bare | peak MB per worker | holdout AUC | AUC - bare |"
        )
        print("|---|---|---|---|---|---|")
        for label, r in rows:
            print(
                f"| {label} | {r['wall_s']:.1f} | {r['wall_s'] / bare['wall_s']:.2f}x | "
                f"{r['peak_mb']:.0f} | {r['auc']:.4f} | {r['auc'] - bare['auc']:+.4f} |"
            )


if __name__ == "__main__":
    main()
