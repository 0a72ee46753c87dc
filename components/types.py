"""refit's artifact types, declared once: what each component reads and writes.

Each class names what a component reads or writes, in the Python signature and in the
component's documentation. KFP 2.17 accepts only ``system.*`` and ``google.*`` schema titles, so
in the compiled IR they are all ``system.Artifact``: each component also stamps ``refit_type``
(the class name) into the artifact's metadata, which the KFP UI and lineage show. Models and
datasets are KFP's own ``Model`` and ``Dataset``.
"""

from kfp import dsl


class DriftReport(dsl.Artifact):
    """Per-feature drift of a window against a reference (JSON, ``DriftResult.to_dict()``)."""


class Profile(dsl.Artifact):
    """A mergeable drift profile of a table (JSON, ``refit.drift.profile``)."""


class Schema(dsl.Artifact):
    """A data schema (tensorflow-metadata ``Schema`` text proto, as TFDV writes it)."""


class Anomalies(dsl.Artifact):
    """Validation anomalies (tensorflow-metadata ``Anomalies`` text proto)."""


class Evaluation(dsl.Artifact):
    """Challenger vs baseline on one holdout: metrics, intervals, tests, gate checks (JSON)."""


class Blessing(dsl.Artifact):
    """The promotion gate's verdict on a model (JSON ``{"blessed": ..., "reasons": [...]}``)."""
