"""``refit`` commands for training and compiling the pipeline."""

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""

    @app.command("compile")
    def compile_pipeline(
        output: Annotated[
            Path, typer.Option(help="Where to write the compiled pipeline YAML.")
        ] = Path("retraining.yaml"),
    ) -> None:
        """Compile the retraining pipeline to KFP IR YAML for a cluster."""
        from kfp import compiler

        from refit.pipelines.retraining import retraining_pipeline

        compiler.Compiler().compile(retraining_pipeline, str(output))
        typer.echo(f"wrote {output}")
