import hashlib
import json
import multiprocessing as mp
import shutil
import time
from pathlib import Path

import _models
import pytest

from refit.errors import ConflictError, IntegrityError, RegistryError
from refit.io.storage import GcsStorage
from refit.registry import ANY, ModelRegistry, ModelVersion, open_registry


def make_model_dir(root: Path, content: bytes = b"model-bytes", name: str = "m") -> Path:
    """A hand-made xgboost model directory whose model.json also names its format and trainer."""
    return _models.make_model_dir(root, content, name, format="ubj", trainer="xgboost")


def register(reg, tmp_path, name, parent=None, snapshot="s" * 64, metrics=None):
    return reg.register(
        make_model_dir(tmp_path, name.encode(), name),
        metrics=metrics or {"accuracy": 0.9},
        snapshot_sha256=snapshot,
        parent_version=parent,
        run_label=f"run-{name}",
    )


@pytest.fixture
def reg(tmp_path):
    return ModelRegistry(str(tmp_path / "store"), "churn")


def test_register_copies_and_records_lineage(reg, tmp_path):
    v1 = register(reg, tmp_path, "a", metrics={"accuracy": 0.91, "f1": 0.8})
    v2 = reg.register(
        make_model_dir(tmp_path, b"bbb", "b"),
        metrics={"accuracy": 0.93},
        snapshot_sha256="f" * 64,
        parent_version=1,
        run_label="run-b",
        extra={"trainer": "xgboost"},
    )
    assert (v1.version, v2.version) == (1, 2)
    assert v1.status == "registered"
    assert v2.parent_version == 1 and v2.run_label == "run-b" and v2.snapshot_sha256 == "f" * 64
    assert v2.metrics == {"accuracy": 0.93} and v2.extra == {"trainer": "xgboost"}
    assert v2.sha256 == hashlib.sha256(b"bbb").hexdigest()
    assert v2.created_at.endswith("+00:00")
    folder = Path(v2.model_uri)
    assert folder == tmp_path / "store" / "models" / "churn" / "versions" / "2"
    assert (folder / "model.ubj").read_bytes() == b"bbb"
    on_disk = json.loads((folder / "version.json").read_text())
    assert on_disk["version"] == 2 and "status" not in on_disk
    assert reg.get(2) == v2
    assert [v.version for v in reg.list_versions()] == [1, 2]
    assert ModelVersion.from_dict(v2.to_dict()) == v2
    events = [r["event"] for r in reg.audit.records()]
    assert events == ["registration", "registration"]


def test_register_file_uri_and_reopen(tmp_path):
    reg = ModelRegistry(f"file://{tmp_path / 'store'}", "m")
    register(reg, tmp_path, "a")
    assert ModelRegistry(str(tmp_path / "store"), "m").get(1).run_label == "run-a"


def test_register_rejects_tampered_model_dir(reg, tmp_path):
    d = make_model_dir(tmp_path, b"good", "x")
    (d / "model.ubj").write_bytes(b"evil")
    with pytest.raises(IntegrityError, match="model.ubj.*does not match"):
        reg.register(d, metrics={}, snapshot_sha256="", parent_version=None, run_label="r")
    assert reg.list_versions() == []
    assert not Path(reg.root, "versions").exists()  # checked before a number is reserved


def test_register_rejects_bad_inputs(reg, tmp_path):
    with pytest.raises(RegistryError, match="not a directory"):
        reg.register(
            tmp_path / "nope", metrics={}, snapshot_sha256="", parent_version=None, run_label="r"
        )
    d = tmp_path / "nometa"
    d.mkdir()
    with pytest.raises(RegistryError, match="no model.json"):
        reg.register(d, metrics={}, snapshot_sha256="", parent_version=None, run_label="r")
    (d / "model.json").write_text(json.dumps({"file": "../x", "sha256": "0" * 64}))
    with pytest.raises(RegistryError, match="plain file name"):
        reg.register(d, metrics={}, snapshot_sha256="", parent_version=None, run_label="r")
    good = make_model_dir(tmp_path, b"a", "a")
    with pytest.raises(RegistryError, match="parent_version 7 does not exist"):
        reg.register(good, metrics={}, snapshot_sha256="", parent_version=7, run_label="r")
    with pytest.raises(RegistryError, match="not JSON-serialisable"):
        reg.register(
            good, metrics={"a": object()}, snapshot_sha256="", parent_version=None, run_label="r"
        )
    assert isinstance(open_registry("gs://bucket/x", "m").storage, GcsStorage)  # no I/O yet
    with pytest.raises(RegistryError, match="unsupported scheme"):
        ModelRegistry("s3://bucket/x", "m")
    with pytest.raises(RegistryError, match="model_name"):
        ModelRegistry(str(tmp_path), "../evil")


def test_get_unknown_version(reg, tmp_path):
    register(reg, tmp_path, "a")
    with pytest.raises(RegistryError, match=r"no version 5 \(versions: \[1\]\)"):
        reg.get(5)
    with pytest.raises(RegistryError, match="positive integer"):
        reg.get(0)


def test_verify_detects_tampered_registered_file(reg, tmp_path):
    v = register(reg, tmp_path, "a")
    assert reg.verify(1) == v
    (Path(v.model_uri) / "model.ubj").write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match="version 1.*registered"):
        reg.verify(1)
    with pytest.raises(IntegrityError):
        reg.load_model(1)  # refuses before it ever imports the training loader


def test_verify_detects_tampered_model_json(reg, tmp_path):
    v = register(reg, tmp_path, "a")
    content = b"other"
    (Path(v.model_uri) / "model.ubj").write_bytes(content)
    meta = json.loads((Path(v.model_uri) / "model.json").read_text())
    meta["sha256"] = hashlib.sha256(content).hexdigest()
    (Path(v.model_uri) / "model.json").write_text(json.dumps(meta))
    with pytest.raises(IntegrityError):
        reg.verify(1)


def test_aliases_cas(reg, tmp_path):
    register(reg, tmp_path, "a")
    register(reg, tmp_path, "b")
    assert reg.get_alias("champion") is None and reg.champion() is None
    assert reg.reference_snapshot() is None
    reg.set_alias("champion", 1, expected=None)
    assert reg.get_alias("champion") == 1
    with pytest.raises(ConflictError) as info:
        reg.set_alias("champion", 2, expected=None)
    msg = str(info.value)
    assert "'champion'" in msg and "expected version None" in msg and "it is 1" in msg
    reg.set_alias("champion", 2, expected=1)
    assert reg.champion().version == 2
    assert reg.reference_snapshot() == "s" * 64
    reg.set_alias("champion", 1)  # unconditional (expected=ANY)
    reg.set_alias("champion", 2, expected=ANY)
    assert reg.aliases() == {"champion": 2}
    reg.set_alias("champion", None, expected=2)
    assert reg.get_alias("champion") is None
    assert json.loads(Path(reg.root, "refs.json").read_text())["aliases"] == {}


def test_set_alias_to_missing_version_fails(reg, tmp_path):
    register(reg, tmp_path, "a")
    with pytest.raises(RegistryError, match="no version 3"):
        reg.set_alias("champion", 3)
    with pytest.raises(RegistryError, match="alias name"):
        reg.set_alias("bad name", 1)
    assert reg.aliases() == {}


def test_status_is_mutable_but_version_json_is_not(reg, tmp_path):
    v = register(reg, tmp_path, "a")
    before = (Path(v.model_uri) / "version.json").read_bytes()
    reg.set_status(1, "champion")
    assert reg.get(1).status == "champion"
    assert (Path(v.model_uri) / "version.json").read_bytes() == before
    with pytest.raises(RegistryError, match="status 'bogus'"):
        reg.set_status(1, "bogus")


def test_state_roundtrip(reg):
    assert reg.read_state("policy") is None
    reg.write_state("policy", {"windows_since_retrain": 2, "metric_history": [0.9]})
    assert reg.read_state("policy") == {"windows_since_retrain": 2, "metric_history": [0.9]}
    refs = json.loads(Path(reg.root, "refs.json").read_text())  # one object: state and aliases
    assert refs["state"]["policy"]["windows_since_retrain"] == 2
    assert reg.audit.records()[-1]["txn"]["state"]["policy"]["windows_since_retrain"] == 2
    with pytest.raises(RegistryError, match="state key"):
        reg.write_state("../x", {})
    with pytest.raises(RegistryError, match="not JSON-serialisable"):
        reg.write_state("policy", {"x": object()})
    assert reg.read_state("policy")["windows_since_retrain"] == 2
    assert not list(Path(reg.root).glob(".tmp-*"))


# ---------------------------------------------------------------- real concurrency (processes)


def _register_worker(store, tmp, i, start_at):
    reg = ModelRegistry(store, "churn")
    d = make_model_dir(Path(tmp), f"content-{i}".encode() * 1000, f"w{i}")
    time.sleep(max(0.0, start_at - time.time()))
    v = reg.register(
        d, metrics={"i": i}, snapshot_sha256="", parent_version=None, run_label=f"run-{i}"
    )
    return v.version, v.run_label


def _cas_worker(store, version, start_at):
    reg = ModelRegistry(store, "churn")
    time.sleep(max(0.0, start_at - time.time()))
    try:
        reg.set_alias("champion", version, expected=1)
    except ConflictError as exc:
        return "conflict", str(exc)
    return "won", version


def test_concurrent_registrations_get_distinct_versions(tmp_path):
    store = str(tmp_path / "store")
    ctx = mp.get_context("spawn")
    start_at = time.time() + 3.0
    with ctx.Pool(8) as pool:
        results = pool.starmap(
            _register_worker, [(store, str(tmp_path / f"src{i}"), i, start_at) for i in range(8)]
        )
    versions = sorted(v for v, _ in results)
    assert versions == list(range(1, 9))
    reg = ModelRegistry(store, "churn")
    for version, label in results:
        mv = reg.verify(version)  # no torn files: full content, right digest
        assert mv.run_label == label
        i = int(label.split("-")[1])
        assert (Path(mv.model_uri) / "model.ubj").read_bytes() == f"content-{i}".encode() * 1000
    assert not list(Path(reg.root, "versions").rglob(".tmp-*"))
    assert len(reg.audit.records("registration")) == 8
    assert reg.audit.verify() == []


def test_concurrent_cas_has_exactly_one_winner(tmp_path):
    store = str(tmp_path / "store")
    reg = ModelRegistry(store, "churn")
    for i in range(9):
        register(reg, tmp_path, f"v{i}")
    reg.set_alias("champion", 1)
    ctx = mp.get_context("spawn")
    start_at = time.time() + 3.0
    with ctx.Pool(8) as pool:
        results = pool.starmap(_cas_worker, [(store, v, start_at) for v in range(2, 10)])
    winners = [r for r in results if r[0] == "won"]
    losers = [r for r in results if r[0] == "conflict"]
    assert len(winners) == 1 and len(losers) == 7
    assert reg.get_alias("champion") == winners[0][1]
    for _, msg in losers:
        assert "'champion'" in msg and "expected version 1" in msg
        assert f"it is {winners[0][1]}" in msg


def _to_old_format(version_json: Path) -> dict:
    """Rewrite a version.json as the previous version wrote it: the run label under "run_id"."""
    data = json.loads(version_json.read_text())
    data["run_id"] = data.pop("run_label")
    version_json.write_text(json.dumps(data))
    return data


def test_a_version_written_with_run_id_still_reads_as_its_run_label(reg, tmp_path):
    from refit.registry.lineage import lineage_rows

    register(reg, tmp_path, "a")
    old = _to_old_format(Path(reg.root) / "versions" / "1" / "version.json")
    assert "run_label" not in old and old["run_id"] == "run-a"
    reopened = ModelRegistry(reg.store_uri, reg.model_name)
    assert reopened.get(1).run_label == "run-a"
    assert reopened.verify(1).run_label == "run-a"
    assert [row["run_label"] for row in lineage_rows(reopened)] == ["run-a"]
    assert reopened.check_state() == []


def test_an_old_format_version_without_its_record_is_recovered_with_its_run_label(reg, tmp_path):
    register(reg, tmp_path, "a")
    versions = Path(reg.root) / "versions"
    shutil.copytree(versions / "1", versions / "2")  # an old writer died after version.json
    data = _to_old_format(versions / "2" / "version.json")
    data.update(version=2, model_uri=str(versions / "2"), run_id="run-old")
    data.pop("audit", None)
    (versions / "2" / "version.json").write_text(json.dumps(data))
    reg.recover()
    record = reg.audit.records("registration")[-1]
    assert record["payload"]["version"] == 2 and record["payload"]["run_label"] == "run-old"
    assert "run_id" not in record["payload"]
    assert reg.get(2).run_label == "run-old" and reg.check_state() == []
