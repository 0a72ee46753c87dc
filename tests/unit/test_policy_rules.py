"""The policy's newer rules: label and prediction drift, feature mean shift, the estimated
metric on unlabelled windows, the retraining budget and the all/any ("hybrid") combination."""

import json
from dataclasses import replace

import pytest

from refit.errors import PolicyError
from refit.policy import Observation, PolicyState, RetrainPolicy, decide, mark_labelled
from refit.policy.rules import ESTIMATED

NOW = "2026-11-26T12:00:00+00:00"


def obs(**kw):
    base = {
        "drift_share": 0.1,
        "metric_value": 0.91,
        "new_rows": 100,
        "now": NOW,
        "has_champion": True,
    }
    return Observation(**{**base, **kw})


def only(**kw):
    """A policy with the drift-share rule off and the given rules on."""
    return RetrainPolicy(drift_share_threshold=None, **kw)


def test_label_drift_rule_is_reported_apart_from_the_drift_share():
    policy = RetrainPolicy(drift_share_threshold=0.3, label_drift_threshold=0.1)
    decision = decide(policy, PolicyState(), obs(drift_share=0.0, label_drift=0.13))
    assert decision.retrain
    assert decision.reasons == ["label drift 0.13 >= 0.10"]
    decision = decide(policy, PolicyState(), obs(drift_share=0.0, label_drift=0.02))
    assert not decision.retrain
    assert decision.reasons == ["drift share 0.00 < 0.30", "label drift 0.02 < 0.10"]
    unknown = decide(policy, PolicyState(), obs(label_drift=None))
    assert "label drift unknown (not measured this window)" in unknown.reasons


def test_prediction_drift_rule():
    policy = only(prediction_drift_threshold=0.2)
    assert decide(policy, PolicyState(), obs(prediction_drift=0.25)).reasons == [
        "prediction drift 0.25 >= 0.20"
    ]
    assert not decide(policy, PolicyState(), obs(prediction_drift=0.05)).retrain


def test_mean_shift_names_the_features_beyond_k_sd():
    policy = only(mean_shift_sd=1.0)
    shifts = {"income": 1.42, "age": 0.1, "credit_score": 1.05}
    decision = decide(policy, PolicyState(), obs(mean_shifts=shifts))
    assert decision.retrain
    assert decision.reasons == ["feature mean shift >= 1.00 sd: income 1.42, credit_score 1.05"]
    calm = decide(policy, PolicyState(), obs(mean_shifts={"income": 0.4, "age": 0.1}))
    assert calm.reasons == ["largest feature mean shift income 0.40 sd < 1.00"]
    assert "mean shift unknown" in decide(policy, PolicyState(), obs()).reasons[0]


def test_unlabelled_window_uses_the_estimate_and_is_tracked():
    policy = only(metric_threshold=0.8, consecutive_windows=1)
    decision = decide(
        policy,
        PolicyState(),
        obs(
            metric_value=None,
            estimated_metric=0.71,
            estimated_interval=(0.69, 0.73),
            window="w7",
            labelled=False,
        ),
    )
    assert decision.retrain
    assert decision.reasons[0] == (
        f"accuracy < 0.80 for 1 consecutive window(s) (0.71); this window ({ESTIMATED}, "
        "interval [0.690, 0.730])"
    )
    assert "estimated (CBPE, assumes no concept shift)" in decision.reasons[0]
    assert decision.reasons[-1] == "1 window(s) still unlabelled: w7"
    assert decision.state.unlabelled_windows == ["w7"]
    # a good estimate does not retrain, and still says it is an estimate
    calm = decide(
        policy,
        decision.state,
        obs(
            metric_value=None,
            estimated_metric=0.9,
            estimated_interval=(0.88, 0.92),
            window="w8",
            labelled=False,
        ),
    )
    assert not calm.retrain
    assert calm.reasons[0].startswith(f"accuracy 0.90 >= 0.80 ({ESTIMATED}")
    assert calm.state.unlabelled_windows == ["w7", "w8"]
    # labels land for w7: it comes off the list
    assert mark_labelled(calm.state, ["w7"]).unlabelled_windows == ["w8"]
    # a labelled window is not listed, and the realised metric wins over an estimate
    labelled = decide(policy, calm.state, obs(metric_value=0.95, estimated_metric=0.1, window="w9"))
    assert not labelled.retrain and labelled.state.unlabelled_windows == ["w7", "w8"]
    assert labelled.reasons[0] == "accuracy 0.95 >= 0.80"
    # no metric is not "no labels": an alert or a backfill window without a champion score
    # (labelled left true) is not listed
    alert = decide(policy, calm.state, obs(metric_value=None, window="alert"))
    assert alert.state.unlabelled_windows == ["w7", "w8"]
    assert not any("unlabelled" in r for r in alert.reasons[:-1])


def test_a_window_without_labels_defers_the_retrain_to_the_next_labelled_one():
    policy = only(metric_threshold=0.8, consecutive_windows=1)
    blind = obs(
        metric_value=None,
        estimated_metric=0.71,
        estimated_interval=(0.69, 0.73),
        window="w7",
        labelled=False,
        trainable=False,
    )
    deferred = decide(policy, PolicyState(), blind)
    assert not deferred.retrain
    assert deferred.reasons[0].startswith(
        "retrain deferred: the window has no labels to train on; rerun when its labels land "
        "(e.g. after `refit labels join`)"
    )
    assert "accuracy < 0.80 for 1 consecutive window(s) (0.71)" in deferred.reasons[0]
    assert "interval [0.690, 0.730]" in deferred.reasons[0]
    assert deferred.state.deferred_retrain == {
        "window": "w7",
        "at": NOW,
        "reasons": [deferred.reasons[0].split("fired: ")[1]],
    }
    # the state survives its JSON round trip (the registry stores it so)
    state = PolicyState.from_dict(json.loads(json.dumps(deferred.state.to_dict())))
    assert state == deferred.state
    # another unlabelled window, calm: still deferred, the first window's reasons kept
    calm_blind = decide(
        policy,
        state,
        obs(metric_value=None, estimated_metric=0.95, window="w8", labelled=False, trainable=False),
    )
    assert not calm_blind.retrain and calm_blind.state.deferred_retrain == state.deferred_retrain
    # the next labelled window retrains for it although its own rules do not fire
    labelled = decide(policy, calm_blind.state, obs(metric_value=0.95, window="w9"))
    assert labelled.retrain
    assert labelled.reasons[0].startswith(
        "retrain deferred from window w7 (no labels to train on): accuracy < 0.80"
    )
    assert labelled.state.deferred_retrain is None
    # without the deferral the same labelled window does not retrain
    assert not decide(policy, PolicyState(), obs(metric_value=0.95, window="w9")).retrain
    # the cooldown still applies to a deferred retrain, which stays deferred
    cooling = only(metric_threshold=0.8, consecutive_windows=1, cooldown_windows=5)
    held = decide(cooling, replace(state, windows_since_retrain=1), obs(metric_value=0.95))
    assert not held.retrain and held.reasons[0].startswith("cooldown: window 2 of 5")
    assert held.state.deferred_retrain == state.deferred_retrain
    # no champion and no labels: the first model waits for labels too
    first = decide(policy, PolicyState(), obs(has_champion=False, trainable=False, window="w0"))
    assert not first.retrain and "no champion model" in first.reasons[0]
    assert first.state.deferred_retrain["window"] == "w0"


@pytest.mark.parametrize(
    "deferred",
    [
        {"window": "w1"},
        {"window": "", "at": NOW, "reasons": ["x"]},
        {"window": "w1", "at": NOW, "reasons": []},
        {"window": "w1", "at": "soon", "reasons": ["x"]},
        {"window": "w1", "at": NOW, "reasons": ["x"] * 17},
    ],
)
def test_a_malformed_deferred_retrain_is_refused(deferred):
    with pytest.raises(PolicyError, match="deferred_retrain"):
        PolicyState.from_dict({"deferred_retrain": deferred})
    with pytest.raises(PolicyError, match="observation.trainable must be true or false"):
        decide(only(metric_threshold=0.8), PolicyState(), obs(trainable="no"))


def test_retraining_budget_caps_retrains_per_period():
    policy = RetrainPolicy(drift_share_threshold=0.3, max_retrains=2, budget_period_days=7)
    state = PolicyState()
    days = ["2026-11-01T00", "2026-11-02T00", "2026-11-03T00", "2026-11-08T12"]
    verdicts = []
    for day in days:
        decision = decide(
            policy,
            state,
            obs(drift_share=0.9, now=f"{day}:00:00+00:00"),
        )
        verdicts.append(decision.retrain)
        state = decision.state
        if day == "2026-11-03T00":
            assert decision.reasons[0].startswith(
                "retraining budget: 2 of 2 retrains used in the last 7 days; suppressed: "
                "drift share 0.90 >= 0.30"
            )
    # the third retrain in 7 days is refused; a week after the first, a slot is free again
    assert verdicts == [True, True, False, True]
    assert [r["at"][:10] for r in state.retrains] == ["2026-11-02", "2026-11-08"]


def test_retraining_budget_by_cost_and_first_model_is_never_blocked():
    policy = RetrainPolicy(drift_share_threshold=0.3, max_cost=5.0, retrain_cost=2.0)
    state = PolicyState(retrains=[{"at": NOW, "cost": 2.0}, {"at": NOW, "cost": 2.0}])
    blocked = decide(policy, state, obs(drift_share=0.9))
    assert not blocked.retrain
    assert (
        "cost 4 spent in the last 30 days, one more retrain (2) would pass 5"
        in (blocked.reasons[0])
    )
    assert decide(policy, state, obs(has_champion=False)).retrain


def test_combine_all_needs_every_rule():
    policy = RetrainPolicy(drift_share_threshold=0.3, metric_threshold=0.8, combine="all")
    state = PolicyState()
    drift_only = decide(policy, state, obs(drift_share=0.5, metric_value=0.9))
    assert not drift_only.retrain
    assert "rules combined as all: only drift_share fired" in drift_only.reasons
    both = decide(policy, state, obs(drift_share=0.5, metric_value=0.6, now=NOW))
    assert not both.retrain  # the metric needs 2 consecutive windows (the default)
    policy = RetrainPolicy(
        drift_share_threshold=0.3, metric_threshold=0.8, consecutive_windows=1, combine="all"
    )
    both = decide(policy, state, obs(drift_share=0.5, metric_value=0.6))
    assert both.retrain
    assert both.reasons == [
        "drift share 0.50 >= 0.30",
        "accuracy < 0.80 for 1 consecutive window(s) (0.60)",
        "rules combined as all",
    ]


def test_nested_hybrid_expression():
    policy = RetrainPolicy.from_dict(
        {
            "drift_share_threshold": 0.3,
            "metric_threshold": 0.8,
            "consecutive_windows": 1,
            "max_model_age_days": 30,
            "combine": {"any": ["model_age", {"all": ["drift_share", "metric"]}]},
        }
    )
    young = PolicyState(model_trained_at="2026-11-20T00:00:00+00:00")
    old = PolicyState(model_trained_at="2026-09-01T00:00:00+00:00")
    assert not decide(policy, young, obs(drift_share=0.5, metric_value=0.9)).retrain
    assert decide(policy, young, obs(drift_share=0.5, metric_value=0.7)).retrain
    decision = decide(policy, old, obs(drift_share=0.0, metric_value=0.9))
    assert decision.retrain
    assert decision.reasons[-1] == "rules combined as any(model_age, all(drift_share, metric))"
    again = RetrainPolicy.from_dict(json.loads(json.dumps(policy.to_dict())))
    assert again == policy


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"combine": "most"}, "combine must be"),
        ({"combine": {"any": ["drift_share", "colour"]}}, "unknown rule 'colour'"),
        ({"combine": {"any": ["drift_share", "metric"]}}, "rule 'metric' .* is off"),
        ({"metric_threshold": 0.8, "combine": {"any": ["drift_share"]}}, "metric missing"),
        ({"combine": {"xor": ["drift_share"]}}, "operator must be"),
        ({"combine": {"any": []}}, "non-empty list"),
        ({"combine": {"any": ["drift_share"], "all": ["drift_share"]}}, "one-key mapping"),
        (
            {"combine": {"any": [{"any": [{"any": [{"any": [{"any": ["drift_share"]}]}]}]}]}},
            "nested deeper",
        ),
        ({"label_drift_threshold": -0.1}, "label_drift_threshold must be >= 0"),
        ({"mean_shift_sd": 0}, "mean_shift_sd must be > 0"),
        ({"max_retrains": 0}, "max_retrains must be >= 1"),
        ({"max_cost": -1}, "max_cost must be > 0"),
        ({"budget_period_days": 0}, "budget_period_days must be > 0"),
    ],
)
def test_bad_policies_are_named(policy, message):
    with pytest.raises(PolicyError, match=message):
        RetrainPolicy.from_dict(policy)


def test_old_policies_and_states_keep_their_meaning():
    old_policy = {"drift_share_threshold": 0.3, "metric_threshold": 0.85, "cooldown_windows": 1}
    policy = RetrainPolicy.from_dict(old_policy)
    assert policy.combine == "any" and policy.max_retrains is None
    old_state = {"windows_since_retrain": 2, "metric_history": [0.9], "rows_since_training": 5}
    state = PolicyState.from_dict(old_state)
    assert state.retrains == [] and state.unlabelled_windows == []
    # any one rule fires, as before
    assert decide(policy, state, obs(drift_share=0.5)).reasons == ["drift share 0.50 >= 0.30"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("estimated_interval", (0.9, 0.8), "lower 0.9 > upper 0.8"),
        ("estimated_interval", (0.9,), r"\(lower, upper\)"),
        ("label_drift", -1.0, "label_drift must be >= 0"),
        ("mean_shifts", {"x": float("nan")}, "mean_shifts"),
    ],
)
def test_bad_observations_are_named(field, value, message):
    with pytest.raises(PolicyError, match=message):
        decide(RetrainPolicy(), PolicyState(), obs(**{field: value}))


def test_bad_state_is_named():
    with pytest.raises(PolicyError, match="retrains"):
        PolicyState.from_dict({"retrains": [{"at": "yesterday", "cost": 1}]})
    with pytest.raises(PolicyError, match="unlabelled_windows"):
        PolicyState.from_dict({"unlabelled_windows": [""]})
