"""A fleet behind one trigger service: per-model locks, one in-flight limit, fleet schedules."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from refit.triggers.config import ServiceConfig
from refit.triggers.launchers import LogLauncher
from refit.triggers.payloads import TriggerEvent
from refit.triggers.service import TriggerService, UnknownModelError
from refit.triggers.state import StateStore

PARAMS = {"data_uri": "gs://b/latest.parquet", "store_uri": "gs://b/store"}
MODELS = 1000


def _fleet(tmp_path: Path, models: int = MODELS, **extra) -> ServiceConfig:
    return ServiceConfig.from_dict(
        {
            "state_path": str(tmp_path / "state.db"),
            "cooldown_seconds": 0,
            "max_in_flight": 100_000,
            **extra,
            "models": {
                f"m{i:04d}": {
                    "policy": {"drift_share_threshold": 0.3},
                    "params": PARAMS,
                    "schedule": "0 2 * * *",
                }
                for i in range(models)
            },
        }
    )


def _alert(model: str, key: str) -> TriggerEvent:
    return TriggerEvent("generic", model, f"generic|{key}", "test", drift_share=0.5)


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_in_flight_limit_holds_across_concurrent_inserts(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state.db")
    ids: list[int | None] = []
    barrier = threading.Barrier(16)

    def insert(i: int) -> None:
        barrier.wait()
        ids.append(
            state.add_run(
                model=f"m{i}",
                hook="generic",
                trigger="t",
                reasons=[],
                params={},
                launcher="kfp",
                now=1.0,
                max_in_flight=5,
            )  # fmt: skip
        )

    threads = [threading.Thread(target=insert, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(i is not None for i in ids) == 5
    assert state.in_flight() == 5
    assert len(state.runs()) == 5
    state.close()


def test_a_busy_model_does_not_hold_up_the_others(tmp_path: Path) -> None:
    service = TriggerService(_fleet(tmp_path, models=3), LogLauncher())
    try:
        with service._decide_locks["m0000"]:  # a decision of m0000 in progress
            # with one lock for all models this call would wait for m0000 (here: forever)
            decided = service.handle(_alert("m0001", "a"))
        assert decided["decision"] == "launch"
    finally:
        service.stop()


def test_a_thousand_models_decide_at_once_one_run_per_event(tmp_path: Path) -> None:
    service = TriggerService(_fleet(tmp_path, max_in_flight=MODELS + 10), LogLauncher())
    names = sorted(service.config.models)
    events = [_alert(n, n) for n in names]
    events = events + events  # every event re-sent
    results: list[dict] = []
    lock = threading.Lock()

    def work(part: list[TriggerEvent]) -> None:
        for event in part:
            out = service.handle(event)
            with lock:
                results.append(out)

    threads = [threading.Thread(target=work, args=(events[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        decisions = [r["decision"] for r in results]
        assert decisions.count("launch") == MODELS
        assert decisions.count("duplicate") == MODELS
        runs = service.state.runs(limit=10 * MODELS)
        assert len(runs) == MODELS
        assert len({r["params"]["run_label"] for r in runs}) == MODELS
        assert {r["model"] for r in runs} == set(names)
    finally:
        service.stop()


def test_a_fleet_schedule_fires_once_per_model_per_due_time(tmp_path: Path) -> None:
    clock = _Clock(1_764_000_000.0)  # 2025-11-24T16:00:00Z
    service = TriggerService(_fleet(tmp_path), LogLauncher(), clock=clock)
    try:
        assert service.scheduler_tick_once() == []  # first sight: remembered, not fired
        clock.now += 3600
        assert service.scheduler_tick_once() == []  # 17:00: not yet 02:00
        clock.now += 10 * 3600  # past 02:00 the next day
        fired = service.scheduler_tick_once()
        assert len(fired) == MODELS
        assert {f["model"] for f in fired} == set(service.config.models)
        assert {f["decision"] for f in fired} == {"launch"}
        clock.now += 60
        assert service.scheduler_tick_once() == []
        runs = service.state.runs(limit=10 * MODELS)
        assert len(runs) == MODELS and {r["hook"] for r in runs} == {"schedule"}
    finally:
        service.stop()
    # a restart reads the fires back from SQLite: nothing is due again
    again = TriggerService(_fleet(tmp_path), LogLauncher(), clock=clock)
    try:
        assert again.scheduler_tick_once() == []
    finally:
        again.stop()


def test_an_unknown_model_is_named_with_a_short_list(tmp_path: Path) -> None:
    service = TriggerService(_fleet(tmp_path), LogLauncher())
    try:
        with pytest.raises(UnknownModelError) as info:
            service.handle(_alert("nope", "x"))
        message = str(info.value)
        assert "'nope'" in message and "m0000" in message and "and 980 more" in message
        assert len(message) < 400
    finally:
        service.stop()
