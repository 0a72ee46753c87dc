"""The input parameters of the pipeline the trigger service launches, read from its compiled spec.

A triggered run must carry every input the pipeline needs for the model that was judged: the
trigger config's ``params`` are checked against the compiled pipeline's
``root.inputDefinitions.parameters`` when the config is loaded (an unknown name, a missing
required input or a value of the wrong type is an error naming it), and :meth:`PipelineInputs.
arguments` adds what the service itself owns: ``model_name`` (the model the trigger judged) and
``run_label`` (one per triggered run, so release records never merge), each only when the
pipeline takes it.

Nothing here hard-codes the pipeline's parameter list: it is whatever the compiled spec says.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from refit.errors import RefitError

#: Inputs the service sets on every run; a trigger config may not set them.
SERVICE_SET = ("model_name", "run_label")

_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "STRING": ((str,), "a string"),
    "NUMBER_INTEGER": ((int,), "an integer"),
    "NUMBER_DOUBLE": ((int, float), "a number"),
    "BOOLEAN": ((bool,), "true or false"),
    "STRUCT": ((dict,), "an object"),
    "LIST": ((list,), "a list"),
}


class PipelineInputsError(RefitError, ValueError):
    """Run parameters do not fit the pipeline's inputs, or the pipeline spec is unreadable."""


@dataclass(frozen=True)
class PipelineInput:
    """One input parameter of a compiled pipeline.

    Attributes:
        name: Parameter name.
        type: KFP parameter type (``STRING``, ``NUMBER_INTEGER``, ``NUMBER_DOUBLE``,
            ``BOOLEAN``, ``STRUCT``, ``LIST``).
        required: No default: a run must set it.
    """

    name: str
    type: str
    required: bool


@dataclass(frozen=True)
class PipelineInputs:
    """The input parameters of one compiled pipeline.

    Attributes:
        pipeline: The pipeline's name or path (for messages).
        inputs: Each input by name.
    """

    pipeline: str
    inputs: Mapping[str, PipelineInput]

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], pipeline: str) -> PipelineInputs:
        """Read ``root.inputDefinitions.parameters`` of a compiled pipeline (IR) spec.

        Raises:
            PipelineInputsError: The spec has no such section, or an input without a type.
        """
        try:
            params = (spec.get("root") or {}).get("inputDefinitions", {}).get("parameters", {})
        except AttributeError:
            params = None
        if not isinstance(params, dict):
            raise PipelineInputsError(
                f"pipeline {pipeline}: root.inputDefinitions.parameters is not a mapping"
            )
        inputs = {}
        for name, definition in params.items():
            kind = (definition or {}).get("parameterType")
            if kind not in _TYPES:
                raise PipelineInputsError(
                    f"pipeline {pipeline}: input {name!r} has unknown parameterType {kind!r}"
                )
            required = "defaultValue" not in definition and not definition.get("isOptional")
            inputs[name] = PipelineInput(name=name, type=kind, required=required)
        return cls(pipeline=pipeline, inputs=inputs)

    @classmethod
    def from_package(cls, path: str | Path, pipeline: str | None = None) -> PipelineInputs:
        """Read the inputs of a compiled pipeline YAML (its first document).

        Raises:
            PipelineInputsError: Unreadable file or no input definitions.
        """
        try:
            with open(path) as f:
                spec = next(yaml.safe_load_all(f))
        except (OSError, yaml.YAMLError, StopIteration) as exc:
            raise PipelineInputsError(f"cannot read compiled pipeline {path}: {exc}") from None
        return cls.from_spec(spec or {}, pipeline or str(path))

    @property
    def required(self) -> list[str]:
        """Names of the inputs without a default, sorted."""
        return sorted(n for n, i in self.inputs.items() if i.required)

    def check(self, params: Mapping[str, Any], where: str) -> None:
        """Check a trigger config's run parameters against the inputs.

        Args:
            params: The configured parameters (without the service-set ones).
            where: Prefix of error messages, e.g. ``models.credit-default.params``.

        Raises:
            PipelineInputsError: A parameter the pipeline does not take, one the service sets
                (``model_name``, ``run_label``), a value of the wrong type, or a required input
                missing; each named.
        """
        names = ", ".join(sorted(self.inputs))
        unknown = sorted(set(params) - set(self.inputs))
        if unknown:
            raise PipelineInputsError(
                f"{where}: pipeline {self.pipeline} has no input(s) "
                f"{', '.join(repr(u) for u in unknown)}; its inputs: {names}"
            )
        owned = sorted(set(params) & set(SERVICE_SET))
        if owned:
            raise PipelineInputsError(
                f"{where}: {', '.join(owned)} must not be set: the service sets model_name to "
                "the model's key in 'models' and gives each run its own run_label"
            )
        for name, value in params.items():
            types, text = _TYPES[self.inputs[name].type]
            if isinstance(value, bool) != (bool in types) or not isinstance(value, types):
                raise PipelineInputsError(
                    f"{where}.{name} must be {text} ({self.inputs[name].type}), got {value!r}"
                )
        missing = [n for n in self.required if n not in params and n not in SERVICE_SET]
        if missing:
            raise PipelineInputsError(
                f"{where}: missing required pipeline input(s) {', '.join(missing)} "
                f"(pipeline {self.pipeline} has no default for them)"
            )

    def arguments(
        self, model: str, params: Mapping[str, Any], run_label: str | None
    ) -> dict[str, Any]:
        """The arguments of one run: ``params`` plus the inputs the service sets.

        Args:
            model: The model the trigger judged (``model_name``, when the pipeline takes it).
            params: Checked run parameters (see :meth:`check`).
            run_label: This run's label (``run_label``, when the pipeline takes it).

        Returns:
            The arguments, keys sorted.
        """
        args = dict(params)
        if "model_name" in self.inputs:
            args["model_name"] = model
        if run_label is not None and "run_label" in self.inputs:
            args["run_label"] = run_label
        return dict(sorted(args.items()))


@functools.lru_cache(maxsize=8)
def pipeline_inputs(pipeline: str = "retraining") -> PipelineInputs:
    """The inputs of a known pipeline (compiled once per process) or of a compiled YAML.

    Args:
        pipeline: A name from ``refit.schedule.kfp.PIPELINES`` or a compiled YAML's path.

    Raises:
        PipelineInputsError: An unknown pipeline, or a YAML without input definitions.
    """
    from refit.schedule.cron import ScheduleError
    from refit.schedule.kfp import compile_pipeline

    with tempfile.TemporaryDirectory(prefix="refit-inputs-") as tmp:
        try:
            package = compile_pipeline(pipeline, Path(tmp))
        except ScheduleError as exc:
            raise PipelineInputsError(str(exc)) from None
        return PipelineInputs.from_package(package, pipeline)
