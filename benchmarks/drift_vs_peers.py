"""Benchmark: refit's drift check against Evidently's DataDriftPreset and a per-column scipy loop.

Data: reference and current windows of ``--rows`` rows each (default 1,000,000), 25 columns:
20 numeric (5 each of normal, lognormal, uniform, exponential) and 5 categorical (3, 5, 10, 20
and 50 levels), written to Parquet. The current window shifts exactly three columns a little:
``normal_0`` by +0.25 sd, ``lognormal_0`` by +0.2 on the log scale (values x1.22) and ``cat_3``
from shares (0.5, 0.3, 0.2) to (0.35, 0.4, 0.25).

Contenders, each in its own subprocess (wall time from the parent, interpreter start and imports
included; peak RSS is the child's own high-water mark, ``VmHWM`` in ``/proc/self/status``):

* ``refit profile``: building the reference profile (done once, stored with the model);
* ``refit from profile``: ``refit drift --reference PROFILE --current DATA`` (end to end:
  CLI, one streaming pass over the current Parquet, tests, drift.json and report.html);
* ``refit from raw``: ``refit drift --reference DATA --current DATA`` (both sides streamed);
* ``scipy per column``: pandas reads both files, then ``ks_2samp`` per numeric column and
  ``chi2_contingency`` per categorical one (p < 0.05, no correction);
* ``evidently``: ``Report([DataDriftPreset()])`` of Evidently 0.7 in its own virtual environment
  (``/tmp/evidently-venv``, created with uv when absent: Evidently 0.7 needs pandas < 3); skipped
  with the reason printed when it cannot be set up.

Two baselines are measured the same way and printed apart: ``python + numpy + pyarrow`` (the bare
interpreter importing numpy, pyarrow, pyarrow.parquet and pyarrow.compute: what any Arrow-based
check pays before reading a row) and ``refit imports`` (``refit.cli`` and the drift modules,
without running anything).

Why not ``ru_maxrss``: on Linux a child's ``RUSAGE_SELF`` maximum RSS starts at the RSS its
parent had when it forked (the kernel keeps the larger of the old and new address space's
high-water marks across ``exec``, and Python's ``subprocess`` uses ``vfork``), so every contender
reported at least the benchmark's own peak once it had generated data (about 610 MB, written in
1M-row slices at any size): the 617 MB once reported for ``refit from profile`` and the "not flat"
347 -> 604 MB at 10M rows were that. ``VmHWM`` belongs to the child's own address space.

Each contender prints the columns it flags; the benchmark checks refit flags exactly the three
shifted ones. Python bytecode is cached under the work folder (``PYTHONPYCACHEPREFIX``) and
every interpreter is warmed up once, so no contender pays for compiling its imports.

``--scale-rows 10000000`` adds 10M-row runs of refit (profile, from profile) on Parquet for
time ~ linear and memory flat. Refit's contenders, the baselines and scipy run ``--repeat`` times
(default 3) and the median run is shown, with every run listed; Evidently runs once.

Usage::

    python benchmarks/drift_vs_peers.py                 # 1M + 1M rows
    python benchmarks/drift_vs_peers.py --rows 200000 --no-evidently
    python benchmarks/drift_vs_peers.py --scale-rows 10000000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SHIFTED = {"normal_0", "lognormal_0", "cat_3"}
LEVELS = (3, 5, 10, 20, 50)
EVIDENTLY_VENV = Path("/tmp/evidently-venv")


def make_window(rows: int, shifted: bool, seed: int) -> pa.Table:
    """One window of the benchmark data (see the module docstring)."""
    rng = np.random.default_rng(seed)
    columns: dict[str, np.ndarray] = {}
    for i in range(5):
        columns[f"normal_{i}"] = rng.normal(0.25 if shifted and i == 0 else 0.0, 1.0, rows)
        columns[f"lognormal_{i}"] = rng.lognormal(0.2 if shifted and i == 0 else 0.0, 1.0, rows)
        columns[f"uniform_{i}"] = rng.uniform(-3.0, 7.0, rows)
        columns[f"exponential_{i}"] = rng.exponential(2.0, rows)
    for levels in LEVELS:
        names = np.array([f"L{j:02d}" for j in range(levels)])
        if levels == 3:
            p = [0.35, 0.4, 0.25] if shifted else [0.5, 0.3, 0.2]
        else:
            w = 1.0 / np.arange(1, levels + 1)
            p = w / w.sum()
        columns[f"cat_{levels}"] = names[rng.choice(levels, rows, p=p)]
    return pa.table(columns)


def write_data(folder: Path, rows: int, tag: str) -> tuple[Path, Path]:
    """Write the reference and current windows as Parquet (reused when present)."""
    ref, cur = folder / f"ref_{tag}.parquet", folder / f"cur_{tag}.parquet"
    for path, shifted, seed in ((ref, False, 1), (cur, True, 2)):
        if not path.exists():
            # written in slices so building 10M rows does not need 10M rows in memory
            step = 1_000_000
            writer = None
            for k, start in enumerate(range(0, rows, step)):
                part = make_window(min(step, rows - start), shifted, seed * 1000 + k)
                if writer is None:
                    writer = pq.ParquetWriter(path, part.schema)
                writer.write_table(part, row_group_size=131_072)
            assert writer is not None
            writer.close()
    return ref, cur


_MEASURE = textwrap.dedent(
    """
    import json, resource, sys, time
    t0 = time.perf_counter()
    flagged = None
    {body}
    def _peak_mb():
        # the child's own high-water mark; ru_maxrss would include the parent's (see docstring)
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("BENCH " + json.dumps({{"inner_s": time.perf_counter() - t0, "rss_mb": _peak_mb(),
          "flagged": sorted(flagged) if flagged is not None else None}}))
    """
)

BASELINE_ARROW = """
import numpy, pyarrow, pyarrow.parquet, pyarrow.compute
"""

BASELINE_REFIT = """
from refit.cli import app
import refit.drift, refit.drift.detect, refit.drift.profile, refit.drift.report
import refit.drift.profile_io
import pyarrow.parquet
"""

REFIT_DRIFT = """
import sys
from refit.cli import app
try:
    app(["drift", "--reference", {ref!r}, "--current", {cur!r}, "--output", {out!r}])
except SystemExit as exc:
    if exc.code:
        raise
result = json.load(open({out!r} + "/drift.json"))
flagged = [n for n, f in result["features"].items() if f["drifted"]]
"""

REFIT_PROFILE = """
from refit.cli import app
try:
    app(["profile", {ref!r}, "--output", {out!r}])
except SystemExit as exc:
    if exc.code:
        raise
"""

SCIPY = """
import numpy as np, pandas as pd
from scipy.stats import chi2_contingency, ks_2samp
ref, cur = pd.read_parquet({ref!r}), pd.read_parquet({cur!r})
flagged = []
for name in ref.columns:
    if ref[name].dtype.kind == "f":
        p = ks_2samp(ref[name].to_numpy(), cur[name].to_numpy()).pvalue
    else:
        r, c = ref[name].value_counts(), cur[name].value_counts()
        cats = sorted(set(r.index) | set(c.index))
        table = np.array([[r.get(k, 0) for k in cats], [c.get(k, 0) for k in cats]])
        p = chi2_contingency(table, correction=False).pvalue
    if p < 0.05:
        flagged.append(name)
"""

EVIDENTLY = """
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
ref, cur = pd.read_parquet({ref!r}), pd.read_parquet({cur!r})
snapshot = Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)
flagged = []
for metric in snapshot.dict()["metrics"]:
    config = metric.get("config", {{}})
    column, value = config.get("column"), metric.get("value")
    threshold = config.get("threshold")
    if column and isinstance(value, (int, float)) and threshold is not None:
        method = str(config.get("method", ""))
        p_value_test = "p_value" in method or method in ("ks", "chisquare", "z")
        if (value < threshold) if p_value_test else (value >= threshold):
            flagged.append(column)
"""


def run(python: str, body: str, env: dict[str, str], repeat: int = 1) -> dict:
    """Run ``body`` in a fresh interpreter ``repeat`` times; the run with the median wall time.

    Each run reports wall time (from here), inner time, the child's peak RSS and the columns it
    flagged; ``runs`` holds every run's wall time and peak RSS.
    """
    code = _MEASURE.format(body=textwrap.indent(textwrap.dedent(body), ""))
    runs = []
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        proc = subprocess.run(
            [python, "-c", code], capture_output=True, text=True, env=env, check=False
        )
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"contender failed:\n{proc.stderr[-3000:]}")
        line = next(x for x in proc.stdout.splitlines() if x.startswith("BENCH "))
        data = json.loads(line[len("BENCH ") :])
        data["wall_s"] = wall
        runs.append(data)
    ordered = sorted(runs, key=lambda r: r["wall_s"])
    chosen = dict(ordered[len(ordered) // 2])
    chosen["runs"] = [(r["wall_s"], r["rss_mb"]) for r in runs]
    return chosen


def evidently_python() -> tuple[str | None, str]:
    """The Evidently venv's python, creating the venv with uv when absent."""
    python = EVIDENTLY_VENV / "bin" / "python"
    if not python.exists():
        uv = shutil.which("uv")
        if uv is None:
            return None, "uv is not installed, so Evidently's venv cannot be created"
        for cmd in (
            [uv, "venv", str(EVIDENTLY_VENV), "-p", "3.11"],
            [uv, "pip", "install", "-p", str(EVIDENTLY_VENV), "evidently==0.7.*", "pandas<3"],
        ):
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                return None, f"{' '.join(cmd)} failed: {proc.stderr[-500:]}"
    check = subprocess.run(
        [str(python), "-c", "import evidently, pyarrow"], capture_output=True, text=True
    )
    if check.returncode != 0:
        return None, f"Evidently does not import: {check.stderr[-500:]}"
    return str(python), ""


def _row(name: str, r: dict, base: dict) -> str:
    flagged = r["flagged"]
    shown = (
        "-"
        if flagged is None
        else (", ".join(flagged) if len(flagged) <= 6 else f"{len(flagged)} columns")
    )
    return (
        f"{name:30} {r['wall_s']:8.2f} {r['inner_s']:8.2f} {r['rss_mb']:12.0f} "
        f"{r['wall_s'] / base['wall_s']:9.1f}x {r['rss_mb'] / base['rss_mb']:8.1f}x  {shown}"
    )


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/refit-drift-bench"))
    parser.add_argument("--no-evidently", action="store_true")
    parser.add_argument("--no-scipy", action="store_true")
    parser.add_argument("--scale-rows", type=int, default=0, help="also time refit at this size")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of each refit contender, baseline and scipy (the median is shown); "
        "Evidently runs once",
    )
    return parser.parse_args()


def _peers(args: argparse.Namespace, env: dict[str, str], ref: Path, cur: Path) -> dict[str, dict]:
    """Time scipy per column and Evidently's DataDriftPreset, unless left out or unavailable."""
    results: dict[str, dict] = {}
    if not args.no_scipy:
        results["scipy per column"] = run(
            sys.executable, SCIPY.format(ref=str(ref), cur=str(cur)), env, args.repeat
        )
    if args.no_evidently:
        return results
    evidently, reason = evidently_python()
    if evidently is None:
        print(f"evidently skipped: {reason}")
        return results
    subprocess.run([evidently, "-c", "import evidently, pandas"], env=env, check=False)
    try:
        results["evidently DataDriftPreset"] = run(
            evidently, EVIDENTLY.format(ref=str(ref), cur=str(cur)), env
        )
    except RuntimeError as exc:
        print(f"evidently skipped: {exc}")
    return results


def _print_table(results: dict[str, dict], baselines: dict[str, dict], size: str, rep: int) -> None:
    """The table of contenders and baselines, refit's verdicts and every run's figures."""
    print(f"\nDrift check, {size} (shifted: {', '.join(sorted(SHIFTED))})")
    print(f"median of {rep} runs for refit, the baselines and scipy; Evidently once")
    base = results["refit from profile"]
    header = (
        f"{'contender':30} {'wall s':>8} {'inner s':>8} {'peak RSS MB':>12} "
        f"{'time/prof':>10} {'RSS/prof':>9}  flagged"
    )
    print(header)
    for name, r in results.items():
        print(_row(name, r, base))
    print("baselines (imports only, no data):")
    for name, r in baselines.items():
        print(_row(name, r, base))
    arrow = baselines["python + numpy + pyarrow"]["rss_mb"]
    for name in ("refit from profile", "refit from raw"):
        flagged = set(results[name]["flagged"] or [])
        verdict = (
            "exactly the shifted columns" if flagged == SHIFTED else f"WRONG: {sorted(flagged)}"
        )
        extra = results[name]["rss_mb"] - arrow
        print(f"{name}: {verdict}; peak RSS {extra:.0f} MB above the numpy + pyarrow baseline")
    for name, r in {**results, **baselines}.items():
        runs = ", ".join(f"{w:.2f} s/{m:.0f} MB" for w, m in r["runs"])
        print(f"  runs of {name}: {runs}")


def _scale(args: argparse.Namespace, env: dict[str, str], results: dict[str, dict]) -> None:
    """Time refit's profile and drift check again at ``--scale-rows`` and print the growth."""
    python, rep = sys.executable, args.repeat
    ref10, cur10 = write_data(args.work, args.scale_rows, f"{args.scale_rows}")
    profile10 = str(args.work / f"ref_{args.scale_rows}.json")
    p10 = run(python, REFIT_PROFILE.format(ref=str(ref10), out=profile10), env, rep)
    d10 = run(
        python,
        REFIT_DRIFT.format(ref=profile10, cur=str(cur10), out=str(args.work / "out_10")),
        env,
        rep,
    )
    factor = args.scale_rows / args.rows
    print(
        f"\nScale: {args.scale_rows:,} rows ({factor:.0f}x) from Parquet, median of {rep} "
        "(the first run may read the files from disk rather than the page cache)"
    )
    for name, small, big in (
        ("refit profile", results["refit profile (once)"], p10),
        ("refit from profile", results["refit from profile"], d10),
    ):
        print(
            f"{name:20} {small['wall_s']:6.2f} s -> {big['wall_s']:6.2f} s "
            f"({big['wall_s'] / small['wall_s']:.1f}x time, "
            f"{big['inner_s'] / small['inner_s']:.1f}x inner), "
            f"peak RSS {small['rss_mb']:.0f} -> {big['rss_mb']:.0f} MB "
            f"({big['rss_mb'] / small['rss_mb']:.2f}x memory)"
        )
    print(f"flagged at {args.scale_rows:,}: {d10['flagged']}")
    for name, r in (("refit profile", p10), ("refit from profile", d10)):
        runs = ", ".join(f"{w:.2f} s/{m:.0f} MB" for w, m in r["runs"])
        print(f"  runs of {name} at {args.scale_rows:,}: {runs}")


def main() -> None:
    """Run the benchmark and print the table."""
    args = _parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(args.work / "pycache")
    python = sys.executable
    warm = "import refit.cli, refit.drift, refit.drift.report, scipy.stats, pandas, pyarrow.parquet"
    subprocess.run([python, "-c", warm], env=env, check=True)
    rep = args.repeat

    ref, cur = write_data(args.work, args.rows, f"{args.rows}")
    size = f"{args.rows:,} + {args.rows:,} rows x 25 columns"
    baselines = {
        "python + numpy + pyarrow": run(python, BASELINE_ARROW, env, rep),
        "refit imports": run(python, BASELINE_REFIT, env, rep),
    }
    results: dict[str, dict] = {}
    profile = str(args.work / f"ref_{args.rows}.json")
    results["refit profile (once)"] = run(
        python, REFIT_PROFILE.format(ref=str(ref), out=profile), env, rep
    )
    results["refit from profile"] = run(
        python,
        REFIT_DRIFT.format(ref=profile, cur=str(cur), out=str(args.work / "out_p")),
        env,
        rep,
    )
    results["refit from raw"] = run(
        python,
        REFIT_DRIFT.format(ref=str(ref), cur=str(cur), out=str(args.work / "out_r")),
        env,
        rep,
    )
    results.update(_peers(args, env, ref, cur))
    _print_table(results, baselines, size, rep)
    if args.scale_rows:
        _scale(args, env, results)


if __name__ == "__main__":
    main()
