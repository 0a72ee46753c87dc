"""KServe target: the InferenceService bodies it builds and the errors it raises before traffic
moves. The API side runs against a real HTTP server in tests/e2e/test_kserve_kmock.py."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from _kserve_crd import crd_schema, crd_validator, pruned_fields
from kubernetes import client as k8s_client

from refit.deploy.kserve import KServeTarget
from refit.deploy.kserve_spec import (
    DEPLOYMENT_MODE_ANNOTATION,
    KSERVE_FORMATS,
    STOCK_XGBOOST_RUNTIME,
    apply_merge_patch,
    deployment_mode,
    model_format,
)
from refit.deploy.target import CanaryTarget
from refit.errors import DeployError
from refit.registry import ModelVersion
from refit.training import artifacts

STORE = "gs://bucket/refit-store/models/credit"


def assert_matches_crd(doc: dict[str, Any]) -> None:
    crd_validator().validate(doc)
    assert pruned_fields(doc, crd_schema()) == []


def mv(version: int, file: str = "model.ubj", uri: str | None = None) -> ModelVersion:
    return ModelVersion(
        version=version,
        model_uri=uri if uri is not None else f"{STORE}/versions/{version}",
        sha256="0" * 64,
        metrics={},
        snapshot_sha256="1" * 64,
        parent_version=None,
        run_label=f"run-{version}",
        status="registered",
        created_at="2026-11-26T00:00:00+00:00",
        file=file,
        model_name="credit",
    )


def unreachable_api() -> k8s_client.CustomObjectsApi:
    """A real client pointed at a closed port: any request fails with 'unreachable'."""
    config = k8s_client.Configuration(host="http://127.0.0.1:9")
    config.retries = 0
    return k8s_client.CustomObjectsApi(k8s_client.ApiClient(config))


def target(**kwargs: Any) -> KServeTarget:
    kwargs.setdefault("api", unreachable_api())
    kwargs.setdefault("allowed_namespaces", ["models"])
    return KServeTarget("credit-default", "models", **kwargs)


# --------------------------------------------------------------------------- formats


def test_model_format_follows_the_file_names_refit_writes() -> None:
    files = artifacts._FILE_FOR_FORMAT
    assert set(KSERVE_FORMATS) == {artifacts.FORMAT_XGBOOST, artifacts.FORMAT_SKOPS}
    for fmt, file in files.items():
        assert model_format(mv(1, file=file)) == fmt
    assert KSERVE_FORMATS[artifacts.FORMAT_XGBOOST] == "xgboost"
    assert KSERVE_FORMATS[artifacts.FORMAT_SKOPS] == "sklearn"


@pytest.mark.parametrize("file", ["model.pkl", "model.joblib", "", "model.bst"])
def test_unknown_model_file_is_refused_naming_it(file: str) -> None:
    with pytest.raises(DeployError, match=r"version 3 of model 'credit' records model file"):
        target().serving_spec(mv(3, file=file))


def test_target_satisfies_the_canary_protocol() -> None:
    t: CanaryTarget = target()
    assert t.name == "kserve"


# --------------------------------------------------------------------------- bodies


def test_xgboost_body_pins_the_stock_runtime_and_points_at_the_model_file() -> None:
    t = target(
        service_account="refit-models",
        min_replicas=1,
        resources={"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
    )
    body = t.inference_service(mv(3))
    assert_matches_crd(body)
    assert body["apiVersion"] == "serving.kserve.io/v1beta1"
    assert body["metadata"]["namespace"] == "models"
    assert body["metadata"]["annotations"][DEPLOYMENT_MODE_ANNOTATION] == "Serverless"
    predictor = body["spec"]["predictor"]
    assert "canaryTrafficPercent" not in predictor
    assert predictor["serviceAccountName"] == "refit-models"
    assert predictor["minReplicas"] == 1
    model = predictor["model"]
    assert model["modelFormat"] == {"name": "xgboost"}
    assert model["runtime"] == STOCK_XGBOOST_RUNTIME
    assert model["protocolVersion"] == "v2"
    # kserve-xgbserver loads the single *.ubj/*.json file it finds: not refit's folder, which
    # also holds model.json and version.json.
    assert model["storageUri"] == f"{STORE}/versions/3/model.ubj"
    assert model["resources"]["limits"] == {"memory": "2Gi"}


def test_skops_body_with_a_refit_runtime_serves_the_version_folder() -> None:
    body = target(runtime="refit-model-server").inference_service(
        mv(4, file="model.skops", uri=f"{STORE}/versions/4/")
    )
    assert_matches_crd(body)
    model = body["spec"]["predictor"]["model"]
    assert model["modelFormat"] == {"name": "sklearn"}
    assert model["runtime"] == "refit-model-server"
    assert model["storageUri"] == f"{STORE}/versions/4"


def test_storage_uri_for_overrides_the_registry_location() -> None:
    t = target(storage_uri_for=lambda v: f"s3://models/credit/{v.version}/model.ubj")
    spec = t.serving_spec(mv(5, uri="/tmp/store/models/credit/versions/5"))
    assert spec.storage_uri == "s3://models/credit/5/model.ubj"


def test_canary_patches_merge_into_bodies_that_match_the_crd() -> None:
    t = target()
    live = t.inference_service(mv(1))
    canary = apply_merge_patch(live, t.canary_patch(mv(2), 10))
    assert_matches_crd(canary)
    assert canary["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert canary["spec"]["predictor"]["model"]["storageUri"].endswith("/versions/2/model.ubj")
    promoted = apply_merge_patch(canary, {"spec": {"predictor": {"canaryTrafficPercent": None}}})
    assert_matches_crd(promoted)
    assert "canaryTrafficPercent" not in promoted["spec"]["predictor"]
    assert promoted["metadata"] == live["metadata"]


def test_the_crd_checks_catch_wrong_types_and_fields_the_server_would_prune() -> None:
    body = target().inference_service(mv(1))
    wrong_type = apply_merge_patch(body, {"spec": {"predictor": {"canaryTrafficPercent": "10"}}})
    with pytest.raises(jsonschema.ValidationError):
        crd_validator().validate(wrong_type)
    typo = apply_merge_patch(body, {"spec": {"predictor": {"canaryTraficPercent": 10}}})
    assert pruned_fields(typo, crd_schema()) == [".spec.predictor.canaryTraficPercent"]


def test_apply_merge_patch_follows_rfc_7386() -> None:
    doc = {"a": {"b": 1, "c": [1, 2]}, "d": 2}
    patched = apply_merge_patch(doc, {"a": {"b": None, "c": [3]}, "e": {"f": None}})
    assert patched == {"a": {"c": [3]}, "d": 2, "e": {}}
    assert doc == {"a": {"b": 1, "c": [1, 2]}, "d": 2}
    assert apply_merge_patch(doc, [1]) == [1]


# --------------------------------------------------------------------------- preflight errors


def test_skops_on_the_stock_runtime_is_refused_naming_what_kserve_loads() -> None:
    with pytest.raises(DeployError) as err:
        target().preflight(mv(2, file="model.skops"), mv(1))
    msg = str(err.value)
    assert "version 2 of model 'credit'" in msg and "skops" in msg
    assert "joblib" in msg and "runtime=" in msg


@pytest.mark.parametrize("runtime", ["kserve-sklearnserver", "kserve-mlserver"])
def test_skops_on_a_named_stock_runtime_is_refused(runtime: str) -> None:
    with pytest.raises(DeployError, match=rf"runtime '{runtime}' cannot load"):
        target(runtime=runtime).preflight(mv(2, file="model.skops"), mv(1))


def test_xgboost_on_mlserver_is_refused_because_of_refits_metadata_file() -> None:
    with pytest.raises(DeployError, match=r"model.json is metadata"):
        target(runtime="kserve-mlserver").preflight(mv(2), mv(1))


@pytest.mark.parametrize(
    "uri", ["/tmp/store/models/credit/versions/2", "file:///tmp/store/versions/2", "versions/2"]
)
def test_a_model_kserve_cannot_fetch_is_refused(uri: str) -> None:
    with pytest.raises(
        DeployError, match=r"version 2 of model 'credit' is stored at .*cannot fetch"
    ):
        target().preflight(mv(2, uri=uri), mv(1))


def test_storage_uri_for_returning_a_local_path_is_refused() -> None:
    t = target(storage_uri_for=lambda v: f"/mnt/models/{v.version}")
    with pytest.raises(DeployError, match=r"storage_uri_for gave '/mnt/models/2'"):
        t.preflight(mv(2), mv(1))


@pytest.mark.parametrize("allowed", [["prod"], []])
def test_namespace_not_allowed_is_refused_before_any_request(allowed: list[str]) -> None:
    # The client points at a closed port: reaching it would say "unreachable" instead.
    with pytest.raises(DeployError, match=r"namespace 'models' of InferenceService models/credit"):
        target(allowed_namespaces=allowed).preflight(mv(2), mv(1))


def test_same_version_as_previous_is_refused() -> None:
    with pytest.raises(DeployError, match=r"version 2 is both the canary and the previous"):
        target().preflight(mv(2), mv(2))


def test_unreachable_api_is_a_deploy_error_naming_the_operation_and_service() -> None:
    with pytest.raises(DeployError, match=r"get of InferenceService models/credit-default failed"):
        target(request_timeout_seconds=2).preflight(mv(2), mv(1))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"service": "Credit_Default"}, r"InferenceService name 'Credit_Default' is invalid"),
        ({"namespace": "Models"}, r"namespace 'Models' is invalid"),
        ({"allowed_namespaces": "models"}, r"allowed_namespaces must be a list"),
        ({"runtime": "Bad Runtime"}, r"runtime 'Bad Runtime' is not a valid"),
        ({"protocol_version": "v3"}, r"protocol_version 'v3'"),
        ({"timeout_seconds": 0}, r"timeout_seconds must be positive"),
        ({"min_replicas": -1}, r"min_replicas must be a non-negative"),
    ],
)
def test_bad_settings_are_refused_naming_them(kwargs: dict[str, Any], match: str) -> None:
    args = {"service": "credit-default", "namespace": "models", **kwargs}
    with pytest.raises(DeployError, match=match):
        KServeTarget(args.pop("service"), args.pop("namespace"), **args)


def test_traffic_changes_need_a_running_canary() -> None:
    t = target()
    with pytest.raises(
        DeployError, match=r"set_traffic: no canary is running .*nothing was started"
    ):
        t.set_traffic(50)
    with pytest.raises(DeployError, match=r"promote: no canary is running"):
        t.promote()
    with pytest.raises(DeployError, match=r"rollback: nothing was started"):
        t.rollback()


@pytest.mark.parametrize("percent", [0, 100, 101, True, 10.5])
def test_canary_percent_out_of_range_is_refused_before_any_request(percent: Any) -> None:
    with pytest.raises(DeployError, match=r"canary percent must be an integer from 1 to 99"):
        target().start(mv(2), mv(1), percent)


# --------------------------------------------------------------------------- deployment mode


@pytest.mark.parametrize(
    ("isvc", "mode"),
    [
        (
            {"metadata": {"annotations": {DEPLOYMENT_MODE_ANNOTATION: "RawDeployment"}}},
            "RawDeployment",
        ),
        (
            {
                "metadata": {"annotations": {DEPLOYMENT_MODE_ANNOTATION: "Serverless"}},
                "status": {"deploymentMode": "Standard"},
            },
            "Standard",
        ),
        ({"metadata": {}}, None),
        ({"metadata": {"annotations": {DEPLOYMENT_MODE_ANNOTATION: "Knative"}}}, "Knative"),
    ],
)
def test_deployment_mode_is_resolved_like_the_kserve_controller(
    isvc: dict, mode: str | None
) -> None:
    assert deployment_mode(isvc) == mode
