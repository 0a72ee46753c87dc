"""Canary analysis: the checks of a rollout plan, evaluated against Prometheus.

One analysis runs every check of the plan once (:func:`run_analysis`) and returns a
:class:`CheckResult` per check; the rollout controller counts failed analyses against the plan's
``failures_allowed`` and rolls back at once on a *decisive* failure.

- :class:`~refit.deploy.prometheus.PrometheusClient` reads one number per PromQL expression
  from the HTTP API (:mod:`refit.deploy.prometheus`): the sum of the returned series, or None
  when the answer is empty or NaN ("no data").
- :data:`~refit.deploy.prometheus.QUERY_PRESETS` hold the PromQL templates for refit's local
  model server (``"local"``) and for KServe serverless deployments (``"kserve"``). A template's
  placeholders (``{model}``, ``{namespace}``, ``{primary}``, ``{canary}``, ``{window}``,
  ``{quantile}``) are filled from the :class:`CheckContext`; label values are escaped for
  PromQL strings. Requests and errors are read as ``increase()`` counts and divided here, not
  in PromQL: an error counter with no 5xx series at all gives an empty answer, which here means
  "no errors" while zero *requests* means "no data".
- Checks (built from the plan's :class:`~refit.deploy.plan.CheckSpec` by :func:`build_check`):
  :class:`ErrorRateCheck`, :class:`LatencyCheck` and :class:`SequentialErrorRateCheck`.

"No data" (the canary served nothing in the window, or a query answered nothing) fails a check,
as in Flagger: an unobserved canary is not a healthy one. Metrics that cannot be read at all
(Prometheus unreachable, an HTTP error, a malformed answer) fail every check of the analysis
*decisively*: a rollout whose metrics are gone is rolled back, never promoted.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from refit.deploy.plan import (
    PLACEHOLDERS,
    QUERY_KEYS,
    CheckSpec,
    RolloutPlan,
    template_placeholders,
)
from refit.deploy.prometheus import QUERY_PRESETS, MetricsClient, promql_string
from refit.deploy.sequential import error_rate_sprt
from refit.errors import DeployError

# --------------------------------------------------------------------------- results and context


@dataclass(frozen=True)
class CheckContext:
    """What one analysis is about.

    Attributes:
        model: The model's name (the ``model`` label of the local metrics).
        namespace: The Kubernetes namespace ("" for the local target).
        primary_revision: The primary's revision label ("" when there is no primary).
        canary_revision: The canary's revision label.
        window_seconds: The analysis window (the plan's interval), in whole seconds (>= 1).
        step_percent: The canary's current traffic percent (0-100).
        elapsed_seconds: Seconds since the rollout started (the sequential test's window).
    """

    model: str
    namespace: str
    primary_revision: str
    canary_revision: str
    window_seconds: int
    step_percent: int
    elapsed_seconds: float

    def __post_init__(self) -> None:
        """Validate the fields.

        Raises:
            DeployError: Naming the field and what is wrong with it.
        """
        for name in ("model", "namespace", "primary_revision", "canary_revision"):
            if not isinstance(getattr(self, name), str):
                raise DeployError(f"{name} must be a string, got {getattr(self, name)!r}")
        if not self.canary_revision:
            raise DeployError("canary_revision must name the canary's revision, got ''")
        window = self.window_seconds
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise DeployError(f"window_seconds must be a whole number >= 1, got {window!r}")
        step = self.step_percent
        if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= 100:
            raise DeployError(f"step_percent must be an integer in 0..100, got {step!r}")
        elapsed = self.elapsed_seconds
        if (
            isinstance(elapsed, bool)
            or not isinstance(elapsed, int | float)
            or not math.isfinite(elapsed)
            or elapsed < 0
        ):
            raise DeployError(f"elapsed_seconds must be a finite number >= 0, got {elapsed!r}")


def render_query(
    template: str, ctx: CheckContext, *, window_seconds: int, quantile: float | None = None
) -> str:
    """Fill a query template's placeholders from ``ctx``.

    Args:
        template: PromQL with ``{model}``, ``{namespace}``, ``{primary}``, ``{canary}``,
            ``{window}``, ``{quantile}`` placeholders.
        ctx: The analysis context.
        window_seconds: The range for ``{window}`` (rendered as ``"<n>s"``).
        quantile: The value for ``{quantile}`` (latency queries).

    Raises:
        DeployError: An unknown placeholder, or ``{quantile}`` without a quantile.
    """
    values = {
        "model": promql_string(ctx.model),
        "namespace": promql_string(ctx.namespace),
        "primary": promql_string(ctx.primary_revision),
        "canary": promql_string(ctx.canary_revision),
        "window": f"{int(window_seconds)}s",
    }
    if quantile is not None:
        values["quantile"] = f"{quantile:g}"
    for name in template_placeholders(template):
        if name not in values:
            known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            raise DeployError(
                f"query template {template!r}: placeholder {{{name}}} has no value here "
                f"(known: {known}; {{quantile}} only in latency queries)"
            )
    return re.sub(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: values[m.group(1)], template)


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check in one analysis.

    ``value`` and ``primary_value`` are the canary's and the primary's error ratios (error
    checks) or latency quantiles in seconds (latency); ``threshold`` is the effective limit on
    ``value`` (the stricter of the absolute ceiling and the primary-relative one). The sequential
    check has no fixed limit on the ratio (``threshold`` None); its statistic is in ``extra``.

    Attributes:
        name: The check's name in the plan.
        kind: The check's kind.
        passed: Whether the canary passed.
        value: The canary's value, or None without data.
        primary_value: The primary's value, or None when not measured.
        threshold: The limit ``value`` was held to, or None.
        detail: What was found, in words (says "no data" when there was none).
        decisive: A failure that rolls back now, whatever ``failures_allowed`` says.
        no_data: The check failed because there was no data.
        extra: Further JSON-ready facts (queries run, sequential statistic and counts).
    """

    name: str
    kind: str
    passed: bool
    value: float | None
    primary_value: float | None
    threshold: float | None
    detail: str
    decisive: bool = False
    no_data: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (strict JSON: infinities become ``"+Inf"``/``"-Inf"``)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "passed": self.passed,
            "value": _json_number(self.value),
            "primary_value": _json_number(self.primary_value),
            "threshold": _json_number(self.threshold),
            "detail": self.detail,
            "decisive": self.decisive,
            "no_data": self.no_data,
            "extra": _json_ready(dict(self.extra)),
        }


def _json_number(value: float | None) -> float | str | None:
    if value is None or math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "+Inf" if value > 0 else "-Inf"


def _json_ready(value: Any) -> Any:
    if isinstance(value, float):
        return _json_number(value)
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    return value


# --------------------------------------------------------------------------- checks


class Check(ABC):
    """A check built from a :class:`~refit.deploy.plan.CheckSpec`.

    Args:
        spec: The check's specification; its kind must be this class's.
        preset: The query preset whose templates the check uses (``spec.queries`` override
            them one by one).

    Raises:
        DeployError: A spec of another kind, or an unknown preset.
    """

    kind: ClassVar[str]

    def __init__(self, spec: CheckSpec, preset: str = "local") -> None:
        if not isinstance(spec, CheckSpec) or spec.kind != self.kind:
            raise DeployError(
                f"{type(self).__name__} needs a CheckSpec of kind {self.kind!r}, got {spec!r}"
            )
        if preset not in QUERY_PRESETS:
            raise DeployError(
                f"unknown query preset {preset!r}; known presets: {', '.join(QUERY_PRESETS)}"
            )
        self.spec = spec
        self.preset = preset
        base = QUERY_PRESETS[preset]
        self.queries: Mapping[str, str] = MappingProxyType(
            {key: spec.queries.get(key, base[key]) for key in QUERY_KEYS[self.kind]}
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec.name!r}, preset={self.preset!r})"

    @abstractmethod
    def evaluate(self, client: MetricsClient, ctx: CheckContext) -> CheckResult:
        """Query the metrics and judge the canary.

        Raises:
            DeployError: The metrics cannot be read (`run_analysis` turns this into a failed,
                decisive result).
        """

    def _query(
        self,
        client: MetricsClient,
        key: str,
        ctx: CheckContext,
        ran: dict[str, str],
        *,
        window_seconds: int,
        quantile: float | None = None,
    ) -> float | None:
        promql = render_query(
            self.queries[key], ctx, window_seconds=window_seconds, quantile=quantile
        )
        ran[key] = promql
        return client.query(promql)

    def _result(self, **kw: Any) -> CheckResult:
        return CheckResult(name=self.spec.name, kind=self.kind, **kw)

    def _no_data(self, what: str, ran: dict[str, str], **kw: Any) -> CheckResult:
        return self._result(
            passed=False,
            value=kw.pop("value", None),
            primary_value=kw.pop("primary_value", None),
            threshold=kw.pop("threshold", None),
            detail=f"no data: {what}",
            no_data=True,
            extra={"queries": dict(ran), **kw},
        )


def _ratio(errors: float | None, requests: float) -> float:
    """Errors over requests, clamped to [0, 1] (``increase()`` extrapolates each series)."""
    return min(max((errors or 0.0) / requests, 0.0), 1.0)


class _WindowedCheck(Check):
    """Shared logic of the error-rate and latency checks: canary vs ceiling and vs primary."""

    def _unit(self) -> str:
        """The checked quantity in words."""
        return "error ratio"

    def _canary_requests(
        self, client: MetricsClient, ctx: CheckContext, ran: dict[str, str]
    ) -> float | None:
        n = self._query(client, "canary_requests", ctx, ran, window_seconds=ctx.window_seconds)
        return n if n is not None and n > 0 else None

    @abstractmethod
    def _canary_value(
        self, client: MetricsClient, ctx: CheckContext, ran: dict[str, str], requests: float
    ) -> float | None: ...

    @abstractmethod
    def _primary_value(
        self, client: MetricsClient, ctx: CheckContext, ran: dict[str, str]
    ) -> float | None: ...

    @abstractmethod
    def _relative_limit(self, primary: float) -> tuple[float, str]: ...

    @abstractmethod
    def _fmt(self, value: float) -> str: ...

    def evaluate(self, client: MetricsClient, ctx: CheckContext) -> CheckResult:
        """Judge the canary over the last ``ctx.window_seconds`` (see the class docstring)."""
        ran: dict[str, str] = {}
        window = f"{ctx.window_seconds}s"
        requests = self._canary_requests(client, ctx, ran)
        if requests is None:
            return self._no_data(
                f"canary {ctx.canary_revision!r} served no requests in the last {window}", ran
            )
        value = self._canary_value(client, ctx, ran, requests)
        if value is None:
            return self._no_data(
                f"no {self._unit()} for canary {ctx.canary_revision!r} in the last {window}", ran
            )
        limits: list[tuple[float, str]] = []
        if self.spec.max_value is not None:
            limits.append((self.spec.max_value, f"ceiling {self._fmt(self.spec.max_value)}"))
        primary: float | None = None
        notes: list[str] = []
        if self.spec.max_increase is not None:
            if not ctx.primary_revision:
                notes.append("no primary to compare with")
            else:
                primary = self._primary_value(client, ctx, ran)
                if primary is None:
                    notes.append(
                        f"no data for primary {ctx.primary_revision!r} in the last {window}"
                    )
                else:
                    limits.append(self._relative_limit(primary))
        if not limits:
            return self._no_data(
                "; ".join(notes) + " and the check has no absolute ceiling",
                ran,
                value=value,
            )
        threshold, why = min(limits, key=lambda pair: pair[0])
        passed = value <= threshold
        verdict = "within" if passed else "above"
        detail = (
            f"canary {ctx.canary_revision!r} {self._unit()} {self._fmt(value)} over the last "
            f"{window} is {verdict} the limit {self._fmt(threshold)} ({why})"
        )
        if primary is not None:
            detail += f"; primary {ctx.primary_revision!r} {self._fmt(primary)}"
        if notes:
            detail += "; " + "; ".join(notes) + ", relative limit not applied"
        return self._result(
            passed=passed,
            value=value,
            primary_value=primary,
            threshold=threshold,
            detail=detail,
            extra={"queries": dict(ran), "canary_requests": requests},
        )


class ErrorRateCheck(_WindowedCheck):
    """The canary's error ratio over the window vs a ceiling and vs the primary's + a margin.

    The ratio is ``increase(errors) / increase(requests)`` over ``ctx.window_seconds``; no error
    series counts as zero errors, no canary requests as no data. The limit is the stricter of
    ``max_value`` and ``primary ratio + max_increase``; with no primary data only ``max_value``
    applies (and with no ``max_value`` either the check fails for lack of data).
    """

    kind = "error_rate"

    def _canary_value(
        self, client: MetricsClient, ctx: CheckContext, ran: dict[str, str], requests: float
    ) -> float | None:
        errors = self._query(client, "canary_errors", ctx, ran, window_seconds=ctx.window_seconds)
        return _ratio(errors, requests)

    def _primary_value(
        self, client: MetricsClient, ctx: CheckContext, ran: dict[str, str]
    ) -> float | None:
        w = ctx.window_seconds
        requests = self._query(client, "primary_requests", ctx, ran, window_seconds=w)
        if requests is None or requests <= 0:
            return None
        return _ratio(self._query(client, "primary_errors", ctx, ran, window_seconds=w), requests)

    def _relative_limit(self, primary: float) -> tuple[float, str]:
        margin = float(self.spec.max_increase or 0.0)
        return primary + margin, f"primary {primary:.4f} + {margin:g}"

    def _fmt(self, value: float) -> str:
        return f"{value:.4f}"


class LatencyCheck(_WindowedCheck):
    """The canary's latency quantile over the window vs a ceiling and vs the primary's.

    The quantile comes from ``histogram_quantile`` over the window's bucket rates (so it is
    interpolated within a bucket, and +Inf when it falls in the last bucket). The limit is the
    stricter of ``max_value`` and ``primary quantile * (1 + max_increase)``. No canary requests
    in the window, or no quantile, is no data.
    """

    kind = "latency"

    def _unit(self) -> str:
        """The checked quantity in words, e.g. "p99 latency"."""
        return f"p{self.spec.quantile * 100:g} latency"

    def _canary_value(
        self, client: MetricsClient, ctx: CheckContext, ran: dict[str, str], requests: float
    ) -> float | None:
        return self._query(
            client,
            "canary_latency",
            ctx,
            ran,
            window_seconds=ctx.window_seconds,
            quantile=self.spec.quantile,
        )

    def _primary_value(
        self, client: MetricsClient, ctx: CheckContext, ran: dict[str, str]
    ) -> float | None:
        return self._query(
            client,
            "primary_latency",
            ctx,
            ran,
            window_seconds=ctx.window_seconds,
            quantile=self.spec.quantile,
        )

    def _relative_limit(self, primary: float) -> tuple[float, str]:
        margin = float(self.spec.max_increase or 0.0)
        return primary * (1 + margin), f"primary {self._fmt(primary)} x {1 + margin:g}"

    def _fmt(self, value: float) -> str:
        return f"{value:.4g} s"


class SequentialErrorRateCheck(Check):
    """The sequential test of :mod:`refit.deploy.sequential` on counts since the rollout began.

    Counts are read as ``increase(...[{elapsed}s])`` with ``{window}`` set to the whole time since
    the rollout started (``ctx.elapsed_seconds``, rounded up), rather than as differences of raw
    counter values against a baseline taken at the start: the check stays stateless (nothing to
    keep between analyses, nothing lost when the controller restarts) and ``increase()`` handles
    counter resets (a KServe pod restarting), which raw differences do not. The price is that
    Prometheus extrapolates to the range's edges (counts are rounded here, errors capped at
    requests) and misses what a series counted before its first scrape, at most one scrape
    interval of traffic: small against the ``min_requests`` guard.

    Passes on ``"continue"`` and ``"not_worse"``; ``"worse"`` is a decisive failure (roll back
    now). No canary requests since the start is a failed check (no data), not a decisive one.
    ``value``/``primary_value`` are the cumulative error ratios; ``extra`` holds the decision,
    the log likelihood ratio, its boundaries and the counts.
    """

    kind = "sequential_error_rate"

    def evaluate(self, client: MetricsClient, ctx: CheckContext) -> CheckResult:
        """Run the sequential test on the counts since the rollout started."""
        ran: dict[str, str] = {}
        span = max(1, math.ceil(ctx.elapsed_seconds))

        def count(key: str) -> float:
            value = self._query(client, key, ctx, ran, window_seconds=span)
            return 0.0 if value is None or value < 0 else value

        n_c = round(count("canary_requests"))
        if n_c <= 0:
            return self._no_data(
                f"canary {ctx.canary_revision!r} served no requests in the {span}s since the "
                "rollout started",
                ran,
            )
        e_c = min(round(count("canary_errors")), n_c)
        n_p = e_p = 0
        if ctx.primary_revision:
            n_p = round(count("primary_requests"))
            e_p = min(round(count("primary_errors")), n_p) if n_p > 0 else 0
        spec = self.spec
        outcome = error_rate_sprt(
            n_c,
            e_c,
            n_p,
            e_p,
            alpha=spec.alpha,
            beta=spec.beta,
            min_effect=spec.min_effect,
            min_requests=spec.min_requests,
        )
        worse = outcome.decision == "worse"
        return self._result(
            passed=not worse,
            value=e_c / n_c,
            primary_value=e_p / n_p if n_p else None,
            threshold=None,
            detail=f"sequential test over {span}s since the rollout started: {outcome.reason}",
            decisive=worse,
            extra={"queries": dict(ran), **outcome.to_dict()},
        )


#: Check classes by kind.
CHECK_CLASSES: Mapping[str, type[Check]] = MappingProxyType(
    {
        ErrorRateCheck.kind: ErrorRateCheck,
        LatencyCheck.kind: LatencyCheck,
        SequentialErrorRateCheck.kind: SequentialErrorRateCheck,
    }
)


def build_check(spec: CheckSpec, preset: str = "local") -> Check:
    """Build the check a spec describes, with the preset's query templates.

    Raises:
        DeployError: An unknown preset.
    """
    return CHECK_CLASSES[spec.kind](spec, preset)


def build_checks(plan: RolloutPlan) -> list[Check]:
    """Build every check of a plan, with the plan's query preset."""
    return [build_check(spec, plan.query_preset) for spec in plan.checks]


def run_analysis(
    client: MetricsClient, checks: Sequence[Check], ctx: CheckContext
) -> list[CheckResult]:
    """Run one analysis: every check once, in order.

    When the metrics cannot be read (the client raises DeployError: Prometheus unreachable, an
    HTTP error, a malformed answer) the failing check and every check after it are failed,
    *decisive* results with the error in ``detail``; the later checks are not queried (a dead
    Prometheus would cost a timeout per query). A rollout whose metrics cannot be read is rolled
    back, never promoted.

    Args:
        client: The metrics client.
        checks: The checks (see `build_checks`).
        ctx: What this analysis is about.

    Returns:
        One result per check, in the order of ``checks``.
    """
    results: list[CheckResult] = []
    failure: str | None = None
    for check in checks:
        if failure is None:
            try:
                results.append(check.evaluate(client, ctx))
                continue
            except DeployError as exc:
                failure = str(exc)
                detail = f"metrics unavailable: {failure}"
        else:
            detail = f"metrics unavailable (not queried after an earlier failure): {failure}"
        results.append(
            CheckResult(
                name=check.spec.name,
                kind=check.kind,
                passed=False,
                value=None,
                primary_value=None,
                threshold=None,
                detail=detail,
                decisive=True,
                extra={"error": failure},
            )
        )
    return results
