"""Model registry: immutable versions, compare-and-swap aliases, lineage and policy state.

``open_registry(store_uri, model_name)`` opens one model's registry; the store URI (a local folder
or ``gs://bucket/prefix``) picks the storage (`refit.io.storage`), and the one `ModelRegistry`
class holds the logic over it.
"""

from refit.registry.core import ModelRegistry, open_registry
from refit.registry.records import ANY, STATUSES, ModelVersion

__all__ = ["ANY", "STATUSES", "ModelRegistry", "ModelVersion", "open_registry"]
