"""KServe target against kmock's Kubernetes emulator on loopback, the test playing KServe.

The emulator (kmock.KubernetesEmulator, a real aiohttp server) runs in a thread with its own event
loop; refit talks to it with a real ``kubernetes.client.ApiClient``. Two parts of a real cluster
are played here:

- the API server's part kmock leaves out (`KServeApi`): ``metadata.generation`` bumped on every
  spec change, ``status`` writable only through the ``/status`` subresource, and refusals
  (403/500) raised *before* the emulator stores anything;
- the KServe controller and Knative (`FakeKServe`): called through the target's injected
  ``sleep``, it reconciles the newest generation into ``status`` (observedGeneration, predictor
  revisions and traffic, the Ready condition), optionally late and with a revision that needs
  a few polls to get ready while the stale status still says Ready.

Every version of every stored object (creates, merged patches, status writes) is validated
against the real CRD schema from ../shared/specs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import kmock
import pytest
from _kmock import EmulatorThread, custom_objects_api, kmock_emulator
from _kserve_crd import crd_schema, crd_validator, pruned_fields
from kubernetes import client as k8s_client

from refit.deploy.kserve import KServeTarget
from refit.deploy.kserve_spec import (
    DEPLOYMENT_MODE_ANNOTATION,
    GROUP,
    PLURAL,
    VERSION,
    apply_merge_patch,
)
from refit.deploy.target import TrafficSplit
from refit.errors import DeployError
from refit.registry import ModelVersion

NS = "models"
NAME = "credit-default"
STORE = "gs://bucket/refit-store/models/credit"
RESOURCE = f"{GROUP}/{VERSION}/{PLURAL}"


# --------------------------------------------------------------------------- the CRD schema


def assert_every_write_matches_crd(server: KServeApi) -> int:
    """Validate every create body and every stored version of every object; return the count."""
    docs = [r.data for r in server if r.method == "POST" and r.resource is not None]
    for _, obj in server.objects.items():
        docs += [v.raw for v in obj.history if v is not None]
    for doc in docs:
        crd_validator().validate(doc)
        assert pruned_fields(doc, crd_schema()) == [], doc
    return len(docs)


# --------------------------------------------------------------------------- the API server


@attrs.define(kw_only=True)
class KServeApi(kmock.KubernetesEmulator):
    """kmock's emulator plus what the real API server does for a CRD with a status subresource."""

    #: (HTTP method, subresource) -> HTTP status to refuse with, before anything is stored.
    refuse: dict[tuple[str, str | None], int] = attrs.field(factory=dict)
    #: The same, for the next such request only (a transient API error).
    refuse_once: dict[tuple[str, str | None], int] = attrs.field(factory=dict)

    async def _handle(self, request: kmock.Request) -> Any:
        res = request.resource
        if res is not None and res.plural == PLURAL:
            what = (request.method.value, request.subresource)
            status = self.refuse.get(what) or self.refuse_once.pop(what, None)
            if status is not None:
                raise kmock.KubernetesError(
                    status=status,
                    reason="Forbidden" if status == 403 else "InternalError",
                    message=f"refused by the test: {request.method.value} {request.url.path}",
                )
            data = request.data if isinstance(request.data, dict) else {}
            data.get("metadata", {}).pop("generation", None)  # never set by clients
            if request.action == kmock.action.CREATE:
                data.pop("status", None)
                data.setdefault("metadata", {})["generation"] = 1
            elif request.action == kmock.action.UPDATE and request.subresource == "status":
                for key in [k for k in data if k != "status"]:
                    del data[key]
            elif request.action == kmock.action.UPDATE and request.subresource is None:
                data.pop("status", None)
                key = (res, request.namespace, request.name)
                if key in self.objects and not self.objects[key].deleted and "spec" in data:
                    current = self.objects[key].raw
                    if apply_merge_patch(current.get("spec"), data["spec"]) != current.get("spec"):
                        generation = current["metadata"].get("generation", 0) + 1
                        data.setdefault("metadata", {})["generation"] = generation
        return await super()._handle(request)


@pytest.fixture
def emulator() -> Iterator[EmulatorThread]:
    with kmock_emulator(KServeApi()) as thread:
        yield thread


@pytest.fixture
def api(emulator: EmulatorThread) -> k8s_client.CustomObjectsApi:
    return custom_objects_api(emulator)


# --------------------------------------------------------------------------- KServe's part


class FakeKServe:
    """Reconciles the newest generation into ``status`` the way KServe + Knative report it.

    Knative keeps one revision per distinct model spec; ``latestRevision`` traffic goes to the
    latest *ready* revision (so removing ``canaryTrafficPercent`` while a new revision is not
    ready yet sends all traffic to the older ready one, as in a real cluster); the rolled-out
    revision takes the rest of a canary split. The delays below reproduce, one at a time, each
    stale status a target could mistake for "applied" (all but the last keep Ready True):

    Args:
        api: A client of the emulator (the controller's own, like a real controller's).
        mode: ``status.deploymentMode`` it writes.
        lag: Polls (sleeps) before it notices a new generation: the status stays as it was
            (old observedGeneration, old revisions, Ready True).
        create_polls: Polls before Knative reports a new revision as created: new
            observedGeneration, latestCreatedRevision == latestReadyRevision == the old one.
        revision_polls: Polls a created revision needs to get ready: latestCreatedRevision !=
            latestReadyRevision.
        route_polls: Polls a traffic change needs to show (Knative's route): the old split and
            the old latestRolledoutRevision.
        ingress_polls: Polls after a traffic change during which Ready is False.
        fail_load: Report BlockedByFailedLoad instead of readying new revisions.
        report_traffic: Report ``components.predictor.traffic`` (older KServe does not).
    """

    def __init__(
        self,
        api: k8s_client.CustomObjectsApi,
        *,
        mode: str = "Serverless",
        lag: int = 0,
        create_polls: int = 0,
        revision_polls: int = 0,
        route_polls: int = 0,
        ingress_polls: int = 0,
        fail_load: bool = False,
        report_traffic: bool = True,
    ) -> None:
        self.api = api
        self.mode = mode
        self.lag = lag
        self.create_polls = create_polls
        self.revision_polls = revision_polls
        self.route_polls = route_polls
        self.ingress_polls = ingress_polls
        self.fail_load = fail_load
        self.report_traffic = report_traffic
        self.stuck = False
        self.polls = 0
        self.revisions: list[tuple[str, str]] = []  # (name, model spec fingerprint)
        self.ready = ""
        #: What the route serves: (canary percent or None, latest ready, rolled out).
        self.route: tuple[int | None, str, str] = (None, "", "")
        self.previous_rolled_out = ""
        self._seen = 0
        self._lag_left = 0
        self._create_left = 0
        self._revision_left = 0
        self._route_target: tuple[int | None, str, str] | None = None
        self._route_left = 0
        self._ingress_left = 0

    def revision_for(self, storage_uri: str) -> list[str]:
        return [name for name, fp in self.revisions if json.loads(fp)["storageUri"] == storage_uri]

    @property
    def busy(self) -> bool:
        """A change of the observed generation is still in progress."""
        revision_pending = bool(self.revisions) and self.revisions[-1][0] != self.ready
        return revision_pending or self._route_target is not None or self._ingress_left > 0

    def step(self) -> None:
        """One poll: reconcile what the current generation asks for, one delay at a time."""
        self.polls += 1
        obj = self._current()
        if obj is None or not self._noticed(obj):
            return
        if self._ingress_left > 0:
            self._ingress_left -= 1
        predictor = obj["spec"]["predictor"]
        self._track_revision(predictor["model"])
        created, failed = self._advance_revision()
        if failed:
            self._write(obj, created, failed=True)
            return
        self._advance_route(predictor.get("canaryTrafficPercent"))
        self._write(obj, created)

    def _current(self) -> dict[str, Any] | None:
        """The InferenceService, or None before it exists."""
        try:
            return self.api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, NAME)
        except k8s_client.ApiException as exc:
            assert exc.status == 404
            return None

    def _noticed(self, obj: dict[str, Any]) -> bool:
        """Whether this poll acts: a generation or change in progress, noticed after the lag."""
        generation = obj["metadata"]["generation"]
        observed = (obj.get("status") or {}).get("observedGeneration", 0)
        if self.stuck or (generation <= observed and not self.busy):
            return False
        if generation != self._seen:
            self._seen, self._lag_left = generation, self.lag
        if self._lag_left > 0:
            self._lag_left -= 1
            return False
        return True

    def _track_revision(self, model: dict[str, Any]) -> None:
        """A new revision for a model spec unlike the newest revision's (its delays start)."""
        fingerprint = json.dumps({k: model.get(k) for k in sorted(model) if k != "resources"})
        if not self.revisions or self.revisions[-1][1] != fingerprint:
            self.revisions.append((f"{NAME}-predictor-{len(self.revisions) + 1:05d}", fingerprint))
            self._create_left = self.create_polls
            self._revision_left = self.revision_polls

    def _advance_revision(self) -> tuple[str, bool]:
        """One poll of the newest revision: the revision reported as created, and whether it
        failed to load (``fail_load``)."""
        created = self.revisions[-1][0]
        if self._create_left > 0:  # Knative has not reported the new revision yet
            self._create_left -= 1
            return (self.revisions[-2][0] if len(self.revisions) > 1 else ""), False
        if created != self.ready:
            if self.fail_load:
                return created, True
            if self._revision_left > 0:
                self._revision_left -= 1
            else:
                self.ready = created
        return created, False

    def _advance_route(self, canary: int | None) -> None:
        """One poll of the route toward the split ``canary`` asks for (after ``route_polls``)."""
        rolled = self.ready if canary is None else (self.route[2] or self.ready)
        wanted = (canary, self.ready, rolled)
        if wanted == self.route:
            self._route_target = None
            return
        if wanted != self._route_target:  # a new route change starts its own delay
            self._route_target, self._route_left = wanted, self.route_polls
        if self._route_left > 0:
            self._route_left -= 1
            return
        self._route_target = None
        if rolled != self.route[2]:
            self.previous_rolled_out = self.route[2]
        self.route = wanted
        self._ingress_left = self.ingress_polls

    def _write(self, obj: dict[str, Any], created: str, failed: bool = False) -> None:
        canary, latest, rolled = self.route
        if canary is None or not rolled:
            traffic = [
                {"tag": "latest", "revisionName": latest, "latestRevision": True, "percent": 100}
            ]
        else:
            traffic = [
                {
                    "tag": "latest",
                    "revisionName": latest,
                    "latestRevision": True,
                    "percent": canary,
                },
                {
                    "tag": "prev",
                    "revisionName": rolled,
                    "latestRevision": False,
                    "percent": 100 - canary,
                },
            ]
        predictor: dict[str, Any] = {
            "latestCreatedRevision": created,
            "latestReadyRevision": self.ready,
            "latestRolledoutRevision": rolled,
            "url": f"http://{NAME}-predictor.{NS}.example.com",
        }
        if self.report_traffic:
            predictor["traffic"] = traffic
        if self.previous_rolled_out:
            predictor["previousRolledoutRevision"] = self.previous_rolled_out
        status: dict[str, Any] = {
            "observedGeneration": obj["metadata"]["generation"],
            "deploymentMode": self.mode,
            "url": f"http://{NAME}.{NS}.example.com",
            "conditions": [
                {"type": "PredictorReady", "status": "True"},
                {"type": "IngressReady", "status": "True"},
                {"type": "Ready", "status": "True"},
            ],
            "components": {"predictor": predictor},
            "modelStatus": {
                "transitionStatus": "BlockedByFailedLoad" if failed else "UpToDate",
                "states": {"activeModelState": "Loaded", "targetModelState": "Loaded"},
            },
        }
        if self._ingress_left > 0:
            for cond in status["conditions"][1:]:
                cond.update(status="False", reason="IngressNotConfigured")
        if failed:
            status["modelStatus"]["lastFailureInfo"] = {
                "reason": "ModelLoadFailed",
                "message": f"revision {created}: no model file found",
                "modelRevisionName": created,
            }
        self.api.patch_namespaced_custom_object_status(
            GROUP, VERSION, NS, PLURAL, NAME, {"status": status}
        )

    def settle(self) -> None:
        """Step until the current generation is reconciled (for seeding)."""
        for _ in range(30):
            self.step()
        obj = self.api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, NAME)
        assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
        assert not self.busy


class FakeClock:
    """Monotonic time that moves only when the target sleeps; each sleep is one controller poll."""

    def __init__(self, controller: FakeKServe) -> None:
        self.now = 0.0
        self.controller = controller

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.controller.step()


# --------------------------------------------------------------------------- helpers


def mv(version: int) -> ModelVersion:
    return ModelVersion(
        version=version,
        model_uri=f"{STORE}/versions/{version}",
        sha256=f"{version:064d}",
        metrics={},
        snapshot_sha256="1" * 64,
        parent_version=version - 1 or None,
        run_label=f"run-{version}",
        status="registered",
        created_at="2026-11-26T00:00:00+00:00",
        file="model.ubj",
        model_name="credit",
    )


def manifest_style(mode: str | None = "Serverless") -> dict[str, Any]:
    """An InferenceService as manifests/base ships it: the version folder, no runtime pinned."""
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceService",
        "metadata": {"name": NAME, "namespace": NS},
        "spec": {
            "predictor": {
                "minReplicas": 1,
                "model": {
                    "modelFormat": {"name": "xgboost"},
                    "protocolVersion": "v2",
                    "storageUri": f"{STORE}/versions/1",
                    "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
                },
            }
        },
    }
    if mode is not None:
        body["metadata"]["annotations"] = {DEPLOYMENT_MODE_ANNOTATION: mode}
    return body


def make_target(api: k8s_client.CustomObjectsApi, clock: FakeClock, **kwargs: Any) -> KServeTarget:
    kwargs.setdefault("allowed_namespaces", [NS])
    return KServeTarget(
        NAME,
        NS,
        api=api,
        poll_seconds=2,
        timeout_seconds=60,
        clock=clock.clock,
        sleep=clock.sleep,
        **kwargs,
    )


def seed_service(
    api: k8s_client.CustomObjectsApi,
    controller: FakeKServe,
    manifest: dict[str, Any] | None = None,
) -> None:
    """Create the InferenceService (``manifest_style()`` unless given) and let it settle."""
    api.create_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, manifest if manifest is not None else manifest_style()
    )
    controller.settle()


def live(api: k8s_client.CustomObjectsApi) -> dict[str, Any]:
    return api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, NAME)


def writes(server: KServeApi) -> list[kmock.Request]:
    """Spec writes (create, patch, delete of the object itself, not of /status)."""
    return [
        r
        for r in server
        if r.resource is not None
        and r.subresource is None
        and r.method.value in ("POST", "PATCH", "PUT", "DELETE")
    ]


def assert_shows_applied(api: k8s_client.CustomObjectsApi, split: TrafficSplit) -> None:
    """The live status (what the target saw last: the controller moves only when it sleeps)
    shows the returned split fully applied."""
    obj = live(api)
    status = obj["status"]
    predictor = status["components"]["predictor"]
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "True"
    assert predictor["latestReadyRevision"] == predictor["latestCreatedRevision"]
    assert predictor["latestRolledoutRevision"] == split.primary_revision
    if split.canary_revision:
        assert predictor["latestReadyRevision"] == split.canary_revision
    if "traffic" in predictor:
        share = {t["revisionName"]: t["percent"] for t in predictor["traffic"]}
        if split.canary_version is not None and split.primary_version is not None:
            assert share == {
                split.canary_revision: split.canary_percent,
                split.primary_revision: 100 - split.canary_percent,
            }
        else:
            assert share == {split.primary_revision or split.canary_revision: 100}


def canary_field(request: kmock.Request) -> Any:
    return request.data["spec"]["predictor"].get("canaryTrafficPercent", "absent")


# --------------------------------------------------------------------------- tests


def test_first_deploy_creates_the_service_and_promote_keeps_it(
    emulator: EmulatorThread, api: k8s_client.CustomObjectsApi
) -> None:
    controller = FakeKServe(api, lag=2)
    clock = FakeClock(controller)
    target = make_target(api, clock)

    split = target.start(mv(1), None, 100)
    assert split == TrafficSplit(None, 1, 100, canary_revision=f"{NAME}-predictor-00001")
    assert_shows_applied(api, TrafficSplit(1, None, 0, primary_revision=split.canary_revision))
    assert controller.polls >= 3  # it waited through the controller's lag

    split = target.promote()
    assert split == TrafficSplit(1, None, 0, primary_revision=f"{NAME}-predictor-00001")

    obj = live(api)
    assert obj["metadata"]["annotations"][DEPLOYMENT_MODE_ANNOTATION] == "Serverless"
    model = obj["spec"]["predictor"]["model"]
    assert model["storageUri"] == f"{STORE}/versions/1/model.ubj"
    assert model["runtime"] == "kserve-xgbserver"
    assert "canaryTrafficPercent" not in obj["spec"]["predictor"]
    assert [r.method.value for r in writes(emulator.server)] == ["POST", "PATCH"]
    assert assert_every_write_matches_crd(emulator.server) >= 4


@pytest.mark.parametrize("report_traffic", [True, False], ids=["traffic", "no-traffic"])
def test_canary_10_then_50_then_promote_waits_for_each_generation(
    emulator: EmulatorThread, api: k8s_client.CustomObjectsApi, report_traffic: bool
) -> None:
    lag, create_polls, revision_polls, route_polls, ingress_polls = 2, 1, 3, 2, 1
    controller = FakeKServe(
        api,
        lag=lag,
        create_polls=create_polls,
        revision_polls=revision_polls,
        route_polls=route_polls,
        ingress_polls=ingress_polls,
        report_traffic=report_traffic,
    )
    seed_service(api, controller)
    rev1 = f"{NAME}-predictor-00001"
    rev2 = f"{NAME}-predictor-00002"
    clock = FakeClock(controller)
    target = make_target(api, clock)
    before = len(writes(emulator.server))

    target.preflight(mv(2), mv(1))
    assert len(writes(emulator.server)) == before  # preflight writes nothing

    # Each call returns only once its change shows: the status the controller leaves in place
    # meanwhile says Ready (old generation; then, for the new revision, the new generation with
    # latestReadyRevision behind latestCreatedRevision; then the old traffic split).
    polls = controller.polls
    split = target.start(mv(2), mv(1), 10)
    assert controller.polls - polls >= lag + create_polls + revision_polls + ingress_polls
    assert split == TrafficSplit(1, 2, 10, primary_revision=rev1, canary_revision=rev2)
    assert_shows_applied(api, split)
    if report_traffic:
        assert live(api)["status"]["components"]["predictor"]["traffic"][0] == {
            "tag": "latest",
            "revisionName": rev2,
            "latestRevision": True,
            "percent": 10,
        }

    polls = controller.polls
    split = target.set_traffic(50)
    # Without traffic in the status, a split counts as applied once its generation is observed.
    assert controller.polls - polls >= lag + (route_polls if report_traffic else 0) + ingress_polls
    assert split == TrafficSplit(1, 2, 50, primary_revision=rev1, canary_revision=rev2)
    assert_shows_applied(api, split)

    polls = controller.polls
    split = target.promote()
    assert controller.polls - polls >= lag + route_polls + ingress_polls
    assert split == TrafficSplit(2, None, 0, primary_revision=rev2)
    assert_shows_applied(api, split)

    obj = live(api)
    assert "canaryTrafficPercent" not in obj["spec"]["predictor"]
    assert obj["spec"]["predictor"]["model"]["storageUri"] == f"{STORE}/versions/2/model.ubj"
    assert obj["status"]["components"]["predictor"]["latestRolledoutRevision"] == rev2
    patches = [r for r in writes(emulator.server)[before:] if r.method.value == "PATCH"]
    assert [canary_field(r) for r in patches] == [10, 50, None]
    assert obj["metadata"]["generation"] == obj["status"]["observedGeneration"] == 4
    assert assert_every_write_matches_crd(emulator.server) >= 10


def test_rollback_restores_the_previous_spec_and_all_traffic(
    emulator: EmulatorThread, api: k8s_client.CustomObjectsApi
) -> None:
    controller = FakeKServe(api, lag=1, revision_polls=2)
    seeded = manifest_style()
    seed_service(api, controller, seeded)
    target = make_target(api, FakeClock(controller))
    before = len(writes(emulator.server))

    target.start(mv(2), mv(1), 10)
    target.set_traffic(50)
    split = target.rollback()

    rev3 = f"{NAME}-predictor-00003"  # a new revision of version 1's spec
    assert controller.revision_for(f"{STORE}/versions/1") == [f"{NAME}-predictor-00001", rev3]
    assert split == TrafficSplit(1, None, 0, primary_revision=rev3)
    assert_shows_applied(api, split)
    obj = live(api)
    # The model spec is the one from before the rollout: folder URI, no runtime pinned.
    assert obj["spec"] == seeded["spec"]
    predictor = obj["status"]["components"]["predictor"]
    assert predictor["traffic"] == [
        {"tag": "latest", "revisionName": rev3, "latestRevision": True, "percent": 100}
    ]
    patches = [r for r in writes(emulator.server)[before:] if r.method.value == "PATCH"]
    assert [canary_field(r) for r in patches] == [10, 50, 0, None]
    assert patches[2].data["spec"]["predictor"]["model"]["storageUri"] == f"{STORE}/versions/1"
    assert patches[2].data["spec"]["predictor"]["model"]["runtime"] is None
    # Traffic left the canary with the first rollback patch: from then on, no status ever
    # gave version 2's revision more than the 50% it had.
    rev2 = f"{NAME}-predictor-00002"
    key = (RESOURCE, NS, NAME)
    shares = [
        t["percent"]
        for v in emulator.server.objects[key].history
        if v is not None and "status" in v.raw
        for t in v.raw["status"]["components"]["predictor"]["traffic"]
        if t["revisionName"] == rev2
    ]
    assert max(shares) == 50
    assert assert_every_write_matches_crd(emulator.server) >= 10


def test_controller_that_never_catches_up_times_out_naming_the_service(
    emulator: EmulatorThread, api: k8s_client.CustomObjectsApi
) -> None:
    controller = FakeKServe(api)
    seed_service(api, controller)
    clock = FakeClock(controller)
    target = make_target(api, clock)
    controller.stuck = True

    with pytest.raises(DeployError) as err:
        target.start(mv(2), mv(1), 10)
    assert str(err.value) == (
        f"patch: InferenceService {NS}/{NAME} did not apply the change within 60 s: "
        "status.observedGeneration 1 < metadata.generation 2"
    )
    assert clock.now == 60

    controller.stuck = False  # the rollback works once the controller is back
    split = target.rollback()
    assert split.primary_version == 1 and split.canary_version is None
    assert live(api)["spec"] == manifest_style()["spec"]
    assert_every_write_matches_crd(emulator.server)


def test_a_revision_that_fails_to_load_fails_at_once(
    emulator: EmulatorThread, api: k8s_client.CustomObjectsApi
) -> None:
    controller = FakeKServe(api)
    seed_service(api, controller)
    clock = FakeClock(controller)
    target = make_target(api, clock)
    controller.fail_load = True

    with pytest.raises(DeployError, match=r"BlockedByFailedLoad \(ModelLoadFailed: revision"):
        target.start(mv(2), mv(1), 10)
    assert clock.now < 60
    assert_every_write_matches_crd(emulator.server)


@pytest.mark.parametrize(
    ("annotation", "status_mode", "match"),
    [
        ("RawDeployment", None, "runs in RawDeployment mode: KServe ignores canaryTrafficPercent"),
        ("Standard", None, "runs in Standard mode"),
        ("Serverless", "RawDeployment", "runs in RawDeployment mode"),
        (None, "ModelMesh", "runs in ModelMesh mode"),
        (None, None, "cluster's default mode"),
    ],
)
def test_modes_that_ignore_canary_traffic_are_refused_before_any_write(
    emulator: EmulatorThread,
    api: k8s_client.CustomObjectsApi,
    annotation: str | None,
    status_mode: str | None,
    match: str,
) -> None:
    api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, manifest_style(annotation))
    if status_mode is not None:
        FakeKServe(api, mode=status_mode).settle()
    controller = FakeKServe(api)
    target = make_target(api, FakeClock(controller))
    before = len(writes(emulator.server))

    with pytest.raises(DeployError, match=match):
        target.start(mv(2), mv(1), 10)
    # The rollout controller rolls back after a failed start: nothing was written, nothing to do.
    assert target.rollback() == TrafficSplit(1, None, 0)
    assert len(writes(emulator.server)) == before  # no PATCH, no POST
    assert live(api)["spec"] == manifest_style()["spec"]


def test_namespace_not_allowed_sends_no_request(
    emulator: EmulatorThread, api: k8s_client.CustomObjectsApi
) -> None:
    target = make_target(api, FakeClock(FakeKServe(api)), allowed_namespaces=["prod"])
    with pytest.raises(DeployError, match=r"namespace 'models' .* is not allowed: .*\['prod'\]"):
        target.start(mv(2), mv(1), 10)
    assert list(emulator.server) == []


def test_forbidden_patch_is_a_deploy_error_and_rollback_leaves_the_service_as_it_was(
    emulator: EmulatorThread, api: k8s_client.CustomObjectsApi
) -> None:
    controller = FakeKServe(api)
    seed_service(api, controller)
    target = make_target(api, FakeClock(controller))
    emulator.server.refuse[("PATCH", None)] = 403

    with pytest.raises(DeployError) as err:
        target.start(mv(2), mv(1), 10)
    assert str(err.value).startswith(
        f"patch of InferenceService {NS}/{NAME} failed: HTTP 403 Forbidden: refused by the test"
    )
    assert live(api)["metadata"]["generation"] == 1

    split = target.rollback()  # nothing was applied: nothing to undo, and no write tried
    assert split == TrafficSplit(1, None, 0, primary_revision=f"{NAME}-predictor-00001")
    assert [r.method.value for r in writes(emulator.server)] == ["POST", "PATCH"]
    assert_every_write_matches_crd(emulator.server)


def test_server_error_on_read_is_a_deploy_error_before_any_write(
    emulator: EmulatorThread, api: k8s_client.CustomObjectsApi
) -> None:
    target = make_target(api, FakeClock(FakeKServe(api)))
    emulator.server.refuse[("GET", None)] = 500
    with pytest.raises(DeployError, match=rf"get of InferenceService {NS}/{NAME} failed: HTTP 500"):
        target.start(mv(2), mv(1), 10)
    assert writes(emulator.server) == []


def test_rollback_of_a_first_deploy_deletes_the_service_it_created(
    emulator: EmulatorThread, api: k8s_client.CustomObjectsApi
) -> None:
    controller = FakeKServe(api)
    target = make_target(api, FakeClock(controller))
    target.start(mv(1), None, 100)

    assert target.rollback() == TrafficSplit(None, None, 0)
    with pytest.raises(k8s_client.ApiException) as err:
        live(api)
    assert err.value.status == 404
    assert [r.method.value for r in writes(emulator.server)] == ["POST", "DELETE"]
    assert_every_write_matches_crd(emulator.server)


def test_a_live_model_other_than_the_previous_version_is_refused(
    emulator: EmulatorThread, api: k8s_client.CustomObjectsApi
) -> None:
    seed_service(api, FakeKServe(api))
    target = make_target(api, FakeClock(FakeKServe(api)))
    before = len(writes(emulator.server))
    with pytest.raises(
        DeployError, match=r"serves 'gs://.*/versions/1', not the previous version 2"
    ):
        target.start(mv(3), mv(2), 10)
    assert len(writes(emulator.server)) == before


# --------------------------------------------------------------------------- the controller


def _registry(tmp_path: Path):
    import hashlib

    from refit.deploy.local import LocalTarget
    from refit.registry import ModelRegistry

    reg = ModelRegistry(str(tmp_path / "store"), "credit")
    for version in (1, 2):
        folder = tmp_path / f"m{version}"
        folder.mkdir()
        blob = f"xgboost model {version}".encode()
        (folder / "model.ubj").write_bytes(blob)
        meta = {"file": "model.ubj", "sha256": hashlib.sha256(blob).hexdigest()}
        (folder / "model.json").write_text(json.dumps(meta))
        reg.register(
            folder,
            metrics={},
            snapshot_sha256=f"{version}" * 64,
            parent_version=version - 1 or None,
            run_label=f"run-{version}",
        )
    LocalTarget(reg).promote(1, reason="first")
    return reg


def _uri(version: ModelVersion) -> str:
    return f"{STORE}/versions/{version.version}/model.ubj"


class _Check:
    def __init__(self, passed: bool, name: str = "errors") -> None:
        self.name, self.passed, self.decisive, self.detail = name, passed, False, "scripted"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


def _controller_setup(api, tmp_path):
    from refit.deploy.plan import RolloutPlan

    reg = _registry(tmp_path)
    controller = FakeKServe(api, lag=1)
    seeded = manifest_style()
    seeded["spec"]["predictor"]["model"]["storageUri"] = _uri(reg.get(1))
    seeded["spec"]["predictor"]["model"]["runtime"] = "kserve-xgbserver"
    seed_service(api, controller, seeded)
    clock = FakeClock(controller)
    target = make_target(api, clock, storage_uri_for=_uri)
    plan = RolloutPlan(steps=(10, 50, 100), interval_seconds=30, failures_allowed=0)
    return reg, target, clock, plan


def test_rollout_through_kserve_promotes_and_moves_the_alias(
    emulator: EmulatorThread, api: k8s_client.CustomObjectsApi, tmp_path: Path
) -> None:
    from refit.deploy.rollout import run_canary

    reg, target, clock, plan = _controller_setup(api, tmp_path)
    seen: list[tuple[int, str, str]] = []

    def analyze(split, elapsed, percent, window):
        seen.append((percent, split.primary_revision, split.canary_revision))
        return [_Check(True)]

    result = run_canary(reg, 2, target, plan, analyze, clock=clock.clock, sleep=clock.sleep)
    assert result.outcome == "promoted", result.to_markdown()
    assert [p for p, _, _ in seen] == [10, 50]
    # Metrics queries compare the canary's revision with the primary's, as KServe names them.
    assert all(
        primary.endswith("00001") and canary.endswith("00002") for _, primary, canary in seen
    )
    spec = live(api)["spec"]["predictor"]
    assert spec["model"]["storageUri"] == _uri(reg.get(2)) and "canaryTrafficPercent" not in spec
    assert reg.aliases() == {"champion": 2, "previous": 1}
    assert assert_every_write_matches_crd(emulator.server) >= 5


def test_failed_check_rolls_kserve_back_to_the_previous_model(
    emulator: EmulatorThread, api: k8s_client.CustomObjectsApi, tmp_path: Path
) -> None:
    from refit.deploy.rollout import run_canary

    reg, target, clock, plan = _controller_setup(api, tmp_path)
    result = run_canary(
        reg, 2, target, plan, lambda *a: [_Check(False)], clock=clock.clock, sleep=clock.sleep
    )
    assert result.outcome == "rolled_back"
    spec = live(api)["spec"]["predictor"]
    assert spec["model"]["storageUri"] == _uri(reg.get(1)) and "canaryTrafficPercent" not in spec
    assert reg.aliases() == {"champion": 1} and reg.get(2).status == "rolled_back"
    assert assert_every_write_matches_crd(emulator.server) >= 5


def test_kubernetes_api_error_mid_rollout_rolls_back_not_promotes(
    emulator: EmulatorThread, api: k8s_client.CustomObjectsApi, tmp_path: Path
) -> None:
    from refit.deploy.rollout import run_canary

    reg, target, clock, plan = _controller_setup(api, tmp_path)

    def analyze(split, elapsed, percent, window):
        if percent == 10:  # the API server refuses the next step's patch, once
            emulator.server.refuse_once[("PATCH", None)] = 500
        return [_Check(True)]

    result = run_canary(reg, 2, target, plan, analyze, clock=clock.clock, sleep=clock.sleep)
    assert result.outcome == "rolled_back"
    assert "target failed to apply step 50%" in result.reason and "HTTP 500" in result.reason
    spec = live(api)["spec"]["predictor"]
    assert spec["model"]["storageUri"] == _uri(reg.get(1)) and "canaryTrafficPercent" not in spec
    assert reg.get_alias("champion") == 1
