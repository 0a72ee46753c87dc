"""KFP component: the mergeable drift profile of one shard of a window."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Output

from refit.components.types import Profile
from refit.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def profile_shard(shard: str, profile: Output[Profile]) -> NamedTuple("Outputs", rows=int):
    """Profile one shard of a window, reading only its files and row groups.

    One streaming pass, one batch of one column in memory at a time: memory is flat in the
    shard's rows. A function of its input alone, so KFP caches it.

    Args:
        shard: One item of ``plan_shards``' output (JSON).

    Returns:
        profile: The shard's refit drift profile (JSON); metadata ``rows``.
        rows: Rows profiled.
    """
    from collections import namedtuple

    from refit.steps.shards import profile_window_shard

    rows = profile_window_shard(shard, profile.path)
    profile.metadata.update({"refit_type": "Profile", "rows": rows})
    return namedtuple("Outputs", ["rows"])(rows)
