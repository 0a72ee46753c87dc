"""Kustomize manifests: rendered with the real kubectl, validated offline, least privilege."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from _kserve_crd import crd_validator

from refit import __version__
from refit.images import DEFAULT_REPOSITORY, component_image

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
OVERLAYS = sorted(p.name for p in (MANIFESTS / "overlays").iterdir() if p.is_dir())
BIN = Path(sys.executable).parent
BUILT_IN = {
    "Namespace",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "ConfigMap",
    "Service",
    "Deployment",
}


def kustomize(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "kubectl"), "kustomize", str(path)], capture_output=True, text=True, timeout=60
    )


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request) -> tuple[str, list[dict]]:
    proc = kustomize(MANIFESTS / "overlays" / request.param)
    assert proc.returncode == 0, proc.stderr
    return request.param, [d for d in yaml.safe_load_all(proc.stdout) if d]


def _one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def test_overlays_exist() -> None:
    assert OVERLAYS == ["gke-gpu", "plain"]


def test_built_in_kinds_pass_strict_schema_validation(rendered, tmp_path) -> None:
    name, docs = rendered
    built_in = [d for d in docs if d["kind"] in BUILT_IN]
    assert {d["kind"] for d in built_in} == BUILT_IN
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump_all(built_in))
    proc = subprocess.run(
        [str(BIN / "kubernetes-validate"), "--strict", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("passed") == len(built_in)


def test_inference_service_matches_the_kserve_crd(rendered) -> None:
    _, docs = rendered
    isvc = _one(docs, "InferenceService")
    crd_validator().validate(isvc)
    assert isvc["metadata"]["namespace"] == "models"
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"


def test_gpu_overlay_schedules_the_model_on_spot_gpu_nodes(rendered) -> None:
    name, docs = rendered
    predictor = _one(docs, "InferenceService")["spec"]["predictor"]
    if name != "gke-gpu":
        assert "nodeSelector" not in predictor and "tolerations" not in predictor
        return
    assert predictor["nodeSelector"]["cloud.google.com/gke-spot"] == "true"
    assert {t["key"] for t in predictor["tolerations"]} == {
        "nvidia.com/gpu",
        "cloud.google.com/gke-spot",
    }
    assert predictor["model"]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_rbac_is_least_privilege(rendered) -> None:
    _, docs = rendered
    kinds = {d["kind"] for d in docs}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}, "nothing cluster-wide"
    role = _one(docs, "Role")
    assert role["metadata"]["namespace"] == "models"
    assert role["rules"] == [
        {
            "apiGroups": ["serving.kserve.io"],
            "resources": ["inferenceservices"],
            "verbs": ["get", "create", "patch", "delete"],
        }
    ]
    binding = _one(docs, "RoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "refit-trigger", "namespace": "refit"},
        {"kind": "ServiceAccount", "name": "pipeline-runner", "namespace": "kubeflow"},
    ]


def test_trigger_deployment_is_hardened_and_references_secrets(rendered) -> None:
    _, docs = rendered
    assert not [d for d in docs if d["kind"] == "Secret"], "secrets are referenced, never shipped"
    pod = _one(docs, "Deployment", "refit-trigger")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["image"] == component_image()
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    env = {e["name"]: e for e in container["env"]}
    assert env["KFP_HOST"]["value"].startswith("http")
    assert env["REFIT_HOOK_TOKEN_FILE"]["value"].startswith("/var/run/secrets/refit/")
    secrets = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    assert secrets == {"refit-hook-token"}


def test_monitoring_routes_alerts_to_the_trigger_and_dashboards_the_loop(rendered) -> None:
    _, docs = rendered
    rules = _one(docs, "PrometheusRule")["spec"]["groups"][0]["rules"]
    triggering = [r for r in rules if r["labels"].get("refit_trigger") == "true"]
    assert {r["alert"] for r in triggering} == {"RefitFeatureDrift", "RefitAccuracyDecay"}
    assert all("by (model)" in r["expr"] for r in triggering)
    monitor = _one(docs, "ServiceMonitor")
    assert [e["path"] for e in monitor["spec"]["endpoints"]] == ["/metrics", "/model-metrics"]
    dashboard_cm = next(d for d in docs if d["metadata"]["name"].startswith("refit-grafana"))
    assert dashboard_cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = yaml.safe_load(dashboard_cm["data"]["refit.json"])
    titles = " | ".join(p["title"].lower() for p in dashboard["panels"])
    for needed in ["drift share", "live model version", "decisions", "latency", "cost"]:
        assert needed in titles


def test_an_overlay_missing_a_setting_fails_naming_it(tmp_path) -> None:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(MANIFESTS / "base", overlay)],
                "components": [os.path.relpath(MANIFESTS / "components" / "settings", overlay)],
                "configMapGenerator": [
                    {
                        "name": "refit-settings",
                        "namespace": "refit",
                        "literals": ["kfp_host=http://kfp"],
                    }
                ],
            }
        )
    )
    proc = kustomize(overlay)
    assert proc.returncode != 0
    assert "data.model_namespace" in proc.stderr


def test_image_is_refits_own_and_tagged_with_the_package_version() -> None:
    kustomization = yaml.safe_load((MANIFESTS / "base" / "kustomization.yaml").read_text())
    assert kustomization["images"] == [
        {"name": "refit", "newName": DEFAULT_REPOSITORY, "newTag": __version__}
    ]
