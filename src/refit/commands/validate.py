"""``refit validate``: statistics, schema and anomalies of a dataset (see refit.cli)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from refit.commands import fail
from refit.defaults import RANGE_TOLERANCE

if TYPE_CHECKING:
    import pyarrow as pa


def _without(table: pa.Table, exclude: list[str] | None, what: str) -> pa.Table:
    """``table`` less the ``--exclude`` columns (each must be one of its columns)."""
    from refit.errors import DataError

    missing = [c for c in exclude or () if c not in table.column_names]
    if missing:
        raise DataError(
            f"--exclude names column(s) not in {what}: {', '.join(missing)}; columns: "
            f"{', '.join(table.column_names)}"
        )
    return table.drop_columns(list(exclude)) if exclude else table


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""

    @app.command("validate")
    def validate_command(
        data: Annotated[str, typer.Argument(help="Parquet or CSV file, folder or URI to check.")],
        output: Annotated[
            Path,
            typer.Option(
                "--output",
                "-o",
                help="Folder for statistics.pb, schema.pbtxt, anomalies.pbtxt, metadata.json.",
            ),
        ],
        schema: Annotated[
            str | None,
            typer.Option(help="TFDV schema (schema.pbtxt); default: inferred."),
        ] = None,
        reference: Annotated[
            str | None,
            typer.Option(
                help="Reference data (Parquet/CSV): schema inference, drift comparators, "
                "native range checks."
            ),
        ] = None,
        engine: Annotated[
            str, typer.Option(help="native, tfdv (needs REFIT_TFDV_PYTHON) or auto (native).")
        ] = "native",
        beam_pipeline_arg: Annotated[
            list[str] | None,
            typer.Option(
                "--beam-pipeline-arg",
                help="TFDV engine: a Beam flag (repeatable, e.g. --beam-pipeline-arg=--runner="
                "DirectRunner); statistics then run as a Beam pipeline. A remote runner also "
                "needs --beam-pipeline-arg=--temp_location=gs://BUCKET/PATH: the data is "
                "staged there for its workers.",
            ),
        ] = None,
        facets: Annotated[
            bool, typer.Option(help="TFDV engine: also write DIR/facets.html (Facets overview).")
        ] = False,
        required_column: Annotated[
            list[str] | None,
            typer.Option("--required-column", help="Native engine: column that must be present."),
        ] = None,
        range_tolerance: Annotated[
            float,
            typer.Option(
                help="Native engine: a value may lie outside the reference's min-max range by this "
                "share of its width (the pipeline's validation uses the same default).",
                min=0.0,
            ),
        ] = RANGE_TOLERANCE,
        exclude: Annotated[
            list[str] | None,
            typer.Option("--exclude", help="Column left out of the check (repeatable)."),
        ] = None,
    ) -> None:
        """Validate DATA; write DIR/statistics.pb, DIR/schema.pbtxt, DIR/anomalies.pbtxt.

        The files are TFDV's formats whichever engine ran (tfdv.load_stats_binary,
        load_schema_text and load_anomalies_text read them); DIR/metadata.json records the
        engine that ran and schema fields it ignored. Exit status 0 when the check ran
        (anomalies or not), 2 on bad input.
        """
        from google.protobuf import text_format

        from refit.errors import RefitError
        from refit.io import read_table
        from refit.validation.anomalies import ValidationOptions
        from refit.validation.engines import anomaly_kinds, read_schema, run_validation

        try:
            current = _without(read_table(data), exclude, "DATA")
            ref = _without(read_table(reference), exclude, "--reference") if reference else None
            given_schema = read_schema(schema) if schema else None
            result = run_validation(
                current,
                reference=ref,
                schema=given_schema,
                engine=engine,
                options=ValidationOptions(
                    required_columns=tuple(required_column or ()), range_tolerance=range_tolerance
                ),
                beam_pipeline_args=beam_pipeline_arg,
                facets=facets,
            )
            output.mkdir(parents=True, exist_ok=True)
            (output / "statistics.pb").write_bytes(result.statistics.SerializeToString())
            (output / "schema.pbtxt").write_text(
                text_format.MessageToString(result.schema), encoding="utf-8"
            )
            (output / "anomalies.pbtxt").write_text(
                text_format.MessageToString(result.anomalies), encoding="utf-8"
            )
            if result.reference_statistics is not None:
                (output / "reference_statistics.pb").write_bytes(
                    result.reference_statistics.SerializeToString()
                )
            if result.facets_html is not None:
                (output / "facets.html").write_text(result.facets_html, encoding="utf-8")
            (output / "metadata.json").write_text(
                json.dumps(result.metadata, indent=1, sort_keys=True), encoding="utf-8"
            )
        except RefitError as exc:
            raise fail(str(exc)) from exc
        except OSError as exc:
            raise fail(f"cannot write to {output}: {exc}") from exc
        if facets and result.facets_html is None:
            typer.echo("note: --facets needs --engine tfdv; no facets.html written", err=True)
        for ignored in result.ignored_schema_fields:
            typer.echo(f"ignored schema field ({result.engine} engine): {ignored}", err=True)
        kinds = sorted(anomaly_kinds(result.anomalies))
        typer.echo(
            f"{result.engine} engine: {len(kinds)} anomalies"
            + (": " + ", ".join(f"{f} {k}" for f, k in kinds) if kinds else "")
            + f" -> {output}"
        )
