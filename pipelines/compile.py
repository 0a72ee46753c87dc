"""Compile every component and pipeline to the YAML committed beside it, or for a cluster.

Run ``python -m refit.pipelines.compile`` after changing a component or pipeline; a test compiles
them again and fails when the committed YAML is stale. The committed YAML names refit's
published images (:data:`refit.images.DEFAULT_REPOSITORY`).

For your own registry, the image repository is chosen when compiling, never by editing YAML:
``python -m refit.pipelines.compile --image-repository REPO --output-dir DIR`` writes every
component's and pipeline's YAML under ``DIR`` with ``REPO``'s images, and ``refit compile
--image-repository REPO`` the retraining pipeline (:func:`retarget_images`). ``refit compile
--store-pvc NAME --store-mount PATH`` mounts a PersistentVolumeClaim holding the store into
every task (:func:`mount_store`), for clusters without an object store.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import json_format
from kfp.compiler import pipeline_spec_builder as builder
from kfp.kubernetes import kubernetes_executor_config_pb2 as k8s_pb
from kfp.pipeline_spec import pipeline_spec_pb2

from refit import __version__
from refit import components as components_pkg
from refit.components.examples import EXAMPLES, example_code
from refit.images import (
    DEFAULT_REPOSITORY,
    REPOSITORY_ENV,
    TFDV_SUFFIX,
    check_repository,
    component_image,
    repository,
    tfdv_image,
)
from refit.pipelines.fleet import fleet_pipeline
from refit.pipelines.retraining import retraining_pipeline
from refit.pipelines.sharded_drift import sharded_drift_pipeline

#: The source tree's components/ and pipelines/ folders (where the YAML is committed).
COMPONENTS_DIR = Path(components_pkg.__file__).resolve().parent
PIPELINES_DIR = Path(__file__).resolve().parent

PIPELINES = {
    "retraining": retraining_pipeline,
    "sharded_drift": sharded_drift_pipeline,
    "fleet": fleet_pipeline,
}

_KFP_VERSION = re.compile(r"(sdkVersion: kfp-)\S+")


def normalise(text: str) -> str:
    """Drop the kfp version string, the one part of compiled YAML that may differ harmlessly."""
    return _KFP_VERSION.sub(r"\1*", text)


def targets() -> dict[Path, object]:
    """Return each committed YAML path and the component or pipeline compiled into it."""
    out: dict[Path, object] = {}
    for name in components_pkg.__all__:
        out[COMPONENTS_DIR / name / "component.yaml"] = getattr(components_pkg, name)
    for name, func in PIPELINES.items():
        out[PIPELINES_DIR / f"{name}.yaml"] = func
    return out


_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True)
class StoreVolume:
    """A PersistentVolumeClaim holding refit's store, mounted into every task.

    Attributes:
        pvc: The claim's name, in the namespace the pipeline runs in (``ReadWriteMany``, so
            tasks on different nodes share it).
        mount: Where it is mounted in each task (an absolute path); the pipeline's
            ``store_uri`` then defaults to it.
    """

    pvc: str
    mount: str

    def __post_init__(self) -> None:
        if len(self.pvc) > 253 or not _DNS_SUBDOMAIN.match(self.pvc):
            raise ValueError(
                f"store PVC name {self.pvc!r} is not a valid Kubernetes name (lower-case "
                "letters, digits, '-' and '.', at most 253 characters)"
            )
        parts = self.mount.split("/")
        if not self.mount.startswith("/") or self.mount == "/" or ".." in parts:
            raise ValueError(
                f"store mount path {self.mount!r} must be an absolute path below / "
                "(e.g. /mnt/refit), without '..'"
            )


def _known_repositories() -> set[str]:
    # The repositories a compiled spec can name: the one baked into the components when refit
    # was imported (``$REFIT_IMAGE_REPOSITORY`` then), the one resolved now, and the default.
    baked = {
        getattr(components_pkg, name).component_spec.implementation.container.image
        for name in components_pkg.__all__
    }
    suffix = f":{__version__}"
    known = {i.removesuffix(suffix) for i in baked if i.endswith(suffix)} | {DEFAULT_REPOSITORY}
    try:
        known.add(repository())
    except ValueError:  # an invalid $REFIT_IMAGE_REPOSITORY names no image a spec can hold
        pass
    return known


def retarget_images(spec: pipeline_spec_pb2.PipelineSpec, repo: str) -> None:
    """Point every task of a compiled spec at refit's images in ``repo`` (in place).

    Each executor runs refit's image or its TFDV image, in whichever repository refit was
    imported or compiled with; both are rewritten to ``repo``'s (``REPO:VERSION``,
    ``REPO-tfdv:VERSION``). Outside the default repository each task also gets
    ``REFIT_IMAGE_REPOSITORY``, so an image it names at run time is in ``repo`` too.

    Args:
        spec: The compiled pipeline (or single component) spec.
        repo: The image repository (`refit.images.check_repository`).

    Raises:
        ValueError: An invalid repository, or a task with an image that is not refit's.
    """
    images = {}
    for known in _known_repositories():
        images[component_image(known)] = component_image(repo)
        images[f"{known}{TFDV_SUFFIX}:{__version__}"] = tfdv_image(repo)
    executors = spec.deployment_spec["executors"]
    for name in executors:
        if "container" not in executors[name].keys():
            continue  # an importer: it runs no image
        container = executors[name]["container"]
        image = container["image"]
        if image not in images:
            raise ValueError(f"task executor {name!r} runs {image!r}, which is not refit's image")
        container["image"] = images[image]
        if repo != DEFAULT_REPOSITORY:
            # A task that starts pods itself (a distributed training's TrainJob) resolves
            # refit's image at run time: the same repository as its own.
            container.get_or_create_list("env").append(
                {"name": REPOSITORY_ENV, "value": check_repository(repo)}
            )


#: Where `mount_gcs_key` mounts the key Secret, and the key's file name in it.
GCS_KEY_DIR = "/var/secrets/refit-gcs"
GCS_KEY_FILE = "key.json"
#: Where `mount_audit_key` mounts the audit HMAC key's Secret (key ``audit.key``).
AUDIT_KEY_DIR = "/var/secrets/refit-audit"
AUDIT_KEY_FILE = "audit.key"


def _each_executor(
    spec: pipeline_spec_pb2.PipelineSpec,
    platform: pipeline_spec_pb2.PlatformSpec,
    change: Callable[[k8s_pb.KubernetesExecutorConfig], None],
) -> None:
    # Apply ``change`` to every executor's Kubernetes settings, keeping what is there already
    # (secrets, node selectors, tolerations), as kfp-kubernetes' per-task functions do.
    k8s = platform.platforms["kubernetes"].deployment_spec.executors
    for name in spec.deployment_spec["executors"]:
        config = k8s_pb.KubernetesExecutorConfig()
        if name in k8s:
            json_format.ParseDict(json_format.MessageToDict(k8s[name]), config)
        change(config)
        k8s[name].Clear()
        k8s[name].update(json_format.MessageToDict(config))


def mount_store(
    spec: pipeline_spec_pb2.PipelineSpec,
    platform: pipeline_spec_pb2.PlatformSpec,
    store: StoreVolume,
) -> None:
    """Mount the store's PersistentVolumeClaim into every task of a compiled pipeline (in place).

    Writes what ``kfp.kubernetes.mount_pvc`` writes for one task, for every executor.

    Args:
        spec: The compiled pipeline spec (its executors).
        platform: Its platform spec (the Kubernetes settings per executor).
        store: The claim and mount path.
    """

    def change(config: k8s_pb.KubernetesExecutorConfig) -> None:
        # both name fields, as mount_pvc writes them (older KFP backends read ``constant``)
        mount = k8s_pb.PvcMount(mount_path=store.mount, constant=store.pvc)
        mount.pvc_name_parameter.runtime_value.constant.string_value = store.pvc
        config.pvc_mount.append(mount)

    _each_executor(spec, platform, change)


def mount_gcs_key(
    spec: pipeline_spec_pb2.PipelineSpec,
    platform: pipeline_spec_pb2.PlatformSpec,
    secret: str,
) -> None:
    """Give every task a Google service account key from a Secret (in place).

    The Secret (key ``key.json``) is mounted at :data:`GCS_KEY_DIR`, as
    ``kfp.kubernetes.use_secret_as_volume`` does, and ``GOOGLE_APPLICATION_CREDENTIALS`` names
    the key file, so google-cloud-storage in each task uses it. Workload Identity needs none
    of this.

    Args:
        spec: The compiled pipeline spec.
        platform: Its platform spec.
        secret: The Secret's name, in the namespace the pipeline runs in.

    Raises:
        ValueError: The name is not a valid Kubernetes name.
    """
    if len(secret) > 253 or not _DNS_SUBDOMAIN.match(secret):
        raise ValueError(f"key Secret name {secret!r} is not a valid Kubernetes name")

    def change(config: k8s_pb.KubernetesExecutorConfig) -> None:
        volume = k8s_pb.SecretAsVolume(mount_path=GCS_KEY_DIR, secret_name=secret, optional=False)
        volume.secret_name_parameter.runtime_value.constant.string_value = secret
        config.secret_as_volume.append(volume)

    _each_executor(spec, platform, change)
    executors = spec.deployment_spec["executors"]
    for name in executors:
        executors[name]["container"].get_or_create_list("env").append(
            {"name": "GOOGLE_APPLICATION_CREDENTIALS", "value": f"{GCS_KEY_DIR}/{GCS_KEY_FILE}"}
        )


def mount_audit_key(
    spec: pipeline_spec_pb2.PipelineSpec,
    platform: pipeline_spec_pb2.PlatformSpec,
    secret: str | None,
    anchor: str | None = None,
) -> None:
    """Give every task the audit log's HMAC key from a Secret, and its anchor (in place).

    The Secret (key ``audit.key``) is mounted at :data:`AUDIT_KEY_DIR` and
    ``REFIT_AUDIT_KEY_FILE`` names the file (`refit.audit.keys`); ``anchor`` becomes
    ``REFIT_AUDIT_ANCHOR``.

    Raises:
        ValueError: The Secret name is not a valid Kubernetes name.
    """
    from refit.audit.keys import AUDIT_ANCHOR_ENV, AUDIT_KEY_FILE_ENV

    env = []
    if secret is not None:
        if len(secret) > 253 or not _DNS_SUBDOMAIN.match(secret):
            raise ValueError(f"audit key Secret name {secret!r} is not a valid Kubernetes name")

        def change(config: k8s_pb.KubernetesExecutorConfig) -> None:
            volume = k8s_pb.SecretAsVolume(
                mount_path=AUDIT_KEY_DIR, secret_name=secret, optional=False
            )
            volume.secret_name_parameter.runtime_value.constant.string_value = secret
            config.secret_as_volume.append(volume)

        _each_executor(spec, platform, change)
        env.append({"name": AUDIT_KEY_FILE_ENV, "value": f"{AUDIT_KEY_DIR}/{AUDIT_KEY_FILE}"})
    if anchor:
        env.append({"name": AUDIT_ANCHOR_ENV, "value": anchor})
    executors = spec.deployment_spec["executors"]
    for name in executors:
        for item in env:
            executors[name]["container"].get_or_create_list("env").append(item)


def compile_to(
    func: object,
    path: Path,
    *,
    image_repository: str = DEFAULT_REPOSITORY,
    store: StoreVolume | None = None,
    gcs_key_secret: str | None = None,
    audit_key_secret: str | None = None,
    audit_anchor: str | None = None,
) -> str:
    """Compile one component or pipeline to ``path`` and return the YAML text.

    Args:
        func: A component or pipeline.
        path: Where the YAML goes.
        image_repository: Repository of the images every task runs (the default: refit's
            published images, as committed).
        store: A PersistentVolumeClaim to mount into every task, the default ``store_uri``.
        gcs_key_secret: A Secret holding a Google service account key (``key.json``) that
            every task authenticates to GCS with (`mount_gcs_key`).
        audit_key_secret: A Secret holding the audit log's HMAC key (``audit.key``) every task
            MACs its audit records with (`mount_audit_key`).
        audit_anchor: Where every task anchors the audit chain's head (``REFIT_AUDIT_ANCHOR``).

    Raises:
        ValueError: An invalid repository, or ``store`` for something without a ``store_uri``.
    """
    params = None
    if store is not None:
        params = {"store_uri": store.mount}
    spec = builder.modify_pipeline_spec_with_override(
        pipeline_spec=func.pipeline_spec,  # type: ignore[attr-defined]
        pipeline_name=None,
        pipeline_parameters=params,
    )
    platform = pipeline_spec_pb2.PlatformSpec()
    platform.CopyFrom(func.platform_spec)  # type: ignore[attr-defined]
    retarget_images(spec, repository(image_repository))
    if store is not None:
        mount_store(spec, platform, store)
    if gcs_key_secret is not None:
        mount_gcs_key(spec, platform, gcs_key_secret)
    if audit_key_secret is not None or audit_anchor:
        mount_audit_key(spec, platform, audit_key_secret, audit_anchor)
    builder.write_pipeline_spec_to_file(
        pipeline_spec=spec,
        pipeline_description=func.description,  # type: ignore[attr-defined]
        platform_spec=platform,
        package_path=str(path),
    )
    text = _stable_header(path.read_text(encoding="utf-8"))
    path.write_text(text, encoding="utf-8")
    return text


_HEADER_DEFAULT = re.compile(r"^(#    \w+: (?:dict|list) \[Default: )(.*)(\])$", re.MULTILINE)


def _sorted(value: object) -> object:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def _stable_header(text: str) -> str:
    """Sort the keys of dict defaults in KFP's header comment.

    KFP renders a ``dict`` parameter's default there from a protobuf ``Struct``, whose key
    order changes from one process to the next; the YAML body below is sorted already.
    """

    def canonical(match: re.Match[str]) -> str:
        try:
            value = ast.literal_eval(match.group(2))
        except (ValueError, SyntaxError):
            return match.group(0)
        return f"{match.group(1)}{_sorted(value)!r}{match.group(3)}"

    return _HEADER_DEFAULT.sub(canonical, text)


def component_readme(name: str, component: object) -> str:
    """Render a component's README: what it does, how to load it, its inputs and outputs."""
    spec = component.component_spec  # type: ignore[attr-defined]
    lines = [
        f"# {name}",
        "",
        (spec.description or "").strip(),
        "",
        "```python",
        f"from refit.components import {name}",
        "# or, in any KFP pipeline:",
        "from kfp import components",
        f'{name} = components.load_component_from_file("components/{name}/component.yaml")',
        "```",
        "",
        "## Inputs",
        "",
        "| name | type | default | description |",
        "|---|---|---|---|",
    ]
    for key, inp in spec.inputs.items():
        default = "required" if not inp.optional else f"`{inp.default!r}`"
        desc = (getattr(inp, "description", None) or "").replace("\n", " ")
        lines.append(f"| `{key}` | {_type_name(inp.type)} | {default} | {desc} |")
    lines += ["", "## Outputs", "", "| name | type | description |", "|---|---|---|"]
    for key, out in spec.outputs.items():
        desc = (getattr(out, "description", None) or "").replace("\n", " ")
        lines.append(f"| `{key}` | {_type_name(out.type)} | {desc} |")
    if name in EXAMPLES:
        lines += ["", "## Example", "", f"Prerequisites: {EXAMPLES[name].prerequisites}", ""]
        lines += ["```python", example_code(name).rstrip(), "```"]
    lines += [
        "",
        "Generated by `python -m refit.pipelines.compile` from `component.py`;"
        " do not edit by hand.",
        "",
    ]
    return "\n".join(lines)


def _type_name(kfp_type: str) -> str:
    return kfp_type.removeprefix("system.").split("@")[0]


def catalogue() -> str:
    """Render the component catalogue: every component's inputs, outputs and image."""
    lines = [
        "# refit's components",
        "",
        "Every component, its inputs (required ones in bold), outputs and image. Each folder has",
        "the compiled `component.yaml` and a README with the descriptions.",
        "",
        "| component | inputs | outputs | image |",
        "|---|---|---|---|",
    ]
    for name in components_pkg.__all__:
        spec = getattr(components_pkg, name).component_spec
        inputs = ", ".join(
            f"`{key}`" if inp.optional else f"**`{key}`**" for key, inp in spec.inputs.items()
        )
        outputs = ", ".join(
            f"`{key}` ({_type_name(out.type)})" for key, out in (spec.outputs or {}).items()
        )
        image = f"`{component_image(DEFAULT_REPOSITORY)}`"
        if name in ("validate_data", "detect_drift"):
            image += f"; `{tfdv_image(DEFAULT_REPOSITORY)}` with `refit compile --engine tfdv`"
        lines.append(f"| [`{name}`]({name}/README.md) | {inputs} | {outputs} | {image} |")
    lines += [
        "",
        "Images in another registry: `python -m refit.pipelines.compile --image-repository REPO"
        " --output-dir DIR` writes every component's YAML for `REPO`.",
        "",
        "Generated by `python -m refit.pipelines.compile`; do not edit by hand.",
        "",
    ]
    return "\n".join(lines)


#: The repository's README (present in a source checkout) and the markers around its table of
#: the retraining pipeline's parameters.
README = PIPELINES_DIR.parent / "README.md"
PARAMS_START = "<!-- pipeline-parameters: generated by python -m refit.pipelines.compile -->"
PARAMS_END = "<!-- /pipeline-parameters -->"
DEFAULTS_START = "<!-- refit-defaults: generated by python -m refit.pipelines.compile -->"
DEFAULTS_END = "<!-- /refit-defaults -->"


def parameters_table() -> str:
    """Render every parameter of the retraining pipeline with its type, default and meaning."""
    spec = retraining_pipeline.component_spec
    lines = ["| parameter | type | default | meaning |", "|---|---|---|---|"]
    for key, inp in spec.inputs.items():
        if not inp.optional:
            default = "**required**"
        elif inp.default == "":
            default = '`""`'
        else:
            default = f"`{inp.default}`"
        desc = " ".join((getattr(inp, "description", None) or "").split())
        lines.append(f"| `{key}` | {_type_name(inp.type)} | {default} | {_md_cell(desc)} |")
    return "\n".join(lines) + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def readme_with_parameters(text: str) -> str:
    """Return the README text with its pipeline-parameters and defaults tables regenerated.

    Raises:
        ValueError: The README lacks the markers.
    """
    from refit.defaults import defaults_markdown

    for begin, finish, body in (
        (PARAMS_START, PARAMS_END, parameters_table()),
        (DEFAULTS_START, DEFAULTS_END, defaults_markdown() + "\n"),
    ):
        start, end = text.find(begin), text.find(finish)
        if start < 0 or end < start:
            raise ValueError(f"README has no {begin!r} ... {finish!r} block")
        text = text[: start + len(begin)] + "\n" + body + text[end:]
    return text


def readmes() -> dict[Path, str]:
    """Return each component README path (the catalogue's, the repository README's) and text."""
    out = {
        COMPONENTS_DIR / name / "README.md": component_readme(name, getattr(components_pkg, name))
        for name in components_pkg.__all__
    }
    out[COMPONENTS_DIR / "README.md"] = catalogue()
    if README.is_file():
        out[README] = readme_with_parameters(README.read_text(encoding="utf-8"))
    return out


def main(argv: list[str] | None = None) -> int:
    """Recompile every committed YAML and component README in place, or for another registry.

    With ``--image-repository REPO --output-dir DIR``, writes ``DIR/components/NAME/component.yaml``
    and ``DIR/pipelines/NAME.yaml`` with ``REPO``'s images and leaves the committed files alone.
    """
    parser = argparse.ArgumentParser(
        prog="python -m refit.pipelines.compile",
        description="Recompile the committed YAML, or write it for another image repository.",
    )
    parser.add_argument("--image-repository", help="Image repository, e.g. REGISTRY/ml/refit.")
    parser.add_argument("--output-dir", type=Path, help="Where the YAML for it goes.")
    args = parser.parse_args(argv)
    if (args.image_repository is None) != (args.output_dir is None):
        parser.error("--image-repository and --output-dir go together")
    if args.output_dir is not None:
        try:
            repo = repository(args.image_repository)
        except ValueError as exc:
            parser.error(str(exc))
        for path, func in targets().items():
            if path.is_relative_to(COMPONENTS_DIR):
                out = args.output_dir / "components" / path.relative_to(COMPONENTS_DIR)
            else:
                out = args.output_dir / "pipelines" / path.name
            out.parent.mkdir(parents=True, exist_ok=True)
            compile_to(func, out, image_repository=repo)
            print(out)
        return 0
    for path, func in targets().items():
        compile_to(func, path)
        print(path)
    for path, text in readmes().items():
        path.write_text(text, encoding="utf-8")
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
