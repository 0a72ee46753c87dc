"""The cluster's shadow route: rendered by the real kubectl kustomize and validated.

The challenger's InferenceService is checked against the real KServe CRD; the VirtualService
against the subset of Istio's networking.istio.io/v1 schema it uses (Istio's CRD is not among
the shared specs), with unknown fields refused so a misspelt ``mirrorPercent`` fails here rather
than being pruned silently by the API server.
"""

import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from _kserve_crd import crd_schema, crd_validator, pruned_fields

ROOT = Path(__file__).resolve().parents[2]
SNIPPET = ROOT / "manifests" / "snippets" / "shadow-mirror"
BIN = Path(sys.executable).parent

_PORT = {
    "type": "object",
    "properties": {"number": {"type": "integer", "minimum": 1, "maximum": 65535}},
    "additionalProperties": False,
}
_DESTINATION = {
    "type": "object",
    "required": ["host"],
    "properties": {
        "host": {"type": "string", "minLength": 1},
        "subset": {"type": "string"},
        "port": _PORT,
    },
    "additionalProperties": False,
}
#: Istio VirtualService (networking.istio.io/v1), the fields this route uses.
VIRTUAL_SERVICE = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"enum": ["networking.istio.io/v1", "networking.istio.io/v1beta1"]},
        "kind": {"const": "VirtualService"},
        "metadata": {"type": "object", "required": ["name", "namespace"]},
        "spec": {
            "type": "object",
            "required": ["hosts", "http"],
            "additionalProperties": False,
            "properties": {
                "hosts": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "http": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["route"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string"},
                            "route": {
                                "type": "array",
                                "minItems": 1,
                                "items": {
                                    "type": "object",
                                    "required": ["destination"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "destination": _DESTINATION,
                                        "weight": {"type": "integer", "minimum": 0, "maximum": 100},
                                    },
                                },
                            },
                            "mirror": _DESTINATION,
                            "mirrorPercentage": {
                                "type": "object",
                                "required": ["value"],
                                "additionalProperties": False,
                                "properties": {
                                    "value": {"type": "number", "minimum": 0, "maximum": 100}
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    proc = subprocess.run(
        [str(BIN / "kubectl"), "kustomize", str(SNIPPET)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def test_the_shadow_inference_service_matches_the_kserve_crd(docs):
    (isvc,) = [d for d in docs if d["kind"] == "InferenceService"]
    crd_validator().validate(isvc)
    assert pruned_fields(isvc, crd_schema()) == []
    assert isvc["metadata"]["name"] == "credit-default-shadow"
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"
    assert "canaryTrafficPercent" not in isvc["spec"]["predictor"]  # it takes no traffic


def test_the_route_answers_with_the_champion_and_mirrors_to_the_shadow(docs):
    (vs,) = [d for d in docs if d["kind"] == "VirtualService"]
    jsonschema.validate(vs, VIRTUAL_SERVICE)
    (isvc,) = [d for d in docs if d["kind"] == "InferenceService"]
    (http,) = vs["spec"]["http"]
    champion = "credit-default-predictor"
    assert vs["spec"]["hosts"] == [champion]
    assert [r["destination"]["host"] for r in http["route"]] == [champion]
    assert http["route"][0]["weight"] == 100
    assert http["mirror"]["host"] == f"{isvc['metadata']['name']}-predictor" != champion
    assert http["mirrorPercentage"]["value"] == 100
    assert vs["metadata"]["namespace"] == isvc["metadata"]["namespace"] == "models"


def test_a_misspelt_mirror_field_is_refused(docs):
    (vs,) = [d for d in docs if d["kind"] == "VirtualService"]
    bad = yaml.safe_load(yaml.safe_dump(vs))
    bad["spec"]["http"][0]["mirrorPercent"] = bad["spec"]["http"][0].pop("mirrorPercentage")
    with pytest.raises(jsonschema.ValidationError, match="mirrorPercent"):
        jsonschema.validate(bad, VIRTUAL_SERVICE)
