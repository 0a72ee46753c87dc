"""Declarative canary rollout plan: the steps, how long each is watched, and the checks.

A plan is data: it is loaded from YAML or JSON (or built in Python), validated strictly, and
handed to the rollout controller, which moves traffic and runs the checks of
:mod:`refit.deploy.analysis` once per analysis interval.

The semantics (steps, ``failures_allowed`` counted as Flagger's ``threshold``, decisive
failures, the deadline, the presets, and the stages: ``shadow`` before the steps and ``ab_test``
after them, :mod:`refit.deploy.stages`) are the contract the controller follows:
docs/decisions/0016-canary-rollout-plan-and-controller.md.

Example (YAML)::

    steps: [10, 50, 100]
    interval_seconds: 60
    failures_allowed: 1
    deadline_seconds: 1800
    query_preset: kserve
    prometheus_url: http://prometheus.monitoring:9090
    checks:
      - {name: error-rate, kind: error_rate, max_value: 0.05, max_increase: 0.01}
      - {name: latency-p99, kind: latency, quantile: 0.99, max_value: 0.5, max_increase: 0.5}
      - {name: error-rate-sequential, kind: sequential_error_rate, alpha: 0.05}
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from refit.deploy.stages import ABTestSpec, ShadowSpec
from refit.errors import DeployError
from refit.fields import FieldChecks

_CHECK = FieldChecks(DeployError)

#: The kinds of check a plan may name.
CHECK_KINDS: tuple[str, ...] = ("error_rate", "latency", "sequential_error_rate")

#: The query presets a plan may name (their templates live in :mod:`refit.deploy.prometheus`).
QUERY_PRESET_NAMES: tuple[str, ...] = ("local", "kserve")

#: Placeholders a query template may use; every other ``{word}`` is an error. ``{quantile}``
#: is filled for latency queries only.
PLACEHOLDERS: tuple[str, ...] = ("model", "namespace", "primary", "canary", "window", "quantile")

#: The query templates each kind of check runs (keys of a preset, and of ``CheckSpec.queries``).
QUERY_KEYS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "error_rate": ("canary_requests", "canary_errors", "primary_requests", "primary_errors"),
        "latency": ("canary_requests", "canary_latency", "primary_latency"),
        "sequential_error_rate": (
            "canary_requests",
            "canary_errors",
            "primary_requests",
            "primary_errors",
        ),
    }
)

#: The fields each kind of check accepts beside ``name``, ``kind`` and ``queries``.
_KIND_FIELDS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "error_rate": ("max_value", "max_increase"),
        "latency": ("max_value", "max_increase", "quantile"),
        "sequential_error_rate": ("alpha", "beta", "min_effect", "min_requests"),
    }
)

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def template_placeholders(template: str) -> list[str]:
    """Return the ``{word}`` placeholders in a query template, in order.

    PromQL's own braces (label matchers such as ``{code=~"5.."}``) never match: a placeholder is
    a bare identifier between braces.
    """
    return _PLACEHOLDER.findall(template)


@dataclass(frozen=True)
class CheckSpec:
    """One check of the canary analysis, as data.

    Which fields apply depends on ``kind``:

    - ``error_rate``: the canary's error ratio (5xx responses / requests, in [0, 1]) over the
      analysis window must be ``<= max_value`` and ``<= primary's ratio + max_increase``
      (an absolute increase: 0.01 allows one percentage point more than the primary).
    - ``latency``: the canary's ``quantile`` of request duration in seconds over the window must
      be ``<= max_value`` and ``<= primary's * (1 + max_increase)`` (a relative increase:
      0.5 allows 50% slower than the primary).
    - ``sequential_error_rate``: a sequential test of the canary's error rate against the
      primary's since the rollout started (:mod:`refit.deploy.sequential`): ``alpha`` bounds the
      chance of calling an equally good canary worse over the whole rollout, ``beta`` the
      chance of calling a canary that is ``min_effect`` worse "not worse", ``min_effect`` is the
      relative increase of the error rate the test is tuned to find (1.0: twice the primary's),
      and no decision is taken before each side has served ``min_requests`` requests.

    ``error_rate`` and ``latency`` need at least one of ``max_value`` and ``max_increase``: a
    check with no threshold fails closed at load time.

    Attributes:
        name: Unique name within the plan (letters, digits, ``_.-``).
        kind: One of :data:`CHECK_KINDS`.
        max_value: Absolute ceiling on the canary's value (error ratio, or seconds).
        max_increase: Allowed increase over the primary (absolute for error ratio, relative for
            latency).
        quantile: Latency quantile in (0, 1).
        alpha: Sequential test's false "worse" rate, in (0, 1).
        beta: Sequential test's false "not worse" rate, in (0, 1).
        min_effect: Relative error-rate increase the sequential test targets (> 0).
        min_requests: Requests each side must have served before the sequential test decides.
        queries: Query templates that replace the preset's for this check, keyed as in
            :data:`QUERY_KEYS` for the kind.
    """

    name: str
    kind: str
    max_value: float | None = None
    max_increase: float | None = None
    quantile: float = 0.99
    alpha: float = 0.05
    beta: float = 0.2
    min_effect: float = 1.0
    min_requests: int = 100
    queries: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        """Validate every field.

        Raises:
            DeployError: Naming the check, the field and what is wrong with it.
        """
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise DeployError(
                f"check name must be a non-empty string of letters, digits, '_', '.', '-', "
                f"got {self.name!r}"
            )
        where = f"check {self.name!r}"
        if self.kind not in CHECK_KINDS:
            raise DeployError(
                f"{where}: unknown kind {self.kind!r}; known kinds: {', '.join(CHECK_KINDS)}"
            )
        set_ = object.__setattr__
        set_(self, "max_value", _CHECK.number(self.max_value, f"{where}: max_value", optional=True))
        set_(
            self,
            "max_increase",
            _CHECK.number(self.max_increase, f"{where}: max_increase", optional=True),
        )
        set_(self, "quantile", _CHECK.number(self.quantile, f"{where}: quantile"))
        set_(self, "alpha", _CHECK.number(self.alpha, f"{where}: alpha"))
        set_(self, "beta", _CHECK.number(self.beta, f"{where}: beta"))
        set_(self, "min_effect", _CHECK.number(self.min_effect, f"{where}: min_effect"))
        set_(self, "min_requests", _CHECK.integer(self.min_requests, f"{where}: min_requests", 1))
        kind_checks = {
            "error_rate": self._check_error_rate,
            "latency": self._check_latency,
            "sequential_error_rate": self._check_sequential,
        }
        kind_checks[self.kind](where)
        set_(self, "queries", MappingProxyType(self._valid_queries(where)))

    def _check_thresholds(self, where: str) -> None:
        """An error-rate or latency check needs a threshold, and a non-negative increase."""
        if self.max_value is None and self.max_increase is None:
            raise DeployError(
                f"{where}: kind {self.kind} needs max_value or max_increase (or both); "
                "a check without a threshold would pass anything"
            )
        if self.max_increase is not None and self.max_increase < 0:
            raise DeployError(f"{where}: max_increase must be >= 0, got {self.max_increase}")

    def _check_error_rate(self, where: str) -> None:
        self._check_thresholds(where)
        for fname in ("max_value", "max_increase"):
            value = getattr(self, fname)
            if value is not None and not 0 <= value <= 1:
                raise DeployError(
                    f"{where}: {fname} is an error ratio and must be in [0, 1], got {value}"
                )

    def _check_latency(self, where: str) -> None:
        self._check_thresholds(where)
        if self.max_value is not None and self.max_value <= 0:
            raise DeployError(
                f"{where}: max_value is a latency in seconds and must be > 0, got {self.max_value}"
            )
        if not 0 < self.quantile < 1:
            raise DeployError(f"{where}: quantile must be in (0, 1), got {self.quantile}")

    def _check_sequential(self, where: str) -> None:
        for fname in ("alpha", "beta"):
            value = getattr(self, fname)
            if not 0 < value < 1:
                raise DeployError(f"{where}: {fname} must be in (0, 1), got {value}")
        if self.alpha + self.beta >= 1:
            raise DeployError(f"{where}: alpha + beta must be < 1, got {self.alpha} + {self.beta}")
        if self.min_effect <= 0:
            raise DeployError(f"{where}: min_effect must be > 0, got {self.min_effect}")

    def _valid_queries(self, where: str) -> dict[str, str]:
        if not isinstance(self.queries, Mapping):
            raise DeployError(
                f"{where}: queries must be a mapping of query name to PromQL template, "
                f"got {type(self.queries).__name__}"
            )
        allowed = QUERY_KEYS[self.kind]
        out: dict[str, str] = {}
        for key, template in self.queries.items():
            if key not in allowed:
                raise DeployError(
                    f"{where}: unknown query {key!r} for kind {self.kind}; "
                    f"known queries: {', '.join(allowed)}"
                )
            if not isinstance(template, str) or not template.strip():
                raise DeployError(
                    f"{where}: queries.{key} must be a non-empty PromQL string, got {template!r}"
                )
            bad = [p for p in template_placeholders(template) if p not in PLACEHOLDERS]
            if bad:
                raise DeployError(
                    f"{where}: queries.{key} uses unknown placeholder(s) "
                    f"{', '.join('{' + p + '}' for p in bad)}; known: "
                    f"{', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
                )
            if "quantile" in template_placeholders(template) and not key.endswith("_latency"):
                raise DeployError(
                    f"{where}: queries.{key} uses {{quantile}}, which only latency queries have"
                )
            out[key] = template
        return out

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict with only the fields that apply to the kind."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        for fname in _KIND_FIELDS[self.kind]:
            value = getattr(self, fname)
            if value is not None:
                out[fname] = value
        if self.queries:
            out["queries"] = dict(self.queries)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "check") -> CheckSpec:
        """Build a check from a dict; fields missing take their defaults.

        Args:
            data: The check's fields; ``name`` and ``kind`` are required.
            where: How error messages name this check's place (e.g. ``"checks[1]"``).

        Raises:
            DeployError: Not a mapping, a missing ``name`` or ``kind``, an unknown kind, a field
                that does not apply to the kind, or a value of the wrong type or out of range.
        """
        all_fields = (
            "name",
            "kind",
            "queries",
            *sorted({f for v in _KIND_FIELDS.values() for f in v}),
        )
        data = _CHECK.check_keys(data, all_fields, where)
        for required in ("name", "kind"):
            if required not in data:
                raise DeployError(f"{where} is missing the required field {required!r}")
        kind = data["kind"]
        if kind not in CHECK_KINDS:
            raise DeployError(
                f"{where}.kind: unknown check kind {kind!r}; known kinds: {', '.join(CHECK_KINDS)}"
            )
        allowed = ("name", "kind", "queries", *_KIND_FIELDS[kind])
        stray = [str(k) for k in data if k not in allowed]
        if stray:
            raise DeployError(
                f"{where} ({kind}) has field(s) {', '.join(repr(k) for k in stray)} that do "
                f"not apply to kind {kind}; its fields: {', '.join(allowed)}"
            )
        try:
            return cls(**dict(data))
        except DeployError as exc:
            raise DeployError(f"{where}: {exc}") from None


#: The default checks: a windowed error-rate and p99-latency check against absolute ceilings
#: and the primary, and the sequential error-rate test.
DEFAULT_CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec("error-rate", "error_rate", max_value=0.05, max_increase=0.01),
    CheckSpec("latency-p99", "latency", quantile=0.99, max_value=0.5, max_increase=0.5),
    CheckSpec("error-rate-sequential", "sequential_error_rate"),
)

_PLAN_FIELDS = (
    "steps",
    "interval_seconds",
    "checks",
    "failures_allowed",
    "deadline_seconds",
    "analyses_per_step",
    "prometheus_url",
    "query_preset",
    "shadow",
    "ab_test",
)


def _valid_steps(steps: Any) -> tuple[int, ...]:
    """Return the canary percents as a tuple: strictly increasing, in 1..100, ending at 100."""
    if isinstance(steps, str | bytes) or not isinstance(steps, list | tuple):
        raise DeployError(f"steps must be a list of canary percents, got {steps!r}")
    if not steps:
        raise DeployError("steps must not be empty; the last step must be 100")
    steps = tuple(_CHECK.integer(s, f"steps[{i}]", 1) for i, s in enumerate(steps))
    for i, s in enumerate(steps):
        if s > 100:
            raise DeployError(f"steps[{i}] must be a percent in 1..100, got {s}")
        if i and s <= steps[i - 1]:
            raise DeployError(
                f"steps must be strictly increasing, got {list(steps)} "
                f"(steps[{i}]={s} after {steps[i - 1]})"
            )
    if steps[-1] != 100:
        raise DeployError(
            f"steps must end at 100 (the promotion), got {list(steps)} ending at {steps[-1]}"
        )
    return steps


def _valid_checks(checks: Any) -> tuple[CheckSpec, ...]:
    """Return the checks as a tuple: at least one, all CheckSpecs, unique names."""
    if isinstance(checks, str | bytes | Mapping) or not isinstance(checks, list | tuple):
        raise DeployError(f"checks must be a list of checks, got {checks!r}")
    if not checks:
        raise DeployError(
            "checks must name at least one check; a rollout without analysis would promote anything"
        )
    for i, c in enumerate(checks):
        if not isinstance(c, CheckSpec):
            raise DeployError(f"checks[{i}] must be a CheckSpec, got {type(c).__name__}")
    names = [c.name for c in checks]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DeployError(f"checks must have unique names; repeated: {', '.join(dupes)}")
    return tuple(checks)


@dataclass(frozen=True)
class RolloutPlan:
    """How a canary is taken to 100% of the traffic (semantics: docs/decisions/0016).

    The defaults are :data:`DEFAULT_PLAN`: 10% -> 50% -> 100%, one 60 s analysis per step,
    :data:`DEFAULT_CHECKS`, one failed analysis tolerated, a 30 minute deadline, the ``local``
    query preset.

    Attributes:
        steps: Canary percents, strictly increasing, each in 1..100, ending at 100.
        interval_seconds: Length of one analysis interval (> 0); also the checks' window.
        checks: The checks run at every analysis (at least one, unique names).
        failures_allowed: Failed analyses tolerated over the whole rollout before rollback.
        deadline_seconds: Overall time limit; at least every step's analyses must fit.
        analyses_per_step: Analyses each step below 100 is held for (>= 1).
        prometheus_url: Prometheus base URL (``http(s)://host:port``), or "" for the target's
            default.
        query_preset: ``"local"`` or ``"kserve"``.
        shadow: The shadow stage before the steps (None: none).
        ab_test: The A/B stage after the steps below 100 (None: none).
    """

    steps: tuple[int, ...] = (10, 50, 100)
    interval_seconds: float = 60.0
    checks: tuple[CheckSpec, ...] = DEFAULT_CHECKS
    failures_allowed: int = 1
    deadline_seconds: float = 1800.0
    analyses_per_step: int = 1
    prometheus_url: str = ""
    query_preset: str = "local"
    shadow: ShadowSpec | None = None
    ab_test: ABTestSpec | None = None

    def __post_init__(self) -> None:
        """Validate every field.

        Raises:
            DeployError: Naming the field and what is wrong with it.
        """
        set_ = object.__setattr__
        set_(self, "steps", _valid_steps(self.steps))
        interval = _CHECK.number(self.interval_seconds, "interval_seconds")
        if interval <= 0:
            raise DeployError(f"interval_seconds must be > 0, got {self.interval_seconds}")
        set_(self, "interval_seconds", interval)
        set_(self, "checks", _valid_checks(self.checks))
        set_(self, "failures_allowed", _CHECK.integer(self.failures_allowed, "failures_allowed", 0))
        set_(
            self,
            "analyses_per_step",
            _CHECK.integer(self.analyses_per_step, "analyses_per_step", 1),
        )
        self._check_metrics_source()
        self._check_stages()
        deadline = _CHECK.number(self.deadline_seconds, "deadline_seconds")
        if deadline <= 0:
            raise DeployError(f"deadline_seconds must be > 0, got {self.deadline_seconds}")
        if deadline < self.min_duration_seconds:
            raise DeployError(
                f"deadline_seconds ({deadline:g}) is shorter than the analyses need: "
                f"{0 if self.shadow is None else self.shadow.analyses} shadow analyses + "
                f"{len(self.steps) - 1} step(s) below 100 x {self.analyses_per_step} "
                f"analysis(es), x {interval:g} s = {self.min_duration_seconds:g} s"
            )
        set_(self, "deadline_seconds", deadline)

    def _check_metrics_source(self) -> None:
        """Check ``prometheus_url`` and ``query_preset``."""
        if not isinstance(self.prometheus_url, str):
            raise DeployError(f"prometheus_url must be a string, got {self.prometheus_url!r}")
        if self.prometheus_url and not re.match(r"^https?://[^/\s]+", self.prometheus_url):
            raise DeployError(
                f"prometheus_url must be an http:// or https:// URL, got {self.prometheus_url!r}"
            )
        if self.query_preset not in QUERY_PRESET_NAMES:
            raise DeployError(
                f"query_preset must be one of {', '.join(QUERY_PRESET_NAMES)}, "
                f"got {self.query_preset!r}"
            )

    def _check_stages(self) -> None:
        """Check the optional ``shadow`` and ``ab_test`` stages against the rest of the plan."""
        if self.shadow is not None:
            if not isinstance(self.shadow, ShadowSpec):
                raise DeployError(f"shadow must be a ShadowSpec, got {type(self.shadow).__name__}")
            if self.query_preset != "local":
                raise DeployError(
                    "shadow runs on refit's local model server (query_preset 'local'), which "
                    "compares the pair's answers; on a cluster, mirror requests with the Istio "
                    "route of manifests/snippets/shadow-mirror instead"
                )
        if self.ab_test is not None and not isinstance(self.ab_test, ABTestSpec):
            raise DeployError(f"ab_test must be an ABTestSpec, got {type(self.ab_test).__name__}")
        if self.ab_test is not None and len(self.steps) < 2:
            raise DeployError(
                "ab_test needs at least one canary step below 100 before it (steps "
                f"{list(self.steps)} promote at once)"
            )

    @property
    def min_duration_seconds(self) -> float:
        """The time the analyses alone take, in seconds.

        Shadow analyses plus steps below 100 x analyses per step, times the interval (an A/B
        stage ends by its units or the deadline).
        """
        shadow = 0 if self.shadow is None else self.shadow.analyses
        analyses = shadow + (len(self.steps) - 1) * self.analyses_per_step
        return analyses * float(self.interval_seconds)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict that `from_dict` reads back to an equal plan."""
        return {
            "steps": list(self.steps),
            "interval_seconds": self.interval_seconds,
            "checks": [c.to_dict() for c in self.checks],
            "failures_allowed": self.failures_allowed,
            "deadline_seconds": self.deadline_seconds,
            "analyses_per_step": self.analyses_per_step,
            "prometheus_url": self.prometheus_url,
            "query_preset": self.query_preset,
            **({} if self.shadow is None else {"shadow": self.shadow.to_dict()}),
            **({} if self.ab_test is None else {"ab_test": self.ab_test.to_dict()}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RolloutPlan:
        """Build a plan from a dict; fields missing take the defaults of :data:`DEFAULT_PLAN`.

        Raises:
            DeployError: Unknown keys, or a value of the wrong type or out of range (the message
                names the field).
        """
        data = dict(_CHECK.check_keys(data, _PLAN_FIELDS, "rollout plan"))
        if "checks" in data:
            checks = data["checks"]
            if isinstance(checks, str | bytes | Mapping) or not isinstance(checks, list | tuple):
                raise DeployError(f"checks must be a list of checks, got {checks!r}")
            data["checks"] = tuple(
                CheckSpec.from_dict(c, where=f"checks[{i}]") for i, c in enumerate(checks)
            )
        if data.get("shadow") is not None:
            data["shadow"] = ShadowSpec.from_dict(data["shadow"])
        if data.get("ab_test") is not None:
            data["ab_test"] = ABTestSpec.from_dict(data["ab_test"])
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> RolloutPlan:
        """Build a plan from a JSON document.

        Raises:
            DeployError: Invalid JSON, or an invalid plan.
        """
        try:
            data = json.loads(text)
        except (TypeError, json.JSONDecodeError) as exc:
            raise DeployError(f"rollout plan is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> RolloutPlan:
        """Read a plan from a ``.yaml``/``.yml`` or ``.json`` file.

        Raises:
            DeployError: The file is missing or unreadable, has another extension, does not
                parse, or holds an invalid plan (the message names the file).
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".yaml", ".yml", ".json"):
            raise DeployError(
                f"rollout plan {path}: unknown file type {suffix or '(none)'!r}; "
                "use .yaml, .yml or .json"
            )
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DeployError(f"rollout plan {path} cannot be read: {exc}") from None
        try:
            if suffix == ".json":
                data = json.loads(text)
            else:
                data = yaml.safe_load(text)
        except RecursionError:
            raise DeployError(f"rollout plan {path} does not parse: nested too deeply") from None
        except (ValueError, yaml.YAMLError) as exc:  # ValueError: JSONDecodeError, huge ints
            raise DeployError(f"rollout plan {path} does not parse: {exc}") from None
        try:
            return cls.from_dict(data)
        except DeployError as exc:
            raise DeployError(f"rollout plan {path}: {exc}") from None


#: The default plan: 10% -> 50% -> 100%, one 60 s analysis per step with
#: :data:`DEFAULT_CHECKS`, one failed analysis tolerated, 30 minutes overall, ``local`` preset.
DEFAULT_PLAN = RolloutPlan()
