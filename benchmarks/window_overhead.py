"""Benchmark: where an embedded-mode window's time goes, work against per-task overhead.

Each window of ``refit demo`` is one run of the retraining pipeline with kfp.local's
``SubprocessRunner``: every task is a process that, started as kfp.local starts it, brings up
an interpreter and imports kfp, refit and what the step needs (pyarrow, scikit-learn, XGBoost)
before it does its work. This script replays the demo's first windows and splits each task's
and each window's time:

- *work*: time inside the component function, less the imports made inside it (timed from the
  inside by ``benchmarks/_taskclock/sitecustomize.py``, on the tasks' ``PYTHONPATH``);
- *overhead*: per task, its total time as the driver sees it (kfp.local's launcher, wrapped
  here) less its work; per window, the window's wall time less its tasks' work (the kfp.local
  driver included).

Three modes, each in its own child process on the same windows and seed:

- ``before``: a new interpreter per task that can read no bytecode cache
  (``PYTHONPYCACHEPREFIX`` names an empty folder and ``PYTHONDONTWRITEBYTECODE=1``, as on the
  machines here), so every task compiles what it imports; with ``--before-rev REV``, the
  refit of that commit (the one before these changes);
- ``bytecode``: a new interpreter per task reading the bytecode ``./dev setup`` compiles
  (site-packages by ``uv sync --compile-bytecode``, refit's sources by ``compileall``);
- ``after``: the bytecode, and tasks forked from the warm task server
  (:mod:`refit.pipelines.warm_tasks`, the embedded default).

``--before-rev REV`` runs the ``before`` mode on the refit of another commit: its ``src``,
``components`` and ``pipelines`` are put together as the installed package is
(``refit.components``, ``refit.pipelines``) in the working folder, first on the ``before``
child's path (and its tasks').

Usage::

    .venv/bin/python benchmarks/window_overhead.py                 # 4 windows, all modes
    .venv/bin/python benchmarks/window_overhead.py --windows 5 --json /tmp/overhead.json
    .venv/bin/python benchmarks/window_overhead.py --before-rev main

The machine is shared: compare the modes within one run, not absolute times across runs.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TASKCLOCK = Path(__file__).resolve().parent / "_taskclock"
MODES = ("before", "bytecode", "after")


def compile_bytecode() -> None:
    """Compile the bytecode the ``after`` mode reads, as ``./dev setup`` does."""
    site = Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    folders = [str(site / "site-packages")] + [
        str(ROOT / name) for name in ("src", "components", "pipelines")
    ]
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j0", *folders],
        check=False,
        stdout=subprocess.DEVNULL,
    )


def package_of(rev: str, work: Path) -> Path:
    """Put refit's package of commit ``rev`` together under ``work``; return its parent."""
    import shutil
    import tarfile

    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev, "src", "components", "pipelines"],
        check=True,
        capture_output=True,
    ).stdout
    tree = work / "tree"
    shutil.rmtree(tree, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tree, filter="data")
    package = work / "package"
    shutil.rmtree(package, ignore_errors=True)
    shutil.copytree(tree / "src" / "refit", package / "refit")
    shutil.copytree(tree / "components", package / "refit" / "components")
    shutil.copytree(tree / "pipelines", package / "refit" / "pipelines")
    return package


def _clock_tasks(clock: Path) -> None:
    """Time each task as the driver sees it: wrap kfp.local's task launcher (as installed)."""
    from kfp.local import subprocess_task_handler as handler

    launch = handler.run_local_subprocess

    def timed(full_command, env_vars=None):
        name = full_command[full_command.index("--function_to_execute") + 1]
        started = time.perf_counter()
        try:
            return launch(full_command=full_command, env_vars=env_vars)
        finally:
            record = {"task": name, "total_s": round(time.perf_counter() - started, 4)}
            with clock.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")

    handler.run_local_subprocess = timed


def child(workdir: Path, windows: int, rows: int, clock: Path, out: Path, warm: bool) -> None:
    """Replay ``windows`` demo windows and write each window's wall time (seconds) to ``out``."""
    from refit.demo.data import TARGET, TIME_COLUMN, DemoScenario, make_windows
    from refit.pipelines.demo import DEMO_GATE, DEMO_POLICY, MODEL_NAME
    from refit.pipelines.local import ReplayConfig, replay

    scenario = DemoScenario(windows=windows, rows=rows)
    config = ReplayConfig(
        workdir=workdir,
        model_name=MODEL_NAME,
        target=TARGET,
        time_column=TIME_COLUMN,
        policy=DEMO_POLICY,
        gate=DEMO_GATE,
        trainer="xgboost",
        params={"n_estimators": 100, "max_depth": 4},
        seed=scenario.seed,
        # a commit before warm tasks (--before-rev) has no such field: its tasks start cold
        **({"warm_tasks": warm} if "warm_tasks" in ReplayConfig.__dataclass_fields__ else {}),
    )
    marks: list[dict] = []
    started: list[float] = []

    def before(i: int) -> None:
        if not started:  # replay has initialised kfp.local (and installed its launcher)
            _clock_tasks(clock)
        started.append(time.perf_counter())
        with clock.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"window": i}) + "\n")

    def after(row: object) -> None:
        marks.append(
            {
                "window": len(marks),
                "wall_s": time.perf_counter() - started[-1],
                "decision": getattr(row, "decision", ""),
            }
        )

    replay(make_windows(scenario), config, on_window=after, before_window=before)
    out.write_text(json.dumps(marks), encoding="utf-8")


def run_mode(mode: str, windows: int, rows: int, work: Path, src: Path | None = None) -> dict:
    """Run the child in one mode (``src``: a library checkout first on the path)."""
    work.mkdir(parents=True, exist_ok=True)
    clock = work / f"{mode}-tasks.jsonl"
    marks = work / f"{mode}-windows.json"
    clock.unlink(missing_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(TASKCLOCK)]
        + ([str(src)] if src else [])
        + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    env["REFIT_TASKCLOCK"] = str(clock)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if mode == "before":
        env["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="refit-nopyc-", dir=work)
    else:
        env.pop("PYTHONPYCACHEPREFIX", None)
    command = [
        sys.executable,
        __file__,
        "--child",
        "--workdir",
        str(work / mode),
        "--windows",
        str(windows),
        "--rows",
        str(rows),
        "--clock",
        str(clock),
        "--marks",
        str(marks),
        *(["--warm"] if mode == "after" else []),
    ]
    with (work / f"{mode}.log").open("w", encoding="utf-8") as log:
        subprocess.run(command, env=env, check=True, stdout=log, stderr=subprocess.STDOUT)
    per_window: dict[int, list[dict]] = defaultdict(list)
    current, inside = -1, []
    for line in clock.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if "window" in record:
            current = int(record["window"])
        elif "component" in record:  # from inside the task
            inside.append(record)
        else:  # the driver's record of the task that just ended
            work = next((r for r in inside if r["component"] == record["task"]), None)
            inside = []
            per_window[current].append(
                {
                    "component": record["task"],
                    "total_s": record["total_s"],
                    "work_s": work["work_s"] if work else 0.0,
                    "body_imports_s": work["body_imports_s"] if work else 0.0,
                }
            )
    out = []
    for mark in json.loads(marks.read_text(encoding="utf-8")):
        tasks = per_window[mark["window"]]
        work_s = sum(t["work_s"] for t in tasks)
        out.append(
            {
                **mark,
                "tasks": tasks,
                "work_s": work_s,
                "overhead_s": mark["wall_s"] - work_s,
            }
        )
    return {"mode": mode, "src": str(src) if src else "", "windows": out}


def summarize(results: list[dict]) -> str:
    """Markdown tables: per task kind (medians) and per window, for each mode."""
    lines = ["", "## Per task (median over the windows' tasks)", ""]
    lines.append("| mode | component | n | total s | work s | overhead s | overhead/work |")
    lines.append("|---|---|---|---|---|---|---|")
    for result in results:
        kinds: dict[str, list[dict]] = defaultdict(list)
        for window in result["windows"]:
            for task in window["tasks"]:
                kinds[task["component"]].append(task)
        for name, tasks in sorted(kinds.items()):
            total = statistics.median(t["total_s"] for t in tasks)
            work = statistics.median(t["work_s"] for t in tasks)
            over = total - work
            ratio = f"{over / work:.1f}" if work > 0 else "-"
            lines.append(
                f"| {result['mode']} | {name} | {len(tasks)} | {total:.2f} | {work:.2f} | "
                f"{over:.2f} | {ratio} |"
            )
    lines += ["", "## Per window", ""]
    lines.append("| mode | window | decision | tasks | wall s | work s | overhead s |")
    lines.append("|---|---|---|---|---|---|---|")
    for result in results:
        for w in result["windows"]:
            lines.append(
                f"| {result['mode']} | {w['window']} | {w['decision']} | {len(w['tasks'])} | "
                f"{w['wall_s']:.1f} | {w['work_s']:.1f} | {w['overhead_s']:.1f} |"
            )
    lines += ["", "## Totals", ""]
    lines.append("| mode | windows | wall s | work s | overhead s | overhead/work |")
    lines.append("|---|---|---|---|---|---|")
    for result in results:
        wall = sum(w["wall_s"] for w in result["windows"])
        work = sum(w["work_s"] for w in result["windows"])
        lines.append(
            f"| {result['mode']} | {len(result['windows'])} | {wall:.1f} | {work:.1f} | "
            f"{wall - work:.1f} | {(wall - work) / work:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Parse arguments and run the modes (or, with ``--child``, one replay)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=4, help="demo windows per mode")
    parser.add_argument("--rows", type=int, default=2000, help="rows per window")
    parser.add_argument("--modes", default=",".join(MODES), help="before,after or one of them")
    parser.add_argument("--work", type=Path, default=None, help="working folder (a temp one)")
    parser.add_argument("--json", type=Path, default=None, help="write all timings here")
    parser.add_argument(
        "--before-rev", default=None, help="git commit whose refit the before mode runs"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--clock", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--marks", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.windows < 1 or args.rows < 100:
        parser.error("--windows must be >= 1 and --rows >= 100")
    if args.child:
        child(args.workdir, args.windows, args.rows, args.clock, args.marks, args.warm)
        return
    modes = [m for m in args.modes.split(",") if m]
    if not modes or any(m not in MODES for m in modes):
        parser.error(f"--modes must name some of {list(MODES)}")
    work = args.work or Path(tempfile.mkdtemp(prefix="refit-overhead-"))
    if "bytecode" in modes or "after" in modes:
        compile_bytecode()
    before = package_of(args.before_rev, work / "base") if args.before_rev else None
    results = [
        run_mode(
            mode,
            args.windows,
            args.rows,
            work / mode,
            before if mode == "before" else None,
        )
        for mode in modes
    ]
    print(summarize(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
