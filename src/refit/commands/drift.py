"""``refit drift``: a drift check of a window against reference data or a stored profile."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from refit.commands import fail
from refit.defaults import DRIFT_SHARE_THRESHOLD


def _pairs(items: list[str] | None, option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise typer.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint=option)
        out[key] = value
    return out


def _thresholds(items: list[str] | None) -> dict[str, float]:
    """The ``--threshold COLUMN=VALUE`` / ``TEST=VALUE`` pairs, each value a number."""
    thresholds: dict[str, float] = {}
    for key, value in _pairs(items, "--threshold").items():
        try:
            thresholds[key] = float(value)
        except ValueError:
            raise typer.BadParameter(
                f"threshold for {key!r} must be a number, got {value!r}",
                param_hint="--threshold",
            ) from None
    return thresholds


def _columns(ref: Any, cur: Any, exclude: list[str] | None) -> list[str] | None:
    """The columns to compare: all (None), or both sides' columns less ``--exclude``."""
    from refit.errors import DataError

    if not exclude:
        return None
    known = list(dict.fromkeys([*ref.columns, *cur.columns]))
    if unknown := [c for c in exclude if c not in known]:
        raise DataError(
            f"--exclude names column(s) in neither side: {', '.join(unknown)}; "
            f"columns: {', '.join(known)}"
        )
    return [c for c in known if c not in exclude]


def _write(output: Path, result: Any, title: str, schema: Any) -> None:
    """Write drift.json and report.html (and anomalies.pbtxt with a TFDV schema) to ``output``."""
    from refit.drift.report import render_drift_html

    output.mkdir(parents=True, exist_ok=True)
    (output / "drift.json").write_text(
        json.dumps(result.to_dict(), indent=1, sort_keys=True, allow_nan=False),
        encoding="utf-8",
    )
    (output / "report.html").write_text(render_drift_html(result, title), "utf-8")
    if schema is not None:
        from refit.validation import comparators as tfdv

        (output / "anomalies.pbtxt").write_text(
            tfdv.anomalies_text(result, schema), encoding="utf-8"
        )


def drift_command(
    reference: Annotated[
        str,
        typer.Option(help="Reference data (Parquet/CSV path or URI) or a profile (.json)."),
    ],
    current: Annotated[str, typer.Option(help="Current window (Parquet/CSV path or URI).")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for drift.json and report.html.")
    ],
    test: Annotated[
        list[str] | None,
        typer.Option("--test", help="COLUMN=TEST, overriding the automatic choice."),
    ] = None,
    threshold: Annotated[
        list[str] | None,
        typer.Option("--threshold", help="COLUMN=VALUE or TEST=VALUE."),
    ] = None,
    drift_share_threshold: Annotated[
        float,
        typer.Option(
            help="Dataset drift when this share of features drifted (default: the default "
            "retrain policy's, so the verdict is the pipeline's).",
            min=0.0,
            max=1.0,
        ),
    ] = DRIFT_SHARE_THRESHOLD,
    correction: Annotated[
        str, typer.Option(help="Multiple-testing correction: bh, bonferroni or none.")
    ] = "bh",
    tfdv_schema: Annotated[
        str | None,
        typer.Option(
            help="TFDV schema (text proto): drift_comparator thresholds per feature; "
            "also writes DIR/anomalies.pbtxt in TFDV's Anomalies format."
        ),
    ] = None,
    title: Annotated[str, typer.Option(help="Report title.")] = "Drift report",
    exclude: Annotated[
        list[str] | None,
        typer.Option("--exclude", help="Column that is not a feature (an id); repeatable."),
    ] = None,
) -> None:
    """Check CURRENT for drift against REFERENCE; write DIR/drift.json and DIR/report.html.

    Exit status 0 when the check ran (drifted or not), 2 on bad input.
    """
    from refit.drift import detect
    from refit.drift.profile_io import is_profile_file, load_profile, profile_uri
    from refit.drift.report import summary_line
    from refit.errors import RefitError

    thresholds = _thresholds(threshold)
    tests = _pairs(test, "--test")
    try:
        # a profile is known by its content; a .json that is not one is refused as such
        as_profile = is_profile_file(reference) or reference.lower().endswith(".json")
        ref = load_profile(reference) if as_profile else profile_uri(reference)
        cur = profile_uri(current)
        columns = _columns(ref, cur, exclude)
        schema = None
        if tfdv_schema:
            from refit.validation import comparators as tfdv

            schema = tfdv.read_schema(tfdv_schema)
            schema_tests, schema_thresholds = tfdv.comparators(schema)
            tests = {**schema_tests, **tests}
            thresholds = {**schema_thresholds, **thresholds}
        result = detect.compare_profiles(
            ref,
            cur,
            columns=columns,
            tests=tests,
            thresholds=thresholds,
            drift_share_threshold=drift_share_threshold,
            correction=correction,
        )
        _write(output, result, title, schema)
    except RefitError as exc:
        raise fail(str(exc)) from exc
    except OSError as exc:
        raise fail(f"cannot write to {output}: {exc}") from exc
    typer.echo(summary_line(result) + (": dataset drift" if result.drifted else ""))
    for name, reason in sorted(result.not_comparable.items()):
        typer.echo(f"not comparable: {name}: {reason}", err=True)
    for name, checks in sorted(result.check_alerts.items()):
        typer.echo(f"check alert: {name}: {', '.join(checks)}", err=True)
    typer.echo(f"wrote {output / 'drift.json'} and {output / 'report.html'}")


def register(app: typer.Typer) -> None:
    """Add ``refit drift`` to ``app``."""
    app.command("drift")(drift_command)
