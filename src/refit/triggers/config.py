"""Configuration of the trigger service (``refit serve-triggers --config FILE``).

A JSON (or YAML) file::

    {
      "store_uri": "/data/store",            # refit store: champion lookups and the audit log
      "state_path": "refit-triggers.db",     # SQLite state (dedupe, cooldowns, counters, runs)
      "cooldown_seconds": 3600,              # per model, after a launch
      "max_in_flight": 1,                    # runs pending or running at once, all models
      "max_body_bytes": 1048576,             # larger hook bodies answer 413
      "dedupe_ttl_seconds": 604800,          # how long a dedupe key is remembered
      "pipeline": "retraining",              # what runs launch: a refit pipeline or a compiled YAML
      "models": {
        "credit-default": {
          "policy": {"drift_share_threshold": 0.3, "new_data_fraction": 0.5},
          "params": {"data_uri": "gs://b/latest.parquet", "store_uri": "gs://b/store"},
          "schedule": "0 2 * * *",           # embedded scheduler (standard cron), optional
          "storage_prefixes": ["gs://b/incoming/"],
          "streaming": {"threshold": 100}     # /hooks/stream's Page-Hinkley test, optional
        }
      }
    }

A model's ``params`` are its runs' pipeline arguments. They are checked against the compiled
pipeline's inputs when the config is loaded (``refit.triggers.inputs``): a name the pipeline
does not take, a value of the wrong type or a required input left out is an error naming it, and
so is a run ``store_uri`` other than the service's ``store_uri`` (the store it judges champions
in). ``model_name`` (the model's key) and ``run_label`` (one per run) are set by the service.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from refit.errors import RefitError
from refit.policy import RetrainPolicy
from refit.schedule.cron import CronSchedule, parse_cron
from refit.triggers.inputs import PipelineInputs, PipelineInputsError, pipeline_inputs
from refit.triggers.streaming import StreamSettings

#: A fleet's models mostly share a few schedules: each distinct expression is parsed once (a
#: parse is ~1.3 ms, 1.3 s of a 1,000-model config's load).
_parse_cron = functools.lru_cache(maxsize=1024)(parse_cron)


class TriggerConfigError(RefitError, ValueError):
    """The trigger service's configuration or secret is missing or invalid."""


@dataclass
class ModelConfig:
    """One model the service may retrain.

    Attributes:
        name: Model name (the ``model`` label of alerts, ``model`` of generic hooks).
        policy: Retrain policy deciding each event.
        params: Pipeline arguments of a launched run, checked against the pipeline's inputs
            (``model_name`` and ``run_label`` are added per run).
        schedule: Cron of the embedded scheduler, if any.
        storage_prefixes: ``gs://bucket/prefix`` of objects counted as this model's new data.
        streaming: Settings of the streaming change detector (``refit.triggers.streaming``).
    """

    name: str
    policy: RetrainPolicy = field(default_factory=RetrainPolicy)
    params: dict[str, Any] = field(default_factory=dict)
    schedule: CronSchedule | None = None
    storage_prefixes: list[str] = field(default_factory=list)
    streaming: StreamSettings = field(default_factory=StreamSettings)


@dataclass
class ServiceConfig:
    """The service's settings (see the module docstring for the file format)."""

    models: dict[str, ModelConfig]
    store_uri: str | None = None
    state_path: str = "refit-triggers.db"
    cooldown_seconds: float = 3600.0
    max_in_flight: int = 1
    max_body_bytes: int = 1 << 20
    dedupe_ttl_seconds: float = 7 * 86400.0
    pipeline: str = "retraining"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServiceConfig:
        """Build and validate a configuration.

        Raises:
            TriggerConfigError: Naming the field and what is wrong.
        """
        if not isinstance(data, dict):
            raise TriggerConfigError("trigger config must be a mapping")
        unknown = sorted(set(data) - _SERVICE_FIELDS)
        if unknown:
            raise TriggerConfigError(
                f"trigger config has unknown field(s) {', '.join(unknown)}; known: "
                + ", ".join(sorted(_SERVICE_FIELDS))
            )
        raw_models = data.get("models")
        if not isinstance(raw_models, dict) or not raw_models:
            raise TriggerConfigError("trigger config 'models' must map at least one model name")
        pipeline = data.get("pipeline", "retraining")
        if not isinstance(pipeline, str) or not pipeline:
            raise TriggerConfigError(f"pipeline must be a pipeline name or path, got {pipeline!r}")
        try:
            inputs = pipeline_inputs(pipeline)
        except PipelineInputsError as exc:
            raise TriggerConfigError(f"pipeline: {exc}") from None
        models = {
            name: _model_config(name, m or {}, inputs, data.get("store_uri"))
            for name, m in raw_models.items()
        }
        config = cls(models=models, **{k: v for k, v in data.items() if k != "models"})
        config._check_numbers()
        return config

    def _check_numbers(self) -> None:
        """Refuse a negative duration or a count below 1, naming the field."""
        for key in ("cooldown_seconds", "dedupe_ttl_seconds"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise TriggerConfigError(f"{key} must be a number >= 0, got {value!r}")
        for key in ("max_in_flight", "max_body_bytes"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise TriggerConfigError(f"{key} must be an integer >= 1, got {value!r}")

    @classmethod
    def load(cls, path: str | Path) -> ServiceConfig:
        """Read a JSON or YAML config file.

        Raises:
            TriggerConfigError: Unreadable or invalid file.
        """
        path = Path(path)
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise TriggerConfigError(f"cannot read trigger config {path}: {exc}") from None
        try:
            if path.suffix in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text)
            else:
                data = json.loads(text)
        except Exception as exc:
            raise TriggerConfigError(f"trigger config {path} is not valid: {exc}") from None
        return cls.from_dict(data)

    def model_for_object(self, uri: str) -> ModelConfig | None:
        """The model whose storage prefix holds ``uri`` (longest prefix wins)."""
        best: tuple[int, ModelConfig] | None = None
        for model in self.models.values():
            for prefix in model.storage_prefixes:
                if uri.startswith(prefix) and (best is None or len(prefix) > best[0]):
                    best = (len(prefix), model)
        return None if best is None else best[1]


#: The fields of a trigger config file, and of one model in it.
_SERVICE_FIELDS = frozenset(
    {
        "models", "store_uri", "state_path", "cooldown_seconds", "max_in_flight",
        "max_body_bytes", "dedupe_ttl_seconds", "pipeline",
    }
)  # fmt: skip
_MODEL_FIELDS = frozenset({"policy", "params", "schedule", "storage_prefixes", "streaming"})


def _model_config(name: str, m: dict[str, Any], inputs: PipelineInputs, store: Any) -> ModelConfig:
    """One checked ``models.NAME`` entry; ``store`` is the service's ``store_uri``.

    Raises:
        TriggerConfigError: Naming the field and what is wrong.
    """
    extra = sorted(set(m) - _MODEL_FIELDS)
    if extra:
        raise TriggerConfigError(f"models.{name} has unknown field(s) {', '.join(extra)}")
    try:
        schedule = _parse_cron(m["schedule"]) if m.get("schedule") else None
        policy = RetrainPolicy.from_dict(m.get("policy") or {})
        streaming = StreamSettings.from_dict(m.get("streaming"))
    except ValueError as exc:
        raise TriggerConfigError(f"models.{name}: {exc}") from None
    params = m.get("params") or {}
    if not isinstance(params, dict):
        raise TriggerConfigError(f"models.{name}.params must be an object")
    try:
        inputs.check(params, f"models.{name}.params")
    except PipelineInputsError as exc:
        raise TriggerConfigError(str(exc)) from None
    run_store = params.get("store_uri")
    if store and run_store and str(store).rstrip("/") != str(run_store).rstrip("/"):
        raise TriggerConfigError(
            f"models.{name}.params.store_uri {run_store!r} is not store_uri {store!r}: "
            "the service would judge the champion of one store and the run train into "
            "another"
        )
    return ModelConfig(
        name=name,
        policy=policy,
        params=dict(params),
        schedule=schedule,
        storage_prefixes=list(m.get("storage_prefixes") or []),
        streaming=streaming,
    )
