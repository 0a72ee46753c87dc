"""What ``detect_drift`` watches beside feature drift: label and prediction drift, mean shifts.

Scoring the champion on its holdout and on the window (prediction drift), fitting the
calibration ``decide_retrain``'s label-free estimate uses, and the report's section on them.
"""

from __future__ import annotations

import hashlib
import re
from html import escape
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from refit.drift import watch
from refit.drift.profile import Profile
from refit.errors import RefitError
from refit.io import uri as uri_lib
from refit.io.tables import read_table
from refit.monitoring import fit_calibration
from refit.training.artifacts import load_model, read_metadata
from refit.training.features import encode_target
from refit.training.trainers import TrainedModel


class LazyTable:
    """A table read from its file on first use and kept: one read however many steps use it.

    A read that fails fails again alike (the same error) for every later use, as separate
    reads would.
    """

    def __init__(self, path: str) -> None:
        """Remember the file; nothing is read yet.

        Args:
            path: Parquet/CSV file or URI (:func:`refit.io.tables.read_table`).
        """
        self.path = path
        self._table: pa.Table | None = None
        self._error: Exception | None = None

    def get(self) -> pa.Table:
        """The table, read on the first call.

        Raises:
            DataError: The file cannot be read (on every call).
        """
        if self._table is None:
            if self._error is not None:
                raise self._error
            try:
                self._table = read_table(self.path)
            except Exception as exc:  # kept, so the next use fails as a new read would
                self._error = exc
                raise
        return self._table


def rows_of(table: pa.Table | LazyTable) -> pa.Table:
    """The rows of a table, reading a :class:`LazyTable` on first use."""
    return table.get() if isinstance(table, LazyTable) else table


def champion_holdout(
    model_dir: str, reference: pa.Table, reference_path: str | None
) -> tuple[pa.Table, bool, str]:
    """The champion's holdout rows within its training data, when they can be told apart.

    ``train_model`` holds out a seeded permutation's first rows; its model card records the
    seed, the training rows, the holdout's size ("the seeded holdout, N rows") and the training
    file's sha256. When all agree with ``reference`` (same file, same row count), the same
    permutation gives back the holdout. Otherwise the whole reference is returned, and the words
    say its scores are in-sample.

    Returns:
        ``(rows, is_holdout, what the rows are in words)``.
    """
    card = read_metadata(model_dir).get("card") or {}
    source = str((card.get("validation") or {}).get("source", ""))
    match = re.fullmatch(r"the seeded holdout, (\d+) rows", source)
    if match and reference_path and isinstance(card.get("seed"), int):
        n_holdout = int(match.group(1))
        same_rows = reference.num_rows - int(card.get("train_rows") or 0) == n_holdout
        if same_rows and 0 < n_holdout < reference.num_rows:
            digest = hashlib.sha256(uri_lib.read_bytes(reference_path)).hexdigest()
            if digest == card.get("data_sha256"):
                order = np.random.default_rng(card["seed"]).permutation(reference.num_rows)
                rows = reference.take(np.sort(order[:n_holdout]))
                return rows, True, f"the champion's seeded holdout ({n_holdout} rows)"
    return (
        reference,
        False,
        f"the champion's training data ({reference.num_rows} rows; in-sample scores, more "
        "confident than on new data: its holdout could not be recovered)",
    )


def model_scores(model: TrainedModel, table: pa.Table) -> np.ndarray:
    """The scores prediction drift compares.

    A binary classifier's positive-class probability, a multiclass classifier's predicted class
    (as text), a regressor's predicted value.
    """
    if model.task == "regression":
        return np.asarray(model.predict(table), dtype=np.float64)
    proba = model.predict_proba(table)
    if proba.shape[1] == 2:
        return proba[:, 1]
    return np.asarray([str(c) for c in model.predict(table)], dtype=object)


def has_labels(table: pa.Table, target: str) -> bool:
    """Whether a window holds at least one label (the column exists and is not all null)."""
    return target in table.column_names and table.column(target).null_count < table.num_rows


def watch_window(
    reference_profile: Profile,
    current_profile: Profile,
    target: str,
    features: list[str],
    *,
    model_dir: str | None = None,
    reference: pa.Table | LazyTable | None = None,
    reference_path: str | None = None,
    window: pa.Table | LazyTable | None = None,
) -> dict[str, Any]:
    """Label drift, prediction drift and feature mean shifts of a window (see refit.drift.watch).

    Prediction drift needs the champion (``model_dir``), its training data (``reference``, read
    from ``reference_path``) and the window's rows (``window``); its reference scores are on the
    champion's holdout when :func:`champion_holdout` recovers it, and then a calibration of the
    champion's probabilities is fitted on the holdout's labels (for the label-free estimate
    ``decide_retrain`` makes on unlabelled windows).

    Returns:
        ``label_drift`` (None when the window is unlabelled), ``prediction_drift`` (None
        without a champion; ``{"error": ...}`` when it could not be scored) and ``mean_shift``.
    """
    out: dict[str, Any] = {
        "label_drift": watch.label_drift(reference_profile, current_profile, target),
        "prediction_drift": None,
        "mean_shift": watch.mean_shifts(reference_profile, current_profile, features),
    }
    if not (model_dir and reference is not None and window is not None):
        return out
    try:
        model = load_model(model_dir)
        rows, is_holdout, what = champion_holdout(model_dir, rows_of(reference), reference_path)
        drift = watch.prediction_drift(
            model_scores(model, rows), model_scores(model, rows_of(window)), reference=what
        )
        drift["calibration"] = None
        if model.task != "regression" and is_holdout and has_labels(rows, target):
            labelled = rows.filter(pc.is_valid(rows.column(target)))
            try:
                calibration = fit_calibration(
                    model.predict_proba(labelled), encode_target(labelled, model.spec)
                )
                drift["calibration"] = calibration.to_dict()
            except ValueError as exc:  # too few rows, one class: the estimate goes uncalibrated
                drift["calibration_note"] = f"no calibration: {exc}"
        out["prediction_drift"] = drift
    except (RefitError, ValueError) as exc:
        out["prediction_drift"] = {"error": f"no prediction drift: {exc}"}
    return out


def with_watch_section(html: str, payload: dict[str, Any]) -> str:
    """Add the label and prediction drift to a drift report, apart from the features."""
    rows = []
    label = payload.get("label_drift")
    if label is None:
        rows.append("<tr><th>label drift</th><td>not measured: the window has no labels</td></tr>")
    else:
        detail = ""
        if label.get("kind") == "classes":
            shares = ", ".join(
                f"{escape(c)}: {label['reference_shares'][c]:.3f} &rarr; "
                f"{label['current_shares'][c]:.3f}"
                for c in label["current_shares"]
            )
            p_value = label.get("p_value")
            p_text = "" if p_value is None else f"; chi-square p = {p_value:.3g}"
            detail = f" (class shares {shares}{p_text})"
        statistic = f"{label['test']} {label['statistic']:.4f}"
        rows.append(f"<tr><th>label drift</th><td>{statistic}{detail}</td></tr>")
    prediction = payload.get("prediction_drift")
    if prediction is None:
        rows.append("<tr><th>prediction drift</th><td>not measured: no champion</td></tr>")
    elif "error" in prediction:
        rows.append(f"<tr><th>prediction drift</th><td>{escape(prediction['error'])}</td></tr>")
    else:
        means = ""
        if "reference_mean" in prediction:
            means = (
                f"; mean score {prediction['reference_mean']:.4f} &rarr; "
                f"{prediction['current_mean']:.4f}"
            )
        rows.append(
            f"<tr><th>prediction drift</th><td>{prediction['test']} "
            f"{prediction['statistic']:.4f} against {escape(prediction['reference'])}{means}"
            "</td></tr>"
        )
    section = (
        "<section id='label-prediction-drift'><h2>Label and prediction drift</h2>"
        "<p>Apart from the features' drift share; the retrain policy judges them by its own "
        "thresholds.</p><table>" + "".join(rows) + "</table></section>"
    )
    if "</body>" in html:
        return html.replace("</body>", section + "</body>", 1)
    return html + section
