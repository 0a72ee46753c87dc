"""KFP recurring runs for refit's pipelines, through ``kfp.Client``.

``apply_recurring_run`` compiles the pipeline, uploads it as a pipeline version named by the
content hash of the compiled YAML (re-uploading the same pipeline reuses that version), then
creates the recurring run. It is idempotent by name: an existing recurring run with the same
display name in the experiment is deleted and re-created with the new settings (KFP's v2beta1 API
has no update for recurring runs), so running it twice never leaves two. Defaults are the safe
ones: ``max_concurrency=1`` (no pile-ups) and ``no_catchup=True`` (no catch-up storms after a
pause).

``recurring_run_body`` builds the exact JSON body ``kfp.Client.create_recurring_run`` sends, with
the same ``kfp_server_api`` models, for ``--dry-run``.

kfp is imported inside the functions, so ``refit.schedule`` imports without it.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from refit.schedule.cron import CronSchedule, IntervalSchedule, ScheduleError

#: Placeholder ids in a dry-run body, for what the server assigns on upload.
DRY_RUN_EXPERIMENT_ID = "<experiment id, assigned by the server>"
DRY_RUN_PIPELINE_ID = "<pipeline id, assigned by the server>"
DRY_RUN_VERSION_ID = "<pipeline version id, assigned by the server>"


def _retraining() -> Any:
    from refit.pipelines.retraining import retraining_pipeline

    return retraining_pipeline


#: Pipelines ``refit schedule`` knows by name.
PIPELINES: dict[str, Callable[[], Any]] = {"retraining": _retraining}


@dataclass
class RecurringRunSpec:
    """What a recurring run should be.

    Attributes:
        name: Display name of the recurring run; the key for idempotent updates.
        schedule: Cron or interval schedule (see ``refit.schedule.cron``).
        pipeline: A pipeline name from :data:`PIPELINES`, or a path to a compiled YAML.
        params: Pipeline parameters.
        experiment: Experiment name (created when missing).
        pipeline_name: Name of the uploaded pipeline in KFP (default: ``refit-<pipeline>``).
        max_concurrency: Runs of this recurring run allowed at once (1-10).
        no_catchup: Skip missed intervals after a pause instead of running each.
        enabled: Create it enabled (``False``: paused).
        description: Shown in the KFP UI.
        pipeline_root: Root of the runs' artifacts, if not the cluster's default.
        start_time: RFC 3339 time before which it does not fire.
        end_time: RFC 3339 time after which it does not fire.
    """

    name: str
    schedule: CronSchedule | IntervalSchedule
    pipeline: str = "retraining"
    params: dict[str, Any] = field(default_factory=dict)
    experiment: str = "refit"
    pipeline_name: str = ""
    max_concurrency: int = 1
    no_catchup: bool = True
    enabled: bool = True
    description: str = ""
    pipeline_root: str | None = None
    start_time: str | None = None
    end_time: str | None = None

    def __post_init__(self) -> None:
        """Validate the fields.

        Raises:
            ScheduleError: Naming the field and what is wrong.
        """
        if not isinstance(self.name, str) or not self.name.strip():
            raise ScheduleError(f"recurring run name must be a non-empty string, got {self.name!r}")
        if isinstance(self.max_concurrency, bool) or not isinstance(self.max_concurrency, int):
            raise ScheduleError(f"max_concurrency must be an integer, got {self.max_concurrency!r}")
        if not 1 <= self.max_concurrency <= 10:
            raise ScheduleError(
                f"max_concurrency must be in 1-10 (KFP), got {self.max_concurrency}"
            )
        if not isinstance(self.schedule, CronSchedule | IntervalSchedule):
            raise ScheduleError(
                "schedule must come from parse_cron or parse_interval, got "
                f"{type(self.schedule).__name__}"
            )
        if not self.pipeline_name:
            stem = Path(self.pipeline).stem if self.pipeline not in PIPELINES else self.pipeline
            self.pipeline_name = f"refit-{stem}"


@dataclass
class ApplyResult:
    """What :func:`apply_recurring_run` did."""

    action: str  # "created" or "replaced"
    recurring_run_id: str
    replaced_ids: list[str]
    experiment_id: str
    pipeline_id: str
    pipeline_version_id: str
    pipeline_version_name: str
    body: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dict(self.__dict__)


def compile_pipeline(pipeline: str, directory: Path) -> Path:
    """Compile a known pipeline (or take a compiled YAML as is) and return the package path.

    Raises:
        ScheduleError: An unknown pipeline name, or a path that does not exist.
    """
    if pipeline in PIPELINES:
        from refit.images import repository
        from refit.pipelines.compile import compile_to

        path = directory / f"{pipeline}.yaml"
        # the image repository as set now ($REFIT_IMAGE_REPOSITORY, else refit's published one)
        compile_to(PIPELINES[pipeline](), path, image_repository=repository())
        return path
    path = Path(pipeline)
    if path.suffix in (".yaml", ".yml", ".json") and path.is_file():
        return path
    raise ScheduleError(
        f"unknown pipeline {pipeline!r}: give one of {', '.join(sorted(PIPELINES))} "
        "or the path of a compiled pipeline YAML"
    )


def version_name(pipeline_name: str, package: Path) -> str:
    """Name of the pipeline version for this compiled package: name + content hash."""
    digest = hashlib.sha256(package.read_bytes()).hexdigest()[:12]
    return f"{pipeline_name}-{digest}"


def _trigger(spec: RecurringRunSpec) -> Any:
    import kfp_server_api

    if isinstance(spec.schedule, CronSchedule):
        return kfp_server_api.V2beta1Trigger(
            cron_schedule=kfp_server_api.V2beta1CronSchedule(
                start_time=spec.start_time, end_time=spec.end_time, cron=spec.schedule.kfp
            )
        )
    return kfp_server_api.V2beta1Trigger(
        periodic_schedule=kfp_server_api.V2beta1PeriodicSchedule(
            start_time=spec.start_time,
            end_time=spec.end_time,
            interval_second=spec.schedule.seconds,
        )
    )


def recurring_run_body(
    spec: RecurringRunSpec,
    *,
    experiment_id: str = DRY_RUN_EXPERIMENT_ID,
    pipeline_id: str = DRY_RUN_PIPELINE_ID,
    version_id: str = DRY_RUN_VERSION_ID,
) -> dict[str, Any]:
    """The JSON body of ``POST /apis/v2beta1/recurringruns`` that ``apply`` sends.

    Built with the same ``kfp_server_api`` models and serializer as
    ``kfp.Client.create_recurring_run``.
    """
    import kfp_server_api

    mode = (
        kfp_server_api.RecurringRunMode.ENABLE
        if spec.enabled
        else kfp_server_api.RecurringRunMode.DISABLE
    )
    body = kfp_server_api.V2beta1RecurringRun(
        experiment_id=experiment_id,
        mode=mode,
        pipeline_spec=None,
        pipeline_version_reference=kfp_server_api.V2beta1PipelineVersionReference(
            pipeline_id=pipeline_id, pipeline_version_id=version_id
        ),
        runtime_config=kfp_server_api.V2beta1RuntimeConfig(
            pipeline_root=spec.pipeline_root, parameters=dict(spec.params)
        ),
        display_name=spec.name,
        description=spec.description or None,
        no_catchup=spec.no_catchup,
        trigger=_trigger(spec),
        max_concurrency=spec.max_concurrency,
        service_account=None,
    )
    return kfp_server_api.ApiClient().sanitize_for_serialization(body)


#: Seconds the health probe of `connect` waits for the KFP API.
PROBE_TIMEOUT_S = 15.0


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect (to a login page) is reported, not followed


def _probe(host: str, token: str | None) -> None:
    """Ask the KFP API's health endpoint once; raise a ScheduleError that says what failed.

    kfp.Client retries its own health check five times, 5 s apart, and then reports a timeout
    whatever the cause; this tells an authentication failure (401, 403, or a redirect to a login
    page, as Kubeflow's gateway answers without a session) from an unreachable server.
    """
    scheme = urllib.parse.urlsplit(host).scheme
    if scheme not in ("http", "https"):
        raise ScheduleError(
            f"KFP host {host!r} is not an http:// or https:// URL (e.g. "
            "http://localhost:8080 for a port-forward of ml-pipeline-ui)"
        )
    url = host.rstrip("/") + "/apis/v2beta1/healthz"
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=PROBE_TIMEOUT_S):
            return
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise ScheduleError(
                f"the KFP API at {host!r} refused the credentials (HTTP {exc.code} "
                f"{'Unauthorized' if exc.code == 401 else 'Forbidden'}): this is an "
                "authentication error, not a network one; pass a valid token (KFP_TOKEN / "
                "--token-file: for multi-user Kubeflow a ServiceAccount token with the audience "
                "pipelines.kubeflow.org) that may use the namespace"
            ) from None
        if exc.code in (301, 302, 303, 307, 308):
            raise ScheduleError(
                f"the KFP API at {host!r} redirected to {exc.headers.get('Location', '?')!r}, "
                "a login page: this is an authentication error; pass a token (KFP_TOKEN / "
                "--token-file), or use the in-cluster ml-pipeline service"
            ) from None
        raise ScheduleError(f"the KFP API at {host!r} answered HTTP {exc.code}: {exc}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ScheduleError(f"cannot reach the KFP API at {host!r}: {reason}") from None


def connect(host: str | None, **kwargs: Any) -> Any:
    """A ``kfp.Client`` for ``host``.

    Args:
        host: The KFP API endpoint; None: kfp's in-cluster default.
        **kwargs: More ``kfp.Client`` arguments (``existing_token``, ``namespace``...).

    Raises:
        ScheduleError: The credentials are refused (HTTP 401/403, or a redirect to a login
            page: an authentication error), or the server cannot be reached.
    """
    import kfp

    if host:
        _probe(host, kwargs.get("existing_token"))
    try:
        return kfp.Client(host=host, **kwargs)
    except Exception as exc:
        raise ScheduleError(f"cannot reach the KFP API at {host!r}: {exc}") from exc


def _name_filter(name: str) -> str:
    return json.dumps(
        {"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]}
    )


def find_recurring_runs(client: Any, name: str, experiment_id: str | None = None) -> list[Any]:
    """Recurring runs whose display name is exactly ``name`` (all pages)."""
    found: list[Any] = []
    seen: set[str] = set()
    token = ""
    while True:
        response = client.list_recurring_runs(
            page_token=token, page_size=100, experiment_id=experiment_id, filter=_name_filter(name)
        )
        found += [r for r in response.recurring_runs or [] if r.display_name == name]
        seen.add(token)
        token = response.next_page_token or ""
        if not token or token in seen:
            return found


def _ensure_version(client: Any, spec: RecurringRunSpec, package: Path) -> tuple[str, str, str]:
    """Upload the pipeline (if new) and this package as a version (if new)."""
    vname = version_name(spec.pipeline_name, package)
    pipeline_id = client.get_pipeline_id(spec.pipeline_name)
    if pipeline_id is None:
        pipeline_id = client.upload_pipeline(
            str(package), pipeline_name=spec.pipeline_name, description=spec.description or None
        ).pipeline_id
    versions = client.list_pipeline_versions(
        pipeline_id, page_size=100, filter=_name_filter(vname)
    ).pipeline_versions
    for v in versions or []:
        if v.display_name == vname:
            return pipeline_id, v.pipeline_version_id, vname
    version = client.upload_pipeline_version(str(package), vname, pipeline_id=pipeline_id)
    return pipeline_id, version.pipeline_version_id, vname


def apply_recurring_run(client: Any, spec: RecurringRunSpec) -> ApplyResult:
    """Create the recurring run, or replace the one with the same name.

    Args:
        client: A ``kfp.Client``.
        spec: What the recurring run should be.

    Returns:
        What was done, with the ids and the body sent.

    Raises:
        ScheduleError: An unknown pipeline, or the KFP API refused a request.
    """
    with tempfile.TemporaryDirectory(prefix="refit-schedule-") as tmp:
        package = compile_pipeline(spec.pipeline, Path(tmp))
        try:
            experiment_id = client.create_experiment(spec.experiment).experiment_id
            pipeline_id, version_id, vname = _ensure_version(client, spec, package)
            existing = find_recurring_runs(client, spec.name, experiment_id)
            for old in existing:
                client.delete_recurring_run(old.recurring_run_id)
            created = client.create_recurring_run(
                experiment_id=experiment_id,
                job_name=spec.name,
                description=spec.description or None,
                start_time=spec.start_time,
                end_time=spec.end_time,
                interval_second=(
                    spec.schedule.seconds if isinstance(spec.schedule, IntervalSchedule) else None
                ),
                cron_expression=(
                    spec.schedule.kfp if isinstance(spec.schedule, CronSchedule) else None
                ),
                max_concurrency=spec.max_concurrency,
                no_catchup=spec.no_catchup,
                params=dict(spec.params),
                pipeline_id=pipeline_id,
                version_id=version_id,
                enabled=spec.enabled,
                pipeline_root=spec.pipeline_root,
            )
        except ScheduleError:
            raise
        except Exception as exc:
            raise ScheduleError(f"KFP API refused recurring run {spec.name!r}: {exc}") from exc
    return ApplyResult(
        action="replaced" if existing else "created",
        recurring_run_id=created.recurring_run_id,
        replaced_ids=[r.recurring_run_id for r in existing],
        experiment_id=experiment_id,
        pipeline_id=pipeline_id,
        pipeline_version_id=version_id,
        pipeline_version_name=vname,
        body=recurring_run_body(
            spec, experiment_id=experiment_id, pipeline_id=pipeline_id, version_id=version_id
        ),
    )


def _one(client: Any, name: str) -> Any:
    runs = find_recurring_runs(client, name)
    if not runs:
        raise ScheduleError(f"no recurring run named {name!r}")
    return runs


def set_enabled(client: Any, name: str, enabled: bool) -> list[str]:
    """Pause (``enabled=False``) or resume the recurring run(s) named ``name``; their ids."""
    ids = []
    for run in _one(client, name):
        if enabled:
            client.enable_recurring_run(run.recurring_run_id)
        else:
            client.disable_recurring_run(run.recurring_run_id)
        ids.append(run.recurring_run_id)
    return ids


def delete(client: Any, name: str) -> list[str]:
    """Delete the recurring run(s) named ``name``; their ids."""
    ids = []
    for run in _one(client, name):
        client.delete_recurring_run(run.recurring_run_id)
        ids.append(run.recurring_run_id)
    return ids


def list_runs(client: Any, experiment: str | None = None) -> list[dict[str, Any]]:
    """Recurring runs (of ``experiment`` if given) as dicts: name, id, mode, schedule."""
    experiment_id = None
    if experiment:
        experiment_id = client.get_experiment(experiment_name=experiment).experiment_id
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    token = ""
    while True:
        response = client.list_recurring_runs(
            page_token=token, page_size=100, experiment_id=experiment_id
        )
        for r in response.recurring_runs or []:
            trigger = r.trigger
            cron = getattr(getattr(trigger, "cron_schedule", None), "cron", None)
            interval = getattr(getattr(trigger, "periodic_schedule", None), "interval_second", None)
            rows.append(
                {
                    "name": r.display_name,
                    "id": r.recurring_run_id,
                    "mode": r.mode,
                    "cron": cron,
                    "interval_second": interval,
                    "max_concurrency": r.max_concurrency,
                    "no_catchup": r.no_catchup,
                }
            )
        seen.add(token)
        token = response.next_page_token or ""
        if not token or token in seen:  # a server repeating a token would loop forever
            return rows
