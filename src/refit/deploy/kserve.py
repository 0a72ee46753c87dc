"""KServe canary target: an InferenceService driven through ``kubernetes.client.CustomObjectsApi``.

`KServeTarget` implements `refit.deploy.target.CanaryTarget` on one InferenceService
(``serving.kserve.io/v1beta1``) with the plain ``kubernetes`` client (kfp pins
``kubernetes<31``; the ``kserve`` SDK does not work beside that pin) and JSON merge patches.
Every call returns only once KServe observably applied it; any ``ApiException`` becomes a
`DeployError`. Only Serverless (Knative) mode is accepted, since KServe ignores
``canaryTrafficPercent`` in RawDeployment/Standard and ModelMesh. With the stock runtimes only
XGBoost (``model.ubj`` on ``kserve-xgbserver``) is served; scikit-learn (skops) needs a
``runtime`` that serves refit's model folders.

The InferenceService bodies and patches come from :mod:`refit.deploy.kserve_spec`; this module
applies them, watches until they are applied, and rolls back. The design note (what each call
patches, when a call counts as applied, how the deployment mode is read, what KServe's stock
runtimes load) is docs/kserve-target.md.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s_client

from refit.deploy import kserve_spec
from refit.deploy.kserve_spec import (
    CANARY_MODES,
    DEPLOYMENT_MODE_ANNOTATION,
    GROUP,
    MODEL_KEYS,
    PLURAL,
    VERSION,
    ServingSpec,
    deployment_mode,
)
from refit.deploy.target import TrafficSplit
from refit.errors import DeployError
from refit.io import kube
from refit.registry import ModelVersion

__all__ = ["KServeTarget"]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


@dataclass
class _Rollout:
    version: ModelVersion
    previous: ModelVersion | None
    percent: int
    restore: dict[str, Any] | None = None  # the predictor.model fields to restore on rollback
    attempted: bool = False  # a write was sent (it may have been applied even if it failed)
    created: bool = False  # this rollout created the InferenceService
    phase: str = "canary"  # "canary" | "promoted" | "rolled_back"


# --------------------------------------------------------------------------- the target


class KServeTarget:
    """A KServe InferenceService as a canary target (see the module docstring).

    Args:
        service: The InferenceService's name (a DNS-1123 label).
        namespace: Its namespace.
        api: The ``CustomObjectsApi`` to use; None: one from the in-cluster configuration, or
            else the kubeconfig, built on first use.
        allowed_namespaces: Namespaces this target may deploy to; ``namespace`` must be one
            (empty: none allowed, fail closed).
        storage_uri_for: Version -> ``storageUri`` (any scheme KServe's storage initializer
            fetches). None: derived from the version's ``model_uri`` (``gs://``, ``s3://`` or
            ``pvc://``), the model file for the stock XGBoost runtime, the folder otherwise.
        runtime: A ServingRuntime/ClusterServingRuntime name. None: KServe's stock runtime
            (``kserve-xgbserver`` for XGBoost; scikit-learn skops models are refused). A stock
            runtime's name gets the stock rules; any other name is taken to serve refit's
            model folders in both formats (e.g. refit's own ``refit serve-model`` runtime).
        protocol_version: ``spec.predictor.model.protocolVersion`` (``"v2"``: Open Inference).
        service_account: ``spec.predictor.serviceAccountName`` (storage credentials).
        resources: ``spec.predictor.model.resources`` (Kubernetes ResourceRequirements).
        min_replicas: ``spec.predictor.minReplicas`` (None: KServe's default).
        poll_seconds: Seconds between status reads while waiting.
        timeout_seconds: How long one change may take to be applied.
        request_timeout_seconds: Timeout of one Kubernetes API request.
        clock: Monotonic clock (seconds); injectable for tests.
        sleep: Sleep function; injectable for tests.

    Raises:
        DeployError: An invalid name, namespace, percent or timing setting.
    """

    def __init__(
        self,
        service: str,
        namespace: str,
        *,
        api: k8s_client.CustomObjectsApi | None = None,
        allowed_namespaces: Sequence[str] = (),
        storage_uri_for: Callable[[ModelVersion], str] | None = None,
        runtime: str | None = None,
        protocol_version: str = "v2",
        service_account: str | None = None,
        resources: Mapping[str, Any] | None = None,
        min_replicas: int | None = None,
        poll_seconds: float = 2.0,
        timeout_seconds: float = 600.0,
        request_timeout_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not isinstance(service, str) or not _DNS_LABEL.match(service):
            raise DeployError(
                f"InferenceService name {service!r} is invalid: use a DNS-1123 label "
                "(lower-case letters, digits, '-', at most 63 characters)"
            )
        if not isinstance(namespace, str) or not _DNS_LABEL.match(namespace):
            raise DeployError(f"namespace {namespace!r} is invalid: use a DNS-1123 label")
        if isinstance(allowed_namespaces, str):
            raise DeployError(
                f"allowed_namespaces must be a list of namespaces, got the string "
                f"{allowed_namespaces!r}"
            )
        if runtime is not None and (
            not isinstance(runtime, str) or not _DNS_SUBDOMAIN.match(runtime)
        ):
            raise DeployError(f"runtime {runtime!r} is not a valid ServingRuntime name")
        if protocol_version not in ("v1", "v2", "grpc-v1", "grpc-v2"):
            raise DeployError(
                f"protocol_version {protocol_version!r} is not one of v1, v2, grpc-v1, grpc-v2"
            )
        if min_replicas is not None and (isinstance(min_replicas, bool) or min_replicas < 0):
            raise DeployError(f"min_replicas must be a non-negative integer, got {min_replicas!r}")
        for label, value in (
            ("poll_seconds", poll_seconds),
            ("timeout_seconds", timeout_seconds),
            ("request_timeout_seconds", request_timeout_seconds),
        ):
            if not value > 0:
                raise DeployError(f"{label} must be positive, got {value!r}")
        self.name = "kserve"
        self.service = service
        self.namespace = namespace
        self.allowed_namespaces = tuple(allowed_namespaces)
        self.runtime = runtime
        self.protocol_version = protocol_version
        self.service_account = service_account
        self.resources = dict(resources) if resources else None
        self.min_replicas = min_replicas
        self.poll_seconds = float(poll_seconds)
        self.timeout_seconds = float(timeout_seconds)
        self.request_timeout_seconds = float(request_timeout_seconds)
        self._api = api
        self._storage_uri_for = storage_uri_for
        self._clock = clock
        self._sleep = sleep
        self._rollout: _Rollout | None = None

    # ----------------------------------------------------------------- what is served

    @property
    def _where(self) -> str:
        return f"InferenceService {self.namespace}/{self.service}"

    def serving_spec(self, version: ModelVersion) -> ServingSpec:
        """Return how ``version`` is served here: format, runtime and ``storageUri``.

        Raises:
            DeployError: As `refit.deploy.kserve_spec.serving_spec`.
        """
        return kserve_spec.serving_spec(
            version, runtime=self.runtime, storage_uri_for=self._storage_uri_for
        )

    def inference_service(self, version: ModelVersion) -> dict[str, Any]:
        """Return the InferenceService this target creates to serve ``version`` alone.

        Raises:
            DeployError: As `serving_spec`.
        """
        return kserve_spec.inference_service(
            self.service,
            self.namespace,
            self.serving_spec(version).model_fields(self.protocol_version),
            resources=self.resources,
            service_account=self.service_account,
            min_replicas=self.min_replicas,
        )

    def canary_patch(self, version: ModelVersion, percent: int | None) -> dict[str, Any]:
        """Return the merge patch that serves ``version`` with ``percent`` canary traffic.

        ``percent`` None removes ``canaryTrafficPercent`` (all traffic to the latest revision).

        Raises:
            DeployError: As `serving_spec`.
        """
        return kserve_spec.canary_patch(
            self.serving_spec(version).model_fields(self.protocol_version), percent
        )

    # ----------------------------------------------------------------- protocol

    def preflight(self, version: ModelVersion, previous: ModelVersion | None) -> None:
        """Check everything that can fail before traffic moves; write nothing.

        Raises:
            DeployError: A namespace not allowed, an unservable version, an InferenceService in
                a mode that ignores canaryTrafficPercent (RawDeployment/Standard, ModelMesh, or
                an unknown cluster default), a rollout already in progress, a live model that is
                not ``previous``, or a Kubernetes API error.
        """
        self._preflight(version, previous)

    def start(
        self, version: ModelVersion, previous: ModelVersion | None, percent: int
    ) -> TrafficSplit:
        """Deploy ``version`` as the canary with ``percent`` of the traffic.

        With ``previous`` None there is no primary: ``version`` is deployed alone and takes all
        traffic whatever ``percent`` says.

        Raises:
            DeployError: A preflight failure, a percent outside 1-99 (1-100 without a previous
                version), an API error, or a change not applied within ``timeout_seconds``.
        """
        if previous is None:
            _check_percent(percent, 1, 100)
        else:
            _check_percent(percent, 1, 99)
        rollout = self._rollout = _Rollout(version, previous, percent=percent)
        existing = self._preflight(version, previous)
        rollout.attempted = True
        if previous is None:
            rollout.percent = 100
            if existing is None:
                created = self._create(self.inference_service(version))
                rollout.created = True
                obj = self._wait(created, "create", percent=100, rolled_out=True)
            else:  # preflight made sure it already serves `version`
                patch = self.canary_patch(version, None)
                obj = self._wait(self._patch(patch, "patch"), "patch", percent=100, rolled_out=True)
            return self._split(obj)
        if existing is None:
            created = self._create(self.inference_service(previous))
            existing = self._wait(created, "create", percent=100, rolled_out=True)
        rollout.restore = kserve_spec.model_fields(existing)
        patched = self._patch(self.canary_patch(version, percent), "patch")
        obj = self._wait(patched, "patch", percent=percent, rolled_out=False, new_revision=True)
        return self._split(obj)

    def set_traffic(self, percent: int) -> TrafficSplit:
        """Give the canary ``percent`` of the traffic (0 < percent < 100).

        Raises:
            DeployError: No canary is running, a bad percent, an API error or a timeout.
        """
        rollout = self._require("set_traffic")
        if rollout.previous is None:
            raise DeployError(
                f"set_traffic: {self._where} serves version {rollout.version.version} alone "
                "(there is no previous version to split traffic with)"
            )
        _check_percent(percent, 1, 99)
        rollout.percent = percent
        patch = {"spec": {"predictor": {"canaryTrafficPercent": percent}}}
        obj = self._wait(self._patch(patch, "patch"), "patch", percent=percent, rolled_out=False)
        return self._split(obj)

    def promote(self) -> TrafficSplit:
        """Give the canary all traffic (remove ``canaryTrafficPercent``); it becomes the primary.

        Raises:
            DeployError: No canary is running, an API error or a timeout.
        """
        rollout = self._require("promote")
        patch = {"spec": {"predictor": {"canaryTrafficPercent": None}}}
        obj = self._wait(self._patch(patch, "patch"), "patch", percent=100, rolled_out=True)
        rollout.phase = "promoted"
        rollout.percent = 0
        return self._split(obj)

    def rollback(self) -> TrafficSplit:
        """Give the primary all traffic again and remove the canary.

        Works after a failed `start` or `set_traffic`. After a first deploy (no previous
        version) the InferenceService this target created is deleted.

        Raises:
            DeployError: Nothing was started, there is nothing to restore, an API error or a
                timeout (the rollout controller then reports that traffic may still reach the
                canary).
        """
        rollout = self._rollout
        if rollout is None:
            raise DeployError(f"rollback: nothing was started on {self._where}")
        if rollout.phase == "promoted":
            raise DeployError(
                f"rollback: version {rollout.version.version} was already promoted on "
                f"{self._where}; start a new rollout of the previous version instead"
            )
        if not rollout.attempted:  # start failed before it wrote anything
            rollout.phase = "rolled_back"
            primary = rollout.previous.version if rollout.previous is not None else None
            return TrafficSplit(primary_version=primary, canary_version=None, canary_percent=0)
        if rollout.previous is None:
            if not rollout.created:
                raise DeployError(
                    f"rollback: {self._where} served version {rollout.version.version} before "
                    "this rollout and there is no previous version to restore"
                )
            self._delete()
            rollout.phase = "rolled_back"
            rollout.percent = 0
            return TrafficSplit(primary_version=None, canary_version=None, canary_percent=0)
        restore = rollout.restore
        if restore is None:  # start failed before it read the live spec: rebuild it
            restore = self.serving_spec(rollout.previous).model_fields(self.protocol_version)
        current = self._get("get")
        if current is None:
            raise DeployError(
                f"rollback: {self._where} does not exist (never created, or deleted meanwhile): "
                f"nothing serves the previous version {rollout.previous.version} there"
            )
        predictor_spec = ((current.get("spec") or {}).get("predictor")) or {}
        if "canaryTrafficPercent" in predictor_spec or kserve_spec.model_fields(current) != restore:
            # 1. traffic back to the rolled-out (previous) revision and start a revision of the
            #    previous model, in one patch; 2. once it is ready, drop the canary field.
            model_patch = {key: restore.get(key) for key in MODEL_KEYS}
            patch = {"spec": {"predictor": {"canaryTrafficPercent": 0, "model": model_patch}}}
            self._wait(
                self._patch(patch, "rollback patch"), "rollback patch", percent=0, rolled_out=False
            )
            patch = {"spec": {"predictor": {"canaryTrafficPercent": None}}}
            obj = self._wait(
                self._patch(patch, "rollback patch"), "rollback patch", percent=100, rolled_out=True
            )
        else:
            obj = self._wait(current, "rollback", percent=100, rolled_out=True)
        rollout.phase = "rolled_back"
        rollout.percent = 0
        return self._split(obj)

    # ----------------------------------------------------------------- checks

    def _preflight(
        self, version: ModelVersion, previous: ModelVersion | None
    ) -> dict[str, Any] | None:
        if self.namespace not in self.allowed_namespaces:
            allowed = list(self.allowed_namespaces) or "none (allowed_namespaces is empty)"
            raise DeployError(
                f"namespace {self.namespace!r} of {self._where} is not allowed: allowed "
                f"namespaces are {allowed}"
            )
        if previous is not None and previous.version == version.version:
            raise DeployError(
                f"version {version.version} is both the canary and the previous version: "
                "nothing to roll out"
            )
        spec = self.serving_spec(version)
        existing = self._get("get")
        if existing is None:
            if previous is not None:
                self.serving_spec(previous)  # refit will create the service with it first
            return None
        self._check_mode(existing)
        predictor = ((existing.get("spec") or {}).get("predictor")) or {}
        if "canaryTrafficPercent" in predictor:
            raise DeployError(
                f"{self._where} has canaryTrafficPercent={predictor['canaryTrafficPercent']}: "
                "another rollout is in progress or was left unfinished; finish it, or remove "
                "the field once the service serves the intended primary"
            )
        live = str(((predictor.get("model") or {}).get("storageUri")) or "")
        if previous is None:
            if not self._serves(live, version, spec):
                raise DeployError(
                    f"{self._where} already exists and serves {live!r}, but the registry has no "
                    f"live version: refusing to replace a model refit did not deploy with version "
                    f"{version.version} ({spec.storage_uri}); delete the service or promote the "
                    "live model in the registry first"
                )
            return existing
        if self._serves(live, version, spec):
            raise DeployError(
                f"{self._where} already serves version {version.version} ({live}): nothing to "
                "roll out"
            )
        if not self._serves(live, previous, None):
            raise DeployError(
                f"{self._where} serves {live!r}, not the previous version {previous.version} "
                f"({previous.model_uri}): refusing to split traffic against an unknown primary"
            )
        return existing

    def _serves(self, live: str, version: ModelVersion, spec: ServingSpec | None) -> bool:
        """Whether a live storageUri is ``version``'s (its folder, its file, or our URI)."""
        live = live.rstrip("/")
        if not live:
            return False
        folder = str(version.model_uri or "").rstrip("/")
        candidates = {folder, f"{folder}/{version.file}"}
        if spec is None:
            try:
                spec = self.serving_spec(version)
            except DeployError:
                spec = None
        if spec is not None:
            candidates.add(spec.storage_uri.rstrip("/"))
        return live in candidates

    def _check_mode(self, isvc: Mapping[str, Any]) -> None:
        mode = deployment_mode(isvc)
        if mode in CANARY_MODES:
            return
        if mode is None:
            raise DeployError(
                f"{self._where} has no {DEPLOYMENT_MODE_ANNOTATION} annotation and no "
                "status.deploymentMode: it runs in the cluster's default mode (KServe's "
                "inferenceservice-config ConfigMap, Standard/RawDeployment in recent KServe), "
                "which refit cannot see, and KServe ignores canaryTrafficPercent outside "
                f"Serverless mode; annotate it {DEPLOYMENT_MODE_ANNOTATION}: Serverless"
            )
        raise DeployError(
            f"{self._where} runs in {mode} mode: KServe ignores canaryTrafficPercent in "
            "RawDeployment (Standard) and ModelMesh modes, so a canary would send all traffic "
            "to the new model at once; refusing a fake rollout (use a Serverless InferenceService)"
        )

    def _require(self, op: str) -> _Rollout:
        rollout = self._rollout
        if rollout is None or rollout.phase != "canary":
            state = "nothing was started" if rollout is None else f"the rollout is {rollout.phase}"
            raise DeployError(f"{op}: no canary is running on {self._where} ({state})")
        return rollout

    # ----------------------------------------------------------------- waiting

    def _wait(
        self,
        written: Mapping[str, Any],
        op: str,
        *,
        percent: int,
        rolled_out: bool,
        new_revision: bool = False,
    ) -> dict[str, Any]:
        """Poll until the write that returned ``written`` is observably applied."""
        generation = int(((written.get("metadata") or {}).get("generation")) or 0)
        why: str | None = None
        for _ in self._poll():
            obj = self._get("get")
            if obj is None:
                raise DeployError(f"{op}: {self._where} disappeared while waiting for it")
            self._check_mode(obj)
            why = self._unsettled(obj, generation, percent, rolled_out, new_revision)
            if why is None:
                return obj
        raise DeployError(
            f"{op}: {self._where} did not apply the change within {self.timeout_seconds:g} s: {why}"
        )

    def _unsettled(
        self,
        obj: Mapping[str, Any],
        written_generation: int,
        percent: int,
        rolled_out: bool,
        new_revision: bool,
    ) -> str | None:
        """Why ``obj`` does not show the change applied yet (None: it does)."""
        status = obj.get("status") or {}
        generation = max(
            written_generation, int((obj.get("metadata") or {}).get("generation") or 0)
        )
        observed = status.get("observedGeneration")
        if observed is None or int(observed) < generation:
            return f"status.observedGeneration {observed} < metadata.generation {generation}"
        model_status = status.get("modelStatus") or {}
        if model_status.get("transitionStatus") in ("BlockedByFailedLoad", "InvalidSpec"):
            failure = model_status.get("lastFailureInfo") or {}
            raise DeployError(
                f"{self._where}: KServe reports {model_status['transitionStatus']} "
                f"({failure.get('reason', '')}: {failure.get('message', '')})"
            )
        predictor = kserve_spec.predictor_status(obj)
        created = predictor.get("latestCreatedRevision")
        ready = predictor.get("latestReadyRevision")
        if not created or ready != created:
            return f"predictor latestReadyRevision {ready} != latestCreatedRevision {created}"
        cond = kserve_spec.ready_condition(obj)
        if cond is None or cond.get("status") != "True":
            detail = (
                "missing"
                if cond is None
                else f"{cond.get('status')} ({cond.get('reason', '')}: {cond.get('message', '')})"
            )
            return f"Ready condition is {detail}"
        rolled = predictor.get("latestRolledoutRevision")
        if rolled_out and rolled != ready:
            return f"predictor latestRolledoutRevision {rolled} != latestReadyRevision {ready}"
        if new_revision and rolled == ready:
            return f"no new revision yet (latest ready revision {ready} is the rolled-out one)"
        observed_percent = kserve_spec.latest_traffic(predictor)
        if observed_percent is not None and observed_percent != percent:
            return f"latest revision has {observed_percent}% of the traffic, not {percent}%"
        stale = [
            t.get("revisionName")
            for t in predictor.get("traffic") or []
            if t.get("latestRevision") and t.get("revisionName") not in (None, ready)
        ]
        if stale:
            return f"traffic of the latest revision still goes to {stale[0]}, not {ready}"
        return None

    def _split(self, obj: Mapping[str, Any]) -> TrafficSplit:
        rollout = self._rollout
        assert rollout is not None  # every caller set it
        predictor = kserve_spec.predictor_status(obj)
        rolled = str(predictor.get("latestRolledoutRevision") or "")
        ready = str(predictor.get("latestReadyRevision") or "")
        if rollout.phase == "promoted":
            return TrafficSplit(rollout.version.version, None, 0, primary_revision=rolled)
        if rollout.phase == "rolled_back":
            primary = rollout.previous.version if rollout.previous is not None else None
            return TrafficSplit(primary, None, 0, primary_revision=rolled)
        if rollout.previous is None:  # deployed alone
            return TrafficSplit(None, rollout.version.version, 100, canary_revision=ready)
        observed = kserve_spec.latest_traffic(predictor)
        return TrafficSplit(
            rollout.previous.version,
            rollout.version.version,
            rollout.percent if observed is None else observed,
            primary_revision=rolled,
            canary_revision=ready,
        )

    # ----------------------------------------------------------------- API calls

    def _client(self) -> k8s_client.CustomObjectsApi:
        if self._api is None:
            self._api = kube.custom_objects_api(self._where, DeployError)
        return self._api

    def _call(self, op: str, fn: Callable[..., Any], *args: Any, missing_ok: bool = False) -> Any:
        """Call one CustomObjectsApi method on this target's resource; errors -> DeployError.

        With ``missing_ok``, a 404 returns None instead.
        """
        return kube.call(
            f"{op} of {self._where}",
            fn,
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            *args,
            timeout_s=self.request_timeout_seconds,
            error=DeployError,
            missing_ok=missing_ok,
        )

    def _get(self, op: str) -> dict[str, Any] | None:
        api = self._client()
        return self._call(op, api.get_namespaced_custom_object, self.service, missing_ok=True)

    def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        api = self._client()
        return self._call("create", api.create_namespaced_custom_object, body)

    def _patch(self, patch: dict[str, Any], op: str) -> dict[str, Any]:
        api = self._client()
        return self._call(op, api.patch_namespaced_custom_object, self.service, patch)

    def _delete(self) -> None:
        api = self._client()
        self._call("delete", api.delete_namespaced_custom_object, self.service)
        for _ in self._poll():
            if self._get("get") is None:
                return
        raise DeployError(f"delete: {self._where} still exists after {self.timeout_seconds:g} s")

    def _poll(self) -> kube.Poll:
        return kube.Poll(
            self.timeout_seconds, self.poll_seconds, clock=self._clock, sleep=self._sleep
        )


def _check_percent(percent: Any, low: int, high: int) -> None:
    if isinstance(percent, bool) or not isinstance(percent, int) or not low <= percent <= high:
        raise DeployError(
            f"canary percent must be an integer from {low} to {high}, got {percent!r}"
        )
