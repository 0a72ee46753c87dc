"""Drift of a large window through the sharded path (10 shards) versus one task.

The window (``drift_vs_peers.py``'s data: 25 columns, 3 shifted) is written as one Parquet file
of 131,072-row row groups. One task: ``refit.steps.detect_drift`` on the whole file against the
reference's stored profile. Sharded: ``plan_shards`` (10 shards), then each shard's
``profile_shard`` task, then ``merge_profiles`` and ``profile_drift``, the tasks of the
``sharded_drift`` pipeline, each in a fresh interpreter (as each is a pod on KFP). Reports
each task's wall time and peak RSS (the child's ``VmHWM``) per window size, the sharded path's
critical path (slowest shard + merge + drift: the wall time with ten pods at once) and its
total CPU-side work (sum of tasks), and checks that both paths give the same drift result.

    .venv/bin/python benchmarks/sharded_drift.py --work /tmp/rsd [--rows 1000000,10000000]

Shards run one after another here (two shared cores): their times are each task's own.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from drift_vs_peers import run, write_data

SHARDS = 10

SINGLE = """
from refit.steps import detect_drift
out = detect_drift({cur!r}, "none", reference_profile_path={ref!r})
json.dump(out.result, open({out!r}, "w"), sort_keys=True)
flagged = sorted(out.audit["drifted"])
"""

PLAN = """
from refit.steps.shards import plan_window_shards
json.dump(plan_window_shards({cur!r}, {shards}), open({out!r}, "w"))
"""

SHARD = """
from refit.steps.shards import profile_window_shard
shard = json.load(open({plan!r}))[{index}]
profile_window_shard(shard, {out!r})
"""

MERGE = """
from refit.steps.shards import merge_profile_files
merge_profile_files({paths!r}, {out!r})
"""

DRIFT = """
from refit.steps.shards import profile_drift
out = profile_drift({merged!r}, "none", reference_profile_path={ref!r})
json.dump(out.result, open({out_path!r}, "w"), sort_keys=True)
flagged = sorted(out.audit["drifted"])
"""

PROFILE = """
from refit.drift.profile_io import profile_uri, save_profile
save_profile(profile_uri({ref!r}), {out!r})
"""


def one_size(rows: int, work: Path, env: dict[str, str]) -> dict:
    """Both paths over a window of ``rows`` rows; their tasks' figures."""
    python = sys.executable
    ref, cur = write_data(work, rows, f"{rows}")
    ref_profile = work / f"ref_{rows}.profile.json"
    if not ref_profile.exists():
        run(python, PROFILE.format(ref=str(ref), out=str(ref_profile)), env)
    out = work / f"out_{rows}"
    out.mkdir(exist_ok=True)
    single = run(
        python,
        SINGLE.format(cur=str(cur), ref=str(ref_profile), out=str(out / "single.json")),
        env,
    )
    plan = run(python, PLAN.format(cur=str(cur), shards=SHARDS, out=str(out / "plan.json")), env)
    count = len(json.loads((out / "plan.json").read_text()))
    shards = [
        run(
            python,
            SHARD.format(plan=str(out / "plan.json"), index=i, out=str(out / f"s{i}.json")),
            env,
        )
        for i in range(count)
    ]
    paths = [str(out / f"s{i}.json") for i in range(count)]
    merge = run(python, MERGE.format(paths=paths, out=str(out / "merged.json")), env)
    drift = run(
        python,
        DRIFT.format(
            merged=str(out / "merged.json"), ref=str(ref_profile), out_path=str(out / "sh.json")
        ),
        env,
    )
    same = (out / "single.json").read_text() == (out / "sh.json").read_text()
    return {
        "rows": rows,
        "single": single,
        "plan": plan,
        "shards": shards,
        "merge": merge,
        "drift": drift,
        "same": same,
        "flagged": single["flagged"],
    }


def main() -> int:
    """Run both paths for each size and print the table; 1 when the results differ."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/refit-sharded-drift"))
    parser.add_argument("--rows", default="1000000,2000000,5000000,10000000")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(args.work / "pycache")}
    sizes = [int(r) for r in args.rows.split(",")]
    print("| rows | path | tasks | wall s per task (max) | critical path s | sum of tasks s | "
          "peak RSS MB per task (max) | same result |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|", flush=True)
    ok = True
    results = []
    for rows in sizes:  # each size printed as soon as it is measured
        r = one_size(rows, args.work, env)
        results.append(r)
        s = r["single"]
        print(
            f"| {r['rows']:,} | one task | 1 | {s['wall_s']:.1f} | {s['wall_s']:.1f} | "
            f"{s['wall_s']:.1f} | {s['rss_mb']:.0f} | - |"
        )
        shard_wall = max(x["wall_s"] for x in r["shards"])
        shard_rss = max(x["rss_mb"] for x in r["shards"])
        tail = r["merge"]["wall_s"] + r["drift"]["wall_s"]
        critical = r["plan"]["wall_s"] + shard_wall + tail
        total = r["plan"]["wall_s"] + sum(x["wall_s"] for x in r["shards"]) + tail
        rss = max(shard_rss, r["merge"]["rss_mb"], r["drift"]["rss_mb"], r["plan"]["rss_mb"])
        print(
            f"| {r['rows']:,} | {len(r['shards'])} shards | {len(r['shards']) + 3} | "
            f"shard {shard_wall:.1f}, merge {r['merge']['wall_s']:.1f}, drift "
            f"{r['drift']['wall_s']:.1f} | {critical:.1f} | {total:.1f} | shard {shard_rss:.0f}, "
            f"merge {r['merge']['rss_mb']:.0f}; max {rss:.0f} | {r['same']} |",
            flush=True,
        )
        ok = ok and r["same"]
    print(f"flagged (both paths): {results[-1]['flagged']}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
