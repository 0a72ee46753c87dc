"""The prediction log, late labels joined to it, and the streaming detector's stored state."""

from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from refit.errors import DataError
from refit.monitoring.labels import (
    LabelError,
    join_labels,
    markdown,
    read_labels,
    record_join,
    write_report,
)
from refit.monitoring.predictions import (
    PredictionLog,
    PredictionLogError,
    read_predictions,
)
from refit.registry import ModelRegistry
from refit.serving import create_app
from refit.training import save_model, train
from refit.triggers.payloads import PayloadError
from refit.triggers.streaming import StreamSettings, _detector, _state, stream_batch


def record(i: int, day: int = 1, p: float = 0.8, prediction: int = 1) -> dict:
    return {
        "id": f"r{i}",
        "time": f"2026-12-{day:02d}T10:00:00Z",
        "prediction": prediction,
        "proba": {"0": round(1 - p, 6), "1": p},
    }


# --------------------------------------------------------------------------- prediction log


def test_log_rotates_by_size_keeps_at_most_n_segments_and_reads_back_in_order(tmp_path):
    log = PredictionLog(tmp_path / "log", max_segment_bytes=2048, max_segments=3)
    for i in range(200):
        log.write([record(i)])
    log.close()
    segments = log.segments()
    assert len(segments) == 3  # bounded: the oldest were deleted
    assert all(s.stat().st_size <= 2048 for s in segments)
    frame = read_predictions(tmp_path / "log").frame
    ids = [int(i[1:]) for i in frame["id"]]
    assert ids == sorted(ids) and ids[-1] == 199 and ids[0] > 0  # newest kept, in order
    assert str(frame["time"].dt.tz) == "UTC"


def test_a_torn_last_line_is_skipped_on_read_and_never_appended_to(tmp_path):
    log = PredictionLog(tmp_path, max_segment_bytes=1 << 20)
    log.write([record(1), record(2)])
    log.close()
    (segment,) = log.segments()
    with segment.open("ab") as f:  # a writer killed mid-line
        f.write(b'{"id": "r3", "time": "2026-12-0')
    read = read_predictions(tmp_path)
    assert list(read.frame["id"]) == ["r1", "r2"]
    assert read.torn == [f"{segment}:3"]
    reopened = PredictionLog(tmp_path, max_segment_bytes=1 << 20)
    reopened.write([record(4)])
    reopened.close()
    assert len(reopened.segments()) == 2  # a new segment, not glued onto the torn line
    assert list(read_predictions(tmp_path).frame["id"]) == ["r1", "r2", "r4"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not JSON"),
        (json.dumps({"time": "2026-12-01T00:00:00Z", "prediction": 1}), "id must be"),
        (json.dumps({"id": "a", "time": "2026-12-01T00:00:00", "prediction": 1}), "no time zone"),
        (json.dumps({"id": "a", "time": "yesterday", "prediction": 1}), "not an ISO 8601 time"),
        (json.dumps({"id": "a", "time": "2026-12-01T00:00:00Z"}), "prediction is missing"),
        (
            json.dumps({**record(1), "proba": {"0": 0.5, "1": 0.6}}),
            "proba must sum to 1",
        ),
        (json.dumps({**record(1), "version": 0}), "version must be a positive integer"),
        (json.dumps({**record(1), "colour": "red"}), "unknown field(s) colour"),
        ('{"id": "a", "time": "2026-12-01T00:00:00Z", "prediction": NaN}', "NaN is not JSON"),
        (json.dumps({"id": "x" * 300, "time": "2026-12-01T00:00:00Z", "prediction": 1}), "256"),
    ],
)
def test_bad_lines_are_named_by_file_and_line(tmp_path, line, message):
    path = tmp_path / "user.jsonl"
    path.write_text(json.dumps(record(1)) + "\n" + line + "\n" + json.dumps(record(2)) + "\n")
    with pytest.raises(PredictionLogError) as err:
        read_predictions(path)
    assert f"{path}:2:" in str(err.value)
    assert message in str(err.value)


def test_many_bad_lines_are_counted_and_the_first_ten_named(tmp_path):
    path = tmp_path / "user.jsonl"
    path.write_text("".join("[]\n" for _ in range(25)))
    with pytest.raises(PredictionLogError, match=r"25 bad line\(s\).*\(and 15 more\)"):
        read_predictions(path)


def test_an_over_long_line_is_refused_without_reading_it_whole(tmp_path):
    path = tmp_path / "user.jsonl"
    long = json.dumps({**record(1), "features": {"x": "y" * (1 << 20)}})
    path.write_text(long + "\n" + json.dumps(record(2)) + "\n" + "\n")
    with pytest.raises(PredictionLogError) as err:
        read_predictions(path)
    assert f"{path}:1: line is over 1048576 bytes" in str(err.value)
    assert f"{path}:3: empty line" in str(err.value) and "2 bad line(s)" in str(err.value)


def test_bad_log_bounds_and_paths_are_refused(tmp_path):
    with pytest.raises(DataError, match="max_segment_bytes must be >= 1024"):
        PredictionLog(tmp_path, max_segment_bytes=10)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="is a file"):
        PredictionLog(tmp_path / "file")
    with pytest.raises(PredictionLogError, match="does not exist"):
        read_predictions(tmp_path / "missing.jsonl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PredictionLogError, match=r"holds no \*\.jsonl file"):
        read_predictions(tmp_path / "empty")


def test_the_model_server_logs_each_answered_row_with_the_response_id(tmp_path, windows):
    model = train(windows[0], "default", trainer="logistic_regression", exclude=["event_time"])
    save_model(model, tmp_path / "m")
    reg = ModelRegistry(str(tmp_path / "store"), "credit")
    reg.register(
        tmp_path / "m",
        metrics={"accuracy": 0.8},
        snapshot_sha256="1" * 64,
        run_label="r",
        parent_version=None,
    )
    reg.set_alias("champion", 1)
    log = PredictionLog(tmp_path / "predictions")
    client = TestClient(
        create_app(reg.store_uri, "credit", state_refresh_seconds=0, prediction_log=log)
    )
    rows = windows[2].slice(0, 3)
    spec = model.spec
    inputs = [
        {
            "name": f,
            "shape": [3],
            "datatype": "BYTES" if f in spec.categorical else "FP64",
            "data": rows.column(f).to_pylist(),
        }
        for f in spec.feature_columns
    ]
    answer = client.post("/v2/models/credit/infer", json={"id": "req-1", "inputs": inputs}).json()
    unnamed = client.post("/v2/models/credit/infer", json={"inputs": inputs}).json()
    bad = client.post("/v2/models/credit/infer", json={"id": "bad", "inputs": inputs[:1]})
    assert bad.status_code == 400  # refused requests are not predictions: not logged
    log.close()
    frame = read_predictions(tmp_path / "predictions").frame
    assert list(frame["id"]) == [f"req-1#{i}" for i in range(3)] + [
        f"{unnamed['id']}#{i}" for i in range(3)
    ]
    predicted = next(o for o in answer["outputs"] if o["name"] == "predict")["data"]
    assert list(frame["prediction"][:3]) == predicted
    proba = next(o for o in answer["outputs"] if o["name"] == "predict_proba")["data"]
    assert frame["proba"][0] == {str(c): p for c, p in zip(model.classes, proba[:2], strict=True)}
    assert set(frame["version"]) == {1} and set(frame["model"]) == {"credit"}


# --------------------------------------------------------------------------- late labels


@pytest.fixture
def logged(tmp_path):
    """Three days of 200 predictions each, seeded; the model is right 80% of the time on day
    1 and 2, and 50% on day 3 (a concept change its probabilities cannot see)."""
    rng = random.Random(3)
    log = PredictionLog(tmp_path / "log")
    truth = {}
    for day in (1, 2, 3):
        for i in range(200):
            p = 0.8
            pred = int(rng.random() < 0.5)
            right = rng.random() < (0.8 if day < 3 else 0.5)
            rid = f"d{day}-{i}"
            proba = {"0": 1 - p, "1": p} if pred else {"0": p, "1": 1 - p}
            log.write(
                [
                    {
                        "id": rid,
                        "time": f"2026-12-0{day}T12:00:00Z",
                        "prediction": pred,
                        "proba": proba,
                    }
                ]
            )
            truth[rid] = pred if right else 1 - pred
    log.close()
    return read_predictions(tmp_path / "log"), truth


def labels_frame(truth, ids, when="2026-12-20T00:00:00Z"):
    return pd.DataFrame(
        {"id": ids, "label": [truth[i] for i in ids], "time": pd.to_datetime([when] * len(ids))}
    )


def test_labels_landing_late_complete_windows_one_by_one(logged):
    predictions, truth = logged
    day1 = [f"d1-{i}" for i in range(200)]
    day2_half = [f"d2-{i}" for i in range(100)]
    first = join_labels(predictions, labels_frame(truth, day1 + day2_half), window="1d")
    status = {w.start[:10]: (w.status, w.n_labelled) for w in first.windows}
    assert status == {
        "2026-12-01": ("complete", 200),
        "2026-12-02": ("partial", 100),
        "2026-12-03": ("unlabelled", 0),
    }
    assert first.unlabelled_windows == ["2026-12-02T00:00:00Z", "2026-12-03T00:00:00Z"]
    w1 = first.windows[0]
    hits = [predictions.frame.set_index("id").loc[i, "prediction"] == truth[i] for i in day1]
    assert w1.realised == pytest.approx(np.mean(hits))
    assert w1.estimate["value"] == pytest.approx(0.8)  # every row predicted with p = 0.8
    assert w1.estimate["method"] == "CBPE" and "no concept shift" in w1.estimate["assumption"]
    assert w1.label_delay_hours_median == pytest.approx(19 * 24 - 12)

    # Weeks later the rest lands (with a re-sent duplicate): day 3's concept change shows.
    rest = [f"d2-{i}" for i in range(100, 200)] + [f"d3-{i}" for i in range(200)]
    later = join_labels(
        predictions,
        [labels_frame(truth, day1 + day2_half), labels_frame(truth, rest + day1[:5])],
        window="1d",
    )
    assert [w.status for w in later.windows] == ["complete"] * 3
    assert later.unlabelled_windows == []
    assert later.duplicate_labels == 5
    day3 = later.windows[2]
    assert day3.realised < 0.6 and day3.estimate["value"] == pytest.approx(0.8)
    assert day3.realised_within_interval is False  # the estimate missed the concept change
    assert day3.realised_minus_estimate == pytest.approx(day3.realised - 0.8)
    assert later.windows[0].realised_within_interval is True


def test_unknown_and_conflicting_ids_are_named(logged):
    predictions, truth = logged
    extra = pd.DataFrame({"id": ["d1-0", "ghost-1", "ghost-2"], "label": [truth["d1-0"], 1, 0]})
    join = join_labels(predictions, extra, window="1d")
    assert join.n_unknown == 2 and join.unknown_ids == ["ghost-1", "ghost-2"]
    assert "ghost-1" in markdown(join)
    conflicting = pd.DataFrame({"id": ["d1-0", "d1-0"], "label": [0, 1]})
    with pytest.raises(LabelError, match=r"two different labels: 'd1-0'"):
        join_labels(predictions, conflicting)


def test_duplicate_prediction_ids_are_left_out_and_named(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(record(i % 3)) + "\n" for i in range(4)))
    join = join_labels(
        read_predictions(path), pd.DataFrame({"id": ["r0", "r1", "r2"], "label": [1, 1, 0]})
    )
    assert join.ambiguous_ids == ["r0"] and join.n_ambiguous == 1
    (window,) = join.windows
    assert window.n_predictions == 2 and window.realised == pytest.approx(0.5)


def test_labels_files_in_every_format_read_alike_and_bad_ones_are_named(tmp_path):
    frame = pd.DataFrame(
        {
            "id": ["a", "b"],
            "label": [1, 0],
            "time": ["2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z"],
        }
    )
    frame.to_csv(tmp_path / "l.csv", index=False)
    frame.to_parquet(tmp_path / "l.parquet")
    (tmp_path / "l.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in frame.to_dict("records"))
    )
    read = [read_labels(tmp_path / f"l.{ext}") for ext in ("csv", "parquet", "jsonl")]
    for r in read:
        assert list(r["id"]) == ["a", "b"] and [int(v) for v in r["label"]] == [1, 0]
        assert str(r["time"].dt.tz) == "UTC"
    (tmp_path / "bad.csv").write_text("id,verdict\na,1\n")
    with pytest.raises(LabelError, match=r"has no column\(s\) label"):
        read_labels(tmp_path / "bad.csv")
    (tmp_path / "gap.csv").write_text("id,label\na,1\n,0\nc,\n")
    with pytest.raises(LabelError, match=r"id must be a non-empty string.*row\(s\) \[1\]"):
        read_labels(tmp_path / "gap.csv")
    (tmp_path / "nolabel.csv").write_text("id,label\na,1\nc,\n")
    with pytest.raises(LabelError, match=r"label is missing or not finite in 1 row\(s\)"):
        read_labels(tmp_path / "nolabel.csv")
    (tmp_path / "naive.csv").write_text("id,label,time\na,1,2026-12-01T00:00:00\n")
    with pytest.raises(LabelError, match="no time zone"):
        read_labels(tmp_path / "naive.csv")
    (tmp_path / "l.xlsx").write_bytes(b"PK")
    with pytest.raises(LabelError, match="unknown file type"):
        read_labels(tmp_path / "l.xlsx")


def test_bad_join_arguments_are_refused(logged):
    predictions, _ = logged
    none = pd.DataFrame({"id": [], "label": []})
    with pytest.raises(LabelError, match="window 'soon' is not a duration"):
        join_labels(predictions, none, window="soon")
    with pytest.raises(LabelError, match="metric must be one of accuracy, mae"):
        join_labels(predictions, none, metric="f1")
    with pytest.raises(LabelError, match=r"min_coverage must be in \(0, 1\]"):
        join_labels(predictions, none, min_coverage=0)


def test_realised_and_estimate_are_recorded_once_per_window_and_label_count(logged, tmp_path):
    predictions, truth = logged
    ids = [f"d1-{i}" for i in range(200)] + [f"d2-{i}" for i in range(50)]
    store = str(tmp_path / "store")
    join = join_labels(predictions, labels_frame(truth, ids))
    written = record_join(join, store, "credit")
    assert [r["payload"]["start"] for r in written] == ["2026-12-01T00:00:00Z"]
    payload = written[0]["payload"]
    assert payload["realised"] == join.windows[0].realised
    assert payload["estimate"]["value"] == pytest.approx(0.8)
    assert record_join(join, store, "credit") == []  # nothing new: nothing appended
    json_path, md_path = write_report(join, tmp_path / "report")
    data = json.loads(json_path.read_text())
    assert data["unlabelled_windows"] == ["2026-12-02T00:00:00Z", "2026-12-03T00:00:00Z"]
    assert "Still waiting for labels" in md_path.read_text()


# --------------------------------------------------------------------------- streaming detector


def test_the_detector_restored_from_its_stored_state_decides_as_one_that_ran_through():
    rng = random.Random(11)
    values = [float(rng.random() < (0.1 if i < 3000 else 0.35)) for i in range(6000)]
    settings = StreamSettings(threshold=25)
    whole = _detector(settings, "errors", None)
    through = [i for i, v in enumerate(values) if (whole.update(v), whole.drift_detected)[1]]
    pieces, state = [], None
    for start in range(0, len(values), 250):  # a batch at a time, through JSON
        ph = _detector(settings, "errors", state)
        for i, v in enumerate(values[start : start + 250], start):
            ph.update(v)
            if ph.drift_detected:
                pieces.append(i)
        state = json.loads(json.dumps(_state(ph)))
    assert pieces == through and through and 3000 <= through[0] < 3600


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "body must be an object"),
        ({"model": "m", "stream": "errors", "values": [0]}, "batch_id must be a non-empty"),
        ({"batch_id": "b", "model": "m", "stream": "loss", "values": [0]}, "stream must be one of"),
        ({"batch_id": "b", "model": "m", "stream": "errors", "values": []}, "non-empty list"),
        ({"batch_id": "b", "model": "m", "stream": "errors", "values": [0.5, 1.5]}, "values[1]"),
        ({"batch_id": "b", "model": "m", "stream": "errors", "values": ["1"]}, "values[0]"),
        ({"batch_id": "b", "model": "m", "stream": "errors", "values": [True]}, "values[0]"),
        ({"batch_id": "b" * 300, "model": "m", "stream": "errors", "values": [0]}, "at most 256"),
        ({"batch_id": "b", "model": "m", "stream": "errors", "values": [0] * 100_001}, "limit"),
        ({"batch_id": "b", "model": "m", "stream": "errors", "values": [0], "x": 1}, "unknown"),
    ],
)
def test_bad_stream_batches_are_refused_naming_the_field(body, message):
    with pytest.raises(PayloadError) as err:
        stream_batch(body)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"threshold": 0}, "threshold must be a number in (0, 1e+09]"),
        ({"delta": -0.1}, "delta must be a number in [0, 1]"),
        ({"alpha": 1.5}, "alpha must be a number in (0, 1]"),
        ({"min_instances": 0}, "min_instances must be an integer"),
        ({"lambda": 3}, "unknown field(s) lambda"),
        ("fast", "must be an object"),
    ],
)
def test_bad_stream_settings_are_refused(settings, message):
    with pytest.raises(ValueError) as err:
        StreamSettings.from_dict(settings, "models.m.streaming")
    assert "models.m.streaming" in str(err.value) and message in str(err.value)
