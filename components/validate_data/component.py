"""KFP component: schema and anomaly validation of a window (TFDV formats)."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Output

from refit.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def validate_data(
    snapshot: Input[Dataset],
    store_uri: str,
    model_name: str,
    target: str,
    report: Output[HTML],
    metrics: Output[Metrics],
    anomalies: Output[Artifact],
    run_label: str = "",
) -> NamedTuple("Outputs", [("passed", bool), ("n_anomalies", int)]):
    """Validate the snapshot against the champion's training data; ``passed`` gates training."""
    from collections import namedtuple

    from refit import steps

    out = steps.validate_data(
        snapshot.path,
        store_uri,
        model_name,
        target,
        anomalies_path=anomalies.path,
        run_label=run_label,
    )
    with open(report.path, "w", encoding="utf-8") as f:
        f.write(out.html)
    for name, value in out.metrics.items():
        metrics.log_metric(name, value)
    anomalies.metadata["kinds"] = sorted({a["kind"] for a in out.anomalies})
    return namedtuple("Outputs", ["passed", "n_anomalies"])(out.passed, len(out.anomalies))
