"""``refit compile``: the retraining pipeline compiled to KFP IR YAML for a cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def compile_pipeline(
    output: Annotated[Path, typer.Option(help="Where to write the compiled pipeline YAML.")] = Path(
        "retraining.yaml"
    ),
    node_profile: Annotated[
        str,
        typer.Option(
            "--node-profile",
            help="Node profile of the training task: cpu, gpu, gpu-spot or one defined "
            "in --profiles-file.",
        ),
    ] = "cpu",
    profiles_file: Annotated[
        Path | None,
        typer.Option("--profiles-file", help="YAML or JSON file of more node profiles."),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            help="Statistics engine of validation and drift: native, auto, or tfdv (those "
            "tasks then run in the refit-tfdv image)."
        ),
    ] = "native",
    image_repository: Annotated[
        str | None,
        typer.Option(
            "--image-repository",
            envvar="REFIT_IMAGE_REPOSITORY",
            help="Repository of refit's images for every task (REPO:VERSION and "
            "REPO-tfdv:VERSION), e.g. registry.example.com/ml/refit; default: refit's "
            "published images.",
        ),
    ] = None,
    store_pvc: Annotated[
        str | None,
        typer.Option(
            "--store-pvc",
            help="PersistentVolumeClaim holding the store, mounted into every task "
            "(clusters without an object store); store_uri then defaults to --store-mount.",
        ),
    ] = None,
    store_mount: Annotated[
        str,
        typer.Option("--store-mount", help="Where --store-pvc is mounted in each task."),
    ] = "/mnt/refit",
    gcs_key_secret: Annotated[
        str | None,
        typer.Option(
            "--gcs-key-secret",
            help="Secret with a Google service account key (key.json) every task uses for "
            "gs:// (GOOGLE_APPLICATION_CREDENTIALS); not needed with Workload Identity.",
        ),
    ] = None,
    audit_key_secret: Annotated[
        str | None,
        typer.Option(
            "--audit-key-secret",
            help="Secret with the audit log's HMAC key (audit.key), mounted into every task "
            "as REFIT_AUDIT_KEY_FILE: records are MACed with a key the store's writers lack.",
        ),
    ] = None,
    audit_anchor: Annotated[
        str | None,
        typer.Option(
            "--audit-anchor",
            help="Folder or gs:// prefix outside the store where every task anchors the "
            "audit chain's head (REFIT_AUDIT_ANCHOR).",
        ),
    ] = None,
) -> None:
    """Compile the retraining pipeline to KFP IR YAML for a cluster, on a node profile."""
    from refit.errors import SchemaError
    from refit.images import repository
    from refit.pipelines.compile import StoreVolume, compile_to
    from refit.pipelines.profiles import get_profile
    from refit.pipelines.retraining import build_retraining_pipeline

    try:
        profile = get_profile(node_profile, profiles_file)
    except SchemaError as exc:
        raise typer.BadParameter(str(exc), param_hint="--node-profile") from exc
    except UnicodeDecodeError as exc:
        raise typer.BadParameter(
            f"{profiles_file} is not UTF-8 text: {exc}", param_hint="--profiles-file"
        ) from exc
    try:
        pipeline = build_retraining_pipeline(profile, engine=engine)
    except SchemaError as exc:
        raise typer.BadParameter(str(exc), param_hint="--engine") from exc
    try:
        repo = repository(image_repository)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--image-repository") from exc
    store = None
    if store_pvc is not None:
        try:
            store = StoreVolume(store_pvc, store_mount)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--store-pvc/--store-mount") from exc
    try:
        compile_to(
            pipeline,
            output,
            image_repository=repo,
            store=store,
            gcs_key_secret=gcs_key_secret,
            audit_key_secret=audit_key_secret,
            audit_anchor=audit_anchor,
        )
    except ValueError as exc:
        hint = "--audit-key-secret" if "audit key" in str(exc) else "--gcs-key-secret"
        raise typer.BadParameter(str(exc), param_hint=hint) from exc
    where = f", store on PVC {store.pvc!r} at {store.mount}" if store else ""
    if gcs_key_secret:
        where += f", GCS key from Secret {gcs_key_secret!r}"
    if audit_key_secret:
        where += f", audit key from Secret {audit_key_secret!r}"
    typer.echo(
        f"wrote {output} (training on node profile {profile.name!r}, engine {engine!r}, "
        f"images {repo}{where})"
    )


def register(app: typer.Typer) -> None:
    """Add ``refit compile`` to ``app``."""
    app.command("compile")(compile_pipeline)
