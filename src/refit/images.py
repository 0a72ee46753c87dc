"""Container images used by components. The tag is always the package version.

No other module names an image: components, pipelines and manifests take theirs from here.

* :func:`component_image` (``components/images/refit/Dockerfile``): every component; Python
  3.11 on Debian 12, refit and its locked dependencies; no TensorFlow.
* :func:`tfdv_image` (``components/images/refit-tfdv/Dockerfile``): the same refit install on a
  Debian 13 base (glibc 2.41; TFDV 1.17+ wheels need glibc 2.39) plus TFDV 1.21 in its own
  virtual environment, which ``REFIT_TFDV_PYTHON`` names inside the image. A component task run
  in this image can use ``engine="tfdv"``; :func:`engine_image` picks the image for an engine.

The image repository is one setting, resolved when a pipeline or component is compiled, not
when refit is imported: ``refit compile --image-repository REPO`` (or ``REFIT_IMAGE_REPOSITORY``
set any time before compiling; :func:`repository` resolves it) rewrites every task's image in
the compiled YAML (``refit.pipelines.compile.retarget_images``). The committed YAML always names
:data:`DEFAULT_REPOSITORY`.
"""

import os
import re

from refit import __version__

#: Registry and repository of refit's published images (``.github/workflows/release.yml``).
DEFAULT_REPOSITORY = "ghcr.io/refit-mlops/refit"
#: Suffix of the TFDV image's repository (``REPOSITORY-tfdv:VERSION``).
TFDV_SUFFIX = "-tfdv"
#: Environment variable that sets the repository when no explicit one is given.
REPOSITORY_ENV = "REFIT_IMAGE_REPOSITORY"

# An image name without tag or digest: [host[:port]/]path, lower-case path components.
_REPOSITORY = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)


def check_repository(repository: str) -> str:
    """Return ``repository`` if it is an image repository without tag or digest.

    Args:
        repository: e.g. ``registry.example.com/ml/refit`` or ``localhost:5000/refit``.

    Raises:
        ValueError: It is empty, has a tag (``:1.0``) or digest (``@sha256:...``), or is not
            a valid image name (upper case in the path, spaces...).
    """
    if not isinstance(repository, str) or not repository.strip():
        raise ValueError("image repository is empty; give e.g. registry.example.com/ml/refit")
    repository = repository.strip()
    if "@" in repository or ":" in repository.rsplit("/", 1)[-1]:
        raise ValueError(
            f"image repository {repository!r} must not carry a tag or digest: refit tags its "
            f"images with the package version ({__version__})"
        )
    if len(repository) > 200 or not _REPOSITORY.match(repository):
        raise ValueError(
            f"image repository {repository!r} is not a valid image name "
            "([host[:port]/]path, lower-case path components)"
        )
    return repository


def repository(explicit: str | None = None) -> str:
    """Resolve the image repository: ``explicit``, else ``$REFIT_IMAGE_REPOSITORY``, else default.

    Raises:
        ValueError: The resolved repository is not valid (`check_repository`).
    """
    return check_repository(explicit or os.environ.get(REPOSITORY_ENV) or DEFAULT_REPOSITORY)


def component_image(repo: str | None = None) -> str:
    """Return the image every refit component runs in (``REPOSITORY:VERSION``).

    Args:
        repo: The image repository; None: :func:`repository` (the environment, else the
            default).

    Returns:
        The image reference, tagged with the installed package version.
    """
    return f"{repository(repo)}:{__version__}"


def tfdv_image(repo: str | None = None) -> str:
    """Return the image with refit and the TFDV engine (``REPOSITORY-tfdv:VERSION``).

    Args:
        repo: The image repository of the refit image; None: :func:`repository`.

    Returns:
        The image reference, tagged with the installed package version.
    """
    return f"{repository(repo)}{TFDV_SUFFIX}:{__version__}"


def engine_image(engine: str, repo: str | None = None) -> str:
    """Return the image a validation or drift task needs for ``engine``.

    ``"tfdv"`` needs :func:`tfdv_image`; ``"native"`` and ``"auto"`` (which runs the native
    engine) run in :func:`component_image`. A pipeline applies it at compile time with
    ``task.set_container_image(engine_image("tfdv"))``.

    Args:
        engine: ``"native"``, ``"tfdv"`` or ``"auto"``.
        repo: The image repository; None: :func:`repository`.

    Returns:
        The image reference.

    Raises:
        ValueError: Unknown engine name.
    """
    if engine not in ("native", "tfdv", "auto"):
        raise ValueError(f"unknown engine {engine!r}; expected 'native', 'tfdv' or 'auto'")
    return tfdv_image(repo) if engine == "tfdv" else component_image(repo)
