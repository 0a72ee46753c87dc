"""`refit train` SIGKILLed part way and restarted resumes from its last checkpoint."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from refit.io.tables import write_parquet
from refit.training import load_model, train

ROUNDS = 600
PARAMS = {"n_estimators": ROUNDS, "max_depth": 2, "learning_rate": 0.05, "n_jobs": 1}


def data() -> pa.Table:
    rng = np.random.default_rng(11)
    n = 2000
    x = rng.normal(size=(n, 6))
    label = (x[:, 0] + x[:, 1] * x[:, 2] - 0.5 * x[:, 3] + 0.5 * rng.normal(size=n) > 0).astype(int)
    return pa.table({**{f"x{i}": x[:, i] for i in range(6)}, "label": label})


def refit_train(data_path: Path, output: Path, ckpt: Path) -> list[str]:
    cmd = [
        sys.executable,
        "-c",
        "from refit.cli import app; app()",
        "train",
    ]
    cmd += [
        "--data",
        str(data_path),
        "--label-column",
        "label",
        "--trainer",
        "xgboost",
        "--output",
        str(output),
        "--device",
        "cpu",
        "--checkpoint-dir",
        str(ckpt),
        "--checkpoint-every",
        "20",
        "--quiet",
    ]
    for key, value in PARAMS.items():
        cmd += ["--param", f"{key}={json.dumps(value)}"]
    return cmd


def test_sigkilled_training_resumes_from_its_last_checkpoint(tmp_path):
    table = data()
    data_path = tmp_path / "data.parquet"
    write_parquet(table, str(data_path))
    ckpt = tmp_path / "ckpt"
    pointer = ckpt / "checkpoint.json"

    # this environment may forbid bytecode caching; a private cache spares the restart a
    # second compilation of scikit-learn and xgboost
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(tmp_path / "pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    first = subprocess.Popen(
        refit_train(data_path, tmp_path / "killed", ckpt),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    deadline = time.monotonic() + 120
    # let it write a few checkpoints (every 20 rounds), then pull the plug
    while not pointer.exists() or json.loads(pointer.read_text())["round"] < 60:
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "no checkpoint at round 60 within 120 s"
        time.sleep(0.005)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "model.json").exists()
    killed_at = json.loads(pointer.read_text())["round"]
    assert 60 <= killed_at < ROUNDS

    second = subprocess.run(
        refit_train(data_path, tmp_path / "model", ckpt),
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout.strip().splitlines()[-1])
    meta = json.loads((tmp_path / "model" / "model.json").read_text())
    assert meta["resumed_from_round"] == summary["resumed_from_round"] >= killed_at > 0
    assert meta["training"]["rounds_skipped"] == meta["resumed_from_round"]
    assert meta["training"]["rounds"] == ROUNDS
    assert meta["device"] == "cpu"
    print(
        f"killed at round {killed_at}; resumed from round {meta['resumed_from_round']}, "
        f"skipping {meta['training']['rounds_skipped']} of {ROUNDS} rounds"
    )

    uninterrupted = train(table, "label", params=PARAMS, device="cpu")
    resumed = load_model(tmp_path / "model")
    np.testing.assert_allclose(
        resumed.predict_proba(table), uninterrupted.predict_proba(table), atol=1e-6
    )
