import ast
import hashlib
import importlib
import json
import multiprocessing as mp
import re
from pathlib import Path

import pytest

from refit.audit import GENESIS_HASH, AuditEvent, AuditLog, canonical_json, events, record_hash
from refit.errors import IntegrityError
from refit.governance import history, record_sections


def _log(tmp_path, n=5):
    log = AuditLog(tmp_path / "sub" / "audit.jsonl")
    for i in range(n):
        log.append("event", {"i": i, "note": f"record {i}"})
    return log


def _lines(log):
    return log.path.read_text().splitlines()


def _write_lines(log, lines):
    log.path.write_text("".join(line + "\n" for line in lines))


def test_append_builds_hash_chain(tmp_path):
    log = _log(tmp_path, 3)
    records = log.records()
    assert [r["seq"] for r in records] == [1, 2, 3]
    assert records[0]["prev_hash"] == GENESIS_HASH
    for before, after in zip(records, records[1:], strict=False):
        assert after["prev_hash"] == before["hash"]
    for r in records:
        assert set(r) == {"seq", "time", "event", "payload", "prev_hash", "hash"}
        body = {k: v for k, v in r.items() if k != "hash"}

        expected = hashlib.sha256(
            json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()
        assert r["hash"] == expected == record_hash(r)
    assert log.verify() == []


def test_append_returns_record_and_filters_by_event(tmp_path):
    log = AuditLog(tmp_path / "a.jsonl")
    rec = log.append("promotion", {"version": 2, "t": (1, 2)})
    log.append("rollback", {"version": 1})
    assert rec["payload"] == {"version": 2, "t": [1, 2]}  # normalised to JSON
    assert [r["event"] for r in log.records("promotion")] == ["promotion"]
    assert log.records()[0] == rec
    assert AuditLog(tmp_path / "missing.jsonl").records() == []
    assert AuditLog(tmp_path / "missing.jsonl").verify() == []


def test_append_rejects_bad_input(tmp_path):
    log = AuditLog(tmp_path / "a.jsonl")
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        log.append("x", {"obj": object()})
    with pytest.raises(ValueError, match="non-empty"):
        log.append("", {})
    with pytest.raises(ValueError, match="NaN|JSON"):
        log.append("x", {"v": float("nan")})


def test_edited_record_detected(tmp_path):
    log = _log(tmp_path)
    lines = _lines(log)
    rec = json.loads(lines[2])
    rec["payload"]["note"] = "forged"
    lines[2] = canonical_json(rec)
    _write_lines(log, lines)
    problems = log.verify()
    assert len(problems) == 1
    assert "line 3 (seq 3)" in problems[0] and "hash mismatch" in problems[0]


def test_edited_record_with_recomputed_hash_breaks_chain(tmp_path):
    log = _log(tmp_path)
    lines = _lines(log)
    rec = json.loads(lines[1])
    rec["payload"]["note"] = "forged"
    rec["hash"] = record_hash(rec)
    lines[1] = canonical_json(rec)
    _write_lines(log, lines)
    problems = log.verify()
    assert any("line 3 (seq 3)" in p and "prev_hash" in p for p in problems)


def test_removed_record_detected(tmp_path):
    log = _log(tmp_path)
    lines = _lines(log)
    del lines[2]
    _write_lines(log, lines)
    problems = log.verify()
    assert any("seq 4" in p and "1 record(s) removed" in p for p in problems)
    assert any("line 3 (seq 4)" in p and "prev_hash" in p for p in problems)


def test_reordered_records_detected(tmp_path):
    log = _log(tmp_path)
    lines = _lines(log)
    lines[1], lines[2] = lines[2], lines[1]
    _write_lines(log, lines)
    problems = log.verify()
    assert any("line 3 (seq 2)" in p and "reordered" in p for p in problems)
    assert any("line 2 (seq 3)" in p and "prev_hash" in p for p in problems)


def test_truncated_last_line_detected_and_append_refused(tmp_path):
    log = _log(tmp_path)
    data = log.path.read_bytes()
    log.path.write_bytes(data[:-20])
    problems = log.verify()
    assert any("line 5" in p and "truncated" in p for p in problems)
    with pytest.raises(IntegrityError, match="truncated"):
        log.append("event", {})


def test_garbage_line_detected(tmp_path):
    log = _log(tmp_path)
    lines = _lines(log)
    lines.insert(2, "this is not json")
    _write_lines(log, lines)
    problems = log.verify()
    assert any(p.startswith("line 3:") and "garbage" in p for p in problems)
    with pytest.raises(IntegrityError, match="line 3"):
        log.records()


def test_whole_records_cut_off_end_detected_by_head(tmp_path):
    log = _log(tmp_path)
    lines = _lines(log)
    _write_lines(log, lines[:3])
    problems = log.verify()
    assert any("head file records seq 5" in p and "seq 3" in p for p in problems)


def test_garbage_last_line_refuses_append(tmp_path):
    log = _log(tmp_path, 2)
    with open(log.path, "a") as fh:
        fh.write("{broken\n")
    with pytest.raises(IntegrityError, match="not a valid audit record"):
        log.append("event", {})


def _append_many(path, worker, n):
    log = AuditLog(path)
    for i in range(n):
        log.append("concurrent", {"worker": worker, "i": i})


def test_concurrent_appends_from_processes_keep_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(path), w, 10)) for w in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    log = AuditLog(path)
    records = log.records()
    assert [r["seq"] for r in records] == list(range(1, 61))
    assert log.verify() == []


# ---------------------------------------------------------------- event names (refit.audit.events)

_ROOT = Path(__file__).resolve().parents[2]
_SOURCES = [p for d in ("src/refit", "components", "pipelines") for p in (_ROOT / d).rglob("*.py")]


def _module_of(path: Path) -> str:
    rel = path.relative_to(_ROOT)
    parts = list(rel.with_suffix("").parts)
    if parts[0] == "src":
        parts = parts[1:]
    else:  # components/ and pipelines/ are installed as refit.components and refit.pipelines
        parts = ["refit", *parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _event_names(node: ast.expr, path: Path) -> list[str]:
    """The event names an expression can evaluate to (fails on one it cannot read)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _event_names(node.body, path) + _event_names(node.orelse, path)
    if isinstance(node, ast.Attribute) and ast.unparse(node.value) == "AuditEvent":
        return [AuditEvent[node.attr].value]
    if isinstance(node, ast.Name):
        module = importlib.import_module(_module_of(path))
        if hasattr(module, node.id):
            return [str(getattr(module, node.id))]
        # a loop variable over a module-level tuple of events: `for event in EVENTS:`
        for loop in ast.walk(ast.parse(path.read_text("utf-8"))):
            if (
                isinstance(loop, ast.For)
                and isinstance(loop.target, ast.Name)
                and loop.target.id == node.id
                and isinstance(loop.iter, ast.Name)
            ):
                return [str(e) for e in getattr(module, loop.iter.id)]
    raise AssertionError(f"{path}:{node.lineno}: cannot read the event name {ast.unparse(node)}")


def _is_method_call(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)


def _appended(node: ast.AST, path: Path) -> list[ast.expr]:
    """``audit.append(X, ...)``; not the registry transaction's append of its caller's event."""
    if not (
        _is_method_call(node)
        and node.func.attr == "append"
        and "audit" in ast.unparse(node.func.value)
        and node.args
    ):
        return []
    if path.name == "transactions.py" and ast.unparse(node.args[0]) == "event":
        return []  # the registry's transaction appends its caller's event
    return [node.args[0]]


def _transacted(node: ast.AST, path: Path) -> list[ast.expr]:
    """The registry's own transactions: ``_transact(mutate, X, ...)``, ``_attempt(r, t, m, X)``."""
    if not (_is_method_call(node) and node.func.attr in ("_transact", "_attempt")):
        return []
    at = 1 if node.func.attr == "_transact" else 3
    if len(node.args) > at and ast.unparse(node.args[at]) != "event":
        return [node.args[at]]
    return []


def _healed(node: ast.AST, path: Path) -> list[ast.expr]:
    """The audit log's own note (``AuditLog.heal``): ``self.append(AuditEvent.X, ...)``."""
    if (
        path.name == "log.py"
        and _is_method_call(node)
        and node.func.attr == "append"
        and ast.unparse(node.func.value) == "self"
        and node.args
    ):
        return [node.args[0]]
    return []


def _event_keyword(node: ast.AST, path: Path) -> list[ast.expr]:
    """A registry transaction records its event: ``update_aliases(..., event=X)``."""
    if not (_is_method_call(node) and node.func.attr in ("update_aliases", "write_state")):
        return []
    return [
        kw.value
        for kw in node.keywords
        if kw.arg == "event" and ast.unparse(kw.value) != "event"  # write_state forwarding its own
    ]


def _default_event(node: ast.AST, path: Path) -> list[ast.expr]:
    """The registry's default event: ``event = AuditEvent.X``."""
    if (
        isinstance(node, ast.Assign)
        and [ast.unparse(t) for t in node.targets] == ["event"]
        and isinstance(node.value, ast.Attribute)
    ):
        return [node.value]
    return []


#: Each way the sources name an event they write, in the order the locations are listed.
_WRITES = (_appended, _transacted, _healed, _event_keyword, _default_event)


def _written_events() -> dict[str, list[str]]:
    """Event name -> where it is appended to an audit log, over src/, components/, pipelines/."""
    written: dict[str, list[str]] = {}
    for path in _SOURCES:
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            for expr in (e for writes in _WRITES for e in writes(node, path)):
                for name in _event_names(expr, path):
                    written.setdefault(name, []).append(f"{path.name}:{node.lineno}")
    return written


def _read_events() -> dict[str, list[str]]:
    """Event names compared against a record's event, or asked for by name, in src/refit."""
    read: dict[str, list[str]] = {}
    for path in (_ROOT / "src" / "refit").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if (  # log.records("x"), iteration.first/last/all("x")
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("records", "first", "last", "all")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                read.setdefault(node.args[0].value, []).append(f"{path.name}:{node.lineno}")
            if not isinstance(node, ast.Compare):
                continue
            sides = [node.left, *node.comparators]
            if not any(re.search(r"\bevent\b|\[.event.\]", ast.unparse(s)) for s in sides):
                continue
            for side in sides:
                for const in ast.walk(side):
                    if isinstance(const, ast.Constant) and isinstance(const.value, str):
                        if const.value != "event":
                            read.setdefault(const.value, []).append(f"{path.name}:{node.lineno}")
    return read


def test_every_event_written_is_an_audit_event_and_every_one_is_written():
    written = _written_events()
    unknown = {name: where for name, where in written.items() if name not in set(AuditEvent)}
    assert unknown == {}, "add these to refit.audit.events.AuditEvent"
    assert set(written) == set(AuditEvent), "members that nothing writes"


def test_readers_compare_only_against_audit_events():
    read = _read_events()
    assert {name: where for name, where in read.items() if name not in set(AuditEvent)} == {}


def test_event_groups_cover_the_enum():
    groups = [events.RUN_EVENTS, events.APPROVAL_EVENTS, events.CANARY_EVENTS]
    groups += [events.LIVE_EVENTS, events.SERVICE_EVENTS]
    assert sum(len(g) for g in groups) == len(AuditEvent)  # disjoint
    assert frozenset().union(*groups) == set(AuditEvent)
    assert history.VERSION_EVENTS == events.VERSION_EVENTS
    # the release record has a section for every event but those written outside a run
    assert record_sections.KNOWN_EVENTS | events.SERVICE_EVENTS == set(AuditEvent)
    assert history.TRIGGER_EVENT in events.SERVICE_EVENTS
    assert history.TRIGGER_EVENT not in record_sections.KNOWN_EVENTS


def test_event_members_are_their_strings_in_the_log(tmp_path):
    log = AuditLog(tmp_path / "a.jsonl")
    rec = log.append(AuditEvent.PROMOTION, {"version": 2})
    assert type(rec["event"]) is str and rec["event"] == "promotion"
    line = json.loads((tmp_path / "a.jsonl").read_text())
    assert line["event"] == "promotion" and line["hash"] == record_hash(line)
    assert log.records(AuditEvent.PROMOTION) == log.records("promotion") == [rec]
    assert log.verify() == []
