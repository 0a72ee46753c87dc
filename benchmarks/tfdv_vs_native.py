"""Benchmark: refit's native validation engine against TFDV 1.21 (statistics + schema + validation).

Data: the drift benchmark's windows (``benchmarks/drift_vs_peers.py``): reference and current,
``--rows`` rows each (default 1,000,000), 25 columns (20 numeric, 5 categorical), Parquet.

Work, the same for both engines: statistics of the reference and of the current window, a
schema inferred from the reference statistics, the current statistics validated against it
with the reference as ``previous_statistics``; the three TFDV files written.

* ``native``: ``refit.validation.engines.validate_native`` in a fresh SDK interpreter (reads
  both Parquet files; the child's peak RSS is its ``ru_maxrss``);
* ``tfdv``: :func:`refit.validation.tfdv_client.run_tfdv`, i.e. the TFDV worker in the TFDV
  interpreter (``REFIT_TFDV_PYTHON``; ``generate_statistics_from_dataframe``, in-process, the
  fastest TFDV path on one machine). Its peak RSS is the worker's own ``ru_maxrss``;
* ``tfdv-beam`` (``--beam``): the same through a Beam pipeline on the DirectRunner
  (``beam_pipeline_args=["--runner=DirectRunner"]``: ``ReadFromParquetBatched`` ->
  ``tfdv.GenerateStatistics``), the path that scales out on Dataflow/Flink/Spark. The peak RSS
  is the worker process's only (Beam's DirectRunner runs in-process here).

Wall times include interpreter start and imports (TensorFlow's for TFDV); "compute" is the
engines' own timers. Printed as a table and as ratios TFDV / native, from one run.

Usage::

    REFIT_TFDV_PYTHON=$(scripts/tfdv-env.sh | tail -n 1) \\
        .venv/bin/python benchmarks/tfdv_vs_native.py [--rows 1000000] [--beam]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from drift_vs_peers import write_data  # noqa: E402

NATIVE = textwrap.dedent(
    """
    import json, resource, sys, time
    t0 = time.perf_counter()
    from refit.io import read_table
    from refit.validation.engines import validate_native
    ref, cur = read_table(sys.argv[1]), read_table(sys.argv[2])
    t1 = time.perf_counter()
    result = validate_native(cur, reference=ref)
    out = sys.argv[3]
    open(out + "/statistics.pb", "wb").write(result.statistics.SerializeToString())
    from google.protobuf import text_format
    open(out + "/schema.pbtxt", "w").write(text_format.MessageToString(result.schema))
    open(out + "/anomalies.pbtxt", "w").write(text_format.MessageToString(result.anomalies))
    t2 = time.perf_counter()
    print("BENCH " + json.dumps({
        "compute_s": t2 - t1, "read_s": t1 - t0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "features": len(result.statistics.datasets[0].features),
    }))
    """
)


def run_native(ref: Path, cur: Path, out: Path) -> dict:
    """Native engine in a fresh interpreter."""
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", NATIVE, str(ref), str(cur), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - start
    line = next(x for x in proc.stdout.splitlines() if x.startswith("BENCH "))
    data = json.loads(line[len("BENCH ") :])
    data["wall_s"] = wall
    return data


def run_tfdv(ref: Path, cur: Path, beam_args: list[str] | None = None) -> dict:
    """TFDV worker through refit's client (``beam_args``: through a Beam pipeline)."""
    from refit.validation.tfdv_client import run_tfdv as client

    start = time.perf_counter()
    outputs = client(cur, reference=ref, beam_pipeline_args=beam_args)
    wall = time.perf_counter() - start
    timings = outputs.metadata["timings"]
    return {
        "wall_s": wall,
        "compute_s": sum(timings.values()),
        "peak_rss_mb": outputs.metadata["peak_rss_mb"],
        "features": len(outputs.statistics.datasets[0].features),
        "timings": timings,
    }


def main() -> None:
    """Run both engines on the same data and print times, memory and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--beam", action="store_true", help="also TFDV through Beam (DirectRunner): minutes"
    )
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "refit-bench")
    args = parser.parse_args()
    if not os.environ.get("REFIT_TFDV_PYTHON"):
        sys.exit("set REFIT_TFDV_PYTHON (scripts/tfdv-env.sh prints it)")
    args.work.mkdir(parents=True, exist_ok=True)
    ref, cur = write_data(args.work, args.rows, f"{args.rows}")
    run_native(ref, cur, args.work / "warm")  # warm the page cache and bytecode
    native = run_native(ref, cur, args.work / "native")
    tfdv = run_tfdv(ref, cur)
    contenders = [("native", native), ("tfdv", tfdv)]
    if args.beam:
        contenders.append(("tfdv-beam", run_tfdv(ref, cur, ["--runner=DirectRunner"])))
    print(f"{args.rows:,} + {args.rows:,} rows x 25 columns: statistics x2, schema, validation")
    print(f"{'engine':<9} {'wall s':>8} {'compute s':>10} {'peak RSS MB':>12}")
    for name, r in contenders:
        print(f"{name:<9} {r['wall_s']:>8.2f} {r['compute_s']:>10.2f} {r['peak_rss_mb']:>12.0f}")
    for name, r in contenders[1:]:
        print(f"{name} timings: {json.dumps({k: round(v, 2) for k, v in r['timings'].items()})}")
        print(
            f"ratio {name}/native: wall {r['wall_s'] / native['wall_s']:.1f}x, "
            f"compute {r['compute_s'] / native['compute_s']:.1f}x, "
            f"peak memory {r['peak_rss_mb'] / native['peak_rss_mb']:.1f}x"
        )


if __name__ == "__main__":
    main()
