"""KFP component: find the champion once per run and hand it on as artifacts (a resolver)."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Model, Output

from refit.components.types import Profile, Schema
from refit.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def resolve_champion(
    store_uri: str,
    model_name: str,
    champion: Output[Model],
    reference: Output[Dataset],
    reference_profile: Output[Profile],
    schema: Output[Schema],
) -> NamedTuple("Outputs", has_champion=bool, champion_version=int):
    """Read the registry once: the champion, its training data, their drift profile and schema.

    Like TFX's Resolver, the artifacts it emits are the registry's own: their URIs point at the
    champion's version folder, its content-addressed training snapshot and the stored profile,
    so the same champion gives the same artifacts in every run (KFP's cache keys on them) and
    the run's lineage names what it compared against. Caching stays off for this task: the
    champion changes between runs.

    Before the first promotion there is no champion: the four artifacts are then empty
    placeholders with ``absent: true`` in their metadata, which refit's components read as
    "not given" (the first run).

    Args:
        store_uri: Root of refit's store (registry, snapshots, profiles).
        model_name: Registered model name.

    Returns:
        champion: The champion's model folder (sha256 checked), metadata ``version``,
            ``sha256``, ``snapshot_sha256``.
        reference: The champion's training data (Parquet), metadata ``sha256``.
        reference_profile: Drift profile of the training data (JSON).
        schema: Schema of the training data (TFDV Schema text proto), as validate_data would
            infer it from the reference; validate_data takes it as its schema input.
        has_champion: Whether there is a champion (False on the first run).
        champion_version: The champion's version (0 when there is none).
    """
    import shutil
    from collections import namedtuple

    from refit import steps
    from refit.io.storage import open_storage
    from refit.io.uri import is_gcs, read_bytes

    out = steps.resolve_champion(store_uri, model_name)
    artifacts = (champion, reference, reference_profile, schema)
    if not out.has_champion:
        for artifact in artifacts:
            artifact.metadata["absent"] = True
            with open(artifact.path, "w", encoding="utf-8") as f:
                f.write("")
    elif is_gcs(store_uri):
        # A gs:// URI would be read at /gcs/..., which only some runtimes mount: copy the
        # champion's files, its training data and profile into this task's own outputs.
        parent, version_folder = out.model_uri.rstrip("/").rsplit("/", 1)
        with open_storage(parent).local_dir(version_folder) as folder:
            shutil.copytree(folder, champion.path, dirs_exist_ok=True)
        with open(reference.path, "wb") as f:
            f.write(read_bytes(out.reference_uri))
        with open(reference_profile.path, "wb") as f:
            f.write(read_bytes(out.profile_uri))
        with open(schema.path, "wb") as f:
            f.write(read_bytes(out.schema_uri))
    else:
        champion.uri = out.model_uri
        reference.uri = out.reference_uri
        reference_profile.uri = out.profile_uri
        schema.uri = out.schema_uri
    if out.has_champion:
        champion.metadata.update(
            {
                "version": out.version,
                "sha256": out.model_sha256,
                "snapshot_sha256": out.snapshot_sha256,
            }
        )
        reference.metadata["sha256"] = out.snapshot_sha256
        reference_profile.metadata["snapshot_sha256"] = out.snapshot_sha256
        schema.metadata["snapshot_sha256"] = out.snapshot_sha256
    outputs = namedtuple("Outputs", ["has_champion", "champion_version"])
    return outputs(out.has_champion, out.version)
