"""Every component README's example is a pipeline that compiles against the committed YAML."""

import os
from pathlib import Path

import pytest
from kfp import compiler, dsl

from refit.components import __all__ as COMPONENT_NAMES
from refit.components.examples import EXAMPLES, example_code

ROOT = Path(__file__).resolve().parents[2]


def test_every_component_has_an_example_with_prerequisites() -> None:
    assert set(EXAMPLES) == set(COMPONENT_NAMES)
    for name, example in EXAMPLES.items():
        assert example.prerequisites.strip(), name
        assert name in (ROOT / "components" / name / "README.md").read_text(), name


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_the_example_compiles(name: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)  # the example loads components/<name>/component.yaml
    scope: dict = {}
    exec(compile(example_code(name), f"<{name} example>", "exec"), scope)
    pipelines = [v for v in scope.values() if isinstance(v, dsl.base_component.BaseComponent)
                 and v.component_spec.implementation.graph is not None]  # fmt: skip
    assert len(pipelines) == 1, name
    out = tmp_path / "p.yaml"
    compiler.Compiler().compile(pipelines[0], str(out))
    assert os.path.getsize(out) > 0
    readme = (ROOT / "components" / name / "README.md").read_text()
    assert "## Example" in readme and "@dsl.pipeline" in readme
