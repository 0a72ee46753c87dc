"""The shadow stage's analysis: the challenger's copies against the champion's answers.

The local model server counts, per shadow revision, the rows both versions answered, the rows
whose labels disagree, the summed score difference, the copies the shadow failed, and each
version's predict time (`refit.serving.shadow`). One analysis reads them from Prometheus over
the time since the shadow stage began (``increase(...[{elapsed}s])``, as the sequential canary
check does) and judges four things against the plan's `ShadowSpec`:

- ``shadow-disagreement``: disagreeing rows / rows;
- ``shadow-score-shift``: mean score difference per row (the total variation between the class
  probabilities; a regressor's absolute difference);
- ``shadow-errors``: failed copies / copies;
- ``shadow-latency``: challenger / champion predict time at the spec's quantile.

Verdicts: before ``min_pairs`` rows nothing is judged (a failed, non-decisive "no data" result
that the controller waits on until the last analysis). From then on a rate whose Wilson lower
bound exceeds its ceiling, or a mean score shift over its ceiling, is a *decisive* failure: the
stage stops early. The latency ratio (a histogram estimate, noisy over a short window) is judged
at the last analysis only, where any value over its ceiling fails the stage.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from refit.deploy.analysis import CheckResult
from refit.deploy.prometheus import MetricsClient, promql_string
from refit.deploy.stages import ShadowSpec
from refit.evaluation.stats import wilson_interval

__all__ = ["ShadowAnalyzer", "shadow_analysis", "shadow_queries"]

#: Analyse the shadow: (challenger revision, champion revision, seconds since the stage began,
#: last analysis?) -> results.
ShadowAnalyzer = Callable[[str, str, float, bool], list[CheckResult]]


def shadow_queries(model: str, shadow: str, champion: str, span: int, quantile: float) -> dict:
    """The PromQL the shadow analysis runs (local model server metrics)."""
    m, s, c = (promql_string(x) for x in (model, shadow, champion))

    def count(metric: str) -> str:
        return f'sum(increase({metric}{{model="{m}",revision="{s}"}}[{span}s]))'

    def latency(rev: str) -> str:
        return (
            f"histogram_quantile({quantile:g}, sum by (le) (increase("
            f'refit_model_predict_seconds_bucket{{model="{m}",revision="{rev}"}}[{span}s])))'
        )

    return {
        "pairs": count("refit_model_shadow_pairs_total"),
        "disagreements": count("refit_model_shadow_disagreements_total"),
        "score_diff": count("refit_model_shadow_score_diff_total"),
        "errors": count("refit_model_shadow_errors_total"),
        "challenger_latency": latency(s),
        "champion_latency": latency(c),
    }


def _result(name: str, passed: bool, value, threshold, detail: str, **kw) -> CheckResult:
    return CheckResult(
        name=name,
        kind="shadow",
        passed=passed,
        value=value,
        primary_value=kw.pop("primary_value", None),
        threshold=threshold,
        detail=detail,
        decisive=kw.pop("decisive", False),
        no_data=kw.pop("no_data", False),
        extra=kw.pop("extra", {}),
    )


def shadow_analysis(
    client: MetricsClient,
    spec: ShadowSpec,
    *,
    model: str,
    shadow_revision: str,
    champion_revision: str,
    elapsed_seconds: float,
    last: bool,
) -> list[CheckResult]:
    """Judge the shadow on everything since the stage began (see the module docstring).

    Raises:
        DeployError: The metrics cannot be read (the controller fails the stage decisively).
    """
    span = max(1, math.ceil(elapsed_seconds))
    queries = shadow_queries(model, shadow_revision, champion_revision, span, spec.latency_quantile)
    got = {key: client.query(q) for key, q in queries.items()}
    pairs = round(max(got["pairs"] or 0.0, 0.0))
    errors = round(max(got["errors"] or 0.0, 0.0))
    extra = {"queries": queries, "pairs": pairs, "errors": errors, "span_seconds": span}
    if pairs + errors < spec.min_pairs:
        detail = (
            f"no data: {pairs} compared rows and {errors} failed copies in {span}s, fewer than "
            f"min_pairs={spec.min_pairs}"
        )
        return [
            _result("shadow-pairs", False, float(pairs), None, detail, no_data=True, extra=extra)
        ]
    out: list[CheckResult] = []

    def rate(name: str, hits: int, n: int, ceiling: float, what: str) -> None:
        value = hits / n if n else 0.0
        low, high = wilson_interval(hits, n, spec.confidence) if n else (0.0, 0.0)
        over = value > ceiling
        sure = low > ceiling
        detail = (
            f"{what} {value:.4f} ({hits}/{n}), {spec.confidence:.0%} interval "
            f"[{low:.4f}, {high:.4f}], ceiling {ceiling:g}"
            + ("; clearly over: stop early" if sure else "")
        )
        out.append(
            _result(
                name,
                not (sure or (last and over)),
                value,
                ceiling,
                detail,
                decisive=sure or (last and over),
                extra={**extra, "interval": [low, high]},
            )
        )

    disagreements = min(round(max(got["disagreements"] or 0.0, 0.0)), pairs)
    rate("shadow-disagreement", disagreements, pairs, spec.max_disagreement, "disagreement rate")
    rate("shadow-errors", errors, pairs + errors, spec.max_error_rate, "challenger error rate")
    shift = (got["score_diff"] or 0.0) / pairs if pairs else 0.0
    over = shift > spec.max_score_shift
    out.append(
        _result(
            "shadow-score-shift",
            not over,
            shift,
            spec.max_score_shift,
            f"mean score difference per row {shift:.4f}, ceiling {spec.max_score_shift:g}",
            decisive=over,
            extra=extra,
        )
    )
    ch, cp = got["challenger_latency"], got["champion_latency"]
    if ch is None or cp is None or not cp > 0:
        out.append(
            _result(
                "shadow-latency",
                not last,
                None,
                spec.max_latency_ratio,
                f"no data: predict latency challenger {ch}, champion {cp}",
                no_data=True,
                decisive=last,
                extra=extra,
            )
        )
    else:
        ratio = ch / cp
        over = ratio > spec.max_latency_ratio
        out.append(
            _result(
                "shadow-latency",
                not (last and over),
                ratio,
                spec.max_latency_ratio,
                f"p{spec.latency_quantile * 100:g} predict time challenger {ch * 1000:.2f} ms / "
                f"champion {cp * 1000:.2f} ms = {ratio:.2f}, ceiling {spec.max_latency_ratio:g}",
                primary_value=cp,
                decisive=last and over,
                extra=extra,
            )
        )
    return out
