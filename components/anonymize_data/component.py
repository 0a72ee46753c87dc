"""KFP component: drop, tokenize or generalise columns of a snapshot before training."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Output

from refit.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def anonymize_data(
    snapshot: Input[Dataset],
    store_uri: str,
    model_name: str,
    privacy: dict,
    anonymized: Output[Dataset],
    summary: Output[Markdown],
    time_column: str = "",
    run_label: str = "",
) -> NamedTuple("Outputs", sha256=str):
    """Anonymise a snapshot by a declarative privacy config, into a new content-addressed snapshot.

    Tokenization is keyed HMAC-SHA256 (same value, same token: joins still work). The key is
    read inside the task from the environment variable the config names (default
    REFIT_TOKEN_KEY) or from a mounted Secret file (key_file); it is never a parameter, so it
    never reaches the compiled YAML, the outputs or the audit log. Set it on the task with
    kfp-kubernetes (use_secret_as_env or use_secret_as_volume). Columns the model's curated
    schema tags "pii" must be handled here, or training refuses them.

    Args:
        snapshot: The window (Parquet).
        store_uri: Root of refit's store (snapshots, curated schema, audit log).
        model_name: Model whose curated schema and audit log are used.
        privacy: Privacy config (a dict) with the fields drop and tokenize (lists of
            columns), generalize (column to {"bucket": width}, {"bins": [edges]} or
            {"truncate": "day", "month" or "year"}), and key_env (default REFIT_TOKEN_KEY) or
            key_file: the name of the key's variable or file, never the key.
        time_column: Optional event-time column; its range is recorded as the new snapshot's
            window.
        run_label: Label of this run in the audit log.

    Returns:
        anonymized: The anonymised window as Parquet: the content-addressed snapshot in the
            store (its URI), with sha256, rows, columns and the columns dropped, tokenized and
            generalized in its metadata.
        summary: Which column got which action (never values, never the key).
        sha256: sha256 of the anonymised snapshot; names it in the store.
    """
    from collections import namedtuple

    from refit import steps
    from refit.io.snapshot import snapshot_uri
    from refit.io.uri import is_gcs

    out = steps.anonymize_data(
        snapshot.path,
        store_uri,
        model_name,
        anonymized.path,
        privacy,
        time_column=time_column,
        run_label=run_label,
    )
    # With a local store the artifact is the stored snapshot itself (same bytes): its URI is
    # its content address, so the pure tasks downstream are cached on the window's content, not
    # on this run. A gs:// URI would be read at /gcs/..., which only some runtimes mount: there
    # the artifact stays this task's own copy.
    if not is_gcs(store_uri):
        anonymized.uri = snapshot_uri(store_uri, out.sha256)
    anonymized.metadata.update(out.record())
    with open(summary.path, "w", encoding="utf-8") as fh:
        fh.write(out.markdown)
    return namedtuple("Outputs", ["sha256"])(out.sha256)
