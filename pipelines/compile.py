"""Compile every component and pipeline to the YAML committed beside it.

Run ``python -m refit.pipelines.compile`` after changing a component or pipeline; a test compiles
them again and fails when the committed YAML is stale.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from kfp import compiler

from refit import components as components_pkg
from refit.pipelines.retraining import retraining_pipeline

#: The source tree's components/ and pipelines/ folders (where the YAML is committed).
COMPONENTS_DIR = Path(components_pkg.__file__).resolve().parent
PIPELINES_DIR = Path(__file__).resolve().parent

PIPELINES = {"retraining": retraining_pipeline}

_KFP_VERSION = re.compile(r"(sdkVersion: kfp-)\S+")


def normalise(text: str) -> str:
    """Drop the kfp version string, the one part of compiled YAML that may differ harmlessly."""
    return _KFP_VERSION.sub(r"\1*", text)


def targets() -> dict[Path, object]:
    """Return each committed YAML path and the component or pipeline compiled into it."""
    out: dict[Path, object] = {}
    for name in components_pkg.__all__:
        out[COMPONENTS_DIR / name / "component.yaml"] = getattr(components_pkg, name)
    for name, func in PIPELINES.items():
        out[PIPELINES_DIR / f"{name}.yaml"] = func
    return out


def compile_to(func: object, path: Path) -> str:
    """Compile one component or pipeline to ``path`` and return the YAML text."""
    compiler.Compiler().compile(func, str(path))
    return path.read_text(encoding="utf-8")


def main() -> int:
    """Recompile every committed YAML in place."""
    for path, func in targets().items():
        compile_to(func, path)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
