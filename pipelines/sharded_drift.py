"""Sharded drift: a window larger than one pod's memory, profiled by a ParallelFor and merged.

``plan_shards`` splits the window (Parquet files or row groups) into shards; a ``ParallelFor``
(at most :data:`PARALLELISM` tasks at once) runs ``profile_shard`` on each; ``merge_profiles``
adds the shards' profiles up into the window's profile (``dsl.Collected``), and ``profile_drift``
runs refit's drift tests on it against the reference's profile. The result equals
``detect_drift`` on the whole window; no task reads more than its shard, and a shard task's
memory is flat in the window's size. Compiled YAML is committed beside this file
(``sharded_drift.yaml``); :func:`build_sharded_drift_pipeline` builds it with another
parallelism limit (a compile-time setting of KFP's ``ParallelFor``).
"""

from kfp import dsl

from refit.components import merge_profiles, plan_shards, profile_drift, profile_shard
from refit.components.types import Profile

#: Shard tasks running at once in the committed pipeline.
PARALLELISM = 10


def build_sharded_drift_pipeline(parallelism: int = PARALLELISM):
    """Build the sharded drift pipeline with a ParallelFor parallelism limit.

    Args:
        parallelism: Most shard tasks at once (1 or more; KFP fixes it at compile time).

    Returns:
        The pipeline function.

    Raises:
        ValueError: ``parallelism`` is not a positive integer.
    """
    if isinstance(parallelism, bool) or not isinstance(parallelism, int) or parallelism < 1:
        raise ValueError(f"parallelism must be a positive integer, got {parallelism!r}")

    @dsl.pipeline(
        name="refit-sharded-drift",
        description="Drift of a large window: profile its shards in parallel, merge, compare.",
    )
    def sharded_drift_pipeline(
        window_uri: str,
        reference_profile_uri: str,
        label_column: str,
        time_column: str = "",
        shards: int = 10,
    ) -> float:
        """Feature drift of a Parquet window against a reference profile, one task per shard.

        Args:
            window_uri: Parquet file or folder (local, ``file://``) or ``gs://`` object or
                prefix: the window.
            reference_profile_uri: The reference's refit drift profile (e.g. the champion's,
                stored with its snapshot).
            label_column: Label column, excluded from feature drift.
            time_column: Event-time column, excluded from feature drift.
            shards: Most shards (tasks) to split the window into (1 to 1000).

        Returns:
            The share of features that drifted.
        """
        plan = plan_shards(window_uri=window_uri, shards=shards)
        plan.set_caching_options(False)  # reads the data at window_uri as it is now
        with dsl.ParallelFor(plan.output, parallelism=parallelism) as shard:
            part = profile_shard(shard=shard)
            part.set_caching_options(False)  # a shard names files, not their content
        merged = merge_profiles(profiles=dsl.Collected(part.outputs["profile"]))
        reference = dsl.importer(
            artifact_uri=reference_profile_uri, artifact_class=Profile, reimport=False
        )
        drift = profile_drift(
            window_profile=merged.outputs["profile"],
            reference_profile=reference.output,
            label_column=label_column,
            time_column=time_column,
        )
        return drift.outputs["drift_share"]

    return sharded_drift_pipeline


sharded_drift_pipeline = build_sharded_drift_pipeline()
