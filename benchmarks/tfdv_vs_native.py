"""Benchmark: refit's native validation engine against TFDV 1.21 (statistics + schema + validation).

Data: the drift benchmark's windows (``benchmarks/drift_vs_peers.py``): reference and current,
``--rows`` rows each (default 1,000,000), 25 columns (20 numeric, 5 categorical), Parquet.

Work, the same for both engines: statistics of the reference and of the current window, a
schema inferred from the reference statistics, the current statistics validated against it
with the reference as ``previous_statistics``; the three TFDV files written.

* ``native``: ``refit.validation.engines.validate_native`` in a fresh SDK interpreter (reads
  both Parquet files; the child's peak RSS is its own ``VmHWM``). Statistics summarise columns
  on ``min(pyarrow.cpu_count(), 4)`` threads;
* ``native-1t``: the same on one thread (``OMP_NUM_THREADS=1``, which also makes the Parquet
  read single-threaded: compare its compute, not its wall time);
* ``tfdv``: :func:`refit.tfdv.client.run_tfdv`, i.e. the TFDV worker in the TFDV
  interpreter (``REFIT_TFDV_PYTHON``; ``generate_statistics_from_dataframe``, in-process, the
  fastest TFDV path on one machine). Its peak RSS is the worker's own ``VmHWM``;
* ``tfdv-beam`` (``--beam``): the same through a Beam pipeline on the DirectRunner
  (``beam_pipeline_args=["--runner=DirectRunner"]``: ``ReadFromParquetBatched`` ->
  ``tfdv.GenerateStatistics``), the path that scales out on Dataflow/Flink/Spark. The peak RSS
  is the worker process's only (Beam's DirectRunner runs in-process here).

Wall times include interpreter start and imports (TensorFlow's for TFDV), and so does "CPU"
(user + system seconds of the whole child process, every thread). Both engines' own clocks
start at the same point, after imports and before reading the two Parquet files, and stop
once the three files are written: "compute" is that span for both; "read" is the Parquet
read (TFDV's includes its conversion to pandas, which its in-process path needs); "stats" is
the two statistics passes alone, reads excluded (TFDV: ``statistics_s +
reference_statistics_s`` minus its reads; its first pass also pays TFDV's one-off warm-up,
the second one is printed apart). The native
interpreters cache their bytecode under ``--work`` (``PYTHONPYCACHEPREFIX``) and are warmed up
once; the TFDV environment's packages come with compiled bytecode (pip). Printed as a table
and as ratios TFDV / native, from one run.

Usage::

    REFIT_TFDV_PYTHON=$(scripts/tfdv-env.sh | tail -n 1) \\
        .venv/bin/python benchmarks/tfdv_vs_native.py [--rows 1000000] [--beam]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from drift_vs_peers import write_data

NATIVE = textwrap.dedent(
    """
    import json, resource, sys, time
    t0 = time.perf_counter()
    from refit.io import read_table
    from refit.validation import anomalies
    from refit.validation.engines import validate_native
    stats_s = []
    def timed(table, name="data", compute=anomalies.compute_statistics):
        start = time.perf_counter()
        result = compute(table, name)
        stats_s.append(time.perf_counter() - start)
        return result
    anomalies.compute_statistics = timed  # what validate_table calls: time the statistics alone
    t_imported = time.perf_counter()  # the clock TFDV's worker starts from: before its read
    ref, cur = read_table(sys.argv[1]), read_table(sys.argv[2])
    t1 = time.perf_counter()
    result = validate_native(cur, reference=ref)
    out = sys.argv[3]
    open(out + "/statistics.pb", "wb").write(result.statistics.SerializeToString())
    from google.protobuf import text_format
    open(out + "/schema.pbtxt", "w").write(text_format.MessageToString(result.schema))
    open(out + "/anomalies.pbtxt", "w").write(text_format.MessageToString(result.anomalies))
    t2 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for line in open("/proc/self/status"):  # own high-water mark; ru_maxrss has the parent's
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024
    print("BENCH " + json.dumps({
        "compute_s": t2 - t_imported, "read_s": t1 - t_imported,
        "import_s": t_imported - t0, "stats_s": sum(stats_s),
        "peak_rss_mb": peak,
        "features": len(result.statistics.datasets[0].features),
    }))
    """
)


def native_env(work: Path, threads: int | None = None) -> dict[str, str]:
    """Environment of the native child: cached bytecode, optionally one thread."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def children_cpu_s() -> float:
    """CPU seconds (user + system) of this process's finished children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_native(ref: Path, cur: Path, out: Path, env: dict[str, str]) -> dict:
    """Native engine in a fresh interpreter."""
    out.mkdir(parents=True, exist_ok=True)
    cpu = children_cpu_s()
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", NATIVE, str(ref), str(cur), str(out)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    wall = time.perf_counter() - start
    line = next(x for x in proc.stdout.splitlines() if x.startswith("BENCH "))
    data = json.loads(line[len("BENCH ") :])
    data["wall_s"] = wall
    data["cpu_s"] = children_cpu_s() - cpu
    return data


def run_tfdv(ref: Path, cur: Path, beam_args: list[str] | None = None) -> dict:
    """TFDV worker through refit's client (``beam_args``: through a Beam pipeline)."""
    from refit.tfdv.client import run_tfdv as client

    cpu = children_cpu_s()
    start = time.perf_counter()
    outputs = client(cur, reference=ref, beam_pipeline_args=beam_args)
    wall = time.perf_counter() - start
    cpu = children_cpu_s() - cpu
    timings = outputs.metadata["timings"]
    reads = outputs.metadata.get("read_timings") or {}
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "compute_s": sum(timings.values()),  # read, statistics x2, schema, validation, files
        "read_s": sum(reads.values()),
        "stats_s": timings["statistics_s"]
        + timings.get("reference_statistics_s", 0.0)
        - sum(reads.values()),
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
    env = native_env(args.work)
    run_native(ref, cur, args.work / "warm", env)  # warm the page cache and bytecode
    native = run_native(ref, cur, args.work / "native", env)
    single = run_native(ref, cur, args.work / "native-1t", native_env(args.work, threads=1))
    tfdv = run_tfdv(ref, cur)
    contenders = [("native", native), ("native-1t", single), ("tfdv", tfdv)]
    if args.beam:
        contenders.append(("tfdv-beam", run_tfdv(ref, cur, ["--runner=DirectRunner"])))
    print(f"{args.rows:,} + {args.rows:,} rows x 25 columns: statistics x2, schema, validation")
    print(
        f"{'engine':<10} {'wall s':>8} {'CPU s':>7} {'compute s':>10} {'read s':>7}"
        f" {'stats s':>8} {'peak RSS MB':>12}"
    )
    for name, r in contenders:
        print(
            f"{name:<10} {r['wall_s']:>8.2f} {r['cpu_s']:>7.2f} {r['compute_s']:>10.2f}"
            f" {r['read_s']:>7.2f} {r['stats_s']:>8.3f} {r['peak_rss_mb']:>12.0f}"
        )
    for name, r in contenders[2:]:
        print(f"{name} timings: {json.dumps({k: round(v, 2) for k, v in r['timings'].items()})}")
        for base_name, base in contenders[:2]:
            print(
                f"ratio {name}/{base_name}: wall {r['wall_s'] / base['wall_s']:.1f}x, "
                f"compute {r['compute_s'] / base['compute_s']:.1f}x, "
                f"stats {r['stats_s'] / base['stats_s']:.1f}x, "
                f"peak memory {r['peak_rss_mb'] / base['peak_rss_mb']:.1f}x"
            )


if __name__ == "__main__":
    main()
