"""Privacy before training: config, keyed tokenization, generalisation, PII marks, the guard."""

import base64
import datetime as dt
import hashlib
import hmac
import json
import random
import string
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from refit import steps
from refit.errors import DataError, PrivacyError
from refit.io.snapshot import load_snapshot
from refit.io.tables import write_parquet
from refit.privacy import (
    MIN_KEY_BYTES,
    TOKEN_HEX_CHARS,
    GeneralizeRule,
    PrivacyConfig,
    TokenKey,
    anonymize_table,
    check_pii_handled,
    generalize_column,
    load_key,
    load_schema,
    mark_pii,
    pii_columns,
    save_schema,
    schema_uri,
    tokenize_column,
)
from refit.registry import ModelRegistry
from refit.validation import infer_schema
from refit.validation.statistics import compute_statistics

MODEL = "m"


def _secret(seed: int, n: int = 44) -> str:
    rng = random.Random(seed)
    return "".join(rng.choices(string.ascii_letters + string.digits, k=n))


KEY_TEXT = _secret(1)
KEY = TokenKey(KEY_TEXT.encode())
OTHER_KEY = TokenKey(_secret(2).encode())


def _key_forms(text: str) -> list[bytes]:
    raw = text.encode()
    return [
        raw,
        raw.hex().encode(),
        raw.hex().upper().encode(),
        base64.b64encode(raw),
        base64.urlsafe_b64encode(raw),
        base64.b64encode(raw).rstrip(b"="),
    ]


def _people(n: int = 240, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    start = dt.datetime(2024, 1, 1, 8, 30)
    return pa.table(
        {
            "customer_id": [f"C{int(i):05d}" for i in rng.integers(0, n // 3, n)],
            "email": [f"person{i}.{int(rng.integers(1e6))}@example.org" for i in range(n)],
            "age": pa.array(rng.integers(18, 90, n), pa.int64()),
            "income": rng.gamma(2.0, 20_000.0, n),
            "signup": pa.array(
                [start + dt.timedelta(hours=int(h)) for h in rng.integers(0, 24 * 400, n)],
                pa.timestamp("s"),
            ),
            "x": x,
            "label": (x + rng.normal(scale=0.5, size=n) > 0).astype(np.int64),
        }
    )


FULL = {
    "drop": ["email"],
    "tokenize": ["customer_id"],
    "generalize": {
        "age": {"bucket": 10},
        "income": {"bins": [0, 20000, 50000, 100000]},
        "signup": {"truncate": "month"},
    },
}


# --- config -----------------------------------------------------------------------------------


def test_config_parses_and_round_trips() -> None:
    config = PrivacyConfig.from_json(json.dumps({**FULL, "key_env": "MY_KEY"}))
    assert config.drop == ("email",)
    assert config.tokenize == ("customer_id",)
    assert config.generalize["age"] == GeneralizeRule("bucket", 10)
    assert config.generalize["income"] == GeneralizeRule("bins", (0, 20000, 50000, 100000))
    assert config.generalize["signup"] == GeneralizeRule("truncate", "month")
    assert config.key_env == "MY_KEY" and config.key_file == ""
    assert config.handled == ["age", "customer_id", "email", "income", "signup"]
    assert PrivacyConfig.from_dict(config.to_dict()) == config
    assert PrivacyConfig.from_json("") == PrivacyConfig()
    assert PrivacyConfig().key_env == "REFIT_TOKEN_KEY"


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"dorp": ["email"]}, "'dorp'"),
        ({"drop": "email"}, "'drop' must be a list"),
        ({"drop": ["email"], "tokenize": ["email"]}, "'email' (drop and tokenize)"),
        ({"tokenize": ["id", "id"]}, "['id'] twice"),
        (
            {"generalize": {"age": {"bucket": 0}}},
            "column 'age': bucket width must be a positive number",
        ),
        ({"generalize": {"age": {"bucket": True}}}, "column 'age': bucket width"),
        ({"generalize": {"age": {"bins": [10, 5]}}}, "column 'age': bin edges must be strictly"),
        ({"generalize": {"age": {"bins": []}}}, "column 'age': bins must be a non-empty"),
        ({"generalize": {"d": {"truncate": "week"}}}, "column 'd': truncate must be one of"),
        ({"generalize": {"d": {"round": 2}}}, "column 'd': unknown rule 'round'"),
        ({"generalize": {"d": {"bucket": 1, "bins": [0]}}}, "column 'd' must be an object"),
        ({"key_env": ""}, "'key_env' must be the name"),
        ({"key_env": "A", "key_file": "/k"}, "not both"),
    ],
)
def test_config_errors_name_the_field_or_column(data, needle) -> None:
    with pytest.raises(PrivacyError) as info:
        PrivacyConfig.from_dict(data)
    assert needle in str(info.value)


def test_config_refuses_a_key_inside_it_without_echoing_it() -> None:
    with pytest.raises(PrivacyError, match="must not hold the key itself") as info:
        PrivacyConfig.from_dict({"tokenize": ["id"], "key": KEY_TEXT})
    assert KEY_TEXT not in str(info.value)
    with pytest.raises(PrivacyError, match="not valid JSON"):
        PrivacyConfig.from_json('{"tokenize": [')


# --- key --------------------------------------------------------------------------------------


def test_missing_key_names_the_variable_or_file(tmp_path) -> None:
    config = PrivacyConfig.from_dict({"tokenize": ["id"], "key_env": "CUSTOMER_TOKEN_KEY"})
    with pytest.raises(PrivacyError, match="set the environment variable CUSTOMER_TOKEN_KEY"):
        load_key(config, environ={})
    with pytest.raises(PrivacyError, match="CUSTOMER_TOKEN_KEY"):
        load_key(config, environ={"CUSTOMER_TOKEN_KEY": ""})
    missing = tmp_path / "secret" / "key"
    with pytest.raises(PrivacyError, match=f"key file {missing} does not exist"):
        load_key(PrivacyConfig(key_file=str(missing)), environ={})


def test_short_key_is_refused_with_the_minimum_and_without_the_key(tmp_path) -> None:
    short = _secret(3, MIN_KEY_BYTES - 1)
    with pytest.raises(PrivacyError) as info:
        load_key(PrivacyConfig(), environ={"REFIT_TOKEN_KEY": short})
    message = str(info.value)
    assert "REFIT_TOKEN_KEY" in message and f"at least {MIN_KEY_BYTES} bytes" in message
    assert short not in message and short.encode().hex() not in message
    path = tmp_path / "key"
    path.write_text(short + "\n")
    with pytest.raises(PrivacyError, match=f"file {path} is too short"):
        load_key(PrivacyConfig(key_file=str(path)), environ={})


def test_key_file_and_environment_give_the_same_tokens(tmp_path) -> None:
    path = tmp_path / "key"
    path.write_text(KEY_TEXT + "\n")  # as `kubectl create secret --from-file` often holds it
    from_file = load_key(PrivacyConfig(key_file=str(path)), environ={})
    from_env = load_key(PrivacyConfig(), environ={"REFIT_TOKEN_KEY": KEY_TEXT})
    column = pa.array(["a", "b"])
    assert tokenize_column(column, from_file).equals(tokenize_column(column, from_env))
    assert from_file.fingerprint == from_env.fingerprint != OTHER_KEY.fingerprint
    assert KEY_TEXT not in repr(from_env) and "redacted" in repr(from_env)


@pytest.mark.parametrize("length", [32, 64, 65, 200])
def test_token_key_is_rfc_2104_hmac_sha256(length) -> None:
    secret = _secret(length, length).encode()
    for message in (b"", b"alice", "Zoë".encode(), b"x" * 1000):
        assert TokenKey(secret).digest(message) == hmac.digest(secret, message, hashlib.sha256)


# --- tokenization -----------------------------------------------------------------------------


def test_tokens_are_deterministic_keyed_hmac_hex_and_keep_nulls() -> None:
    column = pa.chunked_array([["alice", "bob", None], ["alice", "carol"]])
    tokens = tokenize_column(column, KEY).to_pylist()
    assert tokens[0] == tokens[3] != tokens[1] != tokens[4]
    assert tokens[2] is None
    expected = hmac.new(KEY_TEXT.encode(), b"alice", hashlib.sha256).hexdigest()
    assert tokens[0] == expected[:TOKEN_HEX_CHARS]
    assert all(len(t) == TOKEN_HEX_CHARS and set(t) <= set("0123456789abcdef") for t in tokens if t)
    assert tokenize_column(column, KEY).to_pylist() == tokens
    other = tokenize_column(column, OTHER_KEY).to_pylist()
    assert all(a != b for a, b in zip(tokens, other, strict=True) if a is not None)


def test_integer_dictionary_and_string_ids_tokenize_alike() -> None:
    as_int = tokenize_column(pa.array([123, 45, None], pa.int32()), KEY).to_pylist()
    as_str = tokenize_column(pa.array(["123", "45", None]), KEY).to_pylist()
    as_dict = tokenize_column(pa.array(["123", "45", None]).dictionary_encode(), KEY).to_pylist()
    assert as_int == as_str == as_dict


def test_joins_still_work_across_two_tokenized_tables() -> None:
    rng = np.random.default_rng(5)
    ids = [f"cust-{i}" for i in range(50)]
    orders = pa.table(
        {"customer_id": [ids[i] for i in rng.integers(0, 50, 300)], "amount": rng.random(300)}
    )
    # the second table is read from CSV elsewhere: different order and chunking, plus ids the
    # first table does not have
    people = pa.Table.from_batches(
        pa.table(
            {"customer_id": ids[::-1] + ["cust-x"], "segment": [i % 3 for i in range(51)]}
        ).to_batches(max_chunksize=7)
    )
    config = PrivacyConfig(tokenize=("customer_id",))
    orders_t = anonymize_table(orders, config, KEY).table
    people_t = anonymize_table(people, config, KEY).table
    raw = orders.join(people, "customer_id").sort_by([("amount", "ascending")])
    joined = orders_t.join(people_t, "customer_id").sort_by([("amount", "ascending")])
    assert joined.num_rows == raw.num_rows == 300
    assert joined.column("segment").equals(raw.column("segment"))
    assert joined.column("customer_id").equals(tokenize_column(raw.column("customer_id"), KEY))
    # with another key the tables no longer join
    people_other = anonymize_table(people, config, OTHER_KEY).table
    assert orders_t.join(people_other, "customer_id", join_type="inner").num_rows == 0


def test_tokenize_refuses_a_float_column_by_name() -> None:
    with pytest.raises(PrivacyError, match="cannot tokenize column 'score': it has type double"):
        anonymize_table(pa.table({"score": [0.5]}), PrivacyConfig(tokenize=("score",)), KEY)


# --- generalisation ---------------------------------------------------------------------------


def test_bucket_maps_to_the_lower_edge_and_keeps_integers() -> None:
    ages = pa.array([0, 9, 10, 37, -1, None, 99], pa.int32())
    out = generalize_column(ages, GeneralizeRule("bucket", 10))
    assert out.type == pa.int64()
    assert out.to_pylist() == [0, 0, 10, 30, -10, None, 90]
    floats = pa.array([2.4, 2.5, 7.49, float("nan"), None, -0.1])
    got = generalize_column(floats, GeneralizeRule("bucket", 2.5)).to_pylist()
    assert got[:3] == [0.0, 2.5, 5.0] and np.isnan(got[3]) and got[4] is None
    assert got[5] == -2.5
    # a fractional width turns an integer column into floats
    halves = generalize_column(pa.array([3, 4]), GeneralizeRule("bucket", 1.5))
    assert halves.type == pa.float64() and halves.to_pylist() == [3.0, 3.0]


def test_bins_map_to_the_largest_edge_below_and_bottom_code() -> None:
    ages = pa.chunked_array([[-5, 0, 17], [18, 64, 65, 200, None]])
    out = generalize_column(ages, GeneralizeRule("bins", (0, 18, 65)))
    assert out.type == pa.int64()
    assert out.to_pylist() == [0, 0, 0, 18, 18, 65, 65, None]
    incomes = pa.array([-1.0, 19_999.99, 20_000.0, 1e9, float("nan")])
    got = generalize_column(incomes, GeneralizeRule("bins", (0, 20_000, 50_000))).to_pylist()
    assert got[:4] == [0.0, 0.0, 20_000.0, 50_000.0] and np.isnan(got[4])


def test_truncate_dates_and_timestamps() -> None:
    stamps = pa.array(
        [dt.datetime(2024, 3, 17, 13, 45, 7), None, dt.datetime(1999, 12, 31, 23, 59)],
        pa.timestamp("ms"),
    )
    rule = GeneralizeRule("truncate", "day")
    assert generalize_column(stamps, rule).to_pylist() == [
        dt.datetime(2024, 3, 17),
        None,
        dt.datetime(1999, 12, 31),
    ]
    month = generalize_column(stamps, GeneralizeRule("truncate", "month"))
    assert month.type == stamps.type
    assert month.to_pylist() == [dt.datetime(2024, 3, 1), None, dt.datetime(1999, 12, 1)]
    births = pa.array([dt.date(1987, 6, 30), dt.date(2001, 1, 1)], pa.date32())
    year = generalize_column(births, GeneralizeRule("truncate", "year"))
    assert year.to_pylist() == [dt.date(1987, 1, 1), dt.date(2001, 1, 1)]
    # a zoned timestamp is truncated in its own zone
    paris = pa.array([dt.datetime(2024, 3, 16, 23, 30)], pa.timestamp("s")).cast(
        pa.timestamp("s", tz="Europe/Paris")
    )  # 23:30 UTC is 00:30 the next day in Paris
    local_day = generalize_column(paris, rule).to_pylist()[0]
    assert local_day.isoformat() == "2024-03-17T00:00:00+01:00"


@pytest.mark.parametrize(
    ("column", "rule", "needle"),
    [
        (pa.array(["a"]), {"bucket": 10}, "cannot generalize column 'c' with bucket"),
        (pa.array(["a"]), {"bins": [0, 1]}, "cannot generalize column 'c' with bins"),
        (pa.array([True]), {"bucket": 1}, "it has type bool"),
        (pa.array([5]), {"truncate": "day"}, "cannot truncate column 'c' to the day"),
        (pa.array(["2024-01-01"]), {"truncate": "year"}, "it has type string"),
    ],
)
def test_generalize_refuses_a_column_of_the_wrong_type_by_name(column, rule, needle) -> None:
    config = PrivacyConfig.from_dict({"generalize": {"c": rule}})
    with pytest.raises(PrivacyError) as info:
        anonymize_table(pa.table({"c": column}), config)
    assert needle in str(info.value)


# --- the whole table --------------------------------------------------------------------------


def test_anonymize_table_drops_tokenizes_and_generalizes_in_place() -> None:
    table = _people()
    result = anonymize_table(table, PrivacyConfig.from_dict(FULL), KEY)
    out = result.table
    assert out.column_names == ["customer_id", "age", "income", "signup", "x", "label"]
    assert result.dropped == ["email"] and result.tokenized == ["customer_id"]
    assert result.generalized["signup"] == {"truncate": "month"}
    assert result.handled == ["age", "customer_id", "email", "income", "signup"]
    assert set(out.column("age").to_pylist()) <= set(range(10, 90, 10))
    assert set(out.column("income").to_pylist()) <= {0.0, 20000.0, 50000.0, 100000.0}
    assert all(d.day == 1 and d.hour == 0 for d in out.column("signup").to_pylist())
    assert out.column("x").equals(table.column("x"))  # untouched columns are untouched
    assert result.key_fingerprint == KEY.fingerprint


def test_anonymize_table_errors_name_the_input() -> None:
    table = _people(30)
    with pytest.raises(PrivacyError, match=r"column\(s\) \['e_mail'\] that are not in the data"):
        anonymize_table(table, PrivacyConfig(drop=("e_mail",)), KEY)
    with pytest.raises(PrivacyError, match="no key was given"):
        anonymize_table(table, PrivacyConfig(tokenize=("customer_id",)))


def test_no_raw_value_and_no_key_reach_the_anonymized_bytes() -> None:
    table = _people()
    result = anonymize_table(table, PrivacyConfig(tokenize=("customer_id", "email")), KEY)
    # look at uncompressed bytes, where a surviving value could not hide in a zstd block
    sink = pa.BufferOutputStream()
    pq.write_table(result.table, sink, compression="none")
    data = sink.getvalue().to_pybytes()
    raw_values = set(table.column("customer_id").to_pylist()) | set(
        table.column("email").to_pylist()
    )
    assert not [v for v in raw_values if v.encode() in data]
    assert not [f for f in _key_forms(KEY_TEXT) if f in data]
    assert "@" not in "".join(result.table.column("email").to_pylist())


# --- PII marks in the schema ------------------------------------------------------------------


def _schema(table: pa.Table):
    return infer_schema(compute_statistics(table))


def test_mark_pii_tags_features_and_pii_columns_reads_them(tmp_path) -> None:
    schema = _schema(_people(30))
    marked = mark_pii(schema, ["email", "customer_id"])
    assert pii_columns(schema) == []  # the input is not changed
    assert pii_columns(marked) == ["customer_id", "email"]  # schema order
    email = next(f for f in marked.feature if f.name == "email")
    assert list(email.annotation.tag) == ["pii"]
    assert mark_pii(marked, ["email"]) == marked  # idempotent
    with pytest.raises(PrivacyError, match=r"cannot mark column\(s\) \['e_mail'\] as PII"):
        mark_pii(schema, ["e_mail"])
    store = str(tmp_path / "store")
    assert load_schema(store, MODEL) is None
    where = save_schema(store, MODEL, marked)
    assert where == schema_uri(store, MODEL) and where.endswith("models/m/schema.pbtxt")
    assert 'tag: "pii"' in Path(where).read_text()
    assert pii_columns(load_schema(store, MODEL)) == ["customer_id", "email"]


# --- the step and the training guard ----------------------------------------------------------


@pytest.fixture
def store(tmp_path) -> Path:
    """A store whose curated schema tags customer_id and email as PII, and a raw snapshot."""
    root = tmp_path / "store"
    table = _people()
    save_schema(str(root), MODEL, mark_pii(_schema(table), ["customer_id", "email"]))
    write_parquet(table, str(tmp_path / "raw.parquet"))
    steps.snapshot_data(str(tmp_path / "raw.parquet"), str(root), MODEL, str(tmp_path / "snap.pq"))
    return root


def _train(store: Path, data: Path, marks: dict) -> steps.TrainOutput:
    return steps.train_model(
        str(data),
        "label",
        str(store.parent / "model"),
        str(store.parent / "holdout.parquet"),
        data_metadata=marks,
        trainer="logistic_regression",
        time_column="signup",
    )


def test_anonymize_step_writes_a_snapshot_and_an_audit_record(store) -> None:
    snap = store.parent / "snap.pq"
    output = store.parent / "anon.parquet"
    out = steps.anonymize_data(
        str(snap),
        str(store),
        MODEL,
        str(output),
        json.dumps(FULL),
        time_column="signup",
        run_label="r1",
        environ={"REFIT_TOKEN_KEY": KEY_TEXT},
    )
    assert out.sha256 == hashlib.sha256(output.read_bytes()).hexdigest() != out.input_sha256
    assert out.input_sha256 == hashlib.sha256(snap.read_bytes()).hexdigest()
    stored, record = load_snapshot(str(store), out.sha256)
    assert stored.equals(pq.read_table(output)) and "email" not in stored.column_names
    assert record.source == f"anonymize_data of snapshot {out.input_sha256}"
    assert record.time_window[0].endswith("T00:00:00")  # the window of the truncated column
    assert out.pii == ["customer_id", "email"]
    (audit,) = ModelRegistry(str(store), MODEL).audit.records("anonymization")
    payload = audit["payload"]
    assert payload["run_label"] == "r1" and payload["sha256"] == out.sha256
    assert payload["handled"] == ["age", "customer_id", "email", "income", "signup"]
    assert payload["generalized"]["income"] == {"bins": [0, 20000, 50000, 100000]}
    assert payload["token"] == {
        "algorithm": "HMAC-SHA256",
        "hex_chars": TOKEN_HEX_CHARS,
        "key_source": "environment variable REFIT_TOKEN_KEY",
        "key_fingerprint": KEY.fingerprint,
    }
    log = (store / "models" / MODEL / "audit.jsonl").read_bytes()
    assert not [f for f in _key_forms(KEY_TEXT) if f in log]
    assert b"@example.org" not in log and b"C000" not in log
    assert "| `email` | dropped |" in out.markdown and "`customer_id` | tokenized" in out.markdown


def test_anonymize_step_refuses_to_leave_a_pii_column_unhandled(store) -> None:
    with pytest.raises(PrivacyError, match=r"PII column\(s\) \['email'\] .* not handled"):
        steps.anonymize_data(
            str(store.parent / "snap.pq"),
            str(store),
            MODEL,
            str(store.parent / "anon.parquet"),
            {"tokenize": ["customer_id"]},
            environ={"REFIT_TOKEN_KEY": KEY_TEXT},
        )
    assert not (store.parent / "anon.parquet").exists()
    assert ModelRegistry(str(store), MODEL).audit.records("anonymization") == []


def test_anonymize_step_names_the_missing_key_before_writing(store) -> None:
    with pytest.raises(PrivacyError, match="set the environment variable REFIT_TOKEN_KEY"):
        steps.anonymize_data(
            str(store.parent / "snap.pq"),
            str(store),
            MODEL,
            str(store.parent / "anon.parquet"),
            FULL,
            environ={},
        )
    assert not (store.parent / "anon.parquet").exists()


def test_anonymize_step_names_a_missing_time_column_or_snapshot(store) -> None:
    args = (str(store), MODEL, str(store.parent / "anon.parquet"), FULL)
    with pytest.raises(DataError, match="time column 'when' is not in the snapshot"):
        steps.anonymize_data(str(store.parent / "snap.pq"), *args, time_column="when")
    with pytest.raises(DataError, match="nope.parquet"):
        steps.anonymize_data(str(store.parent / "nope.parquet"), *args)


def test_training_refuses_unhandled_pii_and_accepts_the_anonymized_snapshot(store) -> None:
    # the PII marks travel on the data's artifact: snapshot_data's metadata names them
    snap = steps.snapshot_data(
        str(store.parent / "raw.parquet"), str(store), MODEL, str(store.parent / "snap.pq")
    )
    assert snap.record()["pii"] == ["customer_id", "email"]
    with pytest.raises(PrivacyError) as info:
        _train(store, store.parent / "snap.pq", snap.record())
    assert "['customer_id', 'email']" in str(info.value)
    assert "anonymize_data" in str(info.value)
    assert not (store.parent / "model").exists()

    anon = store.parent / "anon.parquet"
    anonymized = steps.anonymize_data(
        str(store.parent / "snap.pq"),
        str(store),
        MODEL,
        str(anon),
        {"drop": ["email"], "tokenize": ["customer_id"]},
        environ={"REFIT_TOKEN_KEY": KEY_TEXT},
    )
    trained = _train(store, anon, anonymized.record())
    assert trained.train_rows + trained.holdout_rows == 240

    # the handled set belongs to those bytes: the same columns in other data are refused
    tampered = store.parent / "tampered.parquet"
    table = pq.read_table(anon)
    write_parquet(table.slice(1), str(tampered))
    with pytest.raises(PrivacyError, match="PII marks describe snapshot"):
        _train(store, tampered, anonymized.record())
    # and the raw window's marks still refuse it: nothing handled customer_id in those bytes
    sha = hashlib.sha256(tampered.read_bytes()).hexdigest()
    raw_marks = {"pii": ["customer_id"], "sha256": sha}
    with pytest.raises(PrivacyError, match=r"\['customer_id'\]"):
        _train(store, tampered, raw_marks)


def test_guard_is_silent_without_pii_marks() -> None:
    sha = "0" * 64
    check_pii_handled(None, sha, ["email"])  # data imported from elsewhere: no marks
    check_pii_handled({"sha256": sha, "rows": 3}, sha, ["email"])  # marks of nothing
    check_pii_handled({"pii": ["email"], "sha256": sha}, sha, ["x", "label"])  # email dropped
    check_pii_handled({"pii": ["email"], "handled": ["email"], "sha256": sha}, sha, ["email"])
    with pytest.raises(PrivacyError, match=r"\['email'\]"):
        check_pii_handled({"pii": ["email"], "sha256": sha}, sha, ["email", "x"])
