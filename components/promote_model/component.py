"""KFP component: make a registered version live through a deployment target."""

from typing import NamedTuple

from kfp import dsl

from refit.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def promote_model(
    store_uri: str,
    model_name: str,
    version: int,
    deploy_target: str = "local",
    run_label: str = "",
) -> NamedTuple("Outputs", live_version=int):
    """Make ``version`` live: the champion alias moves and the old champion becomes ``previous``.

    Args:
        store_uri: Root of refit's store.
        model_name: Model to promote.
        version: Registered version to make live.
        deploy_target: Deployment target (``local`` in the embedded mode).
        run_label: Label of this run in the audit log.

    Returns:
        live_version: The version live after promotion.
    """
    from collections import namedtuple

    from refit import steps

    outputs = namedtuple("Outputs", ["live_version"])

    live = steps.promote_model(
        store_uri, model_name, version, target=deploy_target, run_label=run_label
    )
    return outputs(live)
