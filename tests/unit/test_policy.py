import json

import pytest

from refit.errors import PolicyError
from refit.policy import Decision, Observation, PolicyState, RetrainPolicy, decide

NOW = "2026-11-26T12:00:00+00:00"


def obs(drift_share=0.1, metric_value=0.91, new_rows=100, now=NOW, has_champion=True):
    return Observation(
        drift_share=drift_share,
        metric_value=metric_value,
        new_rows=new_rows,
        now=now,
        has_champion=has_champion,
    )


def test_no_champion_retrains():
    decision = decide(RetrainPolicy(), PolicyState(), obs(has_champion=False))
    assert isinstance(decision, Decision)
    assert decision.retrain
    assert any("no champion" in r for r in decision.reasons)


def test_drift_share_at_threshold_retrains():
    policy = RetrainPolicy(drift_share_threshold=0.3)
    decision = decide(policy, PolicyState(), obs(drift_share=0.4))
    assert decision.retrain
    assert "drift share 0.40 >= 0.30" in decision.reasons
    assert decide(policy, PolicyState(), obs(drift_share=0.3)).retrain


def test_skip_reason_carries_numbers():
    policy = RetrainPolicy(drift_share_threshold=0.3, metric_threshold=0.85)
    decision = decide(policy, PolicyState(), obs(drift_share=0.1, metric_value=0.91))
    assert not decision.retrain
    assert decision.reason == "drift share 0.10 < 0.30; accuracy 0.91 >= 0.85"


def test_close_numbers_get_more_digits():
    policy = RetrainPolicy(drift_share_threshold=0.3, metric_threshold=0.85)
    decision = decide(policy, PolicyState(), obs(drift_share=0.299, metric_value=0.851))
    assert "drift share 0.299 < 0.300" in decision.reasons
    assert "accuracy 0.851 >= 0.850" in decision.reasons


def test_metric_below_for_n_consecutive_windows():
    policy = RetrainPolicy(drift_share_threshold=None, metric_threshold=0.85, consecutive_windows=3)
    state = PolicyState()
    for value in (0.80, 0.82):
        decision = decide(policy, state, obs(metric_value=value))
        assert not decision.retrain, decision.reasons
        state = decision.state
    assert "accuracy 0.82 < 0.85 for 2 of 3 consecutive windows" in decision.reasons
    assert state.metric_history == [0.80, 0.82]
    decision = decide(policy, state, obs(metric_value=0.84))
    assert decision.retrain
    assert decision.reasons == ["accuracy < 0.85 for 3 consecutive window(s) (0.80, 0.82, 0.84)"]


def test_metric_run_broken_by_good_window():
    policy = RetrainPolicy(drift_share_threshold=None, metric_threshold=0.85, consecutive_windows=2)
    state = PolicyState()
    for value in (0.80, 0.90, 0.80):
        decision = decide(policy, state, obs(metric_value=value))
        assert not decision.retrain
        state = decision.state
    assert decide(policy, state, obs(metric_value=0.70)).retrain


def test_metric_missing_window_neither_counts_nor_breaks():
    policy = RetrainPolicy(drift_share_threshold=None, metric_threshold=0.85, consecutive_windows=2)
    d1 = decide(policy, PolicyState(), obs(metric_value=0.8))
    d2 = decide(policy, d1.state, obs(metric_value=None))
    assert not d2.retrain
    assert "accuracy not measured this window" in d2.reasons
    assert decide(policy, d2.state, obs(metric_value=0.8)).retrain


def test_lower_is_better_metric():
    policy = RetrainPolicy(
        drift_share_threshold=None,
        metric="rmse",
        metric_threshold=2.0,
        consecutive_windows=1,
        metric_higher_is_better=False,
    )
    decision = decide(policy, PolicyState(), obs(metric_value=2.5))
    assert decision.retrain
    assert decision.reasons == ["rmse > 2.00 for 1 consecutive window(s) (2.50)"]
    assert decide(policy, PolicyState(), obs(metric_value=1.5)).reasons == ["rmse 1.50 <= 2.00"]


def test_model_age():
    policy = RetrainPolicy(drift_share_threshold=None, max_model_age_days=30)
    old = PolicyState(model_trained_at="2026-10-20T12:00:00Z")
    decision = decide(policy, old, obs())
    assert decision.retrain
    assert decision.reasons == ["model age 37.0 days >= 30.0"]
    young = PolicyState(model_trained_at="2026-11-20T12:00:00")  # naive: taken as UTC
    decision = decide(policy, young, obs())
    assert not decision.retrain
    assert decision.reasons == ["model age 6.0 days < 30.0"]


def test_new_data_fraction():
    policy = RetrainPolicy(drift_share_threshold=None, new_data_fraction=0.5)
    state = PolicyState(training_rows=1000, rows_since_training=300)
    decision = decide(policy, state, obs(new_rows=100))
    assert not decision.retrain
    assert decision.reasons == ["new rows 400 < 0.50 x 1000 training rows = 500"]
    assert decision.state.rows_since_training == 400
    decision = decide(policy, decision.state, obs(new_rows=100))
    assert decision.retrain
    assert decision.reasons == ["new rows 500 >= 0.50 x 1000 training rows = 500"]


def test_cooldown_suppresses():
    policy = RetrainPolicy(drift_share_threshold=0.3, cooldown_windows=2)
    state = PolicyState(windows_since_retrain=0)
    decision = decide(policy, state, obs(drift_share=0.5))
    assert not decision.retrain
    assert len(decision.reasons) == 1
    assert decision.reasons[0].startswith("cooldown: ")
    assert "drift share 0.50 >= 0.30" in decision.reasons[0]
    decision = decide(policy, decision.state, obs(drift_share=0.5))
    assert not decision.retrain and decision.reasons[0].startswith("cooldown: ")
    decision = decide(policy, decision.state, obs(drift_share=0.5))
    assert decision.retrain
    # no champion ignores the cooldown
    assert decide(policy, PolicyState(), obs(has_champion=False)).retrain


def test_state_resets_after_retrain_and_accumulates_on_skip():
    policy = RetrainPolicy(drift_share_threshold=0.3, metric_threshold=0.85, consecutive_windows=5)
    state = PolicyState(
        windows_since_retrain=3,
        metric_history=[0.9],
        rows_since_training=50,
        training_rows=1000,
        model_trained_at="2026-11-01T00:00:00+00:00",
    )
    skip = decide(policy, state, obs(drift_share=0.1, metric_value=0.88, new_rows=20))
    assert not skip.retrain
    assert skip.state.windows_since_retrain == 4
    assert skip.state.metric_history == [0.9, 0.88]
    assert skip.state.rows_since_training == 70
    assert state.windows_since_retrain == 3  # input not mutated
    retrain = decide(policy, skip.state, obs(drift_share=0.9, new_rows=20))
    assert retrain.retrain
    assert retrain.state.windows_since_retrain == 0
    assert retrain.state.metric_history == []
    assert retrain.state.rows_since_training == 0
    assert retrain.state.training_rows == 1000
    assert retrain.state.model_trained_at == "2026-11-01T00:00:00+00:00"


def test_metric_history_bounded():
    policy = RetrainPolicy(drift_share_threshold=None, metric_threshold=0.5, consecutive_windows=2)
    state = PolicyState()
    for value in (0.9, 0.8, 0.7, 0.6):
        state = decide(policy, state, obs(metric_value=value)).state
    assert state.metric_history == [0.7, 0.6]


def test_drift_share_none_does_not_crash():
    policy = RetrainPolicy(drift_share_threshold=0.3)
    decision = decide(policy, PolicyState(), obs(drift_share=None, metric_value=None))
    assert not decision.retrain
    assert any("drift share unknown" in r for r in decision.reasons)


def test_nothing_configured_still_gives_a_reason():
    policy = RetrainPolicy(drift_share_threshold=None)
    decision = decide(policy, PolicyState(), obs())
    assert not decision.retrain
    assert decision.reasons == ["no retrain trigger fired"]


def test_several_triggers_all_reported():
    policy = RetrainPolicy(drift_share_threshold=0.3, max_model_age_days=1)
    state = PolicyState(model_trained_at="2026-11-01T00:00:00+00:00")
    decision = decide(policy, state, obs(drift_share=0.5))
    assert decision.retrain and len(decision.reasons) == 2


def test_policy_round_trip_and_validation():
    policy = RetrainPolicy(
        drift_share_threshold=0.25,
        metric="f1",
        metric_threshold=0.7,
        consecutive_windows=3,
        max_model_age_days=14,
        new_data_fraction=0.2,
        cooldown_windows=1,
    )
    assert RetrainPolicy.from_dict(json.loads(json.dumps(policy.to_dict()))) == policy
    assert RetrainPolicy.from_dict({}) == RetrainPolicy()
    with pytest.raises(PolicyError, match="drift_treshold"):
        RetrainPolicy.from_dict({"drift_treshold": 0.3})
    bad = {
        "drift_share_threshold": 1.5,
        "consecutive_windows": 0,
        "cooldown_windows": -1,
        "max_model_age_days": 0,
        "new_data_fraction": -0.1,
        "metric": "",
        "metric_threshold": "high",
    }
    for key, value in bad.items():
        with pytest.raises(PolicyError, match=key):
            RetrainPolicy.from_dict({key: value})
    with pytest.raises(PolicyError, match="consecutive_windows"):
        RetrainPolicy.from_dict({"consecutive_windows": True})


def test_state_round_trip_and_validation():
    state = PolicyState(
        windows_since_retrain=2,
        metric_history=[0.8, 0.81],
        rows_since_training=10,
        training_rows=100,
        model_trained_at="2026-11-01T00:00:00+00:00",
    )
    assert PolicyState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    with pytest.raises(PolicyError, match="bogus"):
        PolicyState.from_dict({"bogus": 1})
    with pytest.raises(PolicyError, match="rows_since_training"):
        PolicyState.from_dict({"rows_since_training": -1})
    with pytest.raises(PolicyError, match="model_trained_at"):
        PolicyState.from_dict({"model_trained_at": "yesterday"})


def test_bad_observation_named():
    with pytest.raises(PolicyError, match="observation.now"):
        decide(RetrainPolicy(), PolicyState(), obs(now="soon"))
    with pytest.raises(PolicyError, match="observation.drift_share"):
        decide(RetrainPolicy(), PolicyState(), obs(drift_share=1.2))
    with pytest.raises(PolicyError, match="observation.new_rows"):
        decide(RetrainPolicy(), PolicyState(), obs(new_rows=-5))


def test_decision_to_dict_is_json():
    decision = decide(RetrainPolicy(), PolicyState(), obs(drift_share=0.5))
    data = json.loads(json.dumps(decision.to_dict()))
    assert data["retrain"] is True
    assert data["state"]["windows_since_retrain"] == 0
