"""Boosting checkpoints: two-slot folder, fingerprints, resumption locally and on gs://."""

import json
import logging
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pytest
from _gcs import fake_gcs

from refit.io import uri as uri_mod
from refit.training import CheckpointStore, train

PARAMS = {"n_estimators": 40, "max_depth": 2, "n_jobs": 1}


def table(n: int = 500, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    label = (x[:, 0] + x[:, 1] * x[:, 2] + 0.3 * rng.normal(size=n) > 0).astype(int)
    return pa.table({**{f"x{i}": x[:, i] for i in range(4)}, "label": label})


class Preempted(Exception):
    """Stands in for the node going away part way through training."""


def interrupted_run(checkpoint_dir: str, stop_at: int, params: dict = PARAMS) -> None:
    def on_round(done: int, total: int) -> None:
        if done == stop_at:
            raise Preempted(f"pre-empted after round {done}")

    with pytest.raises(Preempted):
        train(
            table(),
            "label",
            params=params,
            checkpoint_dir=checkpoint_dir,
            checkpoint_every=5,
            on_round=on_round,
            device="cpu",
        )


def test_store_round_trip_alternates_slots(tmp_path):
    store = CheckpointStore(str(tmp_path), "f1")
    assert store.latest() is None
    store.save(5, b"{five}", total_rounds=20)
    store.save(10, b"{ten}", total_rounds=20)
    pointer = json.loads((tmp_path / "checkpoint.json").read_text())
    assert pointer["round"] == 10 and pointer["file"] == "checkpoint-b.ubj"
    assert (tmp_path / "checkpoint-a.ubj").read_bytes() == b"{five}"
    fresh = CheckpointStore(str(tmp_path), "f1")
    latest = fresh.latest()
    assert latest is not None and latest.round == 10 and latest.data == b"{ten}"
    fresh.save(15, b"{fifteen}", total_rounds=20)  # overwrites the older slot, never the newest
    assert (tmp_path / "checkpoint-b.ubj").read_bytes() == b"{ten}"
    assert CheckpointStore(str(tmp_path), "f1").latest().round == 15


def test_other_fingerprint_or_corrupt_slot_is_ignored_with_a_reason(tmp_path, caplog):
    CheckpointStore(str(tmp_path), "f1").save(5, b"{five}", total_rounds=20)
    with caplog.at_level(logging.WARNING, logger="refit.training"):
        assert CheckpointStore(str(tmp_path), "other").latest() is None
    assert "belongs to another training" in caplog.text
    (tmp_path / "checkpoint-a.ubj").write_bytes(b"{half-written")
    with caplog.at_level(logging.WARNING, logger="refit.training"):
        assert CheckpointStore(str(tmp_path), "f1").latest() is None
    assert "does not match" in caplog.text


def test_interrupted_training_resumes_and_matches_an_uninterrupted_run(tmp_path):
    full = train(table(), "label", params=PARAMS, device="cpu")
    ckpt = str(tmp_path / "ckpt")
    interrupted_run(ckpt, stop_at=23)
    assert json.loads((tmp_path / "ckpt" / "checkpoint.json").read_text())["round"] == 20
    seen: list[int] = []
    resumed = train(
        table(),
        "label",
        params=PARAMS,
        checkpoint_dir=ckpt,
        checkpoint_every=5,
        on_round=lambda done, total: seen.append(done),
        device="cpu",
    )
    assert resumed.resumed_from_round == 20
    assert resumed.info["rounds_skipped"] == 20
    assert seen[0] == 20 and seen[1] == 21 and seen[-1] == 40  # rounds 1-20 were not redone
    assert resumed.info["rounds"] == 40
    np.testing.assert_allclose(
        resumed.predict_proba(table()), full.predict_proba(table()), atol=1e-6
    )


def test_changed_parameters_start_from_round_zero(tmp_path):
    ckpt = str(tmp_path / "ckpt")
    interrupted_run(ckpt, stop_at=12)
    other = train(
        table(),
        "label",
        params={**PARAMS, "learning_rate": 0.1},
        checkpoint_dir=ckpt,
        checkpoint_every=5,
        device="cpu",
    )
    assert other.resumed_from_round == 0
    again = train(table(), "label", params=PARAMS, checkpoint_dir=ckpt, checkpoint_every=5)
    assert again.resumed_from_round == 0  # the other run's checkpoints replaced ours


@pytest.fixture(scope="module")
def gcs_bucket() -> Iterator[str]:
    with fake_gcs("refit-ckpt-test"):
        yield "gs://refit-ckpt-test"


def test_checkpoints_on_gcs_resume(gcs_bucket):
    full = train(table(), "label", params=PARAMS, device="cpu")
    ckpt = f"{gcs_bucket}/runs/r1"
    interrupted_run(ckpt, stop_at=17)
    listed = uri_mod.list_prefix(ckpt)
    assert f"{ckpt}/checkpoint.json" in listed
    assert json.loads(uri_mod.read_bytes(f"{ckpt}/checkpoint.json"))["round"] == 15
    resumed = train(table(), "label", params=PARAMS, checkpoint_dir=ckpt, checkpoint_every=5)
    assert resumed.resumed_from_round == 15
    np.testing.assert_allclose(
        resumed.predict_proba(table()), full.predict_proba(table()), atol=1e-6
    )
