"""Container images used by components. The tag is always the package version.

No other module names an image: components, pipelines and manifests take theirs from here.
"""

import os

from refit import __version__

#: Registry and repository of refit's images; override with ``REFIT_IMAGE_REPOSITORY``.
DEFAULT_REPOSITORY = "ghcr.io/refit-mlops/refit"


def component_image() -> str:
    """Return the image every refit component runs in (``REPOSITORY:VERSION``).

    Returns:
        The image reference, tagged with the installed package version.
    """
    repository = os.environ.get("REFIT_IMAGE_REPOSITORY", DEFAULT_REPOSITORY)
    return f"{repository}:{__version__}"
