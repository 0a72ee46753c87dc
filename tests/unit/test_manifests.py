"""Kustomize manifests: rendered with the real kubectl, validated offline, least privilege."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from _alertmanager import webhook
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
    env = {e["name"]: e for e in container["env"]}
    # One setting, the overlay's image_repository: this image and the runs' images.
    settings = _one(docs, "ConfigMap", _settings_name(docs))["data"]
    assert env["REFIT_IMAGE_REPOSITORY"]["value"] == settings["image_repository"]
    assert container["image"] == f"{settings['image_repository']}:{__version__}"
    assert container["image"] == component_image()  # the shipped overlays use refit's default
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert env["KFP_HOST"]["value"].startswith("http")
    assert env["REFIT_HOOK_TOKEN_FILE"]["value"].startswith("/var/run/secrets/refit/")
    secrets = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    assert secrets == {"refit-hook-token"}


def _settings_name(docs: list[dict]) -> str:
    (name,) = [
        d["metadata"]["name"]
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("refit-settings")
    ]
    return name


def test_trigger_deployment_args_are_refit_serve_triggers_options(rendered) -> None:
    import typer

    from refit.cli import app

    _, docs = rendered
    (container,) = _one(docs, "Deployment", "refit-trigger")["spec"]["template"]["spec"][
        "containers"
    ]
    # refit's image has no ENTRYPOINT: without a command the kubelet would exec the first arg.
    assert container["command"] == ["refit"]
    command, *args = container["args"]
    assert command == "serve-triggers"
    serve = typer.main.get_command(app).commands["serve-triggers"]
    options = {o for p in serve.params for o in (*p.opts, *p.secondary_opts)}
    given = {a.split("=", 1)[0] for a in args}
    assert given <= options, f"not options of refit serve-triggers: {sorted(given - options)}"
    assert {"--listen-host", "--port", "--launcher", "--config"} <= given
    values = dict(a.split("=", 1) for a in args)
    assert values["--listen-host"] == "0.0.0.0" and values["--launcher"] == "kfp"
    env = {e["name"] for e in container["env"]}
    assert {"KFP_HOST", "KFP_TOKEN", "REFIT_IMAGE_REPOSITORY"} <= env  # --kfp-host, the token
    # The KFP token comes from the Secret through the environment, never as an argument (ps).
    assert not [a for a in args if "token" in a.lower()]
    kfp_token = next(e for e in container["env"] if e["name"] == "KFP_TOKEN")
    assert kfp_token["valueFrom"]["secretKeyRef"]["name"] == "refit-kfp-token"


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


def _overlay(tmp_path: Path, literals: list[str]) -> subprocess.CompletedProcess:
    overlay = tmp_path / "overlay"
    overlay.mkdir(parents=True)
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(MANIFESTS / "base", overlay)],
                "components": [os.path.relpath(MANIFESTS / "components" / "settings", overlay)],
                "configMapGenerator": [
                    {"name": "refit-settings", "namespace": "refit", "literals": literals}
                ],
            }
        )
    )
    return kustomize(overlay)


def test_an_overlay_missing_a_setting_fails_naming_it(tmp_path) -> None:
    proc = _overlay(tmp_path, ["kfp_host=http://kfp", "image_repository=r.example/refit"])
    assert proc.returncode != 0
    assert "data.model_namespace" in proc.stderr
    proc = _overlay(tmp_path / "2", ["kfp_host=http://kfp", "model_namespace=models"])
    assert proc.returncode != 0
    assert "data.image_repository" in proc.stderr


def test_the_image_repository_is_one_setting_of_the_overlay(tmp_path) -> None:
    repository = "registry.internal:5000/ml/refit"  # a port: the tag split must not trip on it
    proc = _overlay(
        tmp_path, ["kfp_host=http://kfp", "model_namespace=m", f"image_repository={repository}"]
    )
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    (container,) = _one(docs, "Deployment", "refit-trigger")["spec"]["template"]["spec"][
        "containers"
    ]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["REFIT_IMAGE_REPOSITORY"] == repository
    assert container["image"] == f"{repository}:{__version__}"
    assert DEFAULT_REPOSITORY not in proc.stdout


def test_image_is_refits_own_and_tagged_with_the_package_version() -> None:
    kustomization = yaml.safe_load((MANIFESTS / "base" / "kustomization.yaml").read_text())
    assert kustomization["images"] == [{"name": "refit", "newTag": __version__}]
    for overlay in OVERLAYS:
        text = (MANIFESTS / "overlays" / overlay / "kustomization.yaml").read_text()
        assert f"image_repository={DEFAULT_REPOSITORY}" in text


def _fire(rule: dict, model: str, value: float) -> dict:
    """The Alertmanager v4 webhook body of ``rule`` firing for ``model`` at ``value``, its
    annotations rendered as Prometheus renders ``$value`` and ``$labels.model``."""

    def render(text: str) -> str:
        return text.replace("{{ $value }}", repr(value)).replace("{{ $labels.model }}", model)

    body = webhook(
        model,
        f'{{}}:{{alertname="{rule["alert"]}", model="{model}"}}',
        [f"{abs(hash(rule['alert'])):016x}"],
        annotations={k: render(v) for k, v in rule["annotations"].items()},
        alertname=rule["alert"],
        labels=rule["labels"],
    )
    body["receiver"] = "refit-trigger"
    return body


def test_each_triggering_alert_retrains_a_model_that_has_a_champion(rendered, tmp_path) -> None:
    """An alert of the shipped rules, at the rule's threshold, is decided `launch` by the
    shipped trigger config for a model that already has a champion (the service re-applies the
    policy: the annotation must carry the value it decides on)."""
    import json
    import re

    from refit.triggers.config import ServiceConfig
    from refit.triggers.launchers import LogLauncher
    from refit.triggers.payloads import alertmanager_events
    from refit.triggers.service import TriggerService

    _, docs = rendered
    rules = _one(docs, "PrometheusRule")["spec"]["groups"][0]["rules"]
    raw = json.loads(_one(docs, "ConfigMap", _config_name(docs))["data"]["config.json"])
    raw.pop("store_uri")  # no bucket here; the champion is declared below
    raw["cooldown_seconds"] = 0
    for rule in [r for r in rules if r["labels"].get("refit_trigger") == "true"]:
        op, threshold = re.search(r"(>=|<=|<|>)\s*([0-9.]+)\s*$", rule["expr"]).groups()
        value = float(threshold) + {">=": 0.0, ">": 0.01, "<": -0.01, "<=": 0.0}[op]
        raw["state_path"] = str(tmp_path / f"{rule['alert']}.db")
        launcher = LogLauncher()
        service = TriggerService(ServiceConfig.from_dict(raw), launcher)
        service._has_champion = lambda model: True
        try:
            for model in raw["models"]:
                (event,) = alertmanager_events(_fire(rule, model, value))
                decision = service.handle(event)
                assert decision["decision"] == "launch", (rule["alert"], decision["reasons"])
                assert not any("no champion" in r for r in decision["reasons"])
        finally:
            service.stop()
        assert [args["model_name"] for _, _, args in launcher.launched] == list(raw["models"])


def _config_name(docs: list[dict]) -> str:
    (name,) = [
        d["metadata"]["name"]
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("refit-trigger-config")
    ]
    return name
