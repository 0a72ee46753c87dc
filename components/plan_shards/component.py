"""KFP component: split a Parquet window into shards for a ParallelFor of profile_shard."""

from kfp import dsl

from refit.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def plan_shards(window_uri: str, shards: int = 10) -> list:
    """Split a Parquet window into at most ``shards`` shards of about equal rows.

    Reads only Parquet footers (row-group sizes). Local data splits by row groups, so one large
    file splits too; ``gs://`` data splits by whole objects (each task downloads only its own).
    Feed the list to ``dsl.ParallelFor`` over ``profile_shard``, then ``merge_profiles``.

    Args:
        window_uri: Parquet file or folder (local, ``file://``) or ``gs://`` object or prefix.
        shards: Most shards wanted (1 to 1000).

    Returns:
        One JSON description per shard (its files and row groups), a bare output: kfp.local
        2.17.3 cannot iterate a named output (it looks the channel up as a pipeline input).
    """
    from refit.steps.shards import plan_window_shards

    return plan_window_shards(window_uri, shards)
