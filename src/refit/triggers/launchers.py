"""Launchers: what the trigger service does when the policy says retrain.

* ``log``: records the launch it would make and runs nothing (staging, dry runs).
* ``kfp``: ``kfp.Client.create_run_from_pipeline_package`` on a cluster, retried with back-off
  on connection errors and 5xx; a launch that still fails stays ``pending`` and is retried later.
* ``local``: the pipeline with ``kfp.local`` in a worker (embedded mode), one run at a time.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from refit.errors import RefitError


class LaunchError(RefitError):
    """A launch failed after its retries; the run stays pending for a later retry."""


class Launcher:
    """Base class: ``launch(run_id, model, params) -> external id``.

    ``params`` are the run's complete pipeline arguments, ``model_name`` and ``run_label``
    included (built by the service from the checked config, see ``refit.triggers.inputs``).
    """

    name = "base"
    #: Whether ``launch`` is quick enough to run inside the hook request (else: a worker).
    synchronous = True

    def launch(self, run_id: int, model: str, params: dict[str, Any]) -> str:
        """Start a run of the pipeline; return its id in the orchestrator."""
        raise NotImplementedError


class LogLauncher(Launcher):
    """Records the launch and runs nothing."""

    name = "log"

    def __init__(self) -> None:
        """Start with no launches."""
        self.launched: list[tuple[int, str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def launch(self, run_id: int, model: str, params: dict[str, Any]) -> str:
        """Record the launch."""
        with self._lock:
            self.launched.append((run_id, model, dict(params)))
        return f"log-{run_id}"


def _retry(
    fn: Callable[[], str], attempts: int, backoff: float, what: str, sleep=time.sleep
) -> str:
    errors = []
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:  # connection refused, 5xx ApiException, timeouts
            status = getattr(exc, "status", None)
            if status is not None and 400 <= int(status) < 500 and int(status) != 429:
                raise LaunchError(f"{what}: refused with HTTP {status}: {exc}") from exc
            errors.append(f"attempt {attempt + 1}: {type(exc).__name__}: {str(exc)[:200]}")
            if attempt + 1 < attempts:
                sleep(backoff * 2**attempt)
    raise LaunchError(f"{what} failed after {attempts} attempts; " + " | ".join(errors))


class KfpLauncher(Launcher):
    """Submits runs to a KFP cluster with ``kfp.Client``."""

    name = "kfp"
    synchronous = False  # retries with back-off must not hold up the hook's answer

    def __init__(
        self,
        host: str | None,
        *,
        token: str | None = None,
        experiment: str = "refit-triggers",
        pipeline: str = "retraining",
        attempts: int = 4,
        backoff: float = 0.5,
        client_factory: Callable[[], Any] | None = None,
    ) -> None:
        """Configure the launcher; the pipeline is compiled once, the client made on first use.

        The compiled tasks run in ``refit.images``' images: ``REFIT_IMAGE_REPOSITORY`` (set on
        the trigger Deployment from the overlay's ``image_repository``) tagged with refit's
        version, as read when this process imported the pipeline.
        """
        from refit.schedule.kfp import compile_pipeline

        self.host, self.token, self.experiment = host, token, experiment
        self.attempts, self.backoff = attempts, backoff
        self._dir = tempfile.mkdtemp(prefix="refit-launcher-")
        self.package = compile_pipeline(pipeline, Path(self._dir))
        self._client: Any = None
        self._factory = client_factory
        self._lock = threading.Lock()

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                if self._factory is not None:
                    self._client = self._factory()
                else:
                    import kfp

                    self._client = kfp.Client(host=self.host, existing_token=self.token)
            return self._client

    def launch(self, run_id: int, model: str, params: dict[str, Any]) -> str:
        """Submit the run, retrying connection errors and 5xx with exponential back-off."""

        def submit() -> str:
            client = self._get_client()
            result = client.create_run_from_pipeline_package(
                str(self.package),
                arguments=params,
                run_name=f"refit-{model}-trigger-{run_id}",
                experiment_name=self.experiment,
                enable_caching=False,
            )
            return str(result.run_id)

        def guarded() -> str:
            try:
                return submit()
            except Exception:
                with self._lock:  # a client made while the server was down may be stale
                    if self._factory is None:
                        self._client = None
                raise

        return _retry(guarded, self.attempts, self.backoff, f"KFP run for {model} at {self.host}")


class LocalLauncher(Launcher):
    """Runs the pipeline with kfp.local, in the service's launch worker (one at a time)."""

    name = "local"
    synchronous = False

    def __init__(self, pipeline_root: str | Path) -> None:
        """Runs write their artifacts under ``pipeline_root``."""
        self.pipeline_root = Path(pipeline_root)
        self._lock = threading.Lock()

    def launch(self, run_id: int, model: str, params: dict[str, Any]) -> str:
        """Run the pipeline to completion (raises on failure)."""
        from refit.pipelines.local import init_local, run_pipeline

        with self._lock:
            init_local(self.pipeline_root)
            run_pipeline(**params)
        return f"local-{run_id}"


def make_launcher(kind: str, **kwargs: Any) -> Launcher:
    """Build a launcher by name (``log``, ``kfp`` or ``local``).

    Keyword arguments: ``host`` and ``token`` (kfp), ``pipeline`` (kfp: a refit pipeline name or
    a compiled YAML, as the trigger config's ``pipeline``), ``pipeline_root`` (local).

    Raises:
        ValueError: An unknown name.
    """
    if kind == "log":
        return LogLauncher()
    pipeline = kwargs.get("pipeline") or "retraining"
    if kind == "kfp":
        return KfpLauncher(kwargs.get("host"), token=kwargs.get("token"), pipeline=pipeline)
    if kind == "local":
        if pipeline != "retraining":
            raise ValueError(
                f"the local launcher runs the retraining pipeline only, not {pipeline!r}"
            )
        return LocalLauncher(kwargs.get("pipeline_root") or "refit-triggers/pipeline_root")
    raise ValueError(f"unknown launcher {kind!r}; known: kfp, local, log")
