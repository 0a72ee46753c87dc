"""KFP component: merge the shards' profiles into the window's profile."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Input, Output

from refit.components.types import Profile
from refit.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def merge_profiles(profiles: Input[list[Artifact]], profile: Output[Profile]) -> NamedTuple(
    "Outputs", rows=int
):
    """Merge shard profiles (``dsl.Collected`` over a ParallelFor) into one profile.

    Counts and histograms add up exactly, so the merged profile gives the same drift result
    as a profile of the whole window read in one task.

    Args:
        profiles: The shards' profiles (``profile_shard``'s ``profile``, 1 to 1000).

    Returns:
        profile: The window's refit drift profile (JSON); metadata ``rows``, ``shards``.
        rows: Rows of the window.
    """
    from collections import namedtuple

    from refit.steps.shards import merge_profile_files

    rows = merge_profile_files([p.path for p in profiles], profile.path)
    profile.metadata.update({"refit_type": "Profile", "rows": rows, "shards": len(profiles)})
    return namedtuple("Outputs", ["rows"])(rows)
