import gzip
import hashlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _gcs import fake_gcs

from refit.errors import DataError, IntegrityError
from refit.io import (
    Snapshot,
    UriNotFoundError,
    canonical_parquet_bytes,
    create_snapshot,
    exists,
    is_gcs,
    join,
    list_prefix,
    load_snapshot,
    read_bytes,
    read_table,
    write_bytes,
    write_parquet,
)
from refit.io import uri as uri_mod


def _table(n: int = 50, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "ts": pa.array(
                pd.date_range("2026-01-01", periods=n, freq="h").to_numpy(), pa.timestamp("us")
            ),
            "x": rng.normal(size=n),
            "k": rng.integers(0, 5, n),
            "c": pa.array(rng.choice(["a", "b", "c"], n)),
        }
    )


@pytest.fixture(scope="module")
def io_gcs_bucket() -> Iterator[str]:
    with fake_gcs("refit-io-test"):
        yield "gs://refit-io-test"


# ---- uri ----------------------------------------------------------------------------------


def test_is_gcs_and_join() -> None:
    assert is_gcs("gs://b/k")
    assert not is_gcs("/tmp/x")
    assert not is_gcs("file:///tmp/x")
    assert join("gs://b/", "a/", "/b.parquet") == "gs://b/a/b.parquet"
    assert join("/tmp/store", "snapshots", "x.json") == "/tmp/store/snapshots/x.json"
    assert join("file:///tmp/s", "x") == "file:///tmp/s/x"
    assert join("/", "x") == "/x"


def test_local_write_is_atomic_and_creates_parents(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "blob.bin"
    write_bytes(str(target), b"one")
    write_bytes(str(target), b"two")
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["blob.bin"]  # no temp left over
    assert read_bytes(f"file://{target}") == b"two"
    assert exists(str(target)) and exists(f"file://{target}")
    assert not exists(str(tmp_path / "nope"))


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_atomic_writes_follow_the_umask_not_mkstemps_0600(tmp_path: Path, umask: int) -> None:
    # A store written by one user (a task in a container, a serving pod) must stay readable by
    # the others the umask allows: every atomic write gets 0o666 less the umask, like open().
    from refit.audit.log import AuditLog
    from refit.registry import ModelRegistry

    old = os.umask(umask)
    try:
        assert uri_mod.current_umask() == umask
        write_bytes(str(tmp_path / "blob.bin"), b"x")
        uri_mod.write_file_atomic(tmp_path / "text.json", "{}")
        AuditLog(tmp_path / "audit" / "log.jsonl").append("event", {"a": 1})
        ModelRegistry(str(tmp_path / "store"), "m").set_alias("champion", None)
        with open(tmp_path / "plain.txt", "w") as fh:  # what an ordinary write gives
            fh.write("x")
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == expected
    files = [p for p in tmp_path.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    assert {p.name for p in files} >= {"blob.bin", "text.json", "log.jsonl"}
    assert any(p.is_relative_to(tmp_path / "store") for p in files)  # the registry wrote a file
    modes = {str(p.relative_to(tmp_path)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    assert set(modes.values()) == {oct(expected)}, modes
    assert not [p for p in tmp_path.rglob("*.tmp")]  # still atomic: no temporary file left


def test_read_bytes_missing_names_uri(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.bin")
    with pytest.raises(UriNotFoundError, match="missing.bin"):
        read_bytes(missing)
    with pytest.raises(FileNotFoundError):  # also a FileNotFoundError
        read_bytes(missing)


def test_list_prefix_is_recursive_sorted_and_folder_scoped(tmp_path: Path) -> None:
    for rel in ["d/b.txt", "d/a.txt", "d/sub/c.txt", "d2/x.txt"]:
        write_bytes(str(tmp_path / rel), b"x")
    base = str(tmp_path / "d")
    assert list_prefix(base) == [f"{base}/a.txt", f"{base}/b.txt", f"{base}/sub/c.txt"]
    assert list_prefix(f"file://{base}") == [
        f"file://{base}/a.txt",
        f"file://{base}/b.txt",
        f"file://{base}/sub/c.txt",
    ]
    assert list_prefix(str(tmp_path / "none")) == []


# ---- tables -------------------------------------------------------------------------------


def test_parquet_round_trip_and_columns(tmp_path: Path) -> None:
    table = _table()
    path = str(tmp_path / "t.parquet")
    write_parquet(table, path)
    assert read_table(path).equals(table)
    sub = read_table(path, columns=["c", "x"])
    assert sub.column_names == ["c", "x"]
    assert sub.column("x").equals(table.column("x"))


def test_missing_column_is_data_error_naming_column_and_uri(tmp_path: Path) -> None:
    path = str(tmp_path / "t.parquet")
    write_parquet(_table(), path)
    with pytest.raises(DataError, match=r"t\.parquet.*'label'"):
        read_table(path, columns=["x", "label"])
    csv = tmp_path / "t.csv"
    csv.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match=r"t\.csv.*'label'"):
        read_table(str(csv), columns=["label"])


def test_csv_and_csv_gz(tmp_path: Path) -> None:
    text = "x,c\n1.5,a\n2.5,b\n,a\n"
    (tmp_path / "t.csv").write_text(text)
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress(text.encode()))
    for name in ("t.csv", "t.csv.gz"):
        table = read_table(str(tmp_path / name))
        assert table.column("x").to_pylist() == [1.5, 2.5, None]
        assert table.column("c").to_pylist() == ["a", "b", "a"]


def test_parquet_folder_reads_all_parts(tmp_path: Path) -> None:
    table = _table(30)
    write_parquet(table.slice(0, 10), str(tmp_path / "data" / "part-0.parquet"))
    write_parquet(table.slice(10, 20), str(tmp_path / "data" / "part-1.parquet"))
    (tmp_path / "data" / "_SUCCESS").write_text("")
    got = read_table(str(tmp_path / "data"))
    assert got.num_rows == 30
    assert got.column("x").to_pylist() == table.column("x").to_pylist()


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("garbage.parquet", b"this is not parquet", "Parquet"),
        ("empty.csv", b"", "Empty CSV"),
        ("ragged.csv", b"a,b\n1,2\n3,4,5\n", "columns"),
    ],
)
def test_unreadable_files_are_data_errors_naming_uri(
    tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=rf"cannot read data at {path}: .*{reason}"):
        read_table(str(path))


def test_missing_path_and_empty_folder_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=rf"cannot read data at {tmp_path}/nope.parquet"):
        read_table(str(tmp_path / "nope.parquet"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no Parquet files"):
        read_table(str(tmp_path / "empty"))
    with pytest.raises(DataError, match="nope.csv"):
        read_table(str(tmp_path / "nope.csv"))


def test_canonical_bytes_are_deterministic() -> None:
    table = _table(100)
    chunked = pa.concat_tables([table.slice(0, 33), table.slice(33)])
    assert chunked.column("x").num_chunks == 2
    with_meta = table.replace_schema_metadata({"pandas": '{"index_columns": []}'})
    data = canonical_parquet_bytes(table)
    assert canonical_parquet_bytes(chunked) == data
    assert canonical_parquet_bytes(with_meta) == data
    meta = pq.ParquetFile(pa.BufferReader(data)).metadata
    assert b"pandas" not in (meta.metadata or {})
    col = meta.row_group(0).column(1)
    assert col.compression == "ZSTD"
    assert col.is_stats_set and col.statistics.min == pytest.approx(min(table["x"].to_pylist()))
    # different content, different bytes
    assert canonical_parquet_bytes(_table(100, seed=1)) != data


# ---- snapshots ----------------------------------------------------------------------------


def test_snapshot_create_is_idempotent_and_content_addressed(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    table = _table(24)
    snap = create_snapshot(table, store, source="s3-export", time_column="ts")
    assert snap.sha256 == hashlib.sha256(canonical_parquet_bytes(table)).hexdigest()
    assert snap.uri == f"{store}/snapshots/{snap.sha256}.parquet"
    assert snap.rows == 24 and snap.columns == ["ts", "x", "k", "c"]
    assert snap.time_window == ("2026-01-01T00:00:00", "2026-01-01T23:00:00")
    record = json.loads((tmp_path / "store" / "snapshots" / f"{snap.sha256}.json").read_text())
    assert Snapshot.from_dict(record) == snap

    data_file = tmp_path / "store" / "snapshots" / f"{snap.sha256}.parquet"
    mtime = data_file.stat().st_mtime_ns
    again = create_snapshot(
        pa.concat_tables([table.slice(0, 5), table.slice(5)]), store, source="other"
    )
    assert again == snap  # same content: the existing record, nothing rewritten
    assert data_file.stat().st_mtime_ns == mtime

    loaded, meta = load_snapshot(store, snap.sha256)
    assert loaded.equals(table)
    assert meta == snap
    assert Snapshot.from_dict(snap.to_dict()) == snap


def test_snapshot_tampering_is_integrity_error(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    snap = create_snapshot(_table(), store, source="x")
    path = Path(snap.uri)
    path.write_bytes(canonical_parquet_bytes(_table(seed=7)))
    with pytest.raises(IntegrityError, match=snap.sha256):
        load_snapshot(store, snap.sha256)


def test_snapshot_bad_inputs(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    with pytest.raises(DataError, match="time column 'when'"):
        create_snapshot(_table(), store, source="x", time_column="when")
    with pytest.raises(DataError, match="invalid snapshot sha256"):
        load_snapshot(store, "../../etc/passwd")
    with pytest.raises(DataError, match="0" * 64):
        load_snapshot(store, "0" * 64)
    empty = create_snapshot(_table().slice(0, 0), store, source="x", time_column="ts")
    assert empty.rows == 0 and empty.time_window is None


# ---- gs:// against a real fake-gcs-server -------------------------------------------------


def test_gcs_bytes_round_trip(io_gcs_bucket: str) -> None:
    uri = join(io_gcs_bucket, "raw", "blob.bin")
    assert not exists(uri)
    write_bytes(uri, b"hello")
    assert exists(uri)
    assert read_bytes(uri) == b"hello"
    write_bytes(join(io_gcs_bucket, "raw2", "other.bin"), b"x")
    assert list_prefix(join(io_gcs_bucket, "raw")) == [uri]
    with pytest.raises(UriNotFoundError, match="gs://refit-io-test/raw/none.bin"):
        read_bytes(join(io_gcs_bucket, "raw", "none.bin"))


def test_gcs_tables_round_trip(io_gcs_bucket: str, tmp_path: Path) -> None:
    table = _table(40)
    uri = join(io_gcs_bucket, "tables", "t.parquet")
    write_parquet(table, uri)
    assert read_table(uri).equals(table)
    assert read_table(uri, columns=["x"]).column_names == ["x"]

    write_parquet(table.slice(0, 15), join(io_gcs_bucket, "parts", "a.parquet"))
    write_parquet(table.slice(15), join(io_gcs_bucket, "parts", "b.parquet"))
    assert read_table(join(io_gcs_bucket, "parts")).equals(table)

    csv = b"x,c\n1,a\n2,b\n"
    write_bytes(join(io_gcs_bucket, "csv", "t.csv.gz"), gzip.compress(csv))
    assert read_table(join(io_gcs_bucket, "csv", "t.csv.gz")).column("c").to_pylist() == [
        "a",
        "b",
    ]
    with pytest.raises(DataError, match="cannot read data at gs://refit-io-test/none.parquet"):
        read_table(join(io_gcs_bucket, "none.parquet"))


def test_gcs_snapshot_round_trip(io_gcs_bucket: str) -> None:
    store = join(io_gcs_bucket, "store")
    table = _table(12)
    snap = create_snapshot(table, store, source="gcs", time_column="ts")
    assert snap.uri == f"{store}/snapshots/{snap.sha256}.parquet"
    assert create_snapshot(table, store, source="again") == snap
    loaded, meta = load_snapshot(store, snap.sha256)
    assert loaded.equals(table) and meta == snap
    write_bytes(snap.uri, canonical_parquet_bytes(_table(12, seed=3)))
    with pytest.raises(IntegrityError, match=snap.sha256):
        load_snapshot(store, snap.sha256)
