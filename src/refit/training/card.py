"""Model cards: what was trained on what, how, where, how well, how long and at what cost.

The card is a JSON-ready dictionary stored in ``model.json`` (key ``card``) and rendered as
Markdown for KFP's UI (``Output[Markdown]``). Cost is wall time times the node profile's price
per hour, so the cost of each retraining iteration is visible.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from refit.training.features import encode_target
from refit.training.trainers import TrainedModel

__all__ = ["build_model_card", "render_model_card", "validation_metrics"]


def validation_metrics(model: TrainedModel, table: pa.Table) -> dict[str, float]:
    """Score a model on held-out rows.

    Classification: ``accuracy``, ``log_loss`` and ``roc_auc`` (one-vs-rest for several
    classes; left out when the rows hold a single class). Regression: ``rmse``, ``mae``, ``r2``.

    Args:
        model: The trained model.
        table: Held-out rows with the target column.

    Returns:
        Metric name to value.

    Raises:
        TrainingError: If the target or a feature column is missing or bad.
    """
    from sklearn import metrics

    y = encode_target(table, model.spec)
    if len(y) == 0:
        return {}
    if model.spec.is_regression:
        pred = model.predict(table)
        return {
            "rmse": float(np.sqrt(metrics.mean_squared_error(y, pred))),
            "mae": float(metrics.mean_absolute_error(y, pred)),
            "r2": float(metrics.r2_score(y, pred)) if len(y) > 1 else float("nan"),
        }
    proba = model.predict_proba(table)
    proba = proba / proba.sum(axis=1, keepdims=True)  # float32 models sum to 1 +- 1e-7
    labels = list(range(model.spec.n_classes))
    out = {
        "accuracy": float(np.mean(np.argmax(proba, axis=1) == y)),
        "log_loss": float(metrics.log_loss(y, proba, labels=labels)),
    }
    if len(np.unique(y)) == model.spec.n_classes:
        if model.spec.n_classes == 2:
            out["roc_auc"] = float(metrics.roc_auc_score(y, proba[:, 1]))
        else:
            out["roc_auc"] = float(metrics.roc_auc_score(y, proba, multi_class="ovr"))
    return out


def build_model_card(
    model: TrainedModel,
    table: pa.Table,
    *,
    data_sha256: str,
    wall_time_s: float,
    price_per_hour: float = 0.0,
    node_profile: str = "",
    metrics: dict[str, float] | None = None,
    metrics_source: str = "",
) -> dict[str, Any]:
    """Assemble a model card.

    Args:
        model: The trained model.
        table: The training table (for the feature types).
        data_sha256: Content hash of the training data snapshot.
        wall_time_s: Wall time of the training task in seconds.
        price_per_hour: Price of the node profile per hour (any currency unit).
        node_profile: Name of the node profile the training ran on.
        metrics: Metrics on held-out rows (see :func:`validation_metrics`).
        metrics_source: Where ``metrics`` came from (e.g. "holdout, 250 rows").

    Returns:
        The card, JSON-ready.
    """
    spec = model.spec
    types = {
        name: str(table.schema.field(name).type)
        for name in spec.feature_columns
        if name in table.column_names
    }
    features = [
        {"name": name, "kind": "numeric", "type": types.get(name, "")} for name in spec.numeric
    ] + [
        {
            "name": name,
            "kind": "categorical",
            "type": types.get(name, ""),
            "categories": len(vocabulary),
            "other": name in spec.other,
        }
        for name, vocabulary in spec.categorical.items()
    ]
    validation: dict[str, Any] = {}
    if metrics:
        validation = {"source": metrics_source, "metrics": dict(metrics)}
    elif "validation" in model.info:
        early = model.info["validation"]
        validation = {
            "source": f"early-stopping split, {early.get('rows', 0)} rows",
            "metrics": {str(early.get("metric")): early.get("best_score")},
        }
    hours = wall_time_s / 3600.0
    return {
        "trainer": model.trainer,
        "task": spec.task,
        "target": spec.target,
        "classes": list(spec.classes),
        "data_sha256": data_sha256,
        "train_rows": int(model.info.get("train_rows", 0)),
        "features": features,
        "max_categories": model.info.get("max_categories"),
        "params": dict(model.params),
        "seed": model.seed,
        "device": model.device,
        "device_reason": model.info.get("device_reason", ""),
        "rounds": model.info.get("rounds"),
        "resumed_from_round": model.resumed_from_round,
        "validation": validation,
        "wall_time_s": round(float(wall_time_s), 3),
        "node_profile": node_profile,
        "price_per_hour": float(price_per_hour),
        "cost": round(hours * float(price_per_hour), 6),
    }


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_model_card(card: dict[str, Any]) -> str:
    """Render a model card as Markdown.

    Args:
        card: A card from :func:`build_model_card`.

    Returns:
        Markdown text.
    """
    lines = [
        f"# Model card: {card['trainer']} ({card['task']})",
        "",
        "| | |",
        "|---|---|",
        f"| target | `{_cell(card['target'])}` |",
        f"| data snapshot sha256 | `{card['data_sha256']}` |",
        f"| training rows | {card['train_rows']} |",
        f"| device | {card['device']} ({_cell(card.get('device_reason', ''))}) |",
    ]
    if card.get("rounds") is not None:
        lines.append(
            f"| boosting rounds | {card['rounds']} (resumed from round "
            f"{card['resumed_from_round']}) |"
        )
    dist = card.get("distributed") or {}
    if dist:
        lines += [
            f"| distributed | {_cell(dist.get('runtime', ''))} "
            f"({_cell(dist.get('executor', 'trainjob'))}) |",
            f"| nodes | {dist.get('nodes')} |",
            f"| workers | {dist.get('workers')} |",
        ]
        for worker in dist.get("workers_rows") or []:
            lines.append(
                f"| worker {worker['rank']} rows | {worker['rows_read']} read, "
                f"{worker['train_rows']} trained, {worker['holdout_rows']} held out |"
            )
    lines += [
        f"| wall time | {card['wall_time_s']:.2f} s |",
        f"| node profile | {_cell(card.get('node_profile') or '-')} |",
        f"| cost | {card['cost']:.6f} (wall time x {card['price_per_hour']:g} per hour) |",
        f"| seed | {card['seed']} |",
        f"| categorical cap (max_categories) | {card.get('max_categories') or '-'} |",
        "",
        "## Validation",
        "",
    ]
    validation = card.get("validation") or {}
    if validation.get("metrics"):
        lines += [f"On {_cell(validation.get('source', ''))}.", "", "| metric | value |"]
        lines.append("|---|---|")
        for name, value in validation["metrics"].items():
            shown = f"{value:.4f}" if isinstance(value, float) else _cell(value)
            lines.append(f"| {_cell(name)} | {shown} |")
    else:
        lines.append("No validation rows.")
    lines += _training_data_lines(card.get("training_data"))
    lines += ["", "## Features", "", "| name | kind | type |", "|---|---|---|"]
    for feature in card["features"]:
        kind = feature["kind"]
        if kind == "categorical" and feature.get("other"):
            kind = (
                f"categorical ({feature['categories']} most frequent values + (other), one-hot; "
                f"capped at max_categories={card.get('max_categories')})"
            )
        elif kind == "categorical":
            kind = f"categorical ({feature['categories']} values, one-hot)"
        lines.append(f"| `{_cell(feature['name'])}` | {kind} | {_cell(feature['type'])} |")
    lines += ["", "## Parameters", "", "| name | value |", "|---|---|"]
    for name, value in sorted(card["params"].items()):
        lines.append(f"| `{_cell(name)}` | `{_cell(value)}` |")
    lines.append("")
    return "\n".join(lines)


def _training_data_lines(data: dict[str, Any] | None) -> list[str]:
    """The card's "Training data" section: windows, holdout, warm start (none when absent)."""
    if not data:
        return []
    policy = data.get("policy") or {}
    holdout = data.get("holdout") or {}
    warm = data.get("warm_start") or {}
    split = holdout.get("split", "random")
    held = (
        f"out-of-time: the latest {holdout.get('rows')} rows by "
        f"`{_cell(holdout.get('time_column'))}` (from {_cell(holdout.get('from'))})"
        if split == "time"
        else f"random (seeded), {holdout.get('rows')} rows"
    )
    if not warm.get("requested"):
        started = "from scratch"
    elif warm.get("from_sha256"):
        started = (
            f"warm start from the champion `{_cell(warm['from_sha256'])[:12]}`: "
            f"{warm.get('base_rounds')} rounds + {warm.get('added_rounds')} new"
        )
    else:
        started = f"from scratch ({_cell(warm.get('note', ''))})"
    lines = [
        "",
        "## Training data",
        "",
        f"Policy: last {policy.get('windows', 1)} window(s)"
        + (f" since {_cell(policy['since'])}" if policy.get("since") else "")
        + (
            f", recency half-life {policy['recency_half_life']:g} window(s)"
            if policy.get("recency_half_life")
            else ", equal weights"
        )
        + f"; holdout {held}; {started}.",
        "",
        "| window snapshot | age (windows) | rows | weight | time | run |",
        "|---|---|---|---|---|---|",
    ]
    for w in data.get("windows") or []:
        lines.append(
            f"| `{_cell(w['sha256'])[:12]}` | {w['age']} | {w['rows']} | {w['weight']:.3g} | "
            f"{_cell(w.get('time') or '-')} | {_cell(w.get('run_label') or '-')} |"
        )
    return lines
