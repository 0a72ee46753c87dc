"""The real KServe InferenceService CRD schema (../shared/specs), for tests that check bodies."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

CRD_PATH = (
    Path(__file__).resolve().parents[1].parent / "shared" / "specs"
) / "kserve-inferenceservice-crd.yaml"


@cache
def crd_schema() -> dict[str, Any]:
    """The v1beta1 openAPIV3Schema of the real KServe CRD; fails when the spec is absent."""
    if not CRD_PATH.is_file():
        pytest.fail(
            f"KServe CRD spec not found at {CRD_PATH}: the shared specs folder must sit beside "
            "the checkout (see ../shared/specs/README.md)"
        )
    with CRD_PATH.open() as f:
        crd = yaml.load(f, Loader=yaml.CSafeLoader)
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1beta1")
    return version["schema"]["openAPIV3Schema"]


@cache
def crd_validator() -> jsonschema.protocols.Validator:
    """A validator for the CRD schema (jsonschema.validate would re-check the 2 MB schema)."""
    schema = crd_schema()
    return jsonschema.validators.validator_for(schema)(schema)


def pruned_fields(doc: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Fields of ``doc`` the API server would prune (not in the structural schema)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    out: list[str] = []
    if isinstance(doc, dict) and schema.get("type") == "object":
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, value in doc.items():
            if props is not None and key in props:
                out += pruned_fields(value, props[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                out += pruned_fields(value, extra, f"{path}.{key}")
            elif props is not None:
                out.append(f"{path}.{key}")
    elif isinstance(doc, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(doc):
            out += pruned_fields(item, schema["items"], f"{path}[{i}]")
    return out
