"""Warm tasks for kfp.local's SubprocessRunner: each task forked from a process that has imported.

kfp.local runs each task of a pipeline as a new Python process (``sh -ec SCRIPT SOURCE ARGS``:
the script writes the component's source to a file and runs ``python -m kfp.dsl.executor_main``
on it). A new interpreter imports kfp, refit, pyarrow, scikit-learn and XGBoost again for every
task, seconds each time, while most of refit's tasks work for a fraction of a second
(``benchmarks/window_overhead.py`` measures it).

:func:`install` replaces kfp.local's ``run_local_subprocess`` with :func:`run_task`, which runs the
same executor in a process forked from a warm task server that imported those modules once
(:mod:`refit.pipelines.task_preload`; the server is a child of the driver, started at the first
task, ended when the driver exits). Each task is still its own process, with the driver's
environment and working directory of the moment, its component source in a fresh temporary folder,
and its output relayed to the driver's stdout as kfp.local does; its exit status is the executor's.
The server itself never trains or reads data, so nothing it holds (OpenMP or Arrow thread pools) is
forked in a used state. A command of another shape is run by kfp.local's own function.

What a task sees of the driver is its environment variables and working directory at the time
of the task; its modules are those the server imported when it started (with the driver's first
task): a change to refit's sources reaches tasks when the driver, and so the server, starts
again, as it reaches the driver itself.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["install", "parse_command", "run_task", "uninstall"]

_original: Any = None
_lock = threading.Lock()


def parse_command(full_command: Sequence[str]) -> tuple[str, list[str]] | None:
    """The component source and the executor's arguments of a lightweight task's command.

    Args:
        full_command: The command kfp.local built for the task.

    Returns:
        ``(source, args)``, or None when the command is not ``sh -ec SCRIPT SOURCE ARGS...``
        with a script that runs ``kfp.dsl.executor_main`` on the source (e.g. a task that
        installs packages first).
    """
    if len(full_command) < 4 or full_command[0] != "sh" or full_command[1] not in ("-c", "-ec"):
        return None
    script = full_command[2]
    if "kfp.dsl.executor_main" not in script or "pip install" in script:
        return None
    if 'printf "%s" "$0" > "$program_path/ephemeral_component.py"' not in script:
        return None
    return full_command[3], list(full_command[4:])


def _child(
    source: str, args: list[str], env: dict[str, str], cwd: str, log_path: str
) -> None:  # pragma: no cover (runs in the forked task)
    """The task: run kfp's executor on the source, output to ``log_path``, exit with its code."""
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    sys.stdout = open(1, "w", encoding="utf-8", errors="replace", closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", errors="replace", closefd=False)
    code = 1
    with tempfile.TemporaryDirectory(prefix="refit-task-") as folder:
        try:
            os.environ.clear()
            os.environ.update(env)
            os.environ["_KFP_RUNTIME"] = "true"
            os.chdir(cwd)
            module = Path(folder) / "ephemeral_component.py"
            module.write_text(source, encoding="utf-8")
            sys.argv = ["executor_main", "--component_module_path", str(module), *args]
            from kfp.dsl import executor_main

            executor_main.executor_main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # the task's failure, reported as a shell would
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
    os._exit(code)


class _Server:
    """The warm task server: a child interpreter that imported the preload and forks tasks.

    Protocol (one task at a time): the driver writes a JSON line (``source``, ``args``,
    ``env``, ``cwd``, ``log``) to its stdin; the server forks, the fork runs the task
    (:func:`_child`), and the server writes the task's exit status back as a line. The end of
    its stdin (the driver exits) ends the server.
    """

    def __init__(self) -> None:
        import subprocess

        self.process = subprocess.Popen(
            [sys.executable, "-m", "refit.pipelines.warm_tasks", "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def run(self, request: dict[str, Any]) -> int | None:
        """Send one task; its exit status, or None when the server died."""
        stdin, stdout = self.process.stdin, self.process.stdout
        if stdin is None or stdout is None:
            return None
        try:
            stdin.write(json.dumps(request) + "\n")
            stdin.flush()
            line = stdout.readline()
        except OSError:
            return None
        return int(line) if line.strip() else None

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except Exception:  # a server that will not end is killed
            self.process.kill()


_server: _Server | None = None


def _get_server() -> _Server:
    global _server
    if _server is None or not _server.alive():
        import atexit

        _server = _Server()
        atexit.register(_server.close)
    return _server


def serve() -> None:  # pragma: no cover (runs in the server process)
    """The server's loop (``python -m refit.pipelines.warm_tasks --serve``)."""
    import refit.pipelines.task_preload  # noqa: F401 (the warm imports)

    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            sys.stdin.close()
            _child(
                request["source"],
                request["args"],
                request["env"],
                request["cwd"],
                request["log"],
            )
        _, status = os.waitpid(pid, 0)
        sys.stdout.write(f"{os.waitstatus_to_exitcode(status)}\n")
        sys.stdout.flush()


def run_task(full_command: list[str], env_vars: dict[str, str] | None = None) -> int:
    """Run a task's command as kfp.local's ``run_local_subprocess`` would, forked warm.

    Args:
        full_command: The task's command.
        env_vars: Variables added to the environment of the task.

    Returns:
        The task's exit status (1 when the server ended before the task reported one).
    """
    parsed = parse_command(full_command)
    if parsed is None:
        return _original(full_command=full_command, env_vars=env_vars)
    source, args = parsed
    env = {**os.environ, **(env_vars or {})}
    with tempfile.TemporaryDirectory(prefix="refit-task-log-") as folder:
        log_path = str(Path(folder) / "task.log")
        request = {"source": source, "args": args, "env": env, "cwd": os.getcwd(), "log": log_path}
        with _lock:
            code = _get_server().run(request)
        try:
            output = Path(log_path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            output = ""
    if output:
        print(output, end="" if output.endswith("\n") else "\n")
    if code is None:
        print("the warm task server ended before the task reported its exit status")
        code = 1
    print("\n")
    return code if code >= 0 else 128 - code


def install() -> None:
    """Make kfp.local's SubprocessRunner run tasks with :func:`run_task` (idempotent)."""
    global _original
    from kfp.local import subprocess_task_handler

    if subprocess_task_handler.run_local_subprocess is not run_task:
        _original = subprocess_task_handler.run_local_subprocess
        subprocess_task_handler.run_local_subprocess = run_task


def uninstall() -> None:
    """Give kfp.local its own ``run_local_subprocess`` back (idempotent)."""
    from kfp.local import subprocess_task_handler

    if _original is not None and subprocess_task_handler.run_local_subprocess is run_task:
        subprocess_task_handler.run_local_subprocess = _original


if __name__ == "__main__":  # pragma: no cover
    if sys.argv[1:] == ["--serve"]:
        serve()
