"""``refit rollout``: roll a registered version out as a canary, from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def _json_object(text: str, option: str) -> dict:
    """Parse an option's JSON object, or raise DeployError naming the option."""
    from refit.errors import DeployError

    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise DeployError(f"{option} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise DeployError(f"{option} must be a JSON object, got {text!r}")
    return value


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""

    @app.command("rollout")
    def rollout(
        version: Annotated[int, typer.Argument(help="Registered version to roll out.")],
        store: Annotated[str, typer.Option(help="refit's store (local folder or gs:// URI).")],
        model: Annotated[str, typer.Option(help="Model name in the store.")],
        plan: Annotated[
            Path | None,
            typer.Option(help="Rollout plan (YAML or JSON); default: the built-in plan."),
        ] = None,
        prometheus_url: Annotated[
            str, typer.Option(help="Prometheus to read the checks from (overrides the plan's).")
        ] = "",
        target: Annotated[str, typer.Option("--deploy-target", help="local or kserve.")] = "local",
        options: Annotated[
            str,
            typer.Option(
                help='Target options as JSON, e.g. \'{"server_url": "http://127.0.0.1:8080"}\'.'
            ),
        ] = "{}",
        show_plan: Annotated[
            bool, typer.Option("--show-plan", help="Print the plan as JSON and stop.")
        ] = False,
    ) -> None:
        """Move traffic to VERSION step by step, check it, then promote it or roll it back.

        Unlike the pipeline, it does not require the champion to be the one VERSION was
        evaluated against: rolling a version out by hand is that decision. Exit status: 0
        promoted, 1 rolled back, 2 refused before any traffic moved.
        """
        from dataclasses import replace

        from refit import steps
        from refit.deploy.plan import DEFAULT_PLAN, RolloutPlan
        from refit.errors import RefitError

        try:
            the_plan = DEFAULT_PLAN if plan is None else RolloutPlan.load(plan)
            if prometheus_url:
                the_plan = replace(the_plan, prometheus_url=prometheus_url)
            if show_plan:
                typer.echo(json.dumps(the_plan.to_dict(), indent=2))
                return
            result = steps.canary_rollout(
                store,
                model,
                version,
                the_plan,
                target=target,
                options=_json_object(options, "--options"),
                reason="rolled out with `refit rollout`",
                run_label=f"rollout-v{version}",
                check_parent=False,
            )
        except RefitError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        if result is None:
            typer.echo(f"version {version} awaits approval: approve it first", err=True)
            raise typer.Exit(2)
        typer.echo(result.to_markdown())
        raise typer.Exit(0 if result.outcome == "promoted" else 1)
