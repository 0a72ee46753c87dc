"""A fleet of models behind one trigger service and one store, against one model, on loopback.

Starts the real ``refit serve-triggers`` (log launcher) in a subprocess with ``--models`` models in
its config, all sharing one refit store (a local folder: champion lookups and one audit log per
model) and one SQLite state, each with an embedded schedule that fires every minute. Sends
Alertmanager v4 webhooks over keep-alive connections: ``--groups`` alert groups spread over the
models, each re-sent ``--repeat`` times, interleaved; first against a config of one model, then
the fleet. The load starts at second 45 of a minute, so the schedules fire during it. Reports
per fleet size: config load (server start) time, alerts/s, p50/p99 latency, the
server's peak memory (VmHWM), the scheduled runs, and checks exactly one launch per alert group.

    .venv/bin/python benchmarks/fleet.py [--models 1000] [--groups 2000] [--repeat 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _alertmanager import webhook
from _servers import ServeProcess, blast, fleet_config

SECRET = "benchmark-secret-0123456789abcdef"


def model_name(i: int) -> str:
    """The name of model ``i`` of the fleet (one per region/product)."""
    return f"model-{i:05d}"


def alert(group: int, model: str) -> bytes:
    """One Alertmanager v4 webhook body: alert group ``group`` firing for ``model``."""
    key = f'{{}}:{{alertname="DriftHigh", model="{model}", shard="{group}"}}'
    body = webhook(model, key, [f"fp{group:06d}"], annotations={"drift_share": "0.5"})
    return json.dumps(body).encode()


def peak_memory_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a live process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(models: int, groups: int, repeat: int, concurrency: int) -> dict:
    """Load one service of ``models`` models; its figures."""
    n = groups * repeat
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        names = [model_name(i) for i in range(models)]
        config = fleet_config(tmp, names, "* * * * *", 100_000)
        started = time.perf_counter()
        server = ServeProcess(config, SECRET)
        start_s = time.perf_counter() - started
        try:
            headers = {"Authorization": f"Bearer {SECRET}"}
            bodies = [alert(g, model_name(g % models)) for g in range(groups)]
            latencies: list[float] = []
            # start the load at :45 of a minute, so every model's schedule comes due during it
            time.sleep((45 - time.time() % 60) % 60)
            started = time.perf_counter()
            results = asyncio.run(
                blast("127.0.0.1", server.port, "/hooks/alertmanager", bodies, headers, n,
                      concurrency, latencies)
            )  # fmt: skip
            seconds = time.perf_counter() - started
            memory = peak_memory_mb(server.proc.pid)
            auth = {"Authorization": f"Bearer {SECRET}"}
            runs = httpx.get(
                server.url + "/runs", params={"limit": 1000}, headers=auth, timeout=60
            ).json()["runs"]
            db = tmp / "state.db"
        finally:
            server.stop()
        import sqlite3

        with sqlite3.connect(db) as con:
            by_hook = dict(con.execute("SELECT hook, COUNT(*) FROM runs GROUP BY hook").fetchall())
            # a run's label hashes its event's dedupe key (alert group and fingerprints)
            labels = con.execute(
                "SELECT COUNT(DISTINCT json_extract(params, '$.run_label')) FROM runs "
                "WHERE hook = 'alertmanager'"
            ).fetchone()[0]
    statuses = sorted({s for s, _ in results})
    decisions = [json.loads(b)["decisions"][0]["decision"] for s, b in results if s == 200]
    latencies.sort()
    del runs
    return {
        "models": models,
        "alerts": n,
        "groups": groups,
        "start_s": start_s,
        "rate": n / seconds,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1000,
        "peak_mb": memory,
        "statuses": statuses,
        "launches": decisions.count("launch"),
        "alert_runs": by_hook.get("alertmanager", 0),
        "scheduled_runs": by_hook.get("schedule", 0),
        "distinct_groups_run": labels,
    }


def main() -> int:
    """Run the benchmark for 1 model and for the fleet; print a table; 1 when a check fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    rows = [run(m, args.groups, args.repeat, args.concurrency) for m in (1, args.models)]
    print(
        f"{args.groups} alert groups x {args.repeat} sends, concurrency {args.concurrency}, one "
        f"store, one SQLite state, schedules every minute; {os.cpu_count()} cores"
    )
    print("| models | start (s) | alerts/s | p50 (ms) | p99 (ms) | peak MB | alert runs | "
          "scheduled runs | HTTP |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['models']} | {r['start_s']:.1f} | {r['rate']:,.0f} | {r['p50_ms']:.1f} | "
            f"{r['p99_ms']:.1f} | {r['peak_mb']:.0f} | {r['alert_runs']} | "
            f"{r['scheduled_runs']} | {r['statuses']} |"
        )
    one, fleet = rows
    ratios = (
        fleet["rate"] / one["rate"],
        fleet["p99_ms"] / one["p99_ms"],
        fleet["peak_mb"] / one["peak_mb"],
    )
    print("fleet / one: alerts/s x{:.2f}, p99 x{:.2f}, memory x{:.2f}".format(*ratios))
    ok = all(
        r["statuses"] == [200]
        and r["launches"] == r["groups"] == r["alert_runs"]
        and r["distinct_groups_run"] == r["groups"]
        for r in rows
    )
    print("one run per alert group: " + ("yes" if ok else f"NO: {rows}"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
