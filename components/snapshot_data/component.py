"""KFP component: read a window of data and store it as a content-addressed snapshot."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Output

from refit.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def snapshot_data(
    data_uri: str,
    store_uri: str,
    model_name: str,
    snapshot: Output[Dataset],
    time_column: str = "",
    run_label: str = "",
) -> NamedTuple("Outputs", [("sha256", str), ("rows", int)]):
    """Snapshot the window at ``data_uri`` (CSV or Parquet, local or gs://) into the store.

    Caching must stay off for this task: it reads "the latest data", which a KFP cache keyed on
    parameters would serve stale. Downstream tasks key on the snapshot's sha256.
    """
    from collections import namedtuple

    from refit import steps

    out = steps.snapshot_data(
        data_uri,
        store_uri,
        model_name,
        snapshot.path,
        time_column=time_column,
        run_label=run_label,
    )
    snapshot.metadata.update({"sha256": out.sha256, "rows": out.rows, "columns": out.columns})
    return namedtuple("Outputs", ["sha256", "rows"])(out.sha256, out.rows)
