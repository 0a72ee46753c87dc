"""Node-pool profiles: where a task runs (CPU, GPU, spot GPU) and how it survives pre-emption.

A :class:`NodeProfile` says what a task asks Kubernetes for: CPU and memory requests, an
accelerator (``set_accelerator_type`` / ``set_accelerator_limit``), node selectors and
tolerations (kfp-kubernetes ``add_node_selector`` / ``add_toleration``), and a retry policy with
back-off (``set_retry``) so that a pre-empted spot node costs a restart, not the run. The
training step resumes from its last checkpoint on the retry.

KFP applies these at compile time: ``refit compile --node-profile gpu-spot`` compiles the
retraining pipeline for a profile. Built in: ``cpu`` (the committed default), ``gpu`` and
``gpu-spot``; more come from a YAML or JSON file (:func:`load_profiles`)::

    profiles:
      a100-spot:
        extends: gpu-spot
        node_selector: {cloud.google.com/gke-accelerator: nvidia-tesla-a100}
        price_per_hour: 1.20

Prices are indicative on-demand/spot prices per hour in USD for a GKE node of that shape
(n2-standard-4; g2-standard-8 with one L4); set your own in a profiles file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from kfp import dsl, kubernetes

from refit.errors import SchemaError

__all__ = [
    "BUILTIN_PROFILES",
    "GPU_RESOURCE",
    "SPOT_LABEL",
    "NodeProfile",
    "Toleration",
    "apply_profile",
    "get_profile",
    "load_profiles",
]

#: Kubernetes extended resource of NVIDIA GPUs (and the taint key GKE puts on GPU nodes).
GPU_RESOURCE = "nvidia.com/gpu"
#: GKE's label (and taint) of spot nodes.
SPOT_LABEL = "cloud.google.com/gke-spot"

_OPERATORS = ("Equal", "Exists")
_EFFECTS = ("NoExecute", "NoSchedule", "PreferNoSchedule")


@dataclass(frozen=True)
class Toleration:
    """A Kubernetes toleration.

    Attributes:
        key: Taint key.
        operator: ``Equal`` or ``Exists``.
        value: Taint value (``Equal`` only).
        effect: ``NoSchedule``, ``PreferNoSchedule`` or ``NoExecute``; None for all.
    """

    key: str
    operator: str = "Exists"
    value: str | None = None
    effect: str | None = "NoSchedule"


@dataclass(frozen=True)
class NodeProfile:
    """Where and how a task runs.

    Attributes:
        name: Profile name.
        cpu_request: CPU request (``"4"``, ``"500m"``), or None.
        memory_request: Memory request (``"16G"``), or None.
        cpu_limit: CPU limit, or None.
        memory_limit: Memory limit, or None.
        accelerator_type: Accelerator resource (``nvidia.com/gpu``), or None for no GPU.
        accelerator_count: Number of accelerators (with ``accelerator_type``).
        node_selector: Node labels the task's node must carry.
        tolerations: Taints the task tolerates.
        spot: Whether the profile runs on spot (pre-emptible) nodes; adds the GKE spot
            selector and toleration.
        retries: Retries of the task after a failure (pre-emption).
        backoff_duration: First wait before a retry (``"30s"``).
        backoff_factor: Growth of the wait per retry.
        backoff_max_duration: Longest wait before a retry.
        device: What the trainer is told: ``auto``, ``cpu`` or ``cuda``.
        price_per_hour: Price of the node per hour, for the model card's cost.
    """

    name: str
    cpu_request: str | None = None
    memory_request: str | None = None
    cpu_limit: str | None = None
    memory_limit: str | None = None
    accelerator_type: str | None = None
    accelerator_count: int = 0
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = ()
    spot: bool = False
    retries: int = 0
    backoff_duration: str = "30s"
    backoff_factor: float = 2.0
    backoff_max_duration: str = "600s"
    device: str = "auto"
    price_per_hour: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        out = asdict(self)
        out["tolerations"] = [asdict(t) for t in self.tolerations]
        return out


_GPU_TOLERATION = Toleration(key=GPU_RESOURCE, operator="Exists", effect="NoSchedule")

_GPU = NodeProfile(
    name="gpu",
    cpu_request="4",
    memory_request="16G",
    accelerator_type=GPU_RESOURCE,
    accelerator_count=1,
    node_selector={"cloud.google.com/gke-accelerator": "nvidia-l4"},
    tolerations=(_GPU_TOLERATION,),
    retries=2,
    backoff_duration="30s",
    backoff_factor=2.0,
    backoff_max_duration="600s",
    device="cuda",
    price_per_hour=0.85,
)

#: The profiles every refit knows; gpu-spot is gpu on spot nodes, retried longer.
BUILTIN_PROFILES: dict[str, NodeProfile] = {
    "cpu": NodeProfile(
        name="cpu",
        cpu_request="2",
        memory_request="8G",
        device="cpu",
        price_per_hour=0.19,
    ),
    "gpu": _GPU,
    "gpu-spot": replace(
        _GPU,
        name="gpu-spot",
        spot=True,
        retries=6,
        backoff_duration="60s",
        backoff_max_duration="1800s",
        price_per_hour=0.34,
    ),
}


def _toleration(data: Any, where: str) -> Toleration:
    if not isinstance(data, dict):
        raise SchemaError(f"{where}: a toleration must be a mapping, got {data!r}")
    allowed = {"key", "operator", "value", "effect"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise SchemaError(
            f"{where}: unknown toleration field(s) {unknown}; allowed {sorted(allowed)}"
        )
    if not isinstance(data.get("key"), str) or not data["key"]:
        raise SchemaError(f"{where}: a toleration needs a non-empty 'key'")
    tol = Toleration(
        key=data["key"],
        operator=data.get("operator", "Exists"),
        value=data.get("value"),
        effect=data.get("effect", "NoSchedule"),
    )
    if tol.operator not in _OPERATORS:
        raise SchemaError(
            f"{where}: toleration operator {tol.operator!r} not in {list(_OPERATORS)}"
        )
    if tol.effect is not None and tol.effect not in _EFFECTS:
        raise SchemaError(f"{where}: toleration effect {tol.effect!r} not in {list(_EFFECTS)}")
    if tol.operator == "Exists" and tol.value is not None:
        raise SchemaError(f"{where}: toleration with operator 'Exists' must not set a value")
    return tol


def _profile(name: str, data: Any, known: dict[str, NodeProfile], where: str) -> NodeProfile:
    if not isinstance(data, dict):
        raise SchemaError(f"{where}: profile {name!r} must be a mapping, got {type(data).__name__}")
    data = dict(data)
    base_name = data.pop("extends", None)
    if base_name is not None:
        if base_name not in known:
            raise SchemaError(
                f"{where}: profile {name!r} extends unknown profile {base_name!r}; "
                f"known: {sorted(known)}"
            )
        base = known[base_name]
    else:
        base = NodeProfile(name=name)
    names = {f.name for f in fields(NodeProfile)} - {"name"}
    unknown = sorted(set(data) - names)
    if unknown:
        raise SchemaError(
            f"{where}: profile {name!r} has unknown field(s) {unknown}; allowed: {sorted(names)}"
        )
    if "tolerations" in data:
        if not isinstance(data["tolerations"], list):
            raise SchemaError(f"{where}: profile {name!r} field 'tolerations' must be a list")
        data["tolerations"] = tuple(
            _toleration(t, f"{where}: profile {name!r}") for t in data["tolerations"]
        )
    if "node_selector" in data:
        selector = data["node_selector"]
        if not isinstance(selector, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in selector.items()
        ):
            raise SchemaError(
                f"{where}: profile {name!r} field 'node_selector' must map strings to strings"
            )
    profile = replace(base, name=name, **data)
    _check(profile, where)
    return profile


def _check(profile: NodeProfile, where: str) -> None:
    label = f"{where}: profile {profile.name!r}"
    if not isinstance(profile.retries, int) or profile.retries < 0:
        raise SchemaError(f"{label}: 'retries' must be a non-negative integer")
    if profile.accelerator_type and (
        not isinstance(profile.accelerator_count, int) or profile.accelerator_count < 1
    ):
        raise SchemaError(f"{label}: 'accelerator_count' must be >= 1 with an accelerator_type")
    if profile.device not in ("auto", "cpu", "cuda"):
        raise SchemaError(f"{label}: 'device' must be auto, cpu or cuda, got {profile.device!r}")
    if profile.device == "cuda" and not profile.accelerator_type:
        raise SchemaError(f"{label}: 'device' cuda needs an accelerator_type (e.g. {GPU_RESOURCE})")
    if not isinstance(profile.price_per_hour, (int, float)) or profile.price_per_hour < 0:
        raise SchemaError(f"{label}: 'price_per_hour' must be a non-negative number")


def load_profiles(path: str | Path | None = None) -> dict[str, NodeProfile]:
    """Return the built-in profiles plus those defined in a YAML or JSON file.

    The file holds a mapping of profile names to fields (optionally under a top-level
    ``profiles`` key). A profile may ``extends`` a built-in or earlier profile; a profile with
    a built-in's name replaces it.

    Args:
        path: A ``.yaml``/``.yml``/``.json`` file, or None for the built-ins alone.

    Returns:
        Profile name to profile.

    Raises:
        SchemaError: If the file cannot be read or a profile is malformed; the message names
            the file, the profile and the field.
    """
    profiles = dict(BUILTIN_PROFILES)
    if path is None:
        return profiles
    path = Path(path)
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SchemaError(f"cannot read node profiles file {where}: {exc.strerror or exc}") from exc
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except ValueError as exc:  # json.JSONDecodeError and yaml.YAMLError
        raise SchemaError(f"node profiles file {where} is not valid: {exc}") from exc
    except Exception as exc:  # yaml.YAMLError is not a ValueError
        raise SchemaError(f"node profiles file {where} is not valid: {exc}") from exc
    if isinstance(data, dict) and set(data) == {"profiles"}:
        data = data["profiles"]
    if not isinstance(data, dict):
        raise SchemaError(f"node profiles file {where} must hold a mapping of profile names")
    for name, body in data.items():
        profiles[str(name)] = _profile(str(name), body, profiles, where)
    return profiles


def get_profile(name: str, path: str | Path | None = None) -> NodeProfile:
    """Look a profile up by name among the built-ins and those in ``path``.

    Raises:
        SchemaError: If no profile has that name (the message lists the known ones), or the
            file is malformed.
    """
    profiles = load_profiles(path)
    if name not in profiles:
        raise SchemaError(f"node profile {name!r} is unknown; known profiles: {sorted(profiles)}")
    return profiles[name]


def _set_resources(task: dsl.PipelineTask, profile: NodeProfile) -> None:
    """Set the requests, limits and accelerator the profile gives (none: the cluster's default)."""
    if profile.cpu_request:
        task.set_cpu_request(profile.cpu_request)
    if profile.memory_request:
        task.set_memory_request(profile.memory_request)
    if profile.cpu_limit:
        task.set_cpu_limit(profile.cpu_limit)
    if profile.memory_limit:
        task.set_memory_limit(profile.memory_limit)
    if profile.accelerator_type:
        task.set_accelerator_type(profile.accelerator_type)
        task.set_accelerator_limit(profile.accelerator_count)


def _place(task: dsl.PipelineTask, profile: NodeProfile) -> None:
    """Add the node selector and tolerations; a spot profile also selects and tolerates spot."""
    selector = dict(profile.node_selector)
    tolerations = list(profile.tolerations)
    if profile.spot:
        selector.setdefault(SPOT_LABEL, "true")
        if not any(t.key == SPOT_LABEL for t in tolerations):
            tolerations.append(
                Toleration(key=SPOT_LABEL, operator="Equal", value="true", effect="NoSchedule")
            )
    for key, value in selector.items():
        kubernetes.add_node_selector(task, label_key=key, label_value=value)
    for tol in tolerations:
        kubernetes.add_toleration(
            task, key=tol.key, operator=tol.operator, value=tol.value, effect=tol.effect
        )


def apply_profile(task: dsl.PipelineTask, profile: NodeProfile) -> dsl.PipelineTask:
    """Apply a node profile to a pipeline task (at compile time).

    Args:
        task: The task.
        profile: The profile.

    Returns:
        The same task, for chaining.
    """
    _set_resources(task, profile)
    _place(task, profile)
    if profile.retries:
        task.set_retry(
            num_retries=profile.retries,
            backoff_duration=profile.backoff_duration,
            backoff_factor=profile.backoff_factor,
            backoff_max_duration=profile.backoff_max_duration,
        )
    return task
