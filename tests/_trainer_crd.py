"""Kubeflow Trainer's TrainJob CRD schema and xgboost-distributed runtime (../shared/specs)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

SPECS = Path(__file__).resolve().parents[1].parent / "shared" / "specs"
TRAINJOB_CRD = SPECS / "kubeflow-trainer-trainjob-crd.yaml"
XGBOOST_RUNTIME = SPECS / "kubeflow-trainer-xgboost-distributed-runtime.yaml"


def _load(path: Path) -> Any:
    if not path.is_file():
        pytest.fail(
            f"Kubeflow Trainer spec not found at {path}: the shared specs folder must sit beside "
            "the checkout (see ../shared/specs/README.md)"
        )
    with path.open() as f:
        return yaml.load(f, Loader=yaml.CSafeLoader)


@cache
def trainjob_schema() -> dict[str, Any]:
    """The v1alpha1 openAPIV3Schema of the real TrainJob CRD; fails when the spec is absent."""
    crd = _load(TRAINJOB_CRD)
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
    return version["schema"]["openAPIV3Schema"]


@cache
def trainjob_validator() -> jsonschema.protocols.Validator:
    """A validator for the TrainJob schema."""
    schema = trainjob_schema()
    return jsonschema.validators.validator_for(schema)(schema)


def xgboost_runtime() -> dict[str, Any]:
    """The built-in xgboost-distributed ClusterTrainingRuntime."""
    return _load(XGBOOST_RUNTIME)
