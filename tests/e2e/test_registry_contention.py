"""Many processes promote different versions at once: exactly one wins each round.

Against a local folder (file lock + atomic rename) and against a real fake-gcs-server
(``if_generation_match`` on ``refs.json``). Every process reads the champion, waits at a barrier
with the others, then promotes its own version on condition that the champion is still the one it
read; the losers must get ConflictError, and the registry must show exactly the winner's update.
"""

import multiprocessing as mp
from collections.abc import Iterator
from pathlib import Path

import pytest
from _gcs import fake_gcs
from _models import make_model_dir

from refit.deploy import LocalTarget
from refit.errors import ConflictError
from refit.io import uri as uri_mod
from refit.registry import ModelRegistry

ROUNDS = (50, 12, 6)
CTX = mp.get_context("fork")  # fast start; each child opens its own GCS connections


def _promoter(store: str, version: int, barrier, results) -> None:
    uri_mod._client_for.cache_clear()  # never share the parent's HTTP connections
    try:
        reg = ModelRegistry(store, "contended")
        seen = reg.get_alias("champion")
        barrier.wait(timeout=120)
        LocalTarget(reg).promote(version, reason=f"p{version}", expected_champion=seen)
        results.put(("won", version, ""))
    except ConflictError as exc:
        results.put(("conflict", version, str(exc)))
    except Exception as exc:  # reported to the test, which fails on it
        results.put(("error", version, repr(exc)))


def _contend(store: str, tmp_path: Path) -> None:
    reg = ModelRegistry(store, "contended")
    total = 1 + sum(ROUNDS)
    for i in range(1, total + 1):
        reg.register(
            make_model_dir(tmp_path, f"model {i}".encode(), str(i)),
            metrics={},
            snapshot_sha256="",
            parent_version=None,
            run_label="",
        )
    LocalTarget(reg).promote(1, reason="initial")
    next_version = 2
    champions = [1]
    for size in ROUNDS:
        versions = list(range(next_version, next_version + size))
        next_version += size
        barrier = CTX.Barrier(size)
        results = CTX.Queue()
        procs = [CTX.Process(target=_promoter, args=(store, v, barrier, results)) for v in versions]
        for p in procs:
            p.start()
        outcomes = [results.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        errors = [o for o in outcomes if o[0] == "error"]
        assert not errors, errors
        winners = [v for kind, v, _ in outcomes if kind == "won"]
        assert len(winners) == 1, outcomes
        losers = [msg for kind, _, msg in outcomes if kind == "conflict"]
        assert len(losers) == size - 1
        assert all("changed by a concurrent writer" in m for m in losers)
        (winner,) = winners
        # no lost or torn update: both aliases and the statuses are the winner's
        assert reg.aliases() == {"champion": winner, "previous": champions[-1]}
        assert reg.get(winner).status == "champion"
        assert reg.get(champions[-1]).status == "previous"
        assert all(reg.get(v).status == "registered" for v in versions if v != winner)
        champions.append(winner)
    promotions = [r["payload"]["version"] for r in reg.audit.records("promotion")]
    assert promotions == champions  # the losers' records were aborted: never applied, not shown
    assert reg.audit.verify() == [] and reg.check_state() == []


def test_local_folder_contention(tmp_path):
    _contend(str(tmp_path / "store"), tmp_path)


@pytest.fixture(scope="module")
def contention_bucket() -> Iterator[str]:
    with fake_gcs("refit-contention"):
        yield "gs://refit-contention/store"


def test_gcs_contention(contention_bucket, tmp_path):
    _contend(contention_bucket, tmp_path)


def _appender(store: str, who: int, barrier, results) -> None:
    uri_mod._client_for.cache_clear()
    try:
        log = ModelRegistry(store, "audited").audit
        barrier.wait(timeout=120)
        for i in range(4):
            log.append("trigger", {"who": who, "i": i})
        results.put(("ok", who, ""))
    except Exception as exc:
        results.put(("error", who, repr(exc)))


def test_gcs_audit_appends_from_many_processes_keep_one_chain(contention_bucket):
    n = 10
    barrier, results = CTX.Barrier(n), CTX.Queue()
    procs = [
        CTX.Process(target=_appender, args=(contention_bucket, w, barrier, results))
        for w in range(n)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert all(kind == "ok" for kind, _, _ in outcomes), outcomes
    log = ModelRegistry(contention_bucket, "audited").audit
    records = log.records()
    assert [r["seq"] for r in records] == list(range(1, 4 * n + 1))
    assert sorted((r["payload"]["who"], r["payload"]["i"]) for r in records) == [
        (w, i) for w in range(n) for i in range(4)
    ]
    assert log.verify() == []
