"""The resolver: what a run compares against, read from the registry once per run.

Only this step reads the champion from the registry; the pure steps (validate, drift,
train, evaluate) get what it found as input artifacts, so KFP caches them and its lineage shows
what each run compared against. The stateful steps record what the pure ones found
(:func:`record_results`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from refit.audit.events import AuditEvent
from refit.drift.accumulate import profile_table
from refit.drift.profile_io import load_profile, save_profile
from refit.errors import SchemaError
from refit.io import uri as uri_lib
from refit.io.snapshot import load_snapshot
from refit.registry import open_registry
from refit.validation.schema import infer_schema, schema_to_text
from refit.validation.statistics import compute_statistics

#: Audit events the pure steps' summaries are recorded under, in pipeline order.
RECORDED_EVENTS = (
    AuditEvent.VALIDATION,
    AuditEvent.DRIFT,
    AuditEvent.TRAINING,
    AuditEvent.EVALUATION,
)


@dataclass
class ChampionOutput:
    """What ``resolve_champion`` found.

    Attributes:
        has_champion: Whether the model has a champion (False on the first run).
        version: The champion's version (0 when there is none).
        model_uri: The champion's model folder in the registry (None when there is none).
        model_sha256: sha256 of its model file, checked here.
        snapshot_sha256: Content hash of its training data.
        reference_uri: Its training data (the content-addressed snapshot's Parquet file).
        profile_uri: Drift profile of its training data, stored beside the snapshot.
        schema_uri: Schema of its training data (text proto), inferred as validation infers
            it from a reference, stored beside the profile.
    """

    has_champion: bool
    version: int = 0
    model_uri: str | None = None
    model_sha256: str | None = None
    snapshot_sha256: str | None = None
    reference_uri: str | None = None
    profile_uri: str | None = None
    schema_uri: str | None = None


def resolve_champion(store_uri: str, model_name: str) -> ChampionOutput:
    """Find the champion, its training data, their drift profile and schema in refit's store.

    The champion's model file is verified against its registered sha256. The profile is
    computed once per training snapshot and stored at ``{store}/profiles/{sha256}.json``; a
    missing or outdated one (another format version) is computed again. The schema (the one
    validation would infer from this reference) is stored once beside it
    (``{sha256}.schema.pbtxt``).

    Args:
        store_uri: Root of refit's store.
        model_name: Registered model name.

    Returns:
        Where the champion, its reference data and profile are (all None before the first
        promotion).

    Raises:
        IntegrityError: The champion's model file or snapshot does not match its sha256.
    """
    registry = open_registry(store_uri, model_name)
    champion = registry.champion()
    if champion is None:
        return ChampionOutput(has_champion=False)
    registry.verify(champion.version)
    table, snapshot = load_snapshot(store_uri, champion.snapshot_sha256)
    profile_uri = uri_lib.join(store_uri, "profiles", f"{champion.snapshot_sha256}.json")
    current = False
    if uri_lib.exists(profile_uri):
        try:
            load_profile(profile_uri)
            current = True
        except SchemaError:
            pass  # written by another refit version: profile the snapshot again
    if not current:
        profile = profile_table(table, source=f"snapshot {champion.snapshot_sha256}")
        save_profile(profile, profile_uri)
    schema_uri = uri_lib.join(store_uri, "profiles", f"{champion.snapshot_sha256}.schema.pbtxt")
    if not uri_lib.exists(schema_uri):
        schema = infer_schema(compute_statistics(table, name="reference"))
        uri_lib.write_bytes(schema_uri, schema_to_text(schema).encode("utf-8"))
    return ChampionOutput(
        has_champion=True,
        version=champion.version,
        model_uri=champion.model_uri,
        model_sha256=champion.sha256,
        snapshot_sha256=champion.snapshot_sha256,
        reference_uri=snapshot.uri,
        profile_uri=profile_uri,
        schema_uri=schema_uri,
    )


def record_results(
    store_uri: str, model_name: str, results: dict[str, dict[str, Any] | None], run_label: str = ""
) -> list[str]:
    """Append the pure steps' summaries to the model's audit log, in pipeline order.

    Args:
        store_uri: Root of refit's store.
        model_name: Model whose audit log is appended to.
        results: Event (one of :data:`RECORDED_EVENTS`) -> the summary a pure step wrote
            (its ``audit``); None or absent events are skipped.
        run_label: Label of this pipeline run.

    Returns:
        The events recorded.

    Raises:
        SchemaError: An unknown event.
    """
    unknown = sorted(set(results) - set(RECORDED_EVENTS))
    if unknown:
        raise SchemaError(f"cannot record {unknown}: events are {list(RECORDED_EVENTS)}")
    audit = open_registry(store_uri, model_name).audit
    recorded: list[str] = []
    for event in RECORDED_EVENTS:
        payload = results.get(event)
        if payload is not None:
            audit.append(event, {"run_label": run_label, **payload})
            recorded.append(event)
    return recorded
