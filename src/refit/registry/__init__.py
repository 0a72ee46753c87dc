"""Model registry: immutable versions, compare-and-swap aliases, lineage and policy state.

Local folders and ``gs://`` stores share one API; ``ModelRegistry(uri, name)`` picks the backend.
"""

from refit.registry.local import ANY, STATUSES, ModelRegistry, ModelVersion

__all__ = ["ANY", "STATUSES", "ModelRegistry", "ModelVersion"]
