"""Model registry: immutable versions, compare-and-swap aliases, lineage and policy state."""

from refit.registry.local import ANY, STATUSES, ModelRegistry, ModelVersion

__all__ = ["ANY", "STATUSES", "ModelRegistry", "ModelVersion"]
