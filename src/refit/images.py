"""Container images used by components. The tag is always the package version.

No other module names an image: components, pipelines and manifests take theirs from here.

* :func:`component_image` (``components/images/refit/Dockerfile``): every component; Python
  3.11 on Debian 12, refit and its locked dependencies; no TensorFlow.
* :func:`tfdv_image` (``components/images/refit-tfdv/Dockerfile``): the same refit install on a
  Debian 13 base (glibc 2.41; TFDV 1.17+ wheels need glibc 2.39) plus TFDV 1.21 in its own
  virtual environment, which ``REFIT_TFDV_PYTHON`` names inside the image. A component task run
  in this image can use ``engine="tfdv"``; :func:`engine_image` picks the image for an engine.
"""

import os

from refit import __version__

#: Registry and repository of refit's images; override with ``REFIT_IMAGE_REPOSITORY``.
DEFAULT_REPOSITORY = "ghcr.io/refit-mlops/refit"
#: Suffix of the TFDV image's repository (``REPOSITORY-tfdv:VERSION``).
TFDV_SUFFIX = "-tfdv"


def _repository() -> str:
    return os.environ.get("REFIT_IMAGE_REPOSITORY", DEFAULT_REPOSITORY)


def component_image() -> str:
    """Return the image every refit component runs in (``REPOSITORY:VERSION``).

    Returns:
        The image reference, tagged with the installed package version.
    """
    return f"{_repository()}:{__version__}"


def tfdv_image() -> str:
    """Return the image with refit and the TFDV engine (``REPOSITORY-tfdv:VERSION``).

    Returns:
        The image reference, tagged with the installed package version.
    """
    return f"{_repository()}{TFDV_SUFFIX}:{__version__}"


def engine_image(engine: str) -> str:
    """Return the image a validation or drift task needs for ``engine``.

    ``"tfdv"`` needs :func:`tfdv_image`; ``"native"`` and ``"auto"`` (which runs the native
    engine) run in :func:`component_image`. A pipeline applies it at compile time with
    ``task.set_container_image(engine_image("tfdv"))``.

    Args:
        engine: ``"native"``, ``"tfdv"`` or ``"auto"``.

    Returns:
        The image reference.

    Raises:
        ValueError: Unknown engine name.
    """
    if engine not in ("native", "tfdv", "auto"):
        raise ValueError(f"unknown engine {engine!r}; expected 'native', 'tfdv' or 'auto'")
    return tfdv_image() if engine == "tfdv" else component_image()
