"""The model server's delivery stages: shadow copies, sticky A/B arms, the feedback endpoint;
and the plan's shadow and ab_test sections."""

import json

import pytest
from _models import flip_labels, register_models, train_demo_model
from _v2 import infer_inputs
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from refit.deploy.abtest import TREATMENT, assign_arm, read_feedback
from refit.deploy.plan import RolloutPlan
from refit.deploy.stages import ABTestSpec, ShadowSpec
from refit.errors import DataError, DeployError
from refit.registry import ModelRegistry
from refit.serving import create_app
from refit.serving.feedback import load_feedback_token
from refit.serving.routing import read_rollout_state
from refit.serving.shadow import compare_answers

NAME = "credit"
SECRET = "feedback-secret-0123456789"


@pytest.fixture(scope="module")
def reg(windows, tmp_path_factory) -> ModelRegistry:
    """v1 champion; v2 the same data (agrees); v3 flipped labels (disagrees)."""
    root = tmp_path_factory.mktemp("delivery")
    registry = ModelRegistry(str(root / "store"), NAME)
    w = windows[0]
    flipped = flip_labels(w)
    models = {1: train_demo_model(w), 2: train_demo_model(w), 3: train_demo_model(flipped)}
    register_models(registry, root, models)
    registry.update_aliases({"champion": 1})
    return registry


@pytest.fixture(scope="module")
def bodies(windows) -> list[dict]:
    rows = windows[2].slice(0, 60)
    out = []
    for i in range(rows.num_rows):
        out.append({"id": f"req-{i}", "inputs": infer_inputs(rows.slice(i, 1))})
    return out


def metric(client: TestClient, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


def test_shadow_copies_are_compared_and_never_answered(reg, bodies, tmp_path):
    for shadow, agree in ((2, True), (3, False)):
        reg.write_state("canary", {"version": None, "percent": 0, "shadow": shadow})
        app = create_app(reg.store_uri, NAME, state_refresh_seconds=0)
        with TestClient(app) as client:
            answers = [client.post(f"/v2/models/{NAME}/infer", json=b) for b in bodies]
            assert {r.status_code for r in answers} == {200}
            assert {r.json()["model_version"] for r in answers} == {"1"}  # only the champion's
            app.state.server.shadow.join()
            rev = f"v{shadow}"
            pairs = metric(client, "refit_model_shadow_pairs_total", revision=rev)
            disagree = metric(client, "refit_model_shadow_disagreements_total", revision=rev)
            assert pairs == len(bodies)
            assert (disagree == 0) if agree else (disagree / pairs > 0.5)
            meta = client.get(f"/v2/models/{NAME}").json()["refit"]["traffic"]
            assert meta["shadow"] == shadow and meta["split"] == {"v1": 100.0}
            assert metric(client, "refit_model_predict_seconds_count", revision=rev) == pairs
    reg.write_state("canary", {"version": None, "percent": 0})


def test_ab_arms_follow_the_request_id_and_feedback_lands_in_the_file(reg, bodies, tmp_path):
    salt = "exp-1"
    reg.write_state("canary", {"version": 2, "percent": 30, "experiment": {"salt": salt}})
    feedback = tmp_path / "fb" / "feedback.jsonl"
    app = create_app(
        reg.store_uri,
        NAME,
        state_refresh_seconds=0,
        feedback_path=str(feedback),
        feedback_token=SECRET.encode(),
    )
    with TestClient(app, headers={"Authorization": f"Bearer {SECRET}"}) as client:
        for _ in range(2):  # the same ids meet the same versions again
            for b in bodies:
                r = client.post(f"/v2/models/{NAME}/infer", json=b)
                want = "2" if assign_arm(b["id"], salt, 30) == TREATMENT else "1"
                assert (r.json()["id"], r.json()["model_version"]) == (b["id"], want)
        # A request without an id gets one, and its arm is that id's.
        no_id = {k: v for k, v in bodies[0].items() if k != "id"}
        r = client.post(f"/v2/models/{NAME}/infer", json=no_id).json()
        want = "2" if assign_arm(r["id"], salt, 30) == TREATMENT else "1"
        assert r["model_version"] == want
        ok = client.post(f"/v2/models/{NAME}/feedback", json={"id": "req-1", "value": 1})
        assert ok.status_code == 200 and ok.json() == {"accepted": 1}
        batch = {"events": [{"id": f"req-{i}", "value": 0.5} for i in range(10)]}
        assert client.post(f"/v2/models/{NAME}/feedback", json=batch).json() == {"accepted": 10}
        for bad, msg in (
            ({"id": "", "value": 1}, "'id' must be the request id"),
            ({"id": "x", "value": "1"}, "'value' must be a number"),
            ({"id": "x", "value": 1, "arm": "t"}, "unknown field"),
            ({"events": [{"id": "x", "value": 1}] * 1001}, "at most 1000"),
            ([1, 2], "must be an {id, value} object"),
        ):
            r = client.post(f"/v2/models/{NAME}/feedback", json=bad)
            assert r.status_code == 400 and msg in r.json()["error"], r.json()
        r = client.post(f"/v2/models/{NAME}/feedback", content=b'{"id": "x", "value": NaN}')
        assert r.status_code == 400
        assert (
            client.post("/v2/models/other/feedback", json={"id": "x", "value": 1}).status_code
            == 404
        )
        # without the secret, or with another one: refused, nothing written
        for headers in ({"Authorization": ""}, {"Authorization": "Bearer not-the-secret-at-all"}):
            r = client.post(
                f"/v2/models/{NAME}/feedback", json={"id": "forged", "value": 1}, headers=headers
            )
            assert r.status_code == 401 and "feedback secret" in r.json()["error"], r.json()
    events = read_feedback(feedback)
    assert [e["id"] for e in events] == ["req-1"] + [f"req-{i}" for i in range(10)]
    # a feedback file without a secret is refused when the server is built
    with pytest.raises(DataError, match="feedback secret"):
        create_app(reg.store_uri, NAME, feedback_path=str(feedback))
    for env, msg in (
        ({}, "feedback needs a secret"),
        ({"REFIT_FEEDBACK_TOKEN": "short"}, "too short"),
        ({"REFIT_FEEDBACK_TOKEN_FILE": str(tmp_path / "absent")}, "cannot read"),
    ):
        with pytest.raises(DataError, match=msg):
            load_feedback_token(env)
    (tmp_path / "token").write_text(SECRET + "\n")
    assert load_feedback_token({"REFIT_FEEDBACK_TOKEN_FILE": str(tmp_path / "token")}) == (
        SECRET.encode()
    )
    with TestClient(create_app(reg.store_uri, NAME)) as client:  # no feedback file: no endpoint
        r = client.post(f"/v2/models/{NAME}/feedback", json={"id": "x", "value": 1})
        assert r.status_code == 404 and "--feedback-file" in r.json()["error"]
    reg.write_state("canary", {"version": None, "percent": 0})


def test_a_stage_state_that_cannot_be_honoured_is_ignored(reg):
    for bad in ({"shadow": 99}, {"shadow": "2"}, {"version": 2, "percent": 10, "experiment": {}}):
        reg.write_state("canary", {"version": None, "percent": 0, **bad})
        state = read_rollout_state(reg)
        assert state.problem and state.shadow is None and not state.salt
    reg.write_state("canary", {"version": None, "percent": 0})


def test_compare_answers_regression_and_class_probabilities():
    a = {
        "outputs": [
            {"name": "predict", "data": [1, 0]},
            {"name": "predict_proba", "data": [0.2, 0.8, 0.9, 0.1]},
        ]
    }
    b = {
        "outputs": [
            {"name": "predict", "data": [1, 1]},
            {"name": "predict_proba", "data": [0.3, 0.7, 0.4, 0.6]},
        ]
    }
    pair = compare_answers(a, b)
    assert (pair.rows, pair.disagreements) == (2, 1) and pair.score_diff == pytest.approx(0.6)
    reg_a = {"outputs": [{"name": "predict", "data": [100.0, 5.0]}]}
    reg_b = {"outputs": [{"name": "predict", "data": [100.5, 6.0]}]}
    pair = compare_answers(reg_a, reg_b)
    assert pair.disagreements == 1 and pair.score_diff == pytest.approx(1.5)
    with pytest.raises(ValueError):
        compare_answers(a, {"outputs": []})


def test_plan_stages_round_trip_and_refuse_what_cannot_work():
    data = {
        "steps": [10, 100],
        "interval_seconds": 5,
        "deadline_seconds": 300,
        "shadow": {"analyses": 2, "max_disagreement": 0.1},
        "ab_test": {
            "metric": "proportion",
            "baseline_rate": 0.1,
            "mde": 0.02,
            "feedback_path": "f",
        },
    }
    plan = RolloutPlan.from_dict(data)
    assert plan.shadow == ShadowSpec(analyses=2, max_disagreement=0.1)
    assert plan.ab_test.sample_size().control > 3000
    assert RolloutPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    assert plan.min_duration_seconds == 15  # 2 shadow analyses + 1 step, 5 s each
    for change, msg in (
        ({"query_preset": "kserve"}, "shadow runs on refit's local model server"),
        ({"shadow": {"max_disagreement": 2}}, r"shadow.max_disagreement must be in \[0, 1\]"),
        ({"shadow": {"typo": 1}}, "unknown field"),
        ({"ab_test": {"mde": 0.1, "feedback_path": "f"}}, "ab_test.sd is needed"),
        (
            {
                "ab_test": {
                    "metric": "proportion",
                    "baseline_rate": 0.99,
                    "mde": 0.1,
                    "feedback_path": "f",
                }
            },
            "must both be in",
        ),
        ({"ab_test": {"sd": 1, "mde": 0.1}}, "feedback_path"),
        (
            {"ab_test": {"sd": 1, "mde": 0.1, "feedback_path": "f", "on_inconclusive": "x"}},
            "on_inconclusive",
        ),
        ({"steps": [100]}, "ab_test needs at least one canary step"),
        ({"deadline_seconds": 10}, "2 shadow analyses"),
    ):
        with pytest.raises(DeployError, match=msg):
            RolloutPlan.from_dict({**data, **change})
    with pytest.raises(DeployError, match="missing the required field 'mde'"):
        ABTestSpec.from_dict({"sd": 1.0, "feedback_path": "f"})


def test_a_stuck_shadow_never_delays_the_champion_and_extra_copies_are_dropped(reg, bodies):
    import threading

    from prometheus_client import CollectorRegistry

    from refit.serving.shadow import ShadowMirror

    release = threading.Event()

    def stuck(version, body):
        release.wait(60)
        raise RuntimeError("the shadow was stuck")

    reg.write_state("canary", {"version": None, "percent": 0, "shadow": 2})
    app = create_app(reg.store_uri, NAME, state_refresh_seconds=0)
    server = app.state.server
    metrics = CollectorRegistry()
    server.shadow = ShadowMirror(NAME, metrics, stuck, queue_size=2)
    try:
        with TestClient(app) as client:
            answers = [client.post(f"/v2/models/{NAME}/infer", json=b) for b in bodies[:20]]
            # Every answer came back while the shadow held its first copy: none waited for it.
            assert not release.is_set()
            assert [r.status_code for r in answers] == [200] * 20
            assert {r.json()["model_version"] for r in answers} == {"1"}
            dropped = metrics.get_sample_value(
                "refit_model_shadow_dropped_total", {"model": NAME, "revision": "v2"}
            )
            assert dropped >= 20 - 1 - 2  # one being answered, two waiting, the rest dropped
            release.set()
            server.shadow.join()
            errors = metrics.get_sample_value(
                "refit_model_shadow_errors_total", {"model": NAME, "revision": "v2"}
            )
            assert errors >= 1  # the shadow's failures are its own, counted
    finally:
        release.set()
        reg.write_state("canary", {"version": None, "percent": 0})
