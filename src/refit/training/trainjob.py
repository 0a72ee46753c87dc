"""Kubeflow Trainer TrainJobs on the ``xgboost-distributed`` runtime, through the kubernetes client.

:func:`build_trainjob` writes the body: refit's image running
``python -m refit.training.distributed --config JSON`` (:mod:`refit.training.distributed`) on
``numNodes`` nodes with the node profile's resources (``resourcesPerNode``; with GPUs, one
worker per GPU), and its node selector, tolerations and service account as a
``runtimePatches`` entry of the runtime's ``node`` job. :class:`TrainJobRunner` refuses a job
before any write when its namespace is not allowed or the runtime is missing (or is not an
XGBoost runtime), creates it through ``CustomObjectsApi`` (group ``trainer.kubeflow.org``,
``v1alpha1``), waits for its ``Complete`` or ``Failed`` condition with a deadline, reports the
conditions, and deletes it when asked.

The ``DMLC_*`` variables are the runtime's (:data:`refit.training.distributed_plan.RESERVED_ENV`):
a job whose ``env`` sets one is refused.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from refit.errors import TrainingError
from refit.training.distributed_plan import RESERVED_ENV, DistributedConfig

__all__ = [
    "DEFAULT_RUNTIME",
    "GROUP",
    "PATCH_MANAGER",
    "PLURAL",
    "RUNTIME_PLURAL",
    "VERSION",
    "TrainJobOutcome",
    "TrainJobRunner",
    "TrainJobSettings",
    "build_trainjob",
    "trainjob_name",
]

GROUP = "trainer.kubeflow.org"
VERSION = "v1alpha1"
PLURAL = "trainjobs"
RUNTIME_PLURAL = "clustertrainingruntimes"
RUNTIME_KIND = "ClusterTrainingRuntime"
#: The built-in XGBoost runtime of Kubeflow Trainer.
DEFAULT_RUNTIME = "xgboost-distributed"
#: Name of the runtime's replicated job and container the patches address.
NODE_JOB = "node"
#: ``runtimePatches[].manager`` of refit's patch.
PATCH_MANAGER = "refit.io/train"
#: GKE's spot label and taint (as in the pipelines' node profiles).
SPOT_LABEL = "cloud.google.com/gke-spot"
GPU_RESOURCE = "nvidia.com/gpu"

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


@dataclass(frozen=True)
class TrainJobSettings:
    """Where and how a distributed training runs as a TrainJob.

    Attributes:
        namespace: Namespace of the TrainJob.
        allowed_namespaces: Namespaces refit may create TrainJobs in; a namespace outside it
            is refused before any write (empty: every namespace is refused).
        num_nodes: Nodes (pods).
        gpus_per_node: GPUs per node; each runs one worker (0: CPU, one worker per node).
        runtime: ClusterTrainingRuntime name.
        cpu_request: CPU request per node, or None.
        memory_request: Memory request per node, or None.
        cpu_limit: CPU limit per node, or None.
        memory_limit: Memory limit per node, or None.
        node_selector: Node labels the pods need.
        tolerations: Kubernetes tolerations (``key``, ``operator``, ``value``, ``effect``).
        spot: Run on GKE spot nodes (adds their selector and toleration).
        service_account: Service account of the pods (bucket access), or "".
        env: More environment variables for the workers (never ``DMLC_*``).
        deadline_s: Seconds the step waits for the job (also its ``activeDeadlineSeconds``).
        poll_s: Seconds between status polls.
        delete: Delete the TrainJob when it ends (complete, failed or past its deadline).
        price_per_hour: Price of one node per hour (model card cost).
        node_profile: Node profile name (model card).
        timeout_s: Seconds a worker waits for its peers (tracker start-up, collectives).
        request_timeout_s: Seconds one Kubernetes API request may take.
    """

    namespace: str
    allowed_namespaces: tuple[str, ...] = ()
    num_nodes: int = 2
    gpus_per_node: int = 0
    runtime: str = DEFAULT_RUNTIME
    cpu_request: str | None = None
    memory_request: str | None = None
    cpu_limit: str | None = None
    memory_limit: str | None = None
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()
    spot: bool = False
    service_account: str = ""
    env: dict[str, str] = field(default_factory=dict)
    deadline_s: int = 6 * 3600
    poll_s: float = 10.0
    delete: bool = True
    price_per_hour: float = 0.0
    node_profile: str = ""
    timeout_s: int = 600
    request_timeout_s: float = 30.0

    @property
    def workers(self) -> int:
        """Workers in all: one per node, or one per GPU."""
        return self.num_nodes * max(1, self.gpus_per_node)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainJobSettings:
        """Build settings from a mapping (the component's ``distributed`` parameter).

        A node profile's fields (``refit.pipelines.profiles.NodeProfile.to_dict()``) are
        accepted under ``profile``: its requests, limits, GPUs (``accelerator_count``), node
        selector, tolerations, spot and price fill what the mapping does not set.

        Raises:
            TrainingError: A field is unknown or has a bad type or value; the message names it.
        """
        if not isinstance(data, Mapping):
            raise TrainingError(f"distributed settings must be a mapping, got {data!r}")
        data = dict(data)
        data.pop("executor", None)
        if "workers" in data:
            raise TrainingError(
                "distributed settings: 'workers' is the local executor's; a TrainJob has "
                "num_nodes workers, or num_nodes x GPUs with a GPU profile"
            )
        profile = data.pop("profile", None)
        merged: dict[str, Any] = {}
        if profile is not None:
            if not isinstance(profile, Mapping):
                raise TrainingError("distributed settings: 'profile' must be a mapping")
            gpus = (
                int(profile.get("accelerator_count") or 0) if profile.get("accelerator_type") else 0
            )
            merged = {
                "cpu_request": profile.get("cpu_request"),
                "memory_request": profile.get("memory_request"),
                "cpu_limit": profile.get("cpu_limit"),
                "memory_limit": profile.get("memory_limit"),
                "gpus_per_node": gpus,
                "node_selector": dict(profile.get("node_selector") or {}),
                "tolerations": tuple(
                    {k: v for k, v in t.items() if v is not None}
                    for t in profile.get("tolerations") or ()
                ),
                "spot": bool(profile.get("spot", False)),
                "price_per_hour": float(profile.get("price_per_hour") or 0.0),
                "node_profile": str(profile.get("name") or ""),
            }
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TrainingError(
                f"distributed settings: unknown field(s) {unknown}; allowed: {sorted(known)}"
            )
        merged.update(data)
        if "allowed_namespaces" in merged:
            allowed = merged["allowed_namespaces"]
            if isinstance(allowed, str) or not all(isinstance(n, str) for n in allowed):
                raise TrainingError(
                    "distributed settings: allowed_namespaces must be a list of names"
                )
            merged["allowed_namespaces"] = tuple(allowed)
        if "tolerations" in merged:
            merged["tolerations"] = tuple(dict(t) for t in merged["tolerations"])
        try:
            settings = cls(**merged)
        except TypeError as exc:
            raise TrainingError(f"distributed settings: {exc}") from exc
        settings.check()
        return settings

    def check(self) -> None:
        """Raise TrainingError naming the first bad field."""
        if not isinstance(self.namespace, str) or not _NAME.match(self.namespace):
            raise TrainingError(
                f"distributed settings: namespace {self.namespace!r} is not a Kubernetes name"
            )
        if not isinstance(self.runtime, str) or not _NAME.match(self.runtime):
            raise TrainingError(f"distributed settings: runtime {self.runtime!r} is not a name")
        for name, low, high in (
            ("num_nodes", 1, 1024),
            ("gpus_per_node", 0, 16),
            ("deadline_s", 1, 7 * 24 * 3600),
            ("timeout_s", 1, 24 * 3600),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise TrainingError(
                    f"distributed settings: {name} must be an integer in [{low}, {high}], "
                    f"got {value!r}"
                )
        for name in ("poll_s", "request_timeout_s", "price_per_hour"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise TrainingError(f"distributed settings: {name} must be a number >= 0")
        if not isinstance(self.env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.env.items()
        ):
            raise TrainingError("distributed settings: env must map names to string values")
        reserved = sorted(set(self.env) & set(RESERVED_ENV))
        if reserved:
            raise TrainingError(
                f"distributed settings: env sets {reserved}, which the xgboost-distributed "
                "runtime injects itself (reserved names)"
            )
        bad = sorted(k for k in self.env if not _ENV_NAME.match(k))
        if bad:
            raise TrainingError(f"distributed settings: env names {bad} are not valid names")
        if not isinstance(self.node_selector, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.node_selector.items()
        ):
            raise TrainingError("distributed settings: node_selector must map strings to strings")
        for tol in self.tolerations:
            unknown = sorted(set(tol) - {"key", "operator", "value", "effect", "tolerationSeconds"})
            if unknown or not isinstance(tol.get("key", ""), str):
                raise TrainingError(f"distributed settings: toleration {tol!r} is malformed")


def trainjob_name(prefix: str, unique: str) -> str:
    """A TrainJob name: ``prefix-unique``, lower-cased, trimmed to 63 characters.

    Raises:
        TrainingError: Nothing usable is left.
    """
    raw = re.sub(r"[^a-z0-9-]+", "-", f"{prefix}-{unique}".lower()).strip("-")
    name = raw[:63].rstrip("-")
    if not name or not _NAME.match(name):
        raise TrainingError(f"cannot make a TrainJob name from {prefix!r} and {unique!r}")
    return name


def _resources(settings: TrainJobSettings) -> dict[str, Any]:
    requests = {
        k: v for k, v in (("cpu", settings.cpu_request), ("memory", settings.memory_request)) if v
    }
    limits: dict[str, str | int] = {
        k: v for k, v in (("cpu", settings.cpu_limit), ("memory", settings.memory_limit)) if v
    }
    if settings.gpus_per_node:
        limits[GPU_RESOURCE] = settings.gpus_per_node
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def build_trainjob(
    name: str,
    settings: TrainJobSettings,
    *,
    image: str,
    config: DistributedConfig,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The TrainJob body of one distributed training.

    Args:
        name: TrainJob name (see :func:`trainjob_name`).
        settings: Where and how it runs.
        image: refit's image (``refit.images.component_image()``).
        config: What every worker trains; its ``nodes``, ``workers_per_node``, price and
            profile are set from ``settings`` here.
        labels: More labels for the TrainJob.

    Returns:
        The body, for ``CustomObjectsApi.create_namespaced_custom_object``.

    Raises:
        TrainingError: The name or settings are bad, or the env sets a reserved name.
    """
    settings.check()
    if not _NAME.match(name) or len(name) > 63:
        raise TrainingError(f"TrainJob name {name!r} is not a Kubernetes name")
    config.nodes = settings.num_nodes
    config.workers_per_node = max(1, settings.gpus_per_node)
    config.device = "cuda" if settings.gpus_per_node else "cpu"
    config.price_per_hour = float(settings.price_per_hour)
    config.node_profile = settings.node_profile
    config.timeout_s = settings.timeout_s
    config.check()
    trainer: dict[str, Any] = {
        "image": image,
        "command": ["python", "-m", "refit.training.distributed"],
        "args": ["--config", config.to_json()],
        "numNodes": settings.num_nodes,
    }
    resources = _resources(settings)
    if resources:
        trainer["resourcesPerNode"] = resources
    if settings.env:
        trainer["env"] = [{"name": k, "value": v} for k, v in sorted(settings.env.items())]
    pod: dict[str, Any] = {}
    selector = dict(settings.node_selector)
    tolerations = [dict(t) for t in settings.tolerations]
    if settings.spot:
        selector.setdefault(SPOT_LABEL, "true")
        if not any(t.get("key") == SPOT_LABEL for t in tolerations):
            tolerations.append(
                {"key": SPOT_LABEL, "operator": "Equal", "value": "true", "effect": "NoSchedule"}
            )
    if selector:
        pod["nodeSelector"] = selector
    if tolerations:
        pod["tolerations"] = tolerations
    if settings.service_account:
        pod["serviceAccountName"] = settings.service_account
    spec: dict[str, Any] = {
        "runtimeRef": {"apiGroup": GROUP, "kind": RUNTIME_KIND, "name": settings.runtime},
        "activeDeadlineSeconds": settings.deadline_s,
        "trainer": trainer,
    }
    if pod:
        spec["runtimePatches"] = [
            {
                "manager": PATCH_MANAGER,
                "trainingRuntimeSpec": {
                    "template": {
                        "spec": {
                            "replicatedJobs": [
                                {
                                    "name": NODE_JOB,
                                    "template": {"spec": {"template": {"spec": pod}}},
                                }
                            ]
                        }
                    }
                },
            }
        ]
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainJob",
        "metadata": {
            "name": name,
            "namespace": settings.namespace,
            "labels": {"app.kubernetes.io/managed-by": "refit", **dict(labels or {})},
        },
        "spec": spec,
    }
    check_body(body)
    return body


def check_body(body: Mapping[str, Any]) -> None:
    """Refuse a TrainJob body that sets a reserved ``DMLC_*`` variable.

    Raises:
        TrainingError: It does; the message names the variables.
    """
    spec = body.get("spec") or {}
    names = [e.get("name") for e in (spec.get("trainer") or {}).get("env") or []]
    for patch in spec.get("runtimePatches") or []:
        jobs = (
            ((patch.get("trainingRuntimeSpec") or {}).get("template") or {}).get("spec") or {}
        ).get("replicatedJobs") or []
        for job in jobs:
            pod = ((((job.get("template") or {}).get("spec") or {}).get("template")) or {}).get(
                "spec"
            ) or {}
            for container in [*(pod.get("containers") or []), *(pod.get("initContainers") or [])]:
                names += [e.get("name") for e in container.get("env") or []]
    reserved = sorted({n for n in names if n in RESERVED_ENV})
    if reserved:
        raise TrainingError(
            f"TrainJob sets {reserved}: the xgboost-distributed runtime injects these itself "
            "(reserved names)"
        )


@dataclass
class TrainJobOutcome:
    """How a TrainJob ended.

    Attributes:
        name: TrainJob name.
        namespace: Its namespace.
        state: ``Complete``, ``Failed`` or ``DeadlineExceeded``.
        conditions: Its ``status.conditions`` at the end.
        waited_s: Seconds waited.
        deleted: Whether refit deleted it.
    """

    name: str
    namespace: str
    state: str
    conditions: list[dict[str, Any]]
    waited_s: float
    deleted: bool = False

    def describe(self) -> str:
        """One line per condition: ``Type=Status (Reason): message``."""
        return (
            "; ".join(
                f"{c.get('type')}={c.get('status')} ({c.get('reason', '')}): {c.get('message', '')}"
                for c in self.conditions
            )
            or "no conditions reported"
        )


class TrainJobRunner:
    """Creates, watches and deletes TrainJobs through ``CustomObjectsApi``.

    Args:
        settings: Namespace, allow-list, deadline, polling, deletion.
        api: The ``CustomObjectsApi``; None: one from the in-cluster configuration, or the
            kubeconfig.
        sleep: Sleep function (tests inject one that plays the Trainer controller).
        clock: Monotonic clock.
    """

    def __init__(
        self,
        settings: TrainJobSettings,
        api: Any = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        settings.check()
        self.settings = settings
        self._api = api
        self._sleep = sleep
        self._clock = clock

    def _client(self) -> Any:
        if self._api is None:
            from kubernetes import client as k8s_client
            from kubernetes import config as k8s_config

            try:
                k8s_config.load_incluster_config()
            except k8s_config.ConfigException:
                try:
                    k8s_config.load_kube_config()
                except (k8s_config.ConfigException, OSError) as exc:
                    raise TrainingError(
                        "no Kubernetes configuration for the TrainJob: not in a cluster and no "
                        f"usable kubeconfig ({exc})"
                    ) from exc
            self._api = k8s_client.CustomObjectsApi()
        return self._api

    def _call(self, op: str, fn: Callable[..., Any], *args: Any, missing_ok: bool = False) -> Any:
        import urllib3
        from kubernetes.client import ApiException

        try:
            return fn(*args, _request_timeout=self.settings.request_timeout_s)
        except ApiException as exc:
            if missing_ok and exc.status == 404:
                return None
            raise TrainingError(
                f"{op} failed: HTTP {exc.status} {exc.reason}{_api_message(exc)}"
            ) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise TrainingError(f"{op} failed: the Kubernetes API is unreachable ({exc})") from exc

    def preflight(self) -> dict[str, Any]:
        """Check, before any write, that the namespace is allowed and the runtime is there.

        Returns:
            The ClusterTrainingRuntime.

        Raises:
            TrainingError: The namespace is not allowed, or the runtime is missing or has no
                XGBoost policy.
        """
        ns = self.settings.namespace
        if ns not in self.settings.allowed_namespaces:
            raise TrainingError(
                f"TrainJob namespace {ns!r} is not allowed (allowed_namespaces: "
                f"{list(self.settings.allowed_namespaces) or 'none'}); nothing was created"
            )
        api = self._client()
        runtime = self._call(
            f"get ClusterTrainingRuntime {self.settings.runtime!r}",
            api.get_cluster_custom_object,
            GROUP,
            VERSION,
            RUNTIME_PLURAL,
            self.settings.runtime,
            missing_ok=True,
        )
        if runtime is None:
            raise TrainingError(
                f"ClusterTrainingRuntime {self.settings.runtime!r} is missing: install Kubeflow "
                "Trainer's runtimes (manifests/base/runtimes) or name another; nothing was created"
            )
        if "xgboost" not in ((runtime.get("spec") or {}).get("mlPolicy") or {}):
            raise TrainingError(
                f"ClusterTrainingRuntime {self.settings.runtime!r} has no mlPolicy.xgboost: it "
                "does not inject the DMLC_* variables refit's workers need; nothing was created"
            )
        return runtime

    def submit(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Run the preflight checks, then create the TrainJob.

        Raises:
            TrainingError: Refused (see :meth:`preflight`, :func:`check_body`) or the create
                failed.
        """
        check_body(body)
        if (body.get("metadata") or {}).get("namespace") != self.settings.namespace:
            raise TrainingError("TrainJob body's namespace differs from the settings' namespace")
        self.preflight()
        api = self._client()
        return self._call(
            f"create TrainJob {body['metadata']['name']!r}",
            api.create_namespaced_custom_object,
            GROUP,
            VERSION,
            self.settings.namespace,
            PLURAL,
            dict(body),
        )

    def get(self, name: str) -> dict[str, Any] | None:
        """The TrainJob, or None when it does not exist."""
        api = self._client()
        return self._call(
            f"get TrainJob {name!r}",
            api.get_namespaced_custom_object,
            GROUP,
            VERSION,
            self.settings.namespace,
            PLURAL,
            name,
            missing_ok=True,
        )

    def delete(self, name: str, *, wait: bool = False) -> bool:
        """Delete the TrainJob (its pods go with it); False when it was already gone.

        Args:
            name: TrainJob name.
            wait: Also wait (up to ``deadline_s``) until the API server no longer has it
                (finalizers), so that a new TrainJob of the same name can be created.

        Raises:
            TrainingError: The delete failed, or it was still there after the deadline.
        """
        api = self._client()
        gone = self._call(
            f"delete TrainJob {name!r}",
            api.delete_namespaced_custom_object,
            GROUP,
            VERSION,
            self.settings.namespace,
            PLURAL,
            name,
            missing_ok=True,
        )
        start = self._clock()
        while wait and self.get(name) is not None:
            if self._clock() - start >= self.settings.deadline_s:
                raise TrainingError(
                    f"TrainJob {self.settings.namespace}/{name} still exists "
                    f"{self.settings.deadline_s} s after its deletion"
                )
            self._sleep(self.settings.poll_s)
        return gone is not None

    def wait(self, name: str) -> TrainJobOutcome:
        """Poll the TrainJob until ``Complete`` or ``Failed`` is True, or the deadline passes.

        Raises:
            TrainingError: It vanished while being watched.
        """
        start = self._clock()
        conditions: list[dict[str, Any]] = []
        while True:
            job = self.get(name)
            if job is None:
                raise TrainingError(
                    f"TrainJob {self.settings.namespace}/{name} vanished while refit waited "
                    "for it (deleted by someone else?)"
                )
            conditions = list((job.get("status") or {}).get("conditions") or [])
            for state in ("Failed", "Complete"):
                if any(c.get("type") == state and c.get("status") == "True" for c in conditions):
                    return TrainJobOutcome(
                        name, self.settings.namespace, state, conditions, self._clock() - start
                    )
            if self._clock() - start >= self.settings.deadline_s:
                return TrainJobOutcome(
                    name,
                    self.settings.namespace,
                    "DeadlineExceeded",
                    conditions,
                    self._clock() - start,
                )
            self._sleep(self.settings.poll_s)

    def run(self, body: Mapping[str, Any]) -> TrainJobOutcome:
        """Submit, wait, and delete when the settings say so.

        Returns:
            The outcome when the job completed.

        Raises:
            TrainingError: Refused before any write; the job failed or ran past the deadline
                (the message holds its conditions and whether it was deleted).
        """
        name = body["metadata"]["name"]
        self.submit(body)
        try:
            outcome = self.wait(name)
        except TrainingError:
            if self.settings.delete:
                self.delete(name)
            raise
        if self.settings.delete:
            outcome.deleted = self.delete(name)
        where = f"TrainJob {self.settings.namespace}/{name}"
        kept = "deleted" if outcome.deleted else "kept for inspection"
        if outcome.state == "Failed":
            raise TrainingError(
                f"{where} failed ({kept}): {outcome.describe()}. A rerun with the same "
                "checkpoint_uri resumes from the last checkpoint"
            )
        if outcome.state == "DeadlineExceeded":
            raise TrainingError(
                f"{where} did not finish within {self.settings.deadline_s} s ({kept}); last "
                f"conditions: {outcome.describe()}"
            )
        return outcome


def _api_message(exc: Any) -> str:
    import json

    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return f": {message}" if message else ""
