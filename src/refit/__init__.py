"""refit: keep production models from drifting, on Kubeflow Pipelines or on one laptop."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("refit")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
