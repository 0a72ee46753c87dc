"""TrainJobs on Kubeflow Trainer through CustomObjectsApi, against kmock's emulator on loopback.

The test plays the Trainer controller: called through the runner's injected ``sleep``, it
writes the TrainJob's ``status.conditions`` (Created, then Complete or Failed), and in the
end-to-end case it does what the runtime's JobSet would do, starting the body's command as
local worker processes with the ``DMLC_*`` variables. Every TrainJob body refit sends is
validated against the real TrainJob CRD schema from ../shared/specs, and the built-in
``xgboost-distributed`` runtime from the same folder is what the cluster holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _kmock import EmulatorThread, custom_objects_api, kmock_emulator
from _kserve_crd import pruned_fields
from _trainer_crd import trainjob_schema, trainjob_validator, xgboost_runtime
from kubernetes import client as k8s_client

from refit.errors import RefitError, TrainingError
from refit.io.tables import read_table
from refit.steps.train_distributed import train_model_distributed
from refit.training import load_model
from refit.training.distributed_local import run_local
from refit.training.distributed_plan import RESERVED_ENV, DistributedConfig
from refit.training.trainjob import TrainJobRunner
from refit.training.trainjob_spec import (
    GROUP,
    PLURAL,
    RUNTIME_PLURAL,
    VERSION,
    TrainJobSettings,
    build_trainjob,
    check_body,
)

NS = "ml-training"
IMAGE = "registry.example.com/ml/refit:0.0.0-test"
GPU_SPOT_PROFILE = {
    "name": "gpu-spot",
    "cpu_request": "4",
    "memory_request": "16G",
    "accelerator_type": "nvidia.com/gpu",
    "accelerator_count": 2,
    "node_selector": {"cloud.google.com/gke-accelerator": "nvidia-l4"},
    "tolerations": [
        {"key": "nvidia.com/gpu", "operator": "Exists", "value": None, "effect": "NoSchedule"}
    ],
    "spot": True,
    "price_per_hour": 0.34,
}


def settings(**kw: Any) -> TrainJobSettings:
    base: dict[str, Any] = {
        "namespace": NS,
        "allowed_namespaces": [NS],
        "num_nodes": 3,
        "cpu_request": "2",
        "memory_request": "8G",
        "deadline_s": 600,
        "poll_s": 5,
    }
    return TrainJobSettings.from_dict({**base, **kw})


def config(tmp: str = "gs://bucket/run/train") -> DistributedConfig:
    return DistributedConfig(
        snapshot="gs://bucket/snapshots/abc.parquet",
        label_column="label",
        model_uri=f"{tmp}/model",
        holdout_uri=f"{tmp}/holdout",
        params={"n_estimators": 50},
        checkpoint_uri=f"{tmp}/ckpt",
    )


def body_for(s: TrainJobSettings, name: str = "refit-train-abc") -> dict[str, Any]:
    return build_trainjob(name, s, image=IMAGE, config=config())


def assert_valid(doc: dict[str, Any]) -> None:
    trainjob_validator().validate(doc)
    assert pruned_fields(doc, trainjob_schema()) == [], doc


@pytest.fixture
def emulator() -> Iterator[EmulatorThread]:
    with kmock_emulator() as thread:
        yield thread


@pytest.fixture
def api(emulator: EmulatorThread) -> k8s_client.CustomObjectsApi:
    return custom_objects_api(emulator)


@pytest.fixture
def runtime(api: k8s_client.CustomObjectsApi) -> dict[str, Any]:
    return api.create_cluster_custom_object(GROUP, VERSION, RUNTIME_PLURAL, xgboost_runtime())


def writes(server: Any) -> list[Any]:
    return [r for r in server if r.method in ("POST", "PATCH", "PUT", "DELETE")]


class FakeTrainer:
    """Plays Kubeflow Trainer's controller: status conditions after a few polls."""

    def __init__(
        self,
        api: k8s_client.CustomObjectsApi,
        name: str,
        *,
        polls: int = 2,
        outcome: str | None = "Complete",
        run_workers: bool = False,
    ) -> None:
        self.api = api
        self.name = name
        self.polls = polls
        self.outcome = outcome
        self.run_workers = run_workers
        self.seen = 0

    def _conditions(self, final: str | None) -> list[dict[str, Any]]:
        at = "2026-12-07T00:00:00Z"
        conditions = [
            {
                "type": "Created",
                "status": "True",
                "reason": "JobsCreationSucceeded",
                "message": "TrainJob resources are created",
                "lastTransitionTime": at,
            }
        ]
        if final == "Complete":
            conditions.append(
                {
                    "type": "Complete",
                    "status": "True",
                    "reason": "JobsCompleted",
                    "message": "TrainJob is completed",
                    "lastTransitionTime": at,
                }
            )
        elif final == "Failed":
            conditions.append(
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "JobsFailed",
                    "message": "jobset node-1 failed: pod evicted (node pre-empted)",
                    "lastTransitionTime": at,
                }
            )
        return conditions

    def __call__(self, seconds: float) -> None:
        self.seen += 1
        job = self.api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, self.name)
        final = self.outcome if self.seen >= self.polls else None
        if final == "Complete" and self.run_workers:
            self._run(job)
        status = {"conditions": self._conditions(final)}
        self.api.patch_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL, self.name, {"status": status}
        )

    def _run(self, job: dict[str, Any]) -> None:
        """What the runtime's pods do: the body's command, with the DMLC_* variables."""
        trainer = job["spec"]["trainer"]
        assert trainer["command"] == ["python", "-m", "refit.training.distributed"]
        assert trainer["args"][0] == "--config"
        assert not {e["name"] for e in trainer.get("env", [])} & set(RESERVED_ENV)
        run_local(
            DistributedConfig.from_json(trainer["args"][1]), trainer["numNodes"], timeout_s=900
        )


class FakeClock:
    def __init__(self, sleep: Any = None) -> None:
        self.now = 0.0
        self.sleep_fn = sleep

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        if self.sleep_fn is not None:
            self.sleep_fn(seconds)


# --------------------------------------------------------------------------- the body


def test_cpu_body_matches_the_crd_and_carries_the_profile() -> None:
    s = settings(env={"OMP_NUM_THREADS": "2"}, service_account="trainer", node_profile="cpu")
    body = body_for(s)
    assert_valid(body)
    spec = body["spec"]
    assert spec["runtimeRef"] == {
        "apiGroup": "trainer.kubeflow.org",
        "kind": "ClusterTrainingRuntime",
        "name": "xgboost-distributed",
    }
    trainer = spec["trainer"]
    assert trainer["image"] == IMAGE
    assert trainer["numNodes"] == 3
    assert trainer["resourcesPerNode"] == {"requests": {"cpu": "2", "memory": "8G"}}
    sent = DistributedConfig.from_json(trainer["args"][1])
    assert (sent.nodes, sent.workers_per_node, sent.device) == (3, 1, "cpu")
    assert sent.snapshot == "gs://bucket/snapshots/abc.parquet"
    pod = spec["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]
    assert pod["name"] == "node"
    assert pod["template"]["spec"]["template"]["spec"] == {"serviceAccountName": "trainer"}
    assert spec["activeDeadlineSeconds"] == 600


def test_gpu_spot_profile_gives_one_worker_per_gpu_with_selectors_and_tolerations() -> None:
    s = settings(profile=GPU_SPOT_PROFILE, num_nodes=2)
    assert s.workers == 4
    body = body_for(s)
    assert_valid(body)
    trainer = body["spec"]["trainer"]
    assert trainer["resourcesPerNode"] == {
        "requests": {"cpu": "2", "memory": "8G"},  # explicit settings win over the profile
        "limits": {"nvidia.com/gpu": 2},
    }
    sent = DistributedConfig.from_json(trainer["args"][1])
    assert (sent.nodes, sent.workers_per_node, sent.device) == (2, 2, "cuda")
    assert sent.price_per_hour == 0.34 and sent.node_profile == "gpu-spot"
    jobs = body["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]
    pod = jobs["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {
        "cloud.google.com/gke-accelerator": "nvidia-l4",
        "cloud.google.com/gke-spot": "true",
    }
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "cloud.google.com/gke-spot", "operator": "Equal", "value": "true",
         "effect": "NoSchedule"},
    ]  # fmt: skip


@pytest.mark.parametrize("name", RESERVED_ENV)
def test_reserved_dmlc_env_names_are_refused(name: str) -> None:
    with pytest.raises(TrainingError, match=f"env sets \\['{name}'\\].*reserved"):
        settings(env={name: "1"})
    body = body_for(settings())
    body["spec"]["trainer"]["env"] = [{"name": name, "value": "0"}]
    with pytest.raises(TrainingError, match=f"TrainJob sets \\['{name}'\\].*reserved"):
        check_body(body)


def test_bad_settings_name_the_field() -> None:
    with pytest.raises(TrainingError, match="num_nodes must be an integer in"):
        settings(num_nodes=0)
    with pytest.raises(TrainingError, match=r"unknown field\(s\) \['nodes'\]"):
        settings(nodes=2)
    with pytest.raises(TrainingError, match="'workers' is the local executor's"):
        settings(workers=4)
    with pytest.raises(TrainingError, match="namespace 'Bad_NS' is not a Kubernetes name"):
        settings(namespace="Bad_NS")


# --------------------------------------------------------------------------- create and watch


def test_create_watch_complete_and_delete(
    emulator: EmulatorThread, api: k8s_client.CustomObjectsApi, runtime: dict[str, Any]
) -> None:
    s = settings()
    body = body_for(s)
    trainer = FakeTrainer(api, body["metadata"]["name"], polls=3)
    clock = FakeClock(trainer)
    outcome = TrainJobRunner(s, api, sleep=clock.sleep, clock=clock).run(body)
    assert outcome.state == "Complete"
    assert [c["type"] for c in outcome.conditions] == ["Created", "Complete"]
    assert outcome.deleted
    assert outcome.waited_s == 15.0  # three polls of 5 s
    posts = [r.data for r in emulator.server if r.method == "POST" and r.resource.plural == PLURAL]
    assert len(posts) == 1
    assert_valid(posts[0])
    assert TrainJobRunner(s, api).get(body["metadata"]["name"]) is None


def test_failed_job_reports_its_conditions(
    api: k8s_client.CustomObjectsApi, runtime: dict[str, Any]
) -> None:
    s = settings(delete=False)
    body = body_for(s)
    clock = FakeClock(FakeTrainer(api, body["metadata"]["name"], outcome="Failed"))
    with pytest.raises(TrainingError) as err:
        TrainJobRunner(s, api, sleep=clock.sleep, clock=clock).run(body)
    message = str(err.value)
    assert f"TrainJob {NS}/refit-train-abc failed (kept for inspection)" in message
    assert "Failed=True (JobsFailed): jobset node-1 failed: pod evicted" in message
    assert "resumes from the last checkpoint" in message
    assert TrainJobRunner(s, api).get("refit-train-abc") is not None


def test_deadline_stops_waiting_and_deletes(
    api: k8s_client.CustomObjectsApi, runtime: dict[str, Any]
) -> None:
    s = settings(deadline_s=60, poll_s=10)
    body = body_for(s)
    clock = FakeClock(FakeTrainer(api, body["metadata"]["name"], outcome=None))
    with pytest.raises(
        TrainingError, match=r"did not finish within 60 s \(deleted\).*Created=True"
    ):
        TrainJobRunner(s, api, sleep=clock.sleep, clock=clock).run(body)
    assert TrainJobRunner(s, api).get("refit-train-abc") is None


# --------------------------------------------------------------------------- refusals


def test_namespace_not_allowed_sends_no_request(emulator: EmulatorThread, api) -> None:
    s = settings(allowed_namespaces=["prod"])
    with pytest.raises(TrainingError, match=r"namespace 'ml-training' is not allowed.*nothing"):
        TrainJobRunner(s, api).run(body_for(s))
    assert list(emulator.server) == []
    s = settings(allowed_namespaces=[])
    with pytest.raises(TrainingError, match=r"allowed_namespaces: none"):
        TrainJobRunner(s, api).submit(body_for(s))


def test_missing_runtime_is_refused_before_any_write(emulator: EmulatorThread, api) -> None:
    s = settings()
    with pytest.raises(
        TrainingError, match="'xgboost-distributed' is missing.*nothing was created"
    ):
        TrainJobRunner(s, api).run(body_for(s))
    assert writes(emulator.server) == []


def test_runtime_without_xgboost_policy_is_refused(emulator: EmulatorThread, api) -> None:
    other = xgboost_runtime()
    other["metadata"]["name"] = "torch-distributed"
    other["spec"]["mlPolicy"] = {"numNodes": 1, "torch": {}}
    api.create_cluster_custom_object(GROUP, VERSION, RUNTIME_PLURAL, other)
    before = len(writes(emulator.server))
    s = settings(runtime="torch-distributed")
    with pytest.raises(TrainingError, match="has no mlPolicy.xgboost"):
        TrainJobRunner(s, api).run(body_for(s))
    assert len(writes(emulator.server)) == before


# --------------------------------------------------------------------------- the step, end to end


def test_step_runs_the_workers_the_trainjob_starts(
    emulator: EmulatorThread, api, runtime, tmp_path: Path
) -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(6000, 4))
    label = (x[:, 0] - x[:, 1] + 0.5 * rng.normal(size=6000) > 0).astype(np.int64)
    snapshot = tmp_path / "window.parquet"
    pq.write_table(
        pa.table({**{f"x{i}": x[:, i] for i in range(4)}, "label": label}),
        snapshot,
        row_group_size=1000,
    )
    dist = {"namespace": NS, "allowed_namespaces": [NS], "num_nodes": 2, "poll_s": 5}
    s = TrainJobSettings.from_dict(dist)
    model_uri = str(tmp_path / "outputs" / "model")
    name_holder: dict[str, str] = {}

    class Runner(TrainJobRunner):
        def submit(self, body):  # learn the name the step chose, then create as usual
            name_holder["name"] = body["metadata"]["name"]
            clock.sleep_fn = FakeTrainer(api, body["metadata"]["name"], run_workers=True)
            return super().submit(body)

    clock = FakeClock()
    out = train_model_distributed(
        str(snapshot),
        "label",
        model_uri,
        model_uri,
        str(tmp_path / "outputs" / "holdout"),
        distributed={"executor": "trainjob", **dist},
        params={"n_estimators": 30, "max_depth": 3},
        seed=1,
        price_per_hour=0.5,  # the task's profile stands in: the settings name none
        node_profile="train-pool",
        image=IMAGE,
        runner=Runner(s, api, sleep=clock.sleep, clock=clock),
    )
    assert name_holder["name"].startswith("refit-train-")
    model = load_model(model_uri)
    assert model.info.get("rounds", 30) == 30
    holdout = read_table(str(tmp_path / "outputs" / "holdout"))
    assert out.holdout_rows == holdout.num_rows
    assert out.train_rows + out.holdout_rows == 6000
    assert out.card["distributed"]["workers"] == 2
    assert out.card["distributed"]["trainjob"] == f"{NS}/{name_holder['name']}"
    assert out.audit["distributed"]["executor"] == "trainjob"
    assert out.card["node_profile"] == "train-pool"
    assert out.card["price_per_hour"] == 1.0  # two nodes at 0.5
    assert out.card["distributed"]["price_per_node_hour"] == 0.5
    assert "| workers | 2 |" in out.card_markdown
    posts = [r.data for r in emulator.server if r.method == "POST" and r.resource.plural == PLURAL]
    assert len(posts) == 1
    assert_valid(posts[0])


def _small_window(path: Path, rows: int = 2000, row_group: int = 500) -> Path:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(rows, 2))
    label = (x[:, 0] > 0).astype(np.int64)
    pq.write_table(pa.table({"x0": x[:, 0], "x1": x[:, 1], "label": label}), path,
                   row_group_size=row_group)  # fmt: skip
    return path


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"trainer": "random_forest"}, "runs the xgboost trainer only, not 'random_forest'"),
        ({"params": {"early_stopping_rounds": 5}}, "does not take 'early_stopping_rounds'"),
        ({"distributed": {"num_nodes": 5}}, "4 non-empty Parquet row group.*5 workers"),
        ({"distributed": {"allowed_namespaces": ["prod"]}}, "is not allowed"),
    ],
)
def test_step_refuses_before_any_write(
    emulator: EmulatorThread, api, runtime, tmp_path: Path, change: dict, match: str
) -> None:
    snapshot = _small_window(tmp_path / "w.parquet")
    dist = {"executor": "trainjob", "namespace": NS, "allowed_namespaces": [NS], "num_nodes": 2}
    dist.update(change.pop("distributed", {}))
    before = len(writes(emulator.server))
    with pytest.raises(RefitError, match=match):  # TrainingError, or DataError for the window
        train_model_distributed(
            str(snapshot), "label", str(tmp_path / "m"), str(tmp_path / "m"),
            str(tmp_path / "h"), distributed=dist, image=IMAGE,
            runner=TrainJobRunner(TrainJobSettings.from_dict(dist), api), **change,
        )  # fmt: skip
    assert len(writes(emulator.server)) == before
    assert not (tmp_path / "m").exists()


def test_step_retry_replaces_a_failed_trainjob_of_the_same_name(
    emulator: EmulatorThread, api, runtime, tmp_path: Path
) -> None:
    snapshot = _small_window(tmp_path / "w.parquet")
    dist = {"namespace": NS, "allowed_namespaces": [NS], "num_nodes": 2, "poll_s": 5}
    s = TrainJobSettings.from_dict(dist)
    model = str(tmp_path / "out" / "model")
    names: list[str] = []

    class Runner(TrainJobRunner):
        def submit(self, body):
            names.append(body["metadata"]["name"])
            clock.sleep_fn = FakeTrainer(api, body["metadata"]["name"], outcome=outcome[0],
                                         run_workers=outcome[0] == "Complete")  # fmt: skip
            return super().submit(body)

    def attempt() -> object:
        return train_model_distributed(
            str(snapshot), "label", model, model, str(tmp_path / "out" / "holdout"),
            distributed={**dist, "delete": False}, params={"n_estimators": 10}, image=IMAGE,
            runner=Runner(TrainJobSettings.from_dict({**dist, "delete": False}), api,
                          sleep=clock.sleep, clock=clock),
        )  # fmt: skip

    clock = FakeClock()
    outcome = ["Failed"]
    with pytest.raises(TrainingError, match="failed \\(kept for inspection\\)"):
        attempt()
    assert TrainJobRunner(s, api).get(names[0]) is not None  # kept: the retry must replace it
    outcome[0] = "Complete"
    out = attempt()
    assert names == [names[0], names[0]]  # the same name: the failed one was deleted first
    deletes = [r for r in emulator.server if r.method == "DELETE"]
    assert len(deletes) == 1
    assert out.card["distributed"]["trainjob"] == f"{NS}/{names[0]}"
