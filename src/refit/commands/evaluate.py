"""``refit evaluate``: challenger vs champion on a data set, through a gate.

Writes ``evaluation.json`` (metrics, intervals, paired test p-values, ``blessed``, ``reasons``).
Exit status 0 when blessed, 1 when not (bad input included: the gate closes and says why); 2
when the gate file cannot be read or is not a gate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from refit.commands import fail


def run_evaluation(
    challenger: Path,
    champion: Path | None,
    data: str,
    target: str,
    gate: dict[str, Any],
) -> dict[str, Any]:
    """Evaluate model folders on a data set and return the ``evaluation.json`` content.

    Bad input (unreadable data or model, sha256 mismatch, different feature sets, unseen labels,
    a target the models were not trained for) gives ``blessed: false`` with the error as reason.
    """
    from refit.errors import RefitError
    from refit.evaluation import GateConfig, GateResult, compare_models
    from refit.io.tables import read_table
    from refit.training.artifacts import load_model

    config = GateConfig.from_dict(gate)
    try:
        challenger_model = load_model(str(challenger))
        champion_model = None if champion is None else load_model(str(champion))
        for label, model in (("challenger", challenger_model), ("champion", champion_model)):
            if model is not None and model.spec.target != target:
                raise RefitError(
                    f"--label-column {target!r}: the {label} was trained to predict "
                    f"{model.spec.target!r}"
                )
        comparison = compare_models(challenger_model, champion_model, read_table(data), config)
    except RefitError as exc:
        result = GateResult(False, [f"cannot evaluate: {exc}", "not blessed: gate closed"], False)
        return {"blessed": False, "reasons": result.reasons, "error": str(exc), "gate": gate}
    result = comparison.judge(config)
    p_values = {
        name: test.get("p_value") for name, test in comparison.tests.items() if "p_value" in test
    }
    notes = {name: test["error"] for name, test in comparison.tests.items() if "error" in test}
    return {
        "blessed": result.blessed,
        "reasons": result.reasons,
        "first_run": result.first_run,
        "checks": result.checks,
        "metrics": comparison.metrics("challenger"),
        "champion_metrics": None if champion is None else comparison.metrics("champion"),
        "n_rows": comparison.n_rows,
        "intervals": comparison.intervals,
        "paired": comparison.paired,
        "tests": comparison.tests,
        "p_values": p_values,
        "test_notes": notes,
        "slices": comparison.slices,
        "gate": config.to_dict(),
    }


def evaluate_cmd(
    challenger: Annotated[Path, typer.Option(help="Challenger model folder.")],
    data: Annotated[str, typer.Option(help="Holdout data (CSV/Parquet, local or gs://).")],
    target: Annotated[str, typer.Option("--label-column", help="Label column.")],
    output: Annotated[Path, typer.Option(help="Folder for evaluation.json.")],
    champion: Annotated[
        Path | None, typer.Option(help="Champion model folder (none: first run).")
    ] = None,
    gate: Annotated[
        Path | None, typer.Option(help="Gate JSON (default: the pipeline's default gate).")
    ] = None,
) -> None:
    """Compare a challenger with a champion on the same rows and apply the promotion gate."""
    from refit.errors import PolicyError

    if gate is None:
        from refit.pipelines.retraining import DEFAULT_GATE

        gate_dict = dict(DEFAULT_GATE)
    else:
        try:
            gate_dict = json.loads(gate.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise fail(f"cannot read gate {gate}: {exc}") from exc
    try:
        report = run_evaluation(challenger, champion, data, target, gate_dict)
    except PolicyError as exc:
        raise fail(f"gate {gate}: {exc}") from exc
    output.mkdir(parents=True, exist_ok=True)
    path = output / "evaluation.json"
    path.write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
    for reason in report["reasons"]:
        typer.echo(f"  {reason}")
    typer.echo(f"{'blessed' if report['blessed'] else 'not blessed'}; wrote {path}")
    raise typer.Exit(0 if report["blessed"] else 1)


def register(app: typer.Typer) -> None:
    """Add ``refit evaluate`` to ``app``."""
    app.command("evaluate")(evaluate_cmd)
