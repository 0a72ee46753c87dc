"""Task clock for ``benchmarks/window_overhead.py``: the work inside a kfp.local task.

Put on ``PYTHONPATH`` (with ``REFIT_TASKCLOCK`` naming a file) of the process that runs
kfp.local; every task inherits both (a new interpreter per task, or the warm task server whose
forks run the tasks) and imports this module at start-up. It times the component function
(kfp's ``Executor``) and the imports made inside it, and when the function returns appends one
JSON line to that file: ``component``, ``body_s``, ``body_imports_s`` and ``work_s`` (the
body less its imports: what the component does). The task's total time is measured by the
driver (``window_overhead.py`` wraps kfp.local's task launcher).

Benchmark code only: nothing in refit imports it.
"""

import builtins
import functools
import inspect
import json
import os
import sys
import time

_FILE = os.environ.get("REFIT_TASKCLOCK", "")

if _FILE:
    _state = {"depth": 0, "imports": 0.0, "patched": False}
    _original_import = builtins.__import__

    def _patch_executor() -> None:
        executor = sys.modules.get("kfp.dsl.executor")
        if executor is None or _state["patched"]:
            return
        _state["patched"] = True
        init = executor.Executor.__init__

        def __init__(self, *args, **kwargs):
            init(self, *args, **kwargs)
            func = self.func

            def timed(*a, **k):
                imports, started = _state["imports"], time.perf_counter()
                try:
                    return func(*a, **k)
                finally:
                    body = time.perf_counter() - started
                    body_imports = _state["imports"] - imports
                    record = {
                        "component": getattr(func, "__name__", "?"),
                        "body_s": round(body, 4),
                        "body_imports_s": round(body_imports, 4),
                        "work_s": round(body - body_imports, 4),
                    }
                    with open(_FILE, "a", encoding="utf-8") as handle:
                        handle.write(json.dumps(record) + "\n")

            functools.update_wrapper(timed, func)
            timed.__signature__ = inspect.signature(func)  # type: ignore[attr-defined]
            self.func = timed

        executor.Executor.__init__ = __init__

    def _timed_import(*args, **kwargs):
        if _state["depth"]:
            return _original_import(*args, **kwargs)
        _state["depth"] = 1
        started = time.perf_counter()
        try:
            return _original_import(*args, **kwargs)
        finally:
            _state["imports"] += time.perf_counter() - started
            _state["depth"] = 0
            _patch_executor()

    builtins.__import__ = _timed_import
