"""Run kfp.local tasks in their images through a Docker-compatible engine: Docker or podman.

kfp 2.17.3's ``kfp.local.DockerRunner`` starts each task's container with ``auto_remove=True``
and reads its exit code afterwards; when the container is already gone (podman answers 500, and
a fast container can be removed before ``wait()``) it returns 0, so a failing task can be reported
as SUCCESS. :func:`run_container` replaces its ``run_docker_container``: the container is
started without auto-remove, its logs are streamed, ``wait()`` returns the real exit code, and
only then is it removed. The task's command is split as KFP does on Kubernetes (the first word
is the entrypoint, the rest the arguments), so an image's own ``ENTRYPOINT`` never swallows it.
Every failure names the image and the step (connect, find the image, start, run).

:func:`docker_runner` builds the runner that :func:`refit.pipelines.local.init_local` uses:
extra folders mounted at the same path, secrets forwarded from this process's environment, and
the tasks' user chosen so they can write the mounted folders.
"""

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

#: Environment variables forwarded to every task when set here: secrets that KFP on Kubernetes
#: mounts from a Secret (``kubernetes.use_secret_as_env``), which kfp.local ignores.
SECRET_ENV: tuple[str, ...] = ("REFIT_TOKEN_KEY",)


class ContainerRunError(RuntimeError):
    """A task's container could not be run (engine, image or container failure)."""


def _client() -> Any:
    try:
        import docker
    except ImportError as exc:  # pragma: no cover - a test dependency; users install it
        raise ContainerRunError(
            "the docker runner needs the 'docker' Python package: pip install docker"
        ) from exc
    host = os.environ.get("DOCKER_HOST", "the default socket")
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        raise ContainerRunError(
            f"step 'connect': no Docker-compatible engine answers at {host} ({exc}); start "
            "Docker, or podman's API: `scripts/images.sh service /PATH/podman.sock` and "
            "DOCKER_HOST=unix:///PATH/podman.sock"
        ) from exc
    return client


def check_engine(images: Iterable[str]) -> None:
    """Check that the engine answers and holds every image, before any task starts.

    Args:
        images: Image references the run needs.

    Raises:
        ContainerRunError: No engine answers, or an image is absent (naming it and how to build
            it).
    """
    client = _client()  # first: it names a missing docker package
    import docker

    try:
        for image in images:
            try:
                client.images.get(image)
            except docker.errors.ImageNotFound:
                raise ContainerRunError(
                    f"step 'find image': image {image} is not in the container engine "
                    f"({os.environ.get('DOCKER_HOST', 'default socket')}); build it with "
                    "`make images` (podman: scripts/images.sh build)"
                ) from None
    finally:
        client.close()


def run_container(
    client: Any,
    image: str,
    command: list[str],
    volumes: dict[str, Any],
    **container_run_args: Any,
) -> int:
    """Run one task's container and return its real exit code (kfp.local's signature).

    Args:
        client: A ``docker.DockerClient``.
        image: The task's image.
        command: The task's full command (KFP's command followed by its arguments).
        volumes: Bind mounts (kfp.local mounts the pipeline root at its own path).
        **container_run_args: The runner's ``docker run`` arguments.

    Returns:
        The container's exit code.

    Raises:
        ContainerRunError: The image is absent and cannot be pulled, or the container cannot be
            created, started or waited for.
    """
    import docker

    if ":" not in image.rsplit("/", 1)[-1] and "@" not in image:
        image = f"{image}:latest"
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        try:
            print(f"Pulling image {image!r}")
            client.images.pull(image)
        except docker.errors.APIError as exc:
            raise ContainerRunError(
                f"step 'pull image': image {image} is not in the container engine and cannot "
                f"be pulled ({exc.explanation or exc}); build it with `make images`"
            ) from exc
    if not command:
        raise ContainerRunError(f"step 'start container': the task for {image} has no command")
    args = dict(container_run_args)
    args.pop("auto_remove", None)
    args.pop("remove", None)
    try:
        container = client.containers.run(
            image=image,
            entrypoint=[command[0]],
            command=command[1:],
            detach=True,
            volumes=volumes,
            **args,
        )
    except docker.errors.APIError as exc:
        raise ContainerRunError(
            f"step 'start container': image {image}: {exc.explanation or exc}"
        ) from exc
    try:
        for chunk in container.logs(stream=True, follow=True):
            print(chunk.decode(errors="replace"), end="")
        code = int(container.wait()["StatusCode"])
    except docker.errors.APIError as exc:
        raise ContainerRunError(
            f"step 'run container': image {image}, container {container.short_id}: "
            f"{exc.explanation or exc}"
        ) from exc
    finally:
        try:
            container.remove(force=True)
        except docker.errors.APIError:
            pass  # already gone: the exit code was read first
    if code != 0:
        print(f"Container of image {image} exited with code {code}")
    return code


def install() -> None:
    """Make kfp.local's DockerRunner run containers with :func:`run_container` (idempotent)."""
    from kfp.local import docker_task_handler

    docker_task_handler.run_docker_container = run_container


def _rootless(client: Any) -> bool:
    return any("rootless" in str(opt) for opt in client.info().get("SecurityOptions") or [])


def share_folder(path: Path) -> None:
    """Let the image's user (10001, group 0) write ``path``: group-writable, set-group-id.

    A folder owned by root (or, under a rootless engine, by the user the engine maps to root)
    has group 0 in the container, which the image's user belongs to.
    """
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(path.stat().st_mode | 0o2070)


def docker_runner(
    mounts: Sequence[Path] = (),
    secret_env: Sequence[str] = SECRET_ENV,
    env: dict[str, str] | None = None,
) -> Any:
    """Build a ``kfp.local.DockerRunner`` for refit's images (and :func:`install` the handler).

    Tasks write what they produce as a user that can write the mounted folders: the invoking
    user under a rootful engine (``--user UID:GID``, so the files are yours); the image's own
    non-root user (10001, group 0) when you are root or the engine is rootless, with the
    mounted folders group-writable (:func:`share_folder`).

    Args:
        mounts: Folders bound at the same path in every task (the store, the data), beside the
            pipeline root that kfp.local mounts itself.
        secret_env: Names of environment variables forwarded to every task when set here.
        env: Further environment variables for every task.

    Returns:
        The runner, for ``kfp.local.init(runner=...)``.

    Raises:
        ContainerRunError: No engine answers.
    """
    from docker.types import Mount
    from kfp import local

    install()
    client = _client()
    try:
        rootless = _rootless(client)
    finally:
        client.close()
    environment = {name: os.environ[name] for name in secret_env if name in os.environ}
    environment.update(env or {})
    args: dict[str, Any] = {
        "mounts": [Mount(str(p), str(p), type="bind") for p in mounts],
        "environment": environment,
    }
    if not rootless and os.getuid() != 0:
        args["user"] = f"{os.getuid()}:{os.getgid()}"
    return local.DockerRunner(**args)
