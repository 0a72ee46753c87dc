"""KFP component: make a registered version live through a deployment target."""

from typing import NamedTuple

from kfp import dsl

from refit.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def promote_model(
    store_uri: str,
    model_name: str,
    version: int,
    target: str = "local",
    run_label: str = "",
) -> NamedTuple("Outputs", [("live_version", int)]):
    """Promote ``version``: the champion alias moves and the old one becomes ``previous``."""
    from collections import namedtuple

    from refit import steps

    live = steps.promote_model(store_uri, model_name, version, target=target, run_label=run_label)
    return namedtuple("Outputs", ["live_version"])(live)
