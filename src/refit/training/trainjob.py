"""Kubeflow Trainer TrainJobs through the kubernetes client: preflight, submit, watch, delete.

:class:`TrainJobRunner` refuses a job before any write when its namespace is not allowed or
the runtime is missing (or is not an XGBoost runtime), creates it through ``CustomObjectsApi``
(group ``trainer.kubeflow.org``, ``v1alpha1``), waits for its ``Complete`` or ``Failed``
condition with a deadline, reports the conditions, and deletes it when asked. The bodies come
from :mod:`refit.training.trainjob_spec`; the client from :mod:`refit.io.kube`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from refit.errors import TrainingError
from refit.io import kube
from refit.training.trainjob_spec import (
    GROUP,
    PLURAL,
    RUNTIME_PLURAL,
    VERSION,
    TrainJobSettings,
    check_body,
)

__all__ = ["TrainJobOutcome", "TrainJobRunner"]


@dataclass
class TrainJobOutcome:
    """How a TrainJob ended.

    Attributes:
        name: TrainJob name.
        namespace: Its namespace.
        state: ``Complete``, ``Failed`` or ``DeadlineExceeded``.
        conditions: Its ``status.conditions`` at the end.
        waited_s: Seconds waited.
        deleted: Whether refit deleted it.
    """

    name: str
    namespace: str
    state: str
    conditions: list[dict[str, Any]]
    waited_s: float
    deleted: bool = False

    def describe(self) -> str:
        """One line per condition: ``Type=Status (Reason): message``."""
        return (
            "; ".join(
                f"{c.get('type')}={c.get('status')} ({c.get('reason', '')}): {c.get('message', '')}"
                for c in self.conditions
            )
            or "no conditions reported"
        )


class TrainJobRunner:
    """Creates, watches and deletes TrainJobs through ``CustomObjectsApi``.

    Args:
        settings: Namespace, allow-list, deadline, polling, deletion.
        api: The ``CustomObjectsApi``; None: one from the in-cluster configuration, or the
            kubeconfig.
        sleep: Sleep function (tests inject one that plays the Trainer controller).
        clock: Monotonic clock.
    """

    def __init__(
        self,
        settings: TrainJobSettings,
        api: Any = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        settings.check()
        self.settings = settings
        self._api = api
        self._sleep = sleep
        self._clock = clock

    def _client(self) -> Any:
        if self._api is None:
            self._api = kube.custom_objects_api("the TrainJob", TrainingError)
        return self._api

    def _call(self, op: str, fn: Callable[..., Any], *args: Any, missing_ok: bool = False) -> Any:
        return kube.call(
            op,
            fn,
            *args,
            timeout_s=self.settings.request_timeout_s,
            error=TrainingError,
            missing_ok=missing_ok,
        )

    def _poll(self) -> kube.Poll:
        return kube.Poll(
            self.settings.deadline_s, self.settings.poll_s, clock=self._clock, sleep=self._sleep
        )

    def preflight(self) -> dict[str, Any]:
        """Check, before any write, that the namespace is allowed and the runtime is there.

        Returns:
            The ClusterTrainingRuntime.

        Raises:
            TrainingError: The namespace is not allowed, or the runtime is missing or has no
                XGBoost policy.
        """
        ns = self.settings.namespace
        if ns not in self.settings.allowed_namespaces:
            raise TrainingError(
                f"TrainJob namespace {ns!r} is not allowed (allowed_namespaces: "
                f"{list(self.settings.allowed_namespaces) or 'none'}); nothing was created"
            )
        api = self._client()
        runtime = self._call(
            f"get ClusterTrainingRuntime {self.settings.runtime!r}",
            api.get_cluster_custom_object,
            GROUP,
            VERSION,
            RUNTIME_PLURAL,
            self.settings.runtime,
            missing_ok=True,
        )
        if runtime is None:
            raise TrainingError(
                f"ClusterTrainingRuntime {self.settings.runtime!r} is missing: install Kubeflow "
                "Trainer's runtimes (manifests/base/runtimes) or name another; nothing was created"
            )
        if "xgboost" not in ((runtime.get("spec") or {}).get("mlPolicy") or {}):
            raise TrainingError(
                f"ClusterTrainingRuntime {self.settings.runtime!r} has no mlPolicy.xgboost: it "
                "does not inject the DMLC_* variables refit's workers need; nothing was created"
            )
        return runtime

    def submit(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Run the preflight checks, then create the TrainJob.

        Raises:
            TrainingError: Refused (see :meth:`preflight`, :func:`check_body`) or the create
                failed.
        """
        check_body(body)
        if (body.get("metadata") or {}).get("namespace") != self.settings.namespace:
            raise TrainingError("TrainJob body's namespace differs from the settings' namespace")
        self.preflight()
        api = self._client()
        return self._call(
            f"create TrainJob {body['metadata']['name']!r}",
            api.create_namespaced_custom_object,
            GROUP,
            VERSION,
            self.settings.namespace,
            PLURAL,
            dict(body),
        )

    def get(self, name: str) -> dict[str, Any] | None:
        """The TrainJob, or None when it does not exist."""
        api = self._client()
        return self._call(
            f"get TrainJob {name!r}",
            api.get_namespaced_custom_object,
            GROUP,
            VERSION,
            self.settings.namespace,
            PLURAL,
            name,
            missing_ok=True,
        )

    def delete(self, name: str, *, wait: bool = False) -> bool:
        """Delete the TrainJob (its pods go with it); False when it was already gone.

        Args:
            name: TrainJob name.
            wait: Also wait (up to ``deadline_s``) until the API server no longer has it
                (finalizers), so that a new TrainJob of the same name can be created.

        Raises:
            TrainingError: The delete failed, or it was still there after the deadline.
        """
        api = self._client()
        gone = self._call(
            f"delete TrainJob {name!r}",
            api.delete_namespaced_custom_object,
            GROUP,
            VERSION,
            self.settings.namespace,
            PLURAL,
            name,
            missing_ok=True,
        )
        if wait and not any(self.get(name) is None for _ in self._poll()):
            raise TrainingError(
                f"TrainJob {self.settings.namespace}/{name} still exists "
                f"{self.settings.deadline_s} s after its deletion"
            )
        return gone is not None

    def wait(self, name: str) -> TrainJobOutcome:
        """Poll the TrainJob until ``Complete`` or ``Failed`` is True, or the deadline passes.

        Raises:
            TrainingError: It vanished while being watched.
        """
        poll = self._poll()
        conditions: list[dict[str, Any]] = []
        for _ in poll:
            job = self.get(name)
            if job is None:
                raise TrainingError(
                    f"TrainJob {self.settings.namespace}/{name} vanished while refit waited "
                    "for it (deleted by someone else?)"
                )
            conditions = list((job.get("status") or {}).get("conditions") or [])
            for state in ("Failed", "Complete"):
                if any(c.get("type") == state and c.get("status") == "True" for c in conditions):
                    return TrainJobOutcome(
                        name, self.settings.namespace, state, conditions, poll.elapsed()
                    )
        return TrainJobOutcome(
            name, self.settings.namespace, "DeadlineExceeded", conditions, poll.elapsed()
        )

    def run(self, body: Mapping[str, Any]) -> TrainJobOutcome:
        """Submit, wait, and delete when the settings say so.

        Returns:
            The outcome when the job completed.

        Raises:
            TrainingError: Refused before any write; the job failed or ran past the deadline
                (the message holds its conditions and whether it was deleted).
        """
        name = body["metadata"]["name"]
        self.submit(body)
        try:
            outcome = self.wait(name)
        except TrainingError:
            if self.settings.delete:
                self.delete(name)
            raise
        if self.settings.delete:
            outcome.deleted = self.delete(name)
        where = f"TrainJob {self.settings.namespace}/{name}"
        kept = "deleted" if outcome.deleted else "kept for inspection"
        if outcome.state == "Failed":
            raise TrainingError(
                f"{where} failed ({kept}): {outcome.describe()}. A rerun with the same "
                "checkpoint_uri resumes from the last checkpoint"
            )
        if outcome.state == "DeadlineExceeded":
            raise TrainingError(
                f"{where} did not finish within {self.settings.deadline_s} s ({kept}); last "
                f"conditions: {outcome.describe()}"
            )
        return outcome
