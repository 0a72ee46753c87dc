"""The streaming change detector in the real trigger service process (`refit serve-triggers`)."""

from __future__ import annotations

import json
import random
import signal

import httpx
from _servers import ServeProcess

from refit.audit import AuditLog

SECRET = "s3cret-token-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {SECRET}"}
MODEL = "credit-default"


def batches(seed: int, error_rates: list[float], size: int = 500) -> list[list[int]]:
    """One batch of 0/1 errors per rate, seeded."""
    rng = random.Random(seed)
    return [[int(rng.random() < rate) for _ in range(size)] for rate in error_rates]


def send(url: str, batch_id: str, values: list, stream: str = "errors") -> httpx.Response:
    body = {"batch_id": batch_id, "model": MODEL, "stream": stream, "values": values}
    return httpx.post(url + "/hooks/stream", json=body, headers=AUTH, timeout=60)


def test_a_change_in_the_error_stream_launches_exactly_one_run_through_dedupe_and_cooldown(
    tmp_path,
):
    state = tmp_path / "state.db"
    config = {
        "state_path": str(state),
        "cooldown_seconds": 3600,
        "models": {
            MODEL: {
                "policy": {"drift_share_threshold": 0.3},
                "params": {"data_uri": "gs://b/latest.parquet", "store_uri": "gs://b/store"},
                "streaming": {"threshold": 100, "delta": 0.02},
            }
        },
    }
    path = tmp_path / "serve.json"
    path.write_text(json.dumps(config))
    server = ServeProcess(path, SECRET)
    # 10 stable batches (10% errors), then the model breaks (40% errors) for 6 batches.
    stable, broken = batches(7, [0.1] * 10), batches(8, [0.4] * 6)
    try:
        answers = [send(server.url, f"b{i}", v).json() for i, v in enumerate(stable[:5])]
        # Killed (no graceful stop) mid-stream: the detector resumes from its stored state.
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
        server.start()
        answers += [send(server.url, f"b{i}", v).json() for i, v in enumerate(stable) if i >= 5]
        assert [a["result"] for a in answers] == ["no change"] * 10
        assert answers[-1]["rows"] == 5000  # no batch lost or counted twice across the kill
        assert all(a["decisions"] == [] for a in answers)

        changed = [send(server.url, f"c{i}", v).json() for i, v in enumerate(broken)]
        first = next(i for i, a in enumerate(changed) if a["fired"])
        assert first <= 1, changed  # caught within the first 1,000 rows of the change
        fired = changed[first]
        (decision,) = fired["decisions"]
        assert decision["decision"] == "launch"
        assert decision["trigger"].startswith(f"Page-Hinkley on the errors stream of {MODEL}")
        # Any later detection is held by the same cooldown as alerts.
        for later in changed[first + 1 :]:
            for d in later["decisions"]:
                assert d["decision"] == "held"
                assert d["reasons"][0].startswith("cooldown: last run for credit-default")

        # The firing batch re-sent: a duplicate, the detector untouched, nothing decided.
        again = send(server.url, f"c{first}", broken[first]).json()
        assert again["result"] == "duplicate" and again["decisions"] == []

        runs = httpx.get(server.url + "/runs", headers=AUTH).json()["runs"]
        assert len(runs) == 1
        assert runs[0]["model"] == MODEL and runs[0]["status"] == "logged"
        assert runs[0]["trigger"] == decision["trigger"]

        # Bad batches: clear 4xx, counted, nothing decided.
        r = send(server.url, "bad", [0, 2])
        assert r.status_code == 422 and "values[1] must be in [0.0, 1.0]" in r.json()["detail"]
        r = httpx.post(server.url + "/hooks/stream", json={"batch_id": "x"}, timeout=10)
        assert r.status_code == 401
        r = httpx.post(
            server.url + "/hooks/stream",
            json={"batch_id": "x", "model": "nope", "stream": "errors", "values": [0]},
            headers=AUTH,
            timeout=10,
        )
        assert r.status_code == 404 and "unknown model 'nope'" in r.json()["detail"]
        metrics = httpx.get(server.url + "/metrics").text
        assert 'refit_hooks_rejected_total{hook="stream",reason="malformed"} 1.0' in metrics
    finally:
        server.stop()
    audit = AuditLog(str(state) + ".audit.jsonl")
    launches = [r for r in audit.records("trigger_decision") if r["payload"]["hook"] == "stream"]
    assert launches[0]["payload"]["decision"] == "launch"
    assert sum(r["payload"]["decision"] == "launch" for r in launches) == 1
    assert audit.verify() == []
