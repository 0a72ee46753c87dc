"""Bad inputs and attacks against the registry, its audit chain, `refit registry` and `refit audit`.

Every case ends in a clear error (exit 2 or 1 with a message naming the input and what is wrong,
no traceback) or a refused operation that leaves the store as it was (`_corpus`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import _models
import pytest
from _corpus import assert_clear_cli_error
from typer.testing import CliRunner

from refit.audit.keys import AUDIT_ANCHOR_ENV, AUDIT_KEY_ENV, AUDIT_KEY_FILE_ENV, TOKEN_KEY_ENV
from refit.audit.log import canonical_json, record_hash
from refit.cli import app
from refit.deploy.local import LocalTarget
from refit.errors import ConflictError, IntegrityError, RegistryError
from refit.registry import open_registry

MODEL = "churn"
KEY = "k" * 32
runner = CliRunner()


def make_model_dir(root: Path, content: bytes, name: str) -> Path:
    """A model directory whose model.json names its features, with a model card."""
    d = _models.make_model_dir(root, content, name, features=["age", "income", "tenure"])
    (d / "card.md").write_text(f"# model {name}\n")
    return d


def cli(*args: str):
    return runner.invoke(app, list(args))


def reg_cli(store: str, *args: str, model: str = MODEL):
    return cli("registry", "--store", store, "--model", model, *args)


@pytest.fixture(autouse=True)
def _no_audit_settings(monkeypatch):
    for env in (AUDIT_KEY_ENV, AUDIT_KEY_FILE_ENV, AUDIT_ANCHOR_ENV, TOKEN_KEY_ENV):
        monkeypatch.delenv(env, raising=False)


def _populate(store: str, tmp_path: Path) -> None:
    reg = open_registry(store, MODEL)
    for n in (1, 2, 3):
        reg.register(
            make_model_dir(tmp_path / f"src{n}", f"model-{n}".encode(), f"v{n}"),
            metrics={"accuracy": 0.8},
            snapshot_sha256="s" * 64,
            parent_version=None,
            run_label=f"run-{n}",
        )
    target = LocalTarget(reg)
    target.promote(1, reason="first")
    target.promote(2, reason="second")
    reg.write_state("policy", {"windows": 3})


@pytest.fixture
def store(tmp_path) -> str:
    s = str(tmp_path / "store")
    _populate(s, tmp_path)
    return s


@pytest.fixture
def keyed_store(tmp_path, monkeypatch) -> str:
    monkeypatch.setenv(AUDIT_KEY_ENV, KEY)
    monkeypatch.setenv(AUDIT_ANCHOR_ENV, str(tmp_path / "anchor"))
    s = str(tmp_path / "store")
    _populate(s, tmp_path)
    return s


def root(store: str) -> Path:
    return Path(store) / "models" / MODEL


def snapshot(store: str) -> tuple[bytes, bytes]:
    return (root(store) / "refs.json").read_bytes(), (root(store) / "audit.jsonl").read_bytes()


def rewrite_chain(store: str, edit) -> None:
    """Rewrite the log as an attacker without the key would: edit, recompute every hash, head."""
    log = root(store) / "audit.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    edit(records)
    prev = "0" * 64
    for seq, r in enumerate(records, start=1):
        r["seq"], r["prev_hash"] = seq, prev
        r.pop("mac", None)
        r["hash"] = prev = record_hash(r)
    log.write_text("".join(canonical_json(r) + "\n" for r in records))
    (root(store) / "audit.jsonl.head").write_text(
        canonical_json({"seq": len(records), "hash": prev})
    )


def verify(store: str):
    return cli("audit", "verify", "--store", store, "--model", MODEL)


# ------------------------------------------------------------------ bad --store / --model


@pytest.mark.parametrize(
    ("store_arg", "names"),
    [
        ("s3://bucket/x", ["s3://bucket/x", "unsupported scheme"]),
        ("{tmp}/missing", ["missing", "no such store"]),
        ("http://host/x", ["unsupported scheme"]),
    ],
)
def test_bad_store_uri_is_a_clear_error(tmp_path, store_arg, names):
    arg = store_arg.format(tmp=tmp_path)
    assert_clear_cli_error(reg_cli(arg, "list"), *names)
    assert_clear_cli_error(cli("audit", "verify", "--store", arg), *names)


@pytest.mark.parametrize("model", ["churn\n", "chu\x07rn", "../churn", "a b", "x" * 300, "-x"])
def test_bad_model_name_is_a_clear_error(store, model):
    before = snapshot(store)
    assert_clear_cli_error(reg_cli(store, "promote", "3", model=model), "invalid")
    assert snapshot(store) == before
    with pytest.raises(RegistryError, match="model_name"):
        open_registry(store, model)


def test_unknown_model_is_a_clear_error(store):
    assert_clear_cli_error(reg_cli(store, "list", model="nosuch"), "nosuch", "no such model")


def test_audit_verify_of_an_empty_store_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_clear_cli_error(cli("audit", "verify", "--store", str(tmp_path / "empty")), "no models")


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["promote", "99"], ["no version 99"]),
        (["promote", "0"], ["positive integer"]),
        (["promote", "2"], ["already the champion"]),
        (["show", "99"], ["no version 99"]),
        (["verify", "99"], ["no version 99"]),
        (["approve", "99", "--by", "ann"], ["no version 99"]),
    ],
)
def test_bad_version_is_refused_and_state_unchanged(store, args, names):
    before = snapshot(store)
    assert_clear_cli_error(reg_cli(store, *args), *names)
    assert snapshot(store) == before


def test_rollback_twice_is_refused(store):
    assert reg_cli(store, "rollback").exit_code == 0
    before = snapshot(store)
    assert_clear_cli_error(reg_cli(store, "rollback"), "no previous version")
    assert snapshot(store) == before


# ------------------------------------------------------------------ corrupt registry files


@pytest.mark.parametrize(
    ("content", "names"),
    [
        (b"{not json", ["refs.json", "not valid JSON"]),
        (b"[1, 2]", ["refs.json", "corrupt"]),
        (b'{"aliases": {"champion": "x"}}', ["refs.json", "corrupt", "champion"]),
        (b'{"aliases": [], "statuses": {}}', ["refs.json", "aliases"]),
        (b'{"state": {"policy": 3}}', ["refs.json", "policy"]),
        (b'{"commit": "abc"}', ["refs.json", "commit"]),
    ],
)
def test_corrupt_refs_json_is_a_clear_error(store, content, names):
    (root(store) / "refs.json").write_bytes(content)
    log = (root(store) / "audit.jsonl").read_bytes()
    assert_clear_cli_error(reg_cli(store, "list"), *names)
    assert_clear_cli_error(reg_cli(store, "promote", "3"), *names)
    assert (root(store) / "audit.jsonl").read_bytes() == log  # nothing recorded


def test_corrupt_legacy_state_file_is_a_clear_error(tmp_path):
    reg = open_registry(str(tmp_path / "store"), MODEL)
    (root(str(tmp_path / "store")) / "state").mkdir(parents=True)
    (root(str(tmp_path / "store")) / "state" / "policy.json").write_text("[1]")
    with pytest.raises(RegistryError, match=r"policy\.json is corrupt"):
        reg.read_state("policy")


def test_pre_transaction_store_is_migrated_into_one_transaction(tmp_path):
    s = str(tmp_path / "store")
    reg = open_registry(s, MODEL)
    for n in (1, 2):
        reg.register(
            make_model_dir(tmp_path / f"m{n}", f"m{n}".encode(), str(n)),
            metrics={},
            snapshot_sha256="s" * 64,
            parent_version=None,
            run_label="r",
        )
    _models.make_pre_transaction(root(s))
    (root(s) / "aliases.json").write_text(json.dumps({"champion": 2, "previous": 1}))
    (root(s) / "statuses.json").write_text(json.dumps({"2": "champion"}))
    (root(s) / "state").mkdir()
    (root(s) / "state" / "policy.json").write_text(json.dumps({"windows": 7}))
    assert reg.read_state("policy") == {"windows": 7} and reg.check_state() == []
    reg.set_status(1, "previous")
    refs = json.loads((root(s) / "refs.json").read_text())
    assert refs["aliases"] == {"champion": 2, "previous": 1}
    assert refs["state"] == {"policy": {"windows": 7}}
    assert reg.audit.records()[-1]["txn"]["full"] is True  # the first one holds the whole state
    assert reg.check_state() == [] and reg.read_state("policy") == {"windows": 7}


# ------------------------------------------------------------------ audit append failures


def test_torn_last_audit_line_is_cut_off_noted_and_the_promotion_applies(store):
    log = root(store) / "audit.jsonl"
    intact = log.read_bytes()
    torn = b'{"seq": 99, "ev'  # a writer killed mid-append: no newline after it
    log.write_bytes(intact + torn)
    assert_clear_cli_error(verify(store), "incomplete last line")  # reported until healed
    result = reg_cli(store, "promote", "3")
    assert result.exit_code == 0, result.output
    reg = open_registry(store, MODEL)
    assert reg.get_alias("champion") == 3
    assert log.read_bytes().startswith(intact) and torn not in log.read_bytes()
    repair = next(r for r in reg.audit.records() if r["event"] == "audit_repair")
    assert repair["payload"]["cut_bytes"] == len(torn)
    assert repair["payload"]["cut_sha256"] == hashlib.sha256(torn).hexdigest()
    assert repair["seq"] == json.loads(intact.splitlines()[-1])["seq"] + 1
    assert verify(store).exit_code == 0 and reg.check_state() == []


def test_torn_last_line_is_healed_when_the_head_is_one_record_behind(store):
    # a writer killed between its complete line and the head file, then another killed mid-line
    log = root(store) / "audit.jsonl"
    intact = log.read_bytes()
    records = [json.loads(line) for line in intact.splitlines()]
    head = log.with_name("audit.jsonl.head")
    head.write_text(json.dumps({"seq": records[-2]["seq"], "hash": records[-2]["hash"]}))
    log.write_bytes(intact + b'{"seq": 99, "ev')
    result = reg_cli(store, "promote", "3")
    assert result.exit_code == 0, result.output
    assert open_registry(store, MODEL).get_alias("champion") == 3
    assert log.read_bytes().startswith(intact) and verify(store).exit_code == 0


def test_audit_recover_cuts_a_torn_last_line_and_says_so(store):
    log = root(store) / "audit.jsonl"
    log.write_bytes(log.read_bytes() + b'{"seq": 99, "ev')
    result = cli("audit", "recover", "--store", store, "--model", MODEL)
    assert result.exit_code == 0, result.output
    assert "cut off a torn last audit line (15 bytes)" in result.output
    assert "nothing to recover" not in result.output
    again = cli("audit", "recover", "--store", store, "--model", MODEL)
    assert "nothing to recover" in again.output and verify(store).exit_code == 0


def test_torn_line_in_the_middle_is_refused_not_cut(store):
    log = root(store) / "audit.jsonl"
    lines = log.read_bytes().split(b"\n")
    lines.insert(3, b'{"seq": 4, "ev')  # torn, but records follow it: never a crash's work
    log.write_bytes(b"\n".join(lines))
    before = snapshot(store)
    assert_clear_cli_error(reg_cli(store, "promote", "3"), "not applied", "line 4")
    assert snapshot(store) == before
    assert_clear_cli_error(verify(store), "line 4", "not a valid audit record")


def test_torn_last_line_after_records_cut_off_the_end_is_not_healed(store):
    log = root(store) / "audit.jsonl"
    lines = log.read_bytes().split(b"\n")
    log.write_bytes(b"\n".join(lines[:-3]) + b'\n{"seq": 9')  # head file names a later record
    before = snapshot(store)
    assert_clear_cli_error(reg_cli(store, "promote", "3"), "not applied", "incomplete")
    assert snapshot(store) == before
    assert_clear_cli_error(verify(store), "log truncated")


def test_state_write_failing_on_a_garbage_audit_line_is_refused(store):
    log = root(store) / "audit.jsonl"
    log.write_bytes(log.read_bytes() + b"garbage\n")
    reg = open_registry(store, MODEL)
    with pytest.raises(RegistryError, match="not applied"):
        reg.write_state("policy", {"windows": 4})
    assert reg.read_state("policy") == {"windows": 3}


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"x": float("nan")}, "not JSON-serialisable"),
        ({"x": object()}, "not JSON-serialisable"),
        ([1, 2], "must be a dict"),
    ],
)
def test_bad_state_is_refused_before_anything_is_written(store, bad, match):
    before = snapshot(store)
    with pytest.raises(RegistryError, match=match):
        open_registry(store, MODEL).write_state("policy", bad)
    assert snapshot(store) == before


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda r: r.set_status(1, "bogus"), "status 'bogus'"),
        (lambda r: r.set_alias("bad\nalias", 1), "alias name"),
        (lambda r: r.set_alias("champion", 1, expected=3), "expected version 3"),
        (lambda r: r.write_state("../x", {}), "state key"),
    ],
)
def test_bad_registry_calls_are_refused_with_state_unchanged(store, call, match):
    before = snapshot(store)
    with pytest.raises((RegistryError, ConflictError), match=match):
        call(open_registry(store, MODEL))
    assert snapshot(store) == before


# ------------------------------------------------------------------ forged or rewritten history


def test_edited_record_is_named(store):
    log = root(store) / "audit.jsonl"
    log.write_text(log.read_text().replace('"reason":"second"', '"reason":"forged"'))
    assert_clear_cli_error(verify(store), "hash mismatch", "edited")


def test_keyless_chain_rewritten_passes_the_chain_but_not_the_state_check(store):
    # A keyless store resists accidental edits only: a full rewrite recomputes every hash.
    # Moving the champion that way still shows: the live state is not what the log says.
    def move(records):
        for r in records:
            if r["event"] == "promotion" and r["payload"]["version"] == 2:
                r["payload"]["version"] = 3
                r["txn"]["aliases"]["champion"] = 3

    rewrite_chain(store, move)
    out = assert_clear_cli_error(verify(store), "champion", "log says 3")
    assert "accidental edits" in out


def test_rewritten_chain_without_the_key_fails_verify(keyed_store):
    def edit(records):
        for r in records:
            if r["event"] == "promotion" and r["payload"]["reason"] == "second":
                r["payload"]["reason"] = "forged"

    rewrite_chain(keyed_store, edit)
    assert_clear_cli_error(verify(keyed_store), "no record carries a MAC")


def test_forged_macs_without_the_key_fail_verify(keyed_store):
    log = root(keyed_store) / "audit.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    records[-1]["payload"]["windows"] = 99  # edit, recompute the hash, make up a MAC
    records[-1]["hash"] = record_hash(records[-1])
    records[-1]["mac"] = hashlib.sha256(b"guess" + records[-1]["hash"].encode()).hexdigest()
    log.write_text("".join(canonical_json(r) + "\n" for r in records))
    assert_clear_cli_error(verify(keyed_store), "MAC mismatch", "forged")


def test_appended_record_without_mac_fails_verify(keyed_store, monkeypatch):
    monkeypatch.delenv(AUDIT_KEY_ENV)
    open_registry(keyed_store, MODEL).audit.append("snapshot", {"rows": 1})
    monkeypatch.setenv(AUDIT_KEY_ENV, KEY)
    assert_clear_cli_error(verify(keyed_store), "no MAC after MACed records")


def test_rewritten_chain_is_caught_by_the_anchor_even_without_the_key(keyed_store, monkeypatch):
    rewrite_chain(keyed_store, lambda records: records[0]["payload"].update(run_label="forged"))
    monkeypatch.delenv(AUDIT_KEY_ENV)  # the verifier has only the anchor
    assert_clear_cli_error(verify(keyed_store), "anchor", "rewritten")


def test_records_cut_off_the_end_are_caught_by_the_anchor(keyed_store):
    rewrite_chain(keyed_store, lambda records: records.pop())
    assert_clear_cli_error(verify(keyed_store), "anchor", "removed from the end")


def test_unwritable_anchor_does_not_undo_a_promotion_and_verify_names_it(store, monkeypatch):
    blocker = Path(store).parent / "anchor-is-a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(AUDIT_ANCHOR_ENV, str(blocker))
    result = reg_cli(store, "promote", "3")
    assert result.exit_code == 0, result.output  # the record and the state are both written
    assert open_registry(store, MODEL).check_state() == []
    assert_clear_cli_error(verify(store), "anchor", "unreadable")


def test_keyed_store_verifies_and_says_how(keyed_store):
    result = verify(keyed_store)
    assert result.exit_code == 0, result.output
    assert "keyed (HMAC-SHA256), anchored at" in result.output


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({AUDIT_KEY_ENV: "short"}, ["REFIT_AUDIT_KEY", "16"]),
        ({AUDIT_KEY_ENV: KEY, TOKEN_KEY_ENV: KEY}, ["REFIT_AUDIT_KEY", "tokenization key"]),
        ({AUDIT_KEY_FILE_ENV: "/nonexistent/key"}, ["REFIT_AUDIT_KEY_FILE", "/nonexistent/key"]),
    ],
)
def test_bad_audit_key_is_a_clear_error(store, monkeypatch, env, names):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    before = snapshot(store)
    assert_clear_cli_error(reg_cli(store, "promote", "3"), *names)
    assert_clear_cli_error(verify(store), *names)
    assert snapshot(store) == before


def test_key_from_a_mounted_secret_file(tmp_path, monkeypatch):
    key_file = tmp_path / "secret" / "key"
    key_file.parent.mkdir()
    key_file.write_text(KEY + "\n")
    monkeypatch.setenv(AUDIT_KEY_FILE_ENV, str(key_file))
    s = str(tmp_path / "store")
    _populate(s, tmp_path)
    assert all("mac" in r for r in open_registry(s, MODEL).audit.records())
    assert verify(s).exit_code == 0
    monkeypatch.setenv(AUDIT_KEY_FILE_ENV, str(tmp_path / "other"))
    (tmp_path / "other").write_text("another-key-of-32-bytes-length!!")
    assert_clear_cli_error(verify(s), "MAC mismatch")


# ------------------------------------------------------------------ state vs log


def test_champion_moved_without_a_record_is_named(store):
    refs = json.loads((root(store) / "refs.json").read_text())
    refs["aliases"]["champion"] = 3
    (root(store) / "refs.json").write_text(json.dumps(refs))
    assert_clear_cli_error(verify(store), "alias 'champion'", "live 3", "log says 2")


def test_state_object_replaced_by_an_older_one_is_named_and_healed(store):
    old = (root(store) / "refs.json").read_bytes()
    reg = open_registry(store, MODEL)
    reg.set_status(3, "retired")
    (root(store) / "refs.json").write_bytes(old)  # an older copy put back: looks like a crash
    assert_clear_cli_error(verify(store), "behind the log")
    assert reg.get(3).status == "registered"
    reg.recover()  # the log is the truth: roll forward
    assert reg.get(3).status == "retired" and verify(store).exit_code == 0


def test_state_object_from_another_history_is_named(store):
    refs = json.loads((root(store) / "refs.json").read_text())
    refs["commit"] = {"id": "made-up", "seq": 2}
    (root(store) / "refs.json").write_text(json.dumps(refs))
    assert_clear_cli_error(verify(store), "not the last transaction", "without its audit record")


def test_state_object_removed_is_named(store):
    (root(store) / "refs.json").unlink()
    assert_clear_cli_error(verify(store), "refs.json has no commit")


def test_writer_killed_after_its_record_is_completed_by_recover(store):
    reg = open_registry(store, MODEL)
    refs, _ = reg._refs()
    txn = {
        "id": "crashed",
        "base": refs["commit"]["id"],
        "full": False,
        "aliases": {"challenger": 3},
        "statuses": {},
        "state": {},
    }
    reg.audit.append("registry_update", {"model": MODEL}, txn=txn)  # then the writer died
    assert_clear_cli_error(verify(store), "behind the log", "refit audit recover")
    assert reg.get_alias("challenger") is None
    result = cli("audit", "recover", "--store", store, "--model", MODEL)
    assert result.exit_code == 0 and "completed" in result.output
    assert reg.get_alias("challenger") == 3 and verify(store).exit_code == 0


def test_a_record_that_lost_a_race_is_aborted_and_hidden(store):
    reg = open_registry(store, MODEL)
    refs, _ = reg._refs()
    base = refs["commit"]["id"]
    for txn_id, version in (("winner", 3), ("loser", 1)):  # two writers on the same base
        txn = {"id": txn_id, "base": base, "full": False, "aliases": {"challenger": version}}
        reg.audit.append("registry_update", {"model": MODEL, "who": txn_id}, txn=txn)
    reg.recover()
    assert reg.get_alias("challenger") == 3 and reg.check_state() == []
    assert "loser" not in [r["payload"].get("who") for r in reg.audit.records()]


# ------------------------------------------------------------------ every file of a version


def test_reordered_model_json_is_refused_by_name(store):
    meta_path = root(store) / "versions" / "3" / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["features"].reverse()  # same digest of the model file: only the manifest notices
    meta_path.write_text(json.dumps(meta))
    before = snapshot(store)
    assert_clear_cli_error(reg_cli(store, "promote", "3"), "model.json", "changed after")
    assert snapshot(store) == before
    assert_clear_cli_error(reg_cli(store, "verify", "3"), "model.json")
    assert_clear_cli_error(verify(store), "model.json")
    with pytest.raises(IntegrityError, match="model.json was changed after registration"):
        open_registry(store, MODEL).load_model(3)


def test_edited_card_and_added_file_are_refused(store):
    (root(store) / "versions" / "1" / "card.md").write_text("# forged\n")
    (root(store) / "versions" / "2" / "extra.pkl").write_bytes(b"\x80\x04")
    out = assert_clear_cli_error(reg_cli(store, "verify"), "card.md", "extra.pkl")
    assert "not in the version's manifest" in out


def test_rewritten_manifest_is_caught_by_the_registration_record(store):
    folder = root(store) / "versions" / "3"
    meta = json.loads((folder / "model.json").read_text())
    meta["features"].reverse()
    (folder / "model.json").write_text(json.dumps(meta))
    record = json.loads((folder / "version.json").read_text())
    record["manifest"]["model.json"] = hashlib.sha256(
        (folder / "model.json").read_bytes()
    ).hexdigest()
    (folder / "version.json").write_text(json.dumps(record))
    assert open_registry(store, MODEL).verify(3).version == 3  # the folder agrees with itself...
    assert_clear_cli_error(verify(store), "version 3", "registration record")  # ...not the log
    assert_clear_cli_error(reg_cli(store, "verify", "3"), "version 3", "registration record")


def test_version_from_before_manifests_is_named_not_passed(store):
    folder = root(store) / "versions" / "1"
    record = json.loads((folder / "version.json").read_text())
    del record["manifest"]
    (folder / "version.json").write_text(json.dumps(record))
    result = reg_cli(store, "verify")
    assert result.exit_code == 0
    assert "v1 registered before manifests" in result.output


@pytest.mark.parametrize(
    "txn", [{"base": None}, {"id": 5, "base": None}, {"id": "x", "aliases": 3}]
)
def test_malformed_transaction_records_never_apply(store, txn):
    reg = open_registry(store, MODEL)
    txn = {**txn, "base": reg._refs()[0]["commit"]["id"]} if "base" not in txn else txn
    reg.audit.append("registry_update", {"model": MODEL}, txn=txn)
    before = (root(store) / "refs.json").read_bytes()
    reg.recover()
    assert (root(store) / "refs.json").read_bytes() == before  # nothing rolled forward
    assert reg.check_state() == [] and reg.get_alias("champion") == 2
    assert verify(store).exit_code == 0


def test_garbage_line_in_the_middle_is_named_by_verify(store):
    log = root(store) / "audit.jsonl"
    lines = log.read_bytes().split(b"\n")
    lines.insert(2, b"\x00\xffnot a record")
    log.write_bytes(b"\n".join(lines))
    out = assert_clear_cli_error(verify(store), "line 3", "not a valid audit record")
    assert "TAMPERED" in out


# ------------------------------------------------------------------ registration crashes


def test_version_json_without_its_record_is_rolled_forward(store):
    versions = root(store) / "versions"
    shutil.copytree(versions / "3", versions / "4")  # a writer died after version.json
    record = json.loads((versions / "4" / "version.json").read_text())
    record.update(version=4, model_uri=str(versions / "4"), run_label="run-4")
    (versions / "4" / "version.json").write_text(json.dumps(record))
    assert_clear_cli_error(verify(store), "version 4", "no registration record")
    result = cli("audit", "recover", "--store", store, "--model", MODEL)
    assert result.exit_code == 0, result.output
    reg = open_registry(store, MODEL)
    rec = [r for r in reg.audit.records() if r["event"] == "registration"][-1]
    assert rec["payload"]["version"] == 4 and rec["payload"]["recovered"] is True
    assert rec["payload"]["run_label"] == "run-4" and rec["txn"]["statuses"] == {"4": "registered"}
    assert reg.get(4).status == "registered" and reg.check_state() == []
    assert verify(store).exit_code == 0
    reg.recover()  # idempotent: recorded once
    assert [r["payload"]["version"] for r in reg.audit.records("registration")] == [1, 2, 3, 4]


def test_registration_record_without_its_version_is_named(store):
    (root(store) / "versions" / "3" / "version.json").unlink()
    assert_clear_cli_error(verify(store), "registration of version 3", "version.json is missing")


def test_half_copied_version_folder_is_invisible(store, tmp_path):
    folder = root(store) / "versions" / "4"  # a writer died mid-copy: claim, part of the files
    folder.mkdir()
    (folder / ".claim").write_text("dead-writer")
    (folder / "model.json").write_text('{"file": "model.ubj"}')
    (folder / ".tmp-k2j4model").write_bytes(b"half a mod")
    before = snapshot(store)
    reg = open_registry(store, MODEL)
    assert reg.list_version_numbers() == [1, 2, 3] and not reg.exists(4)
    assert_clear_cli_error(reg_cli(store, "promote", "4"), "version 4")
    assert snapshot(store) == before
    assert verify(store).exit_code == 0 and reg.check_state() == []
    mv = reg.register(
        make_model_dir(tmp_path / "next", b"model-5", "v5"),
        metrics={"accuracy": 0.8},
        snapshot_sha256="s" * 64,
        parent_version=None,
        run_label="run-5",
    )
    assert mv.version == 5 and reg.list_version_numbers() == [1, 2, 3, 5]  # 4 never reused
    assert verify(store).exit_code == 0


def test_temp_file_left_in_a_registered_version_is_not_taken_for_a_file(store):
    # a writer killed between version.json's link and its temp file's removal
    (root(store) / "versions" / "3" / ".tmp-9x8y7z").write_text("{}")
    assert open_registry(store, MODEL).verify(3).version == 3
    assert reg_cli(store, "promote", "3").exit_code == 0
    assert verify(store).exit_code == 0


def test_model_dir_with_a_temp_file_name_is_refused(store, tmp_path):
    src = make_model_dir(tmp_path / "tmpname", b"model-9", "v9")
    (src / ".tmp-x").write_text("x")
    before = snapshot(store)
    with pytest.raises(RegistryError, match=r"\.tmp-x.*names the registry keeps for itself"):
        open_registry(store, MODEL).register(
            src, metrics={}, snapshot_sha256="s" * 64, parent_version=None, run_label="r"
        )
    assert snapshot(store) == before
