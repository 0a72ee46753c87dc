"""Rollout plan validation, the canary checks (against a fake metrics client) and the
sequential error-rate test (against seeded simulations)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import textwrap

import numpy as np
import pytest
import yaml
from scipy import stats

from refit.deploy import plan as plan_module
from refit.deploy.analysis import (
    CheckContext,
    CheckResult,
    ErrorRateCheck,
    LatencyCheck,
    SequentialErrorRateCheck,
    build_check,
    build_checks,
    render_query,
    run_analysis,
)
from refit.deploy.plan import (
    DEFAULT_CHECKS,
    DEFAULT_PLAN,
    PLACEHOLDERS,
    QUERY_KEYS,
    QUERY_PRESET_NAMES,
    CheckSpec,
    RolloutPlan,
    template_placeholders,
)
from refit.deploy.prometheus import QUERY_PRESETS, PrometheusClient
from refit.deploy.sequential import error_rate_sprt
from refit.errors import DeployError

# --------------------------------------------------------------------------- plan


def test_default_plan_is_the_documented_one():
    assert DEFAULT_PLAN.steps == (10, 50, 100)
    assert DEFAULT_PLAN.interval_seconds == 60
    assert DEFAULT_PLAN.analyses_per_step == 1
    assert DEFAULT_PLAN.query_preset == "local"
    assert DEFAULT_PLAN.checks == DEFAULT_CHECKS
    assert {c.kind for c in DEFAULT_PLAN.checks} == {
        "error_rate",
        "latency",
        "sequential_error_rate",
    }
    assert DEFAULT_PLAN.min_duration_seconds == 120
    assert DEFAULT_PLAN == RolloutPlan()


def test_plan_round_trips_through_dict_json_yaml_and_files(tmp_path):
    plan = RolloutPlan(
        steps=(5, 25, 100),
        interval_seconds=30,
        checks=(
            CheckSpec("errors", "error_rate", max_value=0.02),
            CheckSpec(
                "p95",
                "latency",
                quantile=0.95,
                max_increase=0.2,
                queries={"canary_latency": 'my_latency{rev="{canary}", q="{quantile}"}'},
            ),
            CheckSpec("seq", "sequential_error_rate", alpha=0.01, min_requests=500),
        ),
        failures_allowed=0,
        deadline_seconds=600,
        analyses_per_step=3,
        prometheus_url="http://prometheus.monitoring:9090",
        query_preset="kserve",
    )
    data = plan.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert RolloutPlan.from_dict(data) == plan
    assert RolloutPlan.from_json(json.dumps(data)) == plan
    (tmp_path / "plan.json").write_text(json.dumps(data))
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(data))
    assert RolloutPlan.load(tmp_path / "plan.json") == plan
    assert RolloutPlan.load(str(tmp_path / "plan.yaml")) == plan
    # Only the fields that apply to a kind are written.
    assert set(data["checks"][0]) == {"name", "kind", "max_value"}
    assert "quantile" in data["checks"][1] and "alpha" not in data["checks"][1]


def test_documented_yaml_example_loads(tmp_path):
    doc = plan_module.__doc__
    block = doc.split("Example (YAML)::", 1)[1]
    lines = []
    for line in block.splitlines()[1:]:
        if line and not line.startswith("    "):
            break
        lines.append(line)
    path = tmp_path / "plan.yml"
    path.write_text(textwrap.dedent("\n".join(lines)))
    plan = RolloutPlan.load(path)
    assert plan.query_preset == "kserve" and plan.steps == (10, 50, 100)
    assert [c.kind for c in plan.checks] == ["error_rate", "latency", "sequential_error_rate"]


def test_missing_fields_take_defaults_and_single_step_promotes_at_once():
    assert RolloutPlan.from_dict({}) == DEFAULT_PLAN
    plan = RolloutPlan.from_dict({"steps": [100]})
    assert plan.steps == (100,) and plan.min_duration_seconds == 0


def test_plan_is_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_PLAN.steps = (100,)  # type: ignore[misc]
    with pytest.raises(TypeError):
        DEFAULT_PLAN.checks[1].queries["canary_latency"] = "x"  # type: ignore[index]


def _check(**fields):
    return {"name": "c", "kind": "error_rate", "max_value": 0.05, **fields}


BAD_PLANS = [
    ({"steps": [10, 50]}, r"steps must end at 100.*\[10, 50\]"),
    ({"steps": [10, 10, 100]}, r"steps must be strictly increasing.*steps\[1\]=10"),
    ({"steps": [50, 10, 100]}, r"steps must be strictly increasing"),
    ({"steps": [0, 100]}, r"steps\[0\] must be >= 1"),
    ({"steps": [10, 150]}, r"steps\[1\] must be a percent in 1\.\.100"),
    ({"steps": []}, r"steps must not be empty"),
    ({"steps": "10,100"}, r"steps must be a list"),
    ({"steps": [10.5, 100]}, r"steps\[0\] must be an integer"),
    ({"steps": [True, 100]}, r"steps\[0\] must be an integer"),
    ({"interval_seconds": 0}, r"interval_seconds must be > 0"),
    ({"interval_seconds": "60"}, r"interval_seconds must be a finite number"),
    ({"failures_allowed": -1}, r"failures_allowed must be >= 0"),
    ({"failures_allowed": True}, r"failures_allowed must be an integer"),
    ({"analyses_per_step": 0}, r"analyses_per_step must be >= 1"),
    ({"deadline_seconds": 0}, r"deadline_seconds must be > 0"),
    ({"deadline_seconds": 100}, r"deadline_seconds \(100\) is shorter .* = 120 s"),
    ({"query_preset": "istio"}, r"query_preset must be one of local, kserve, got 'istio'"),
    ({"prometheus_url": "localhost:9090"}, r"prometheus_url must be an http"),
    ({"stepz": [100]}, r"rollout plan has unknown field\(s\) 'stepz'"),
    ({"checks": []}, r"checks must name at least one check"),
    ({"checks": "error_rate"}, r"checks must be a list"),
    (
        {"checks": [{"name": "t", "kind": "throughput"}]},
        r"checks\[0\]\.kind: unknown .*'throughput'",
    ),
    ({"checks": [{"kind": "error_rate"}]}, r"checks\[0\] is missing the required field 'name'"),
    ({"checks": [{"name": "c"}]}, r"checks\[0\] is missing the required field 'kind'"),
    (
        {"checks": [{"name": "c", "kind": "error_rate"}]},
        r"'c': kind error_rate needs max_value or max_increase",
    ),
    ({"checks": [_check(colour=1)]}, r"checks\[0\] has unknown field\(s\) 'colour'"),
    ({"checks": [_check(quantile=0.9)]}, r"'quantile' that do not apply to kind error_rate"),
    ({"checks": [_check(max_value=2)]}, r"max_value is an error ratio and must be in \[0, 1\]"),
    ({"checks": [_check(max_value="5%")]}, r"checks\[0\]: check 'c': max_value must be a finite"),
    ({"checks": [_check(), _check()]}, r"unique names; repeated: c"),
    ({"checks": [_check(name="has space")]}, r"check name must be"),
    (
        {"checks": [{"name": "l", "kind": "latency", "max_value": 1, "quantile": 1.5}]},
        r"checks\[0\]: check 'l': quantile must be in \(0, 1\)",
    ),
    (
        {"checks": [{"name": "l", "kind": "latency", "max_value": 0}]},
        r"max_value is a latency in seconds and must be > 0",
    ),
    (
        {"checks": [{"name": "s", "kind": "sequential_error_rate", "alpha": 0}]},
        r"'s': alpha must be in \(0, 1\)",
    ),
    (
        {"checks": [{"name": "s", "kind": "sequential_error_rate", "alpha": 0.5, "beta": 0.6}]},
        r"alpha \+ beta must be < 1",
    ),
    (
        {"checks": [{"name": "s", "kind": "sequential_error_rate", "min_requests": 0}]},
        r"min_requests must be >= 1",
    ),
    (
        {"checks": [{"name": "s", "kind": "sequential_error_rate", "max_value": 0.1}]},
        r"'max_value' that do not apply to kind sequential_error_rate",
    ),
    (
        {"checks": [_check(queries={"canary_latency": "x"})]},
        r"unknown query 'canary_latency' for kind error_rate",
    ),
    (
        {"checks": [_check(queries={"canary_requests": 'x{r="{revision}"}'})]},
        r"queries\.canary_requests uses unknown placeholder\(s\) \{revision\}",
    ),
    ({"checks": [_check(queries={"canary_requests": ""})]}, r"queries\.canary_requests must be"),
    (
        {"checks": [_check(queries={"canary_errors": "x > {quantile}"})]},
        r"queries\.canary_errors uses \{quantile\}, which only latency queries have",
    ),
    ({"checks": [_check(queries=["x"])]}, r"queries must be a mapping"),
]


@pytest.mark.parametrize(("data", "match"), BAD_PLANS, ids=[m for _, m in BAD_PLANS])
def test_bad_plans_raise_naming_the_field(data, match):
    with pytest.raises(DeployError, match=match):
        RolloutPlan.from_dict(data)


def test_plan_must_be_a_mapping():
    with pytest.raises(DeployError, match="rollout plan must be a mapping, got list"):
        RolloutPlan.from_dict([10, 100])  # type: ignore[arg-type]


def test_python_construction_is_validated_too():
    with pytest.raises(DeployError, match="unknown kind 'p99'"):
        CheckSpec("x", "p99", max_value=1)
    with pytest.raises(DeployError, match="steps must end at 100"):
        RolloutPlan(steps=(10, 50))
    with pytest.raises(DeployError, match=r"checks\[0\] must be a CheckSpec, got dict"):
        RolloutPlan(checks=({"name": "x"},))  # type: ignore[arg-type]


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(DeployError, match=r"nope\.yaml cannot be read"):
        RolloutPlan.load(tmp_path / "nope.yaml")
    (tmp_path / "plan.toml").write_text("steps = [100]")
    with pytest.raises(DeployError, match=r"plan\.toml: unknown file type '\.toml'"):
        RolloutPlan.load(tmp_path / "plan.toml")
    (tmp_path / "bad.yaml").write_text("steps: [10, 50\n")
    with pytest.raises(DeployError, match=r"bad\.yaml does not parse"):
        RolloutPlan.load(tmp_path / "bad.yaml")
    (tmp_path / "short.yaml").write_text("steps: [10, 50]\n")
    with pytest.raises(DeployError, match=r"short\.yaml: steps must end at 100"):
        RolloutPlan.load(tmp_path / "short.yaml")
    with pytest.raises(DeployError, match="not valid JSON"):
        RolloutPlan.from_json("{steps: [100]}")


# --------------------------------------------------------------------------- presets, rendering


def test_presets_cover_every_query_and_use_known_placeholders():
    assert tuple(QUERY_PRESETS) == QUERY_PRESET_NAMES
    needed = {key for keys in QUERY_KEYS.values() for key in keys}
    for name, preset in QUERY_PRESETS.items():
        assert needed <= set(preset), name
        for key, template in preset.items():
            assert set(template_placeholders(template)) <= set(PLACEHOLDERS), (name, key)
            side = key.split("_", 1)[0]
            other = "primary" if side == "canary" else "canary"
            assert "{" + side + "}" in template and "{" + other + "}" not in template


def test_local_preset_follows_the_model_server_contract():
    local = QUERY_PRESETS["local"]
    for key in ("canary_requests", "canary_errors", "primary_requests", "primary_errors"):
        assert "refit_model_requests_total{" in local[key] and 'model="{model}"' in local[key]
    assert 'code=~"5.."' in local["canary_errors"]
    assert 'code=~"5.."' not in local["canary_requests"]
    assert "refit_model_request_duration_seconds_bucket" in local["canary_latency"]
    assert "by (le)" in local["canary_latency"]


def test_kserve_preset_uses_knative_queue_proxy_metrics_in_seconds():
    kserve = QUERY_PRESETS["kserve"]
    assert (
        'revision_request_count{namespace_name="{namespace}",revision_name="{canary}"}'
        in (kserve["canary_requests"])
    )
    assert 'response_code_class="5xx"' in kserve["primary_errors"]
    assert "revision_request_latencies_bucket" in kserve["canary_latency"]
    assert kserve["canary_latency"].endswith("/ 1000")  # milliseconds to seconds


def context(**kw):
    fields = dict(
        model="churn",
        namespace="prod",
        primary_revision="v1",
        canary_revision="v2",
        window_seconds=30,
        step_percent=10,
        elapsed_seconds=125.2,
    )
    fields.update(kw)
    return CheckContext(**fields)


def test_render_fills_placeholders_and_escapes_label_values():
    ctx = context(model='we"ird\\name')
    out = render_query(
        'x{m="{model}",n="{namespace}",p="{primary}",c="{canary}"}[{window}] > {quantile}',
        ctx,
        window_seconds=45,
        quantile=0.95,
    )
    assert out == 'x{m="we\\"ird\\\\name",n="prod",p="v1",c="v2"}[45s] > 0.95'
    with pytest.raises(DeployError, match=r"placeholder \{quantile\} has no value"):
        render_query("histogram_quantile({quantile}, x)", ctx, window_seconds=30)
    with pytest.raises(DeployError, match=r"placeholder \{pod\}"):
        render_query('x{pod="{pod}"}', ctx, window_seconds=30)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"canary_revision": ""}, "canary_revision must name"),
        ({"window_seconds": 0}, "window_seconds must be a whole number >= 1"),
        ({"window_seconds": 1.5}, "window_seconds must be a whole number"),
        ({"step_percent": 101}, "step_percent must be an integer in 0..100"),
        ({"elapsed_seconds": -1}, "elapsed_seconds must be a finite number >= 0"),
        ({"model": None}, "model must be a string"),
    ],
)
def test_bad_context(kw, match):
    with pytest.raises(DeployError, match=match):
        context(**kw)


def test_client_rejects_bad_settings():
    with pytest.raises(DeployError, match="Prometheus URL must be an http"):
        PrometheusClient("")
    with pytest.raises(DeployError, match="Prometheus URL must be an http"):
        PrometheusClient("prometheus:9090")
    with pytest.raises(DeployError, match="timeout must be a number > 0"):
        PrometheusClient("http://localhost:9090", timeout=0)
    assert PrometheusClient("http://h:9090/prom/").url == "http://h:9090/prom"


# --------------------------------------------------------------------------- checks (fake client)


class FakeClient:
    """Answers the local preset's queries from a table keyed by (revision, quantity)."""

    def __init__(self, table, fail_after=None):
        self.table = table
        self.queries = []
        self.fail_after = fail_after

    def query(self, promql):
        if self.fail_after is not None and len(self.queries) >= self.fail_after:
            self.queries.append(promql)
            raise DeployError(f"Prometheus at http://prom:9090, query {promql!r}: unreachable")
        self.queries.append(promql)
        revision = re.search(r'revision(?:_name)?="([^"]*)"', promql).group(1)
        if "histogram_quantile" in promql:
            quantity = "latency"
        elif '"5.."' in promql or '"5xx"' in promql:
            quantity = "errors"
        else:
            quantity = "requests"
        return self.table.get((revision, quantity))


def traffic(canary_requests, canary_errors, primary_requests=1000.0, primary_errors=10.0, **kw):
    table = {
        ("v2", "requests"): canary_requests,
        ("v2", "errors"): canary_errors,
        ("v1", "requests"): primary_requests,
        ("v1", "errors"): primary_errors,
    }
    table.update(kw.pop("extra", {}))
    return FakeClient(table, **kw)


ERRORS = CheckSpec("errors", "error_rate", max_value=0.05, max_increase=0.01)


@pytest.mark.parametrize(
    ("canary", "primary", "passed", "threshold"),
    [
        ((1000, 200), (1000, 10), False, 0.02),  # 20% vs 1%: above primary + 1 point
        ((1000, 12), (1000, 10), True, 0.02),  # 1.2% vs 1%
        ((1000, 30), (1000, 30), True, 0.04),  # 3% vs 3%: within primary + 1 point
        ((1000, 60), (1000, 60), False, 0.05),  # 6% vs 6%: above the ceiling
        ((500, None), (1000, None), True, 0.01),  # no 5xx series at all: no errors
    ],
)
def test_error_rate_check(canary, primary, passed, threshold):
    client = traffic(*canary, *primary)
    result = ErrorRateCheck(ERRORS).evaluate(client, context())
    assert result.passed is passed and not result.decisive and not result.no_data
    assert result.threshold == pytest.approx(threshold)
    assert result.value == pytest.approx((canary[1] or 0) / canary[0])
    assert result.primary_value == pytest.approx((primary[1] or 0) / primary[0])
    assert ("within" if passed else "above") in result.detail
    assert all("[30s]" in q for q in client.queries)
    assert result.extra["queries"]["canary_errors"] == client.queries[1]


@pytest.mark.parametrize("requests", [None, 0.0])
def test_error_rate_check_without_canary_traffic_is_no_data(requests):
    result = ErrorRateCheck(ERRORS).evaluate(traffic(requests, None), context())
    assert not result.passed and result.no_data and not result.decisive
    assert result.detail.startswith("no data: canary 'v2' served no requests in the last 30s")


def test_error_rate_check_without_primary_data():
    only_relative = CheckSpec("rel", "error_rate", max_increase=0.01)
    result = ErrorRateCheck(only_relative).evaluate(traffic(1000, 5, None, None), context())
    assert not result.passed and result.no_data
    assert "no data for primary 'v1'" in result.detail and result.value == pytest.approx(0.005)

    result = ErrorRateCheck(ERRORS).evaluate(traffic(1000, 30, 0.0, None), context())
    assert result.passed and result.threshold == 0.05 and result.primary_value is None
    assert "relative limit not applied" in result.detail

    client = traffic(1000, 30)
    result = ErrorRateCheck(ERRORS).evaluate(client, context(primary_revision=""))
    assert result.passed and "no primary to compare with" in result.detail
    assert not any('revision=""' in q for q in client.queries)


LATENCY = CheckSpec("p90", "latency", quantile=0.9, max_value=0.5, max_increase=0.5)


@pytest.mark.parametrize(
    ("canary", "primary", "passed", "threshold"),
    [
        (0.3, 0.1, False, 0.15),
        (0.12, 0.1, True, 0.15),
        (0.6, 0.5, False, 0.5),
        (math.inf, 0.1, False, 0.15),
    ],
)
def test_latency_check(canary, primary, passed, threshold):
    client = traffic(1000, 0, extra={("v2", "latency"): canary, ("v1", "latency"): primary})
    result = LatencyCheck(LATENCY).evaluate(client, context())
    assert result.passed is passed and result.threshold == pytest.approx(threshold)
    assert result.value == canary and result.primary_value == primary
    assert "p90 latency" in result.detail
    assert any(q.startswith("histogram_quantile(0.9, ") for q in client.queries)
    json.dumps(result.to_dict(), allow_nan=False)  # the audit log's strict JSON


def test_latency_check_no_data_and_infinity_in_json():
    client = traffic(1000, 0, extra={("v2", "latency"): None, ("v1", "latency"): 0.1})
    result = LatencyCheck(LATENCY).evaluate(client, context())
    assert not result.passed and result.no_data and "no p90 latency" in result.detail

    client = traffic(1000, 0, extra={("v2", "latency"): math.inf, ("v1", "latency"): 0.1})
    assert LatencyCheck(LATENCY).evaluate(client, context()).to_dict()["value"] == "+Inf"


def test_query_overrides_replace_preset_templates():
    spec = CheckSpec(
        "custom",
        "error_rate",
        max_value=0.05,
        queries={"canary_requests": 'sum(increase(my_requests{revision="{canary}"}[{window}]))'},
    )
    client = traffic(1000, 10)
    ErrorRateCheck(spec, "kserve").evaluate(client, context())
    assert client.queries[0] == 'sum(increase(my_requests{revision="v2"}[30s]))'
    assert "revision_request_count" in client.queries[1]  # the rest from the kserve preset


def test_build_check_refuses_wrong_kind_and_preset():
    with pytest.raises(DeployError, match="LatencyCheck needs a CheckSpec of kind 'latency'"):
        LatencyCheck(ERRORS)
    with pytest.raises(DeployError, match="unknown query preset 'istio'"):
        build_check(ERRORS, "istio")
    kinds = [type(c) for c in build_checks(DEFAULT_PLAN)]
    assert kinds == [ErrorRateCheck, LatencyCheck, SequentialErrorRateCheck]


SEQ = CheckSpec("seq", "sequential_error_rate")


def test_sequential_check_counts_since_rollout_start():
    client = traffic(400.4, 80.2, 3600.0, 36.0)
    result = SequentialErrorRateCheck(SEQ).evaluate(client, context(elapsed_seconds=125.2))
    assert all("[126s]" in q for q in client.queries)  # the whole rollout, rounded up
    assert not result.passed and result.decisive
    assert result.extra["decision"] == "worse"
    assert (result.extra["canary_requests"], result.extra["canary_errors"]) == (400, 80)
    assert result.value == pytest.approx(0.2) and result.primary_value == pytest.approx(0.01)


def test_sequential_check_passes_while_undecided_or_not_worse():
    equal = SequentialErrorRateCheck(SEQ).evaluate(traffic(1000, 10, 1000, 10), context())
    assert equal.passed and not equal.decisive
    assert equal.extra["decision"] in ("continue", "not_worse")
    few = SequentialErrorRateCheck(SEQ).evaluate(traffic(20, 20, 1000, 0), context())
    assert few.passed and few.extra["decision"] == "continue"
    assert "too few requests" in few.detail
    none = SequentialErrorRateCheck(SEQ).evaluate(traffic(None, None), context())
    assert not none.passed and none.no_data and not none.decisive
    # Extrapolated counts can put errors above requests: they are capped, not an error.
    capped = SequentialErrorRateCheck(SEQ).evaluate(traffic(100, 101.4, 1000, 10), context())
    assert capped.extra["canary_errors"] == 100


def test_run_analysis_returns_one_result_per_check_in_order():
    checks = build_checks(DEFAULT_PLAN)
    client = traffic(1000, 10, extra={("v2", "latency"): 0.1, ("v1", "latency"): 0.1})
    results = run_analysis(client, checks, context())
    assert [r.name for r in results] == [c.name for c in DEFAULT_PLAN.checks]
    assert all(isinstance(r, CheckResult) and r.passed for r in results)


@pytest.mark.parametrize("fail_after", [0, 4])
def test_run_analysis_unreadable_metrics_fail_every_later_check_decisively(fail_after):
    checks = build_checks(DEFAULT_PLAN)
    client = traffic(
        1000, 10, extra={("v2", "latency"): 0.1, ("v1", "latency"): 0.1}, fail_after=fail_after
    )
    results = run_analysis(client, checks, context())
    assert len(results) == len(checks)
    first_failed = 0 if fail_after == 0 else 1  # the error-rate check makes 4 queries
    for result in results[:first_failed]:
        assert not result.decisive
    for result in results[first_failed:]:
        assert not result.passed and result.decisive
        assert "metrics unavailable" in result.detail and "http://prom:9090" in result.detail
        json.dumps(result.to_dict(), allow_nan=False)
    # Nothing is queried after the failure.
    assert len(client.queries) == fail_after + 1


# --------------------------------------------------------------------------- sequential test


def test_statistic_is_the_conditional_binomial_log_likelihood_ratio():
    n_c, e_c, n_p, e_p, min_effect = 300, 14, 2700, 60, 1.0
    s = n_c / (n_c + n_p)
    rho = 1 + min_effect
    pi1 = rho * s / (rho * s + 1 - s)
    m = e_c + e_p
    expected = stats.binom.logpmf(e_c, m, pi1) - stats.binom.logpmf(e_c, m, s)
    result = error_rate_sprt(n_c, e_c, n_p, e_p, min_effect=min_effect)
    assert result.llr == pytest.approx(expected, rel=1e-9)
    assert result.upper == pytest.approx(math.log(20))
    assert result.lower == pytest.approx(math.log(0.2 / 0.95))
    assert result.canary_share == pytest.approx(0.1)


def test_decisions_follow_the_boundaries():
    assert error_rate_sprt(1000, 200, 1000, 10).decision == "worse"
    assert error_rate_sprt(1000, 10, 1000, 200).decision == "not_worse"
    assert error_rate_sprt(1000, 10, 1000, 10).decision == "continue"
    # More canary errors, same totals otherwise: the statistic grows.
    llrs = [error_rate_sprt(1000, e, 1000, 10).llr for e in range(0, 40, 5)]
    assert llrs == sorted(llrs)


def test_a_handful_of_requests_never_decides():
    # Below min_requests on either side: "continue", whatever the outcomes.
    for n in range(1, 100, 7):
        for e_c in range(0, n + 1, max(1, n // 5)):
            for n_p, e_p in ((n, 0), (5000, 0), (n, n)):
                result = error_rate_sprt(n, e_c, n_p, e_p)
                assert result.decision == "continue", (n, e_c, n_p, e_p)
                assert result.llr == 0.0 and "too few requests" in result.reason
    assert error_rate_sprt(5000, 4000, 50, 0).decision == "continue"
    no_primary = error_rate_sprt(5000, 4000, 0, 0)
    assert no_primary.decision == "continue" and "no primary requests" in no_primary.reason


def _simulate(rng, p_canary, p_primary, schedule, look_every, **kw):
    """Feed a rollout's requests in batches; return (first decision "worse" or None, requests)."""
    n_c = e_c = n_p = e_p = 0
    seen = 0
    for share, requests in schedule:
        for _ in range(requests // look_every):
            to_canary = int(rng.binomial(look_every, share))
            to_primary = look_every - to_canary
            n_c += to_canary
            n_p += to_primary
            e_c += int(rng.binomial(to_canary, p_canary))
            e_p += int(rng.binomial(to_primary, p_primary))
            seen += look_every
            if error_rate_sprt(n_c, e_c, n_p, e_p, **kw).decision == "worse":
                return "worse", seen
    return None, seen


ROLLOUT = [(0.1, 5000), (0.5, 5000)]  # 10% of 5000 requests, then 50% of 5000


def test_equal_rates_are_called_worse_less_often_than_alpha():
    # 1000 seeded rollouts with equal 5% error rates, looked at every 100 requests (100 looks):
    # the share ever called "worse" stays under alpha (measured: 0.025).
    rng = np.random.default_rng(20261126)
    reps = 1000
    worse = sum(_simulate(rng, 0.05, 0.05, ROLLOUT, 100)[0] == "worse" for _ in range(reps))
    assert worse / reps < 0.05
    # A stricter alpha is honoured too (measured: 0.005 with alpha 0.01).
    rng = np.random.default_rng(7)
    worse = sum(
        _simulate(rng, 0.02, 0.02, ROLLOUT, 100, alpha=0.01)[0] == "worse" for _ in range(400)
    )
    assert worse / 400 < 0.01


def test_clearly_worse_canary_is_stopped_early():
    # 20% vs 1% errors at a 10% split, looked at every 10 requests: every rollout stops, within
    # 1500 requests in all (measured: 790 to 1270, median 1000, i.e. about 100 at the canary:
    # the min_requests guard of 100 per side is what holds it back).
    rng = np.random.default_rng(11)
    outcomes = [_simulate(rng, 0.20, 0.01, ROLLOUT, 10) for _ in range(200)]
    assert all(decision == "worse" for decision, _ in outcomes)
    assert max(seen for _, seen in outcomes) <= 1500


def test_better_canary_is_never_called_worse_and_is_called_not_worse():
    rng = np.random.default_rng(5)
    decisions = set()
    for _ in range(100):
        n_c, n_p = 2000, 2000
        e_c, e_p = int(rng.binomial(n_c, 0.005)), int(rng.binomial(n_p, 0.05))
        decisions.add(error_rate_sprt(n_c, e_c, n_p, e_p).decision)
    assert decisions == {"not_worse"}


@pytest.mark.parametrize(
    ("args", "kw", "match"),
    [
        ((-1, 0, 10, 0), {}, "canary_requests must be >= 0"),
        ((10, 11, 10, 0), {}, r"canary_errors \(11\) exceed canary_requests \(10\)"),
        ((10, 0, 10, 11), {}, r"primary_errors \(11\) exceed primary_requests \(10\)"),
        ((10.5, 0, 10, 0), {}, "canary_requests must be a whole number"),
        ((10, 0, "10", 0), {}, "primary_requests must be a whole number"),
        ((10, 0, 10, 0), {"alpha": 1.0}, r"alpha must be in \(0, 1\)"),
        ((10, 0, 10, 0), {"beta": 0}, r"beta must be in \(0, 1\)"),
        ((10, 0, 10, 0), {"alpha": 0.6, "beta": 0.5}, "alpha \\+ beta must be < 1"),
        ((10, 0, 10, 0), {"min_effect": 0}, "min_effect must be a finite number > 0"),
        ((10, 0, 10, 0), {"min_requests": 0}, "min_requests must be >= 1"),
    ],
)
def test_sequential_input_errors(args, kw, match):
    with pytest.raises(DeployError, match=match):
        error_rate_sprt(*args, **kw)


def test_counts_may_be_numpy_integers_or_whole_floats():
    a = error_rate_sprt(np.int64(1000), np.int64(20), 1000.0, 10.0)
    b = error_rate_sprt(1000, 20, 1000, 10)
    assert a == b
    json.dumps(a.to_dict(), allow_nan=False)
