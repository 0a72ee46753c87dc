"""The distributed XGBoost workers run for real: N processes on loopback with the DMLC_* variables.

Kubeflow Trainer's ``xgboost-distributed`` runtime starts one pod per node and injects
``DMLC_TRACKER_URI/PORT``, ``DMLC_TASK_ID`` and ``DMLC_NUM_WORKER``; ``run_local`` starts the
same worker module as local processes with the same variables (tracker on 127.0.0.1). Each
worker must read only its own row groups, the model must score on the holdout like a
one-process model trained on the same rows, and a worker killed mid-way must fail the job
clearly, after which a rerun resumes from the checkpoint.

Tolerance: the distributed ``hist`` booster builds its bins from a merged quantile sketch
instead of one process's exact quantiles, so the trees differ slightly; the holdout ROC AUC is
held within 0.01 and the log loss within 0.02 of the one-process model's.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from refit.errors import DataError, TrainingError
from refit.io.tables import read_table
from refit.training import load_model, train
from refit.training.card import validation_metrics
from refit.training.distributed_local import run_local
from refit.training.distributed_plan import (
    DistributedConfig,
    DmlcEnv,
    holdout_mask,
    plan_shards,
)

ROWS = 12_000
ROW_GROUP = 750  # 16 row groups
PARAMS = {"n_estimators": 60, "max_depth": 4, "learning_rate": 0.2}
AUC_TOLERANCE = 0.01
LOG_LOSS_TOLERANCE = 0.02


def make_table(rows: int = ROWS, seed: int = 5) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 5))
    region = rng.choice(["north", "south", "east"], size=rows)
    region[-200:] = "west"  # a category only the last worker's shard holds
    signal_ = x[:, 0] + 0.7 * x[:, 1] * x[:, 2] - 0.5 * x[:, 3] + (region == "west") * 1.5
    label = (signal_ + 0.6 * rng.normal(size=rows) > 0.3).astype(np.int64)
    return pa.table({**{f"x{i}": x[:, i] for i in range(5)}, "region": region, "label": label})


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pa.Table]:
    path = tmp_path_factory.mktemp("snapshot") / "window.parquet"
    table = make_table()
    pq.write_table(table, path, row_group_size=ROW_GROUP)
    return path, table


def config_for(snapshot: Path, out: Path, **kw: object) -> DistributedConfig:
    return DistributedConfig(
        snapshot=str(snapshot),
        label_column="label",
        model_uri=str(out / "model"),
        holdout_uri=str(out / "holdout"),
        report_uri=str(out / "workers"),
        params=dict(kw.pop("params", PARAMS)),  # type: ignore[arg-type]
        seed=3,
        timeout_s=300,
        **kw,  # type: ignore[arg-type]
    )


def reports(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "workers").glob("worker-*.json"))]


# --------------------------------------------------------------------------- planning (fast)


def test_shards_partition_the_row_groups_contiguously_and_evenly(snapshot) -> None:
    path, table = snapshot
    for world in (1, 2, 3, 4, 16):
        shards = plan_shards(str(path), world)
        units = [u for s in shards for u in s.units]
        assert [u.row_group for u in units] == list(range(16))  # each once, in order
        assert all(s.units for s in shards)
        rows = [s.rows for s in shards]
        assert sum(rows) == table.num_rows
        assert max(rows) - min(rows) <= ROW_GROUP * (1 if 16 % world == 0 else 2)
        rows_seen = np.concatenate([s.global_rows() for s in shards])
        assert np.array_equal(rows_seen, np.arange(table.num_rows))
    with pytest.raises(DataError, match="16 non-empty Parquet row group.*17 workers"):
        plan_shards(str(path), 17)


def test_shards_of_a_folder_of_files(tmp_path: Path) -> None:
    table = make_table(3000)
    for i in range(3):
        pq.write_table(table.slice(i * 1000, 1000), tmp_path / f"part-{i}.parquet")
    shards = plan_shards(str(tmp_path), 3)
    assert [[Path(u.source).name for u in s.units] for s in shards] == [
        ["part-0.parquet"],
        ["part-1.parquet"],
        ["part-2.parquet"],
    ]
    assert [s.units[0].first_row for s in shards] == [0, 1000, 2000]


def test_holdout_mask_is_seeded_and_near_the_fraction() -> None:
    rows = np.arange(100_000)
    mask = holdout_mask(rows, 0.25, seed=3)
    assert abs(mask.mean() - 0.25) < 0.01
    assert np.array_equal(mask[500:900], holdout_mask(rows[500:900], 0.25, seed=3))
    assert not np.array_equal(mask, holdout_mask(rows, 0.25, seed=4))
    with pytest.raises(DataError, match="holdout_fraction"):
        holdout_mask(rows, 1.0, seed=3)


def test_dmlc_env_is_checked() -> None:
    env = DmlcEnv("127.0.0.1", 9091, 1, 2)
    assert DmlcEnv.from_environ(env.to_environ()) == env
    with pytest.raises(TrainingError, match=r"\['DMLC_TASK_ID'\] are not set"):
        DmlcEnv.from_environ({k: v for k, v in env.to_environ().items() if k != "DMLC_TASK_ID"})
    with pytest.raises(TrainingError, match=r"DMLC_TASK_ID=2 is outside \[0, 1\]"):
        DmlcEnv.from_environ({**env.to_environ(), "DMLC_TASK_ID": "2"})


def test_config_round_trips_and_refuses_unknown_fields(tmp_path: Path) -> None:
    config = config_for(tmp_path / "w.parquet", tmp_path)
    assert DistributedConfig.from_json(config.to_json()) == config
    with pytest.raises(TrainingError, match=r"unknown field\(s\) \['bogus'\]"):
        DistributedConfig.from_json(json.dumps({**json.loads(config.to_json()), "bogus": 1}))
    with pytest.raises(TrainingError, match="checkpoint_every must be an integer >= 1"):
        DistributedConfig.from_json(
            json.dumps({**json.loads(config.to_json()), "checkpoint_every": 0})
        )


# --------------------------------------------------------------------------- real workers


@pytest.mark.parametrize("workers", [2, 4])
def test_workers_read_their_shard_and_match_one_process(snapshot, tmp_path, workers) -> None:
    path, table = snapshot
    out = tmp_path / "run"
    run_local(config_for(path, out), workers, timeout_s=900)

    # Each worker read exactly its planned row groups, and its holdout rows come from them.
    shards = plan_shards(str(path), workers)
    done = reports(out)
    assert [r["rank"] for r in done] == list(range(workers))
    holdout_parts = []
    for shard, report in zip(shards, done, strict=True):
        assert report["units"] == [
            [u.source, u.row_group, u.first_row, u.rows] for u in shard.units
        ]
        assert report["rows_read"] == shard.rows < table.num_rows
        rows = shard.global_rows()
        held = holdout_mask(rows, 0.25, seed=3)
        part = read_table(str(out / "holdout" / f"part-{shard.rank:05d}.parquet"))
        assert part.equals(table.take(rows[held]))
        assert report["train_rows"] == int((~held).sum())
        holdout_parts.append(part)

    # The one model, in refit's safe format, with the card of a distributed run.
    model = load_model(out / "model")
    card = json.loads((out / "model" / "model.json").read_text())["card"]
    assert card["distributed"]["workers"] == workers
    assert card["distributed"]["nodes"] == 1
    assert [r["rows_read"] for r in card["distributed"]["workers_rows"]] == [s.rows for s in shards]
    assert card["rounds"] == PARAMS["n_estimators"]
    assert "region=west" in model.spec.feature_names  # merged over shards

    # Same rows on one process: the holdout metrics agree within the stated tolerance.
    mask = holdout_mask(np.arange(table.num_rows), 0.25, seed=3)
    single = train(table.filter(pa.array(~mask)), "label", "xgboost", PARAMS, seed=3, device="cpu")
    holdout = pa.concat_tables(holdout_parts)
    dist_metrics = validation_metrics(model, holdout)
    single_metrics = validation_metrics(single, holdout)
    assert abs(dist_metrics["roc_auc"] - single_metrics["roc_auc"]) <= AUC_TOLERANCE
    assert abs(dist_metrics["log_loss"] - single_metrics["log_loss"]) <= LOG_LOSS_TOLERANCE
    assert dist_metrics["roc_auc"] > 0.85


def _worker_pid(rank: int) -> int | None:
    """The pid of this test's worker process with DMLC_TASK_ID=rank (from /proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and f"DMLC_TASK_ID={rank}".encode() in environ:
            return int(entry.name)
    return None


def _kill_worker_after_checkpoint(ckpt: Path, rank: int, min_round: int, killed: list) -> None:
    pointer = ckpt / "checkpoint.json"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if pointer.is_file():
            try:
                done = json.loads(pointer.read_text())["round"]
            except (ValueError, KeyError):
                done = 0
            if done >= min_round:
                pid = _worker_pid(rank)
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(done)
                    return
        time.sleep(0.01)


def test_killed_worker_fails_the_job_and_a_rerun_resumes(snapshot, tmp_path) -> None:
    path, _ = snapshot
    ckpt = tmp_path / "ckpt"
    params = {"n_estimators": 1500, "max_depth": 3, "learning_rate": 0.02}
    config = config_for(path, tmp_path / "run", params=params, checkpoint_uri=str(ckpt),
                        checkpoint_every=10)  # fmt: skip
    killed: list[int] = []
    killer = threading.Thread(target=_kill_worker_after_checkpoint, args=(ckpt, 1, 20, killed))
    killer.start()
    with pytest.raises(TrainingError) as failure:
        run_local(config, 2, timeout_s=900)
    killer.join()
    assert killed, "the worker was not killed"
    message = str(failure.value)
    assert "worker 1 of 2 was killed by SIGKILL" in message
    assert "resumes from the last checkpoint" in message
    assert not (tmp_path / "run" / "model" / "model.json").exists()
    at = json.loads((ckpt / "checkpoint.json").read_text())["round"]
    assert 20 <= at < params["n_estimators"]

    run_local(config, 2, timeout_s=900)
    done = reports(tmp_path / "run")
    assert [r["resumed_from_round"] for r in done] == [at, at]
    card = json.loads((tmp_path / "run" / "model" / "model.json").read_text())["card"]
    assert card["resumed_from_round"] == at
    assert card["rounds"] == params["n_estimators"]


# --------------------------------------------------------------------------- refit train


def test_refit_train_with_local_workers(snapshot, tmp_path) -> None:
    from typer.testing import CliRunner

    from refit.cli import app

    path, table = snapshot
    args = ["train", "--data", str(path), "--label-column", "label", "--output",
            str(tmp_path / "model"), "--param", "n_estimators=20", "--seed", "3"]  # fmt: skip
    refused = CliRunner().invoke(app, [*args, "--workers", "2"])
    assert refused.exit_code == 2
    assert "give a --holdout-fraction above 0" in refused.output
    result = CliRunner().invoke(app, [*args, "--workers", "2", "--holdout-fraction", "0.25"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["distributed"]["executor"] == "local"
    assert summary["distributed"]["workers"] == 2
    assert summary["rounds"] == 20
    model = load_model(tmp_path / "model")
    holdout = read_table(str(tmp_path / "model.holdout"))
    mask = holdout_mask(np.arange(table.num_rows), 0.25, seed=3)
    assert holdout.num_rows == int(mask.sum())
    assert validation_metrics(model, holdout)["roc_auc"] > 0.8


def test_a_node_runs_one_worker_per_gpu_slot(snapshot, tmp_path) -> None:
    # The GPU layout on the CPU: the runtime numbers nodes; a node with workers_per_node 2
    # starts two workers, ranks node * 2 + i, each with its own DMLC_TASK_ID.
    import subprocess
    import sys

    from refit.training.distributed_local import free_port

    path, _ = snapshot
    config = config_for(path, tmp_path / "run", params={"n_estimators": 10})
    config.workers_per_node = 2

    def node(num_worker: int) -> subprocess.CompletedProcess:
        env = {**os.environ, **DmlcEnv("127.0.0.1", free_port(), 0, num_worker).to_environ()}
        argv = [sys.executable, "-m", "refit.training.distributed", "--config", config.to_json()]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)

    bad = node(3)
    assert bad.returncode == 2
    assert "DMLC_NUM_WORKER=3, DMLC_TASK_ID=0 do not fit 1 node(s) of 2 worker(s)" in bad.stderr
    done = node(1)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [(r["rank"], r["world"]) for r in reports(tmp_path / "run")] == [(0, 2), (1, 2)]
    card = json.loads((tmp_path / "run" / "model" / "model.json").read_text())["card"]
    assert (card["distributed"]["workers"], card["distributed"]["workers_per_node"]) == (2, 2)
