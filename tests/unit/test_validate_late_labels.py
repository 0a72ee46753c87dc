"""validate_data with late_labels: an unlabelled window passes, every other check unchanged."""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from refit.errors import SchemaError
from refit.steps.data import validate_data


def _window(path: Path, seed: int, *, label: str = "int", shift: float = 0.0) -> str:
    rng = np.random.default_rng(seed)
    columns = {"x": rng.uniform(0, 10, 200) + shift, "c": rng.choice(["a", "b"], 200)}
    if label == "int":
        columns["label"] = rng.integers(0, 2, 200)
    elif label == "null":
        columns["label"] = pa.nulls(200, pa.int64())
    pq.write_table(pa.table(columns), path)
    return str(path)


@pytest.fixture
def reference(tmp_path: Path) -> tuple[str, str]:
    """A labelled reference and the schema refit infers from it (as the champion has)."""
    ref = _window(tmp_path / "ref.parquet", 0)
    out = validate_data(ref, "label", anomalies_path=str(tmp_path / "ref.pbtxt"))
    assert out.passed, out.anomalies
    return ref, str(tmp_path / "ref.schema.pbtxt")


@pytest.mark.parametrize("label", ["missing", "null"])
def test_unlabelled_window_is_an_anomaly_by_default(tmp_path, reference, label) -> None:
    ref, schema = reference
    cur = _window(tmp_path / "cur.parquet", 1, label=label)
    out = validate_data(cur, "label", reference_path=ref, schema_path=schema)
    assert not out.passed
    assert {a["feature"] for a in out.anomalies} == {"label"}
    assert out.labelled and out.audit["labelled"] is True
    assert "Unlabelled window" not in out.html


@pytest.mark.parametrize(("label", "how"), [("missing", "is not in"), ("null", "entirely null")])
def test_late_labels_lets_an_unlabelled_window_through(tmp_path, reference, label, how) -> None:
    ref, schema = reference
    cur = _window(tmp_path / "cur.parquet", 1, label=label)
    out = validate_data(cur, "label", reference_path=ref, schema_path=schema, late_labels=True)
    assert out.passed, out.anomalies
    assert out.labelled is False and out.audit["labelled"] is False
    assert "Unlabelled window: label column &#x27;label&#x27;" in out.html and how in out.html
    # first run (no reference, no schema): the same
    first = validate_data(cur, "label", late_labels=True)
    assert first.passed and first.labelled is False


def test_late_labels_keeps_every_other_check(tmp_path, reference) -> None:
    ref, schema = reference
    shifted = _window(tmp_path / "cur.parquet", 1, label="missing", shift=100.0)
    out = validate_data(shifted, "label", reference_path=ref, schema_path=schema, late_labels=True)
    assert not out.passed and out.labelled is False
    assert {a["feature"] for a in out.anomalies} == {"x"}
    # a labelled window: late_labels changes nothing
    cur = _window(tmp_path / "lab.parquet", 1, shift=100.0)
    on = validate_data(cur, "label", reference_path=ref, schema_path=schema, late_labels=True)
    off = validate_data(cur, "label", reference_path=ref, schema_path=schema)
    assert on.labelled and on.anomalies == off.anomalies and on.audit == off.audit
    # an empty window without labels is still an empty window
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"x": pa.array([], pa.float64())}), empty)
    out = validate_data(str(empty), "label", late_labels=True)
    assert not out.passed and {a["kind"] for a in out.anomalies} >= {"DATASET_LOW_NUM_EXAMPLES"}


def test_late_labels_must_be_a_boolean(tmp_path) -> None:
    cur = _window(tmp_path / "cur.parquet", 1)
    with pytest.raises(SchemaError, match="late_labels must be true or false, got 'yes'"):
        validate_data(cur, "label", late_labels="yes")  # type: ignore[arg-type]
