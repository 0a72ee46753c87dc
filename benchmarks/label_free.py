"""Estimated (CBPE, no labels) against realised accuracy per window, on a seeded stream.

The stream is refit's demo (``refit.demo.data``): a stable population, a covariate shift from
``--shift-from`` and a concept change from ``--concept-from``. A champion is trained on window 0
through refit's own steps (so its holdout and calibration are the pipeline's), never retrained,
and every later window is judged twice through ``detect_drift`` and ``decide_retrain``: once
with its labels (the realised accuracy, the label drift) and once with the label column dropped
(the estimate, its interval, and what CBPE would say without calibration). The table shows where
the estimate holds (stable and covariate-shifted windows) and where its assumption breaks (the
concept change, which only label drift or realised labels reveal).

Usage: ``.venv/bin/python benchmarks/label_free.py [--rows 2000] [--windows 10] [--seed 7]``
"""

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from refit import steps
from refit.demo.data import TARGET, TIME_COLUMN, DemoScenario, make_windows
from refit.evaluation.metrics import evaluate
from refit.io.tables import write_parquet
from refit.monitoring import estimate_performance
from refit.training.artifacts import load_model

MODEL = "bench"


def main(argv: list[str] | None = None) -> int:
    """Print the table; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--windows", type=int, default=10)
    parser.add_argument("--shift-from", type=int, default=3)
    parser.add_argument("--concept-from", type=int, default=6)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", default="", help="folder for the store (default: a temp dir)")
    args = parser.parse_args(argv)
    scenario = DemoScenario(
        windows=args.windows,
        rows=args.rows,
        shift_from=args.shift_from,
        bad_window=args.windows + 1,  # no renamed column: every window is scored
        concept_from=args.concept_from,
        seed=args.seed,
    )
    windows = make_windows(scenario)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.work or tmp)
        root.mkdir(parents=True, exist_ok=True)
        write_parquet(windows[0], str(root / "w0.parquet"))
        snap = steps.snapshot_data(str(root / "w0.parquet"), str(root), MODEL, str(root / "s.pq"))
        steps.train_model(
            str(root / "s.pq"),
            TARGET,
            str(root / "model"),
            str(root / "holdout.parquet"),
            time_column=TIME_COLUMN,
        )
        version = steps.register_model(str(root / "model"), str(root), MODEL, snap.sha256, {})
        steps.promote_model(str(root), MODEL, version)
        champ = steps.resolve_champion(str(root), MODEL)
        model = load_model(champ.model_uri)
        policy = {"drift_share_threshold": None, "metric_threshold": 0.8, "consecutive_windows": 1}
        print(
            "| window | event | realised accuracy | CBPE estimate [95% interval] | inside | "
            "uncalibrated estimate | label drift (linf) | prediction drift (PSI) |"
        )
        print("|---|---|---|---|---|---|---|---|")
        inside_before_concept: list[bool] = []
        errors: list[float] = []
        for i, table in enumerate(windows[1:], start=1):
            event = (
                "concept change"
                if i >= args.concept_from
                else "covariate shift"
                if i >= args.shift_from
                else "stable"
            )
            labelled_path = root / f"w{i}.parquet"
            blind_path = root / f"w{i}-blind.parquet"
            write_parquet(table, str(labelled_path))
            write_parquet(table.drop_columns([TARGET]), str(blind_path))
            kwargs = {
                "reference_profile_path": champ.profile_uri,
                "reference_path": champ.reference_uri,
                "model_dir": champ.model_uri,
                "time_column": TIME_COLUMN,
            }
            labelled = steps.detect_drift(str(labelled_path), TARGET, **kwargs).result
            blind = steps.detect_drift(str(blind_path), TARGET, **kwargs).result
            out = steps.decide_retrain(
                str(blind_path),
                blind,
                str(root),
                MODEL,
                TARGET,
                policy,
                now=f"2026-01-{i + 1:02d}T00:00:00",
                run_label=f"w{i}",
                champion_dir=champ.model_uri,
                champion_version=champ.version,
            )
            est = out.estimate
            assert est is not None, out.reasons
            realised = evaluate(model, table).accuracy
            raw = estimate_performance(model.predict_proba(table))
            inside = est["lower"] <= realised <= est["upper"]
            if i < args.concept_from:
                inside_before_concept.append(inside)
                errors.append(est["value"] - realised)
            print(
                f"| {i} | {event} | {realised:.3f} | {est['value']:.3f} "
                f"[{est['lower']:.3f}, {est['upper']:.3f}] | {'yes' if inside else 'no'} | "
                f"{raw.value:.3f} | {labelled['label_drift']['statistic']:.3f} | "
                f"{labelled['prediction_drift']['statistic']:.3f} |"
            )
        print(
            f"\nbefore the concept change: realised inside the interval in "
            f"{sum(inside_before_concept)} of {len(inside_before_concept)} windows, mean error "
            f"{np.mean(errors):+.3f} (max |error| {np.max(np.abs(errors)):.3f}); "
            f"calibration: {blind['prediction_drift'].get('calibration', {}).get('method')} "
            f"on {blind['prediction_drift']['reference']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
