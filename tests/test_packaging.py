"""Every package folder is installed: the pyproject lists packages by hand (see its comment)."""

import importlib
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _listed() -> set[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(data["tool"]["setuptools"]["packages"])


def _on_disk() -> set[str]:
    found = set()
    for init in (ROOT / "src").rglob("__init__.py"):
        found.add(".".join(init.parent.relative_to(ROOT / "src").parts))
    for base, pkg in [("components", "refit.components"), ("pipelines", "refit.pipelines")]:
        for init in (ROOT / base).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / base).parts
            found.add(".".join((pkg, *rel)))
    return found


def test_every_package_folder_is_listed_in_pyproject() -> None:
    missing = _on_disk() - _listed()
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"


def test_every_listed_package_imports() -> None:
    for name in sorted(_listed()):
        importlib.import_module(name)


def test_components_import_from_the_package() -> None:
    from refit import components

    # One name per component folder (components/<name>/component.py), so a new folder cannot
    # be left out of the package's exports.
    folders = {p.parent.name for p in (ROOT / "components").glob("*/component.py")}
    assert folders, f"no components/<name>/component.py under {ROOT}"
    assert sorted(components.__all__) == sorted(folders)
    for name in components.__all__:
        assert getattr(components, name).component_spec.name == name.replace("_", "-")
