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
) -> NamedTuple("Outputs", sha256=str):
    """Snapshot the window at ``data_uri`` into the store, content-addressed by sha256.

    Caching must stay off for this task: it reads "the latest data", which a KFP cache keyed on
    parameters would serve stale. Downstream tasks key on the snapshot's sha256.

    Args:
        data_uri: CSV or Parquet path or URI (local, file://, gs://) of the window.
        store_uri: Root of refit's store (snapshots, registry, audit log).
        model_name: Model whose audit log records the snapshot.
        time_column: Optional event-time column; its range is recorded as the snapshot's window.
        run_label: Label of this run in the audit log.

    Returns:
        snapshot: The window as Parquet, with sha256, rows, columns and pii (its columns the
            model's curated schema tags "pii", which train_model refuses unless
            anonymize_data handled them) in its metadata.
        sha256: sha256 of the canonical Parquet bytes; names the snapshot in the store.
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
    snapshot.metadata.update(out.record())
    return namedtuple("Outputs", ["sha256"])(out.sha256)
