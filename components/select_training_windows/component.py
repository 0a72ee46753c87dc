"""KFP component: the earlier windows a challenger trains on, read from refit's store."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from refit.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def select_training_windows(
    window: Input[Dataset],
    store_uri: str,
    model_name: str,
    earlier: Output[Dataset],
    training_window: dict = {},  # noqa: B006 (a KFP parameter default, never mutated)
):
    """Pick the earlier windows of a training-window policy and hand their rows to training.

    The policy reads back through the model's stored snapshots (those its runs trained from,
    in the audit log's order, before this window's first run): each is loaded by its content
    address (sha256 checked), checked for PII its anonymization left unhandled, and given the
    window's columns and types. It reads the store, so its caching must stay off; train_model
    stays pure, with these rows as its input.

    Args:
        window: The current window (Parquet); its metadata's pii marks apply to the earlier
            windows too.
        store_uri: Root of refit's store.
        model_name: The model whose windows are read.
        training_window: The policy (a dict): windows (the last K, the current one included),
            since (ISO time: windows whose data ends before it are left out),
            recency_half_life (windows after which a row's sample weight halves; 0: equal
            weights); {} (default): the current window only, and no rows here.

    Returns:
        earlier: The earlier windows' rows (Parquet, oldest first); metadata policy and
            windows (JSON: each window's snapshot sha256, rows, age, time and run) and rows.
    """
    from refit.steps.train import select_training_windows as select

    out = select(
        window.path,
        earlier.path,
        store_uri=store_uri,
        model_name=model_name,
        training_window=training_window,
        data_metadata=window.metadata,
    )
    earlier.metadata.update(out.record())
