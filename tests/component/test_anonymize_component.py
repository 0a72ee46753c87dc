"""anonymize_data through kfp.local: before training, and the key never leaves the environment."""

import base64
import random
import string
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from kfp import compiler, dsl
from kfp.dsl import Dataset

from refit.components import record_results, snapshot_data, train_model
from refit.components.anonymize_data.component import anonymize_data
from refit.demo.data import TARGET, TIME_COLUMN
from refit.io.snapshot import load_snapshot
from refit.io.tables import write_parquet
from refit.privacy import TOKEN_HEX_CHARS, mark_pii, save_schema
from refit.registry import ModelRegistry
from refit.validation import compute_statistics, infer_schema

pytestmark = pytest.mark.slow
MODEL = "m"
COMPONENT_YAML = Path(__file__).resolve().parents[2] / "components/anonymize_data/component.yaml"
KEY = "".join(random.Random(10).choices(string.ascii_letters + string.digits, k=48))
PRIVACY = {
    "drop": ["email"],
    "tokenize": ["customer_id"],
    "generalize": {"age": {"bucket": 10}, TIME_COLUMN: {"truncate": "day"}},
}


def _key_forms() -> list[bytes]:
    raw = KEY.encode()
    b64 = base64.b64encode(raw)
    return [raw, raw.hex().encode(), raw.hex().upper().encode(), b64, b64.rstrip(b"=")] + [
        base64.urlsafe_b64encode(raw),
        base64.b32encode(raw),
    ]


def _with_pii(table: pa.Table) -> pa.Table:
    rng = np.random.default_rng(3)
    n = table.num_rows
    ids = [f"C{int(i):05d}" for i in rng.integers(0, n // 4, n)]
    return table.append_column("customer_id", pa.array(ids)).append_column(
        "email", pa.array([f"{c.lower()}.{i}@example.org" for i, c in enumerate(ids)])
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory, kfp_local, windows) -> tuple[Path, str, pa.Table]:
    """A store whose curated schema tags age, customer_id and email as PII; the raw window."""
    store = tmp_path_factory.mktemp("privacy_store")
    table = _with_pii(windows[0])
    schema = infer_schema(compute_statistics(table))
    save_schema(str(store), MODEL, mark_pii(schema, ["age", "customer_id", "email"]))
    data = store.parent / "raw_window.parquet"
    write_parquet(table, str(data))
    return store, str(data), table


@dsl.pipeline
def _anonymize_then_train(data_uri: str, store_uri: str, privacy: dict) -> Dataset:
    snap = snapshot_data(data_uri=data_uri, store_uri=store_uri, model_name=MODEL)
    anon = anonymize_data(
        snapshot=snap.outputs["snapshot"],
        store_uri=store_uri,
        model_name=MODEL,
        privacy=privacy,
        time_column=TIME_COLUMN,
        run_label="private-run",
    )
    trained = train_model(
        snapshot=anon.outputs["anonymized"],
        label_column=TARGET,
        trainer="logistic_regression",
        time_column=TIME_COLUMN,
    )
    record_results(
        store_uri=store_uri,
        model_name=MODEL,
        model=trained.outputs["model"],
        run_label="private-run",
    )
    return anon.outputs["anonymized"]


@dsl.pipeline
def _train_raw(data_uri: str, store_uri: str) -> None:
    snap = snapshot_data(data_uri=data_uri, store_uri=store_uri, model_name=MODEL)
    train_model(
        snapshot=snap.outputs["snapshot"],
        label_column=TARGET,
        trainer="logistic_regression",
        time_column=TIME_COLUMN,
    )


def _files(*roots: Path) -> list[Path]:
    return [p for root in roots for p in sorted(root.rglob("*")) if p.is_file()]


def test_training_refuses_the_raw_window_with_pii(setup, capfd) -> None:
    store, data, _ = setup
    with pytest.raises(RuntimeError):
        _train_raw(data_uri=data, store_uri=str(store))
    log = "".join(capfd.readouterr())
    assert "PrivacyError" in log
    assert "PII column(s) ['age', 'customer_id', 'email']" in log
    assert ModelRegistry(str(store), MODEL).audit.records("training") == []


def test_anonymize_then_train_and_the_key_appears_nowhere(
    setup, kfp_local, monkeypatch, capfd, tmp_path
) -> None:
    store, data, raw = setup
    monkeypatch.setenv("REFIT_TOKEN_KEY", KEY)
    anonymized = _anonymize_then_train(data_uri=data, store_uri=str(store), privacy=PRIVACY).output
    log = "".join(capfd.readouterr())

    meta = anonymized.metadata
    assert meta["handled"] == ["age", "customer_id", "email", TIME_COLUMN]
    assert meta["dropped"] == ["email"] and meta["tokenized"] == ["customer_id"]
    assert meta["token"]["key_source"] == "environment variable REFIT_TOKEN_KEY"
    table = pq.read_table(anonymized.path)
    stored, _ = load_snapshot(str(store), meta["sha256"])
    assert stored.equals(table)
    assert "email" not in table.column_names
    tokens = table.column("customer_id").to_pylist()
    assert all(len(t) == TOKEN_HEX_CHARS for t in tokens)
    assert len(set(tokens)) == len(set(raw.column("customer_id").to_pylist()))
    assert set(table.column("age").to_pylist()) <= set(range(10, 90, 10))

    audit = ModelRegistry(str(store), MODEL).audit
    (record,) = audit.records("anonymization")
    assert record["payload"]["sha256"] == meta["sha256"]
    (training,) = audit.records("training")
    assert training["payload"]["run_label"] == "private-run"

    summaries = [p for p in _files(kfp_local) if p.name == "summary"]
    assert summaries and "| `customer_id` | tokenized |" in summaries[-1].read_text()

    compiled = tmp_path / "pipeline.yaml"
    compiler.Compiler().compile(_anonymize_then_train, str(compiled))
    searched = _files(kfp_local, store, tmp_path) + [COMPONENT_YAML]
    assert len(searched) > 20
    leaks = [
        (str(path), form) for path in searched for form in _key_forms() if form in path.read_bytes()
    ]
    assert leaks == []
    assert not [form for form in _key_forms() if form.decode() in log]
    # and the raw values themselves never reach the anonymized outputs or the audit log
    for path in [Path(anonymized.path), store / "models" / MODEL / "audit.jsonl"]:
        body = path.read_bytes()
        assert b"@example.org" not in body and b"C0000" not in body
