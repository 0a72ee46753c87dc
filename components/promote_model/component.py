"""KFP component: make a registered version live through a deployment target."""

from kfp import dsl

from refit.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def promote_model(
    store_uri: str,
    model_name: str,
    version: int,
    target: str = "local",
    run_label: str = "",
) -> int:
    """Make ``version`` live: the champion alias moves and the old champion becomes ``previous``.

    Args:
        store_uri: Root of refit's store.
        model_name: Model to promote.
        version: Registered version to make live.
        target: Deployment target (``local`` in the embedded mode).
        run_label: Label of this run in the audit log.

    Returns:
        Output: The version live after promotion.
    """
    from refit import steps

    live = steps.promote_model(store_uri, model_name, version, target=target, run_label=run_label)
    return live
