"""Kubeflow Trainer TrainJob bodies on the ``xgboost-distributed`` runtime: settings and spec.

:class:`TrainJobSettings` are checked where they are read. :func:`build_trainjob` writes the
body: refit's image running ``python -m refit.training.distributed --config JSON``
(:mod:`refit.training.distributed`) on ``numNodes`` nodes with the node profile's resources
(``resourcesPerNode``; with GPUs, one worker per GPU), and its node selector, tolerations and
service account as a ``runtimePatches`` entry of the runtime's ``node`` job. The ``DMLC_*``
variables are the runtime's (:data:`refit.training.distributed_plan.RESERVED_ENV`): a body that
sets one is refused (:func:`check_body`). :mod:`refit.training.trainjob` submits and watches it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
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
    "TrainJobSettings",
    "build_trainjob",
    "check_body",
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
        self._check_env()
        self._check_placement()

    def _check_env(self) -> None:
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

    def _check_placement(self) -> None:
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
