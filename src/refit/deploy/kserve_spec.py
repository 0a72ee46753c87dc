"""KServe InferenceService specs: what refit writes to serve a registry version, read back.

Pure functions and constants, no API calls: the model format of a version, the runtime and
``storageUri`` that serve it (:func:`serving_spec`), the InferenceService body and the canary
merge patch, and readers of an InferenceService's deployment mode and served model fields.
:mod:`refit.deploy.kserve` drives the lifecycle (apply, watch, roll back) with them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Final

from refit.errors import DeployError
from refit.registry import ModelVersion
from refit.training.artifacts import FORMAT_SKOPS, FORMAT_XGBOOST

__all__ = [
    "CANARY_MODES",
    "CREATE_MODE",
    "DEPLOYMENT_MODE_ANNOTATION",
    "GROUP",
    "KSERVE_FORMATS",
    "MODEL_KEYS",
    "PLURAL",
    "STOCK_RUNTIME_FORMATS",
    "STOCK_XGBOOST_RUNTIME",
    "VERSION",
    "ServingSpec",
    "apply_merge_patch",
    "canary_patch",
    "deployment_mode",
    "inference_service",
    "latest_traffic",
    "model_fields",
    "model_format",
    "predictor_status",
    "ready_condition",
    "serving_spec",
]

GROUP: Final = "serving.kserve.io"
VERSION: Final = "v1beta1"
PLURAL: Final = "inferenceservices"
DEPLOYMENT_MODE_ANNOTATION: Final = "serving.kserve.io/deploymentMode"

#: Modes in which KServe honours canaryTrafficPercent (legacy and current name of Knative mode).
CANARY_MODES: Final = frozenset({"Serverless", "Knative"})
#: The mode this target writes on the InferenceServices it creates.
CREATE_MODE: Final = "Serverless"

#: refit model format -> KServe ``modelFormat.name``.
KSERVE_FORMATS: Final[Mapping[str, str]] = {FORMAT_XGBOOST: "xgboost", FORMAT_SKOPS: "sklearn"}
#: Model file suffix (``ModelVersion.file``) -> refit model format.
_FORMAT_OF_SUFFIX: Final[Mapping[str, str]] = {".ubj": FORMAT_XGBOOST, ".skops": FORMAT_SKOPS}

#: The stock ClusterServingRuntime this target pins for XGBoost when ``runtime`` is None.
STOCK_XGBOOST_RUNTIME: Final = "kserve-xgbserver"
#: KServe's stock runtimes -> the refit formats they can load (see docs/kserve-target.md).
STOCK_RUNTIME_FORMATS: Final[Mapping[str, frozenset[str]]] = {
    "kserve-xgbserver": frozenset({FORMAT_XGBOOST}),
    "kserve-sklearnserver": frozenset(),
    "kserve-mlserver": frozenset(),
}
_STOCK_LOADS: Final[Mapping[str, str]] = {
    "kserve-xgbserver": "exactly one *.bst/*.json/*.ubj file",
    "kserve-sklearnserver": "model.joblib/model.pkl/model.pickle through joblib",
    "kserve-mlserver": (
        "sklearn from model.joblib/model.pickle/model.pkl through joblib, xgboost from "
        "model.bst/model.json (refit's model.json is metadata)"
    ),
}

#: Storage schemes refit's registry versions can be served from by default.
_DEFAULT_SCHEMES: Final = ("gs://", "s3://", "pvc://")
#: Schemes KServe's storage initializer fetches (accepted from ``storage_uri_for``).
_KSERVE_SCHEMES: Final = (
    "gs://",
    "s3://",
    "pvc://",
    "https://",
    "http://",
    "hdfs://",
    "webhdfs://",
    "oci://",
    "hf://",
)
#: Fields of ``spec.predictor.model`` that select what is served (restored on rollback).
MODEL_KEYS: Final = ("storageUri", "modelFormat", "runtime", "protocolVersion")


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """Apply a JSON merge patch (RFC 7386) and return the result; the inputs are not changed.

    Args:
        target: The document patched (any JSON value).
        patch: The merge patch: objects merge recursively, ``None`` removes a key, anything
            else (lists included) replaces.

    Returns:
        The patched document.
    """
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = copy.deepcopy(dict(target)) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


def model_format(version: ModelVersion) -> str:
    """Return the refit model format of a registry version, from its model file's name.

    Raises:
        DeployError: The version records no model file, or one of an unknown format.
    """
    suffix = PurePosixPath(version.file or "").suffix
    fmt = _FORMAT_OF_SUFFIX.get(suffix)
    if fmt is None:
        raise DeployError(
            f"registry version {version.version} of model {version.model_name!r} records model "
            f"file {version.file!r}: its format is unknown; KServe can serve refit's "
            f"{sorted(_FORMAT_OF_SUFFIX.values())} models ({', '.join(sorted(_FORMAT_OF_SUFFIX))})"
        )
    return fmt


def deployment_mode(isvc: Mapping[str, Any]) -> str | None:
    """Return an InferenceService's deployment mode as the KServe controller resolves it.

    ``status.deploymentMode`` first (set by the controller, fixed after creation), then the
    ``serving.kserve.io/deploymentMode`` annotation; None when neither is there (the cluster's
    default mode applies, which the namespaced API does not show).
    """
    status = isvc.get("status") or {}
    if status.get("deploymentMode"):
        return str(status["deploymentMode"])
    annotations = (isvc.get("metadata") or {}).get("annotations") or {}
    mode = annotations.get(DEPLOYMENT_MODE_ANNOTATION)
    return str(mode) if mode else None


@dataclass(frozen=True)
class ServingSpec:
    """How one registry version is served by KServe.

    Attributes:
        version: The registry version number.
        model_format: refit's format (``"xgboost-ubjson"`` or ``"skops"``).
        kserve_format: KServe's ``modelFormat.name`` (``"xgboost"`` or ``"sklearn"``).
        storage_uri: The ``storageUri`` KServe's storage initializer downloads.
        runtime: The ServingRuntime pinned in ``spec.predictor.model.runtime``.
    """

    version: int
    model_format: str
    kserve_format: str
    storage_uri: str
    runtime: str

    def model_fields(self, protocol_version: str) -> dict[str, Any]:
        """Return the ``spec.predictor.model`` fields that select what is served."""
        return {
            "modelFormat": {"name": self.kserve_format},
            "protocolVersion": protocol_version,
            "runtime": self.runtime,
            "storageUri": self.storage_uri,
        }


def serving_spec(
    version: ModelVersion,
    *,
    runtime: str | None = None,
    storage_uri_for: Callable[[ModelVersion], str] | None = None,
) -> ServingSpec:
    """Return how ``version`` is served: format, runtime and ``storageUri``.

    Args:
        version: The registry version.
        runtime: The ServingRuntime (None: KServe's stock runtime for the format).
        storage_uri_for: Version -> ``storageUri``; None: derived from ``model_uri``.

    Raises:
        DeployError: The format is unknown, the runtime cannot load it, or its storage URI
            is not one KServe's storage initializer can fetch (a local path, file://).
    """
    fmt = model_format(version)
    what = f"registry version {version.version} of model {version.model_name!r}"
    runtime = _runtime_for(what, fmt, runtime)
    stock = runtime in STOCK_RUNTIME_FORMATS
    if storage_uri_for is not None:
        uri = storage_uri_for(version)
        if not isinstance(uri, str) or not uri.startswith(_KSERVE_SCHEMES):
            raise DeployError(
                f"storage_uri_for gave {uri!r} for {what}: KServe's storage initializer "
                f"fetches only {', '.join(_KSERVE_SCHEMES)} URIs, not local paths"
            )
    else:
        folder = str(version.model_uri or "").rstrip("/")
        if not folder.startswith(_DEFAULT_SCHEMES):
            raise DeployError(
                f"{what} is stored at {version.model_uri!r}, which KServe cannot fetch: "
                f"the model must live in a {', '.join(_DEFAULT_SCHEMES)} registry store "
                "(or pass storage_uri_for to map versions to URIs KServe can fetch)"
            )
        # kserve-xgbserver refuses a folder with several *.json/*.ubj files (refit's
        # model.json and version.json sit beside model.ubj): point it at the file itself.
        uri = f"{folder}/{version.file}" if stock else folder
    return ServingSpec(version.version, fmt, KSERVE_FORMATS[fmt], uri, runtime)


def _runtime_for(what: str, fmt: str, runtime: str | None) -> str:
    """The runtime that serves a ``fmt`` model (``runtime``, or the stock one for None)."""
    if runtime is None:
        if fmt != FORMAT_XGBOOST:
            raise DeployError(
                f"{what} is a {fmt} ({KSERVE_FORMATS[fmt]}) model, which KServe's stock "
                "runtimes cannot load: kserve-sklearnserver and kserve-mlserver load only "
                "joblib/pickle files (model.joblib, model.pkl, model.pickle) and refit writes "
                "scikit-learn models as skops, never pickle; pass runtime= a ServingRuntime "
                "that serves refit's model folders (refit serve-model)"
            )
        runtime = STOCK_XGBOOST_RUNTIME
    if runtime in STOCK_RUNTIME_FORMATS and fmt not in STOCK_RUNTIME_FORMATS[runtime]:
        raise DeployError(
            f"{what} is a {fmt} ({KSERVE_FORMATS[fmt]}) model, which runtime {runtime!r} "
            f"cannot load: it loads {_STOCK_LOADS[runtime]}; use runtime "
            f"{STOCK_XGBOOST_RUNTIME!r} for XGBoost or a ServingRuntime that serves refit's "
            "model folders (refit serve-model)"
        )
    return runtime


def inference_service(
    service: str,
    namespace: str,
    model: dict[str, Any],
    *,
    resources: Mapping[str, Any] | None = None,
    service_account: str | None = None,
    min_replicas: int | None = None,
) -> dict[str, Any]:
    """Return the InferenceService refit creates to serve one model alone.

    Args:
        service: The InferenceService's name.
        namespace: Its namespace.
        model: The ``spec.predictor.model`` fields (`ServingSpec.model_fields`).
        resources: ``spec.predictor.model.resources``.
        service_account: ``spec.predictor.serviceAccountName``.
        min_replicas: ``spec.predictor.minReplicas``.
    """
    model = dict(model)
    if resources:
        model["resources"] = copy.deepcopy(dict(resources))
    predictor: dict[str, Any] = {"model": model}
    if service_account:
        predictor["serviceAccountName"] = service_account
    if min_replicas is not None:
        predictor["minReplicas"] = min_replicas
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceService",
        "metadata": {
            "name": service,
            "namespace": namespace,
            "annotations": {DEPLOYMENT_MODE_ANNOTATION: CREATE_MODE},
            "labels": {"app.kubernetes.io/managed-by": "refit"},
        },
        "spec": {"predictor": predictor},
    }


def canary_patch(model: dict[str, Any], percent: int | None) -> dict[str, Any]:
    """Return the merge patch that serves ``model`` with ``percent`` canary traffic.

    ``percent`` None removes ``canaryTrafficPercent`` (all traffic to the latest revision).
    """
    return {"spec": {"predictor": {"canaryTrafficPercent": percent, "model": model}}}


def model_fields(isvc: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of ``spec.predictor.model`` that select what is served (absent ones left out)."""
    model = ((((isvc.get("spec") or {}).get("predictor")) or {}).get("model")) or {}
    return {key: copy.deepcopy(model[key]) for key in MODEL_KEYS if key in model}


def predictor_status(isvc: Mapping[str, Any]) -> dict[str, Any]:
    """The predictor's ``status.components.predictor`` ({} when absent)."""
    status = isvc.get("status") or {}
    return dict(((status.get("components") or {}).get("predictor")) or {})


def latest_traffic(predictor: Mapping[str, Any]) -> int | None:
    """Percent of traffic the status gives the latest revision (None: no traffic reported)."""
    traffic = predictor.get("traffic")
    if not traffic:
        return None
    return sum(int(t.get("percent") or 0) for t in traffic if t.get("latestRevision"))


def ready_condition(isvc: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``Ready`` condition of the status (None when absent)."""
    for cond in (isvc.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return dict(cond)
    return None
