"""Typed errors. Every message names the input and what is wrong with it."""


class RefitError(Exception):
    """Base class of every error refit raises on purpose."""


class DataError(RefitError, ValueError):
    """Input data cannot be read or is unusable (unreadable file, empty window, missing column)."""


class SchemaError(RefitError, ValueError):
    """A schema, profile or configuration cannot be honoured."""


class DriftError(RefitError, ValueError):
    """A drift test was misapplied (unknown test, wrong feature type)."""


class TrainingError(RefitError, ValueError):
    """Training cannot start or finish (bad target, unknown trainer or parameter)."""


class IntegrityError(RefitError):
    """An artifact's content does not match its recorded sha256, or is in an unsafe format."""


class RegistryError(RefitError):
    """A registry operation failed (unknown version, unknown alias)."""


class ConflictError(RegistryError):
    """A compare-and-swap on a registry alias lost to a concurrent writer."""


class PolicyError(RefitError, ValueError):
    """A retrain policy or promotion gate configuration is invalid."""


class DeployError(RefitError):
    """A rollout cannot start or continue (bad plan, unservable model, target or metrics down)."""


class PrivacyError(RefitError, ValueError):
    """A privacy rule cannot be honoured (missing or short key, unhandled PII column)."""
